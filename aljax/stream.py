"""Stream-based active learning: rows arrive one at a time and each is labeled now or never.

The pool's unlabeled valid rows arrive in a seeded random order. Each arrival gets the same
per-sample score as pool mode (:data:`aljax.strategies.PER_SAMPLE`, under the current params) and
is queried when it passes the manager's test:

* ``'threshold'``: score > ``threshold``, while the label budget lasts;
* ``'budget'`` (a balanced quantile filter, Kottke et al. 2015): score ≥ the (1 − b) quantile of the
  last ``window`` scores, b = budget / arrivals, and the labels spent never run ahead of an even
  spend (budget · arrivals seen / arrivals).

The model refits after every ``config.query_size`` queries; the label budget is ``config.rounds ×
config.query_size`` (labels come from the true oracle). The whole stream is one ``lax.scan`` over
refit periods, each a ``lax.scan`` over the arrivals; seeds are a vmap axis, as in pool mode.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from aljax.data import Data
from aljax.loop import Config, Hyper, State, components, fit_round, init_state
from aljax.strategies import PER_SAMPLE

MANAGERS = ("threshold", "budget")


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """Static stream settings: ``base`` (strategy must be per-sample), the manager, its parameters."""

    base: Config = Config()
    manager: str = "budget"
    threshold: float = -0.9
    window: int = 100

    def __post_init__(self):
        if self.base.strategy not in PER_SAMPLE:
            raise ValueError(f"stream strategy {self.base.strategy!r} is not per-sample; choose one of: {', '.join(PER_SAMPLE)}")
        if self.manager not in MANAGERS:
            raise ValueError(f"unknown manager {self.manager!r}; choose one of: {', '.join(MANAGERS)}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Arrivals:
    """Manager state carried along the stream: next arrival, ring buffer of recent scores, labels spent."""

    position: jax.Array
    recent: jax.Array
    seen: jax.Array
    spent: jax.Array


def make_stream(stream: StreamConfig):
    """``run(data, hyper, key) -> (state, info, seen)``: info as in pool mode (refit periods + 1) and
    seen (periods,): how many arrivals had gone by at each refit."""
    config = stream.base
    score_one = PER_SAMPLE[config.strategy]
    k = config.query_size
    budget = config.rounds * k

    def run(data: Data, hyper: Hyper, key: jax.Array):
        k_order, k_state = jax.random.split(key)
        parts = components(config)
        state = init_state(config, data, hyper, k_state)
        state, first, logits = fit_round(parts, data, hyper, state, parts.model.apply(state.params, data.pool.x))
        open_rows = data.pool.valid & ~state.labeled
        arrival = jnp.argsort(jnp.where(open_rows, jax.random.uniform(k_order, open_rows.shape), 2.0))
        n_arrivals = jnp.sum(open_rows)
        rate = budget / jnp.maximum(n_arrivals, 1)

        def period(carry: tuple[State, jax.Array, Arrivals], _):
            state, logits, arr = carry
            scores = jax.vmap(score_one)(logits[arrival])

            def arrive(c, t):
                arr, taken, picks, end = c
                active = (t >= arr.position) & (t < n_arrivals) & (taken < k)
                s = scores[t]
                if stream.manager == "threshold":
                    passes = (s > stream.threshold) & (arr.spent < budget)
                else:
                    bar = jnp.quantile(arr.recent, 1 - rate, method="higher")
                    passes = (s >= bar) & (arr.spent < budget * (arr.seen + 1) / n_arrivals)
                query = active & passes
                picks = picks.at[taken].set(jnp.where(query, arrival[t], picks[taken]), mode="drop")
                end = jnp.where(query & (taken + 1 == k), t + 1, end)
                arr = Arrivals(
                    position=arr.position,
                    recent=jnp.where(active, arr.recent.at[arr.seen % stream.window].set(s), arr.recent),
                    seen=arr.seen + active,
                    spent=arr.spent + query,
                )
                return (arr, taken + query, picks, end), None

            start = (arr, jnp.int32(0), jnp.zeros((k,), jnp.int32), n_arrivals)
            (arr, taken, picks, end), _ = jax.lax.scan(arrive, start, jnp.arange(arrival.shape[0]))
            got = jnp.arange(k) < taken
            state = dataclasses.replace(
                state,
                labeled=state.labeled.at[picks].max(got),
                order=jax.lax.dynamic_update_slice(state.order, picks, (state.n_labeled,)),
                targets=jax.lax.dynamic_update_slice(state.targets, data.pool.y[picks], (state.n_labeled,)),
                n_labeled=state.n_labeled + taken,
            )
            state, info, logits = fit_round(parts, data, hyper, state, logits)
            arr = dataclasses.replace(arr, position=end)
            return (state, logits, arr), (info, arr.seen)

        arr = Arrivals(jnp.int32(0), jnp.full((stream.window,), -jnp.inf), jnp.int32(0), jnp.int32(0))
        (state, _, _), (infos, seen) = jax.lax.scan(period, (state, logits, arr), length=config.rounds)
        info = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, infos)
        return state, info, seen

    return run
