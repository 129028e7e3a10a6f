"""Stream-based active learning: rows arrive one at a time and each is labeled now or never.

The pool's unlabeled valid rows arrive in a seeded random order. Each arrival gets the same
per-sample score as pool mode (:data:`aljax.strategies.PER_SAMPLE`, under the current params) and
is queried when it passes the manager's test:

* ``'threshold'``: score > ``threshold``, while the label budget lasts;
* ``'budget'`` (a balanced quantile filter, Kottke et al. 2015): score ≥ the (1 − b) quantile of the
  last ``window`` scores, b = budget / arrivals, and the labels spent never run ahead of an even
  spend (budget · arrivals seen / arrivals).

The model refits after every ``config.query_size`` queries (the pool mode's round pieces,
:func:`aljax.round.fit`: a refit period is a round, its context counts the labels it took); the label budget is ``config.rounds ×
config.query_size`` (labels come from the true oracle). The whole stream is one ``lax.scan`` over
refit periods, each a ``lax.scan`` over the arrivals; seeds are a vmap axis, as in pool mode.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from aljax.data import Data
from aljax.config import Config
from aljax.fit import Hyper
from aljax.round import Round, RoundContext, State, fit, make_round, round_context
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
        if not isinstance(self.base.strategy, str) or self.base.strategy not in PER_SAMPLE:
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


class Arriving(NamedTuple):
    """One stream's fixed facts inside the traced run: its settings, the round pieces, the data,
    the arrival order (N,) of the open rows, their number, the target query rate and the budget."""

    stream: StreamConfig
    rnd: Round
    data: Data
    hyper: Hyper
    arrival: jax.Array
    n_arrivals: jax.Array
    rate: jax.Array
    budget: int


def _arrive(s: Arriving, scores: jax.Array, c, t: jax.Array):
    """Arrival ``t`` of a period: scored, queried if the manager lets it and the period has room."""
    arr, taken, picks, end = c
    k = s.rnd.config.query_size
    active = (t >= arr.position) & (t < s.n_arrivals) & (taken < k)
    score = scores[t]
    if s.stream.manager == "threshold":
        passes = (score > s.stream.threshold) & (arr.spent < s.budget)
    else:
        bar = jnp.quantile(arr.recent, 1 - s.rate, method="higher")
        passes = (score >= bar) & (arr.spent < s.budget * (arr.seen + 1) / s.n_arrivals)
    query = active & passes
    picks = picks.at[taken].set(jnp.where(query, s.arrival[t], picks[taken]), mode="drop")
    end = jnp.where(query & (taken + 1 == k), t + 1, end)
    arr = Arrivals(
        position=arr.position,
        recent=jnp.where(active, arr.recent.at[arr.seen % s.stream.window].set(score), arr.recent),
        seen=arr.seen + active,
        spent=arr.spent + query,
    )
    return (arr, taken + query, picks, end), None


def _period(s: Arriving, carry: tuple[State, jax.Array, Arrivals], r: jax.Array):
    """Refit period ``r``: arrivals until ``query_size`` are queried (or the stream ends), then the
    round's fit (:func:`aljax.round.fit`) on the labels taken."""
    state, logits, arr = carry
    config, data = s.rnd.config, s.data
    scores = jax.vmap(PER_SAMPLE[config.strategy])(logits[s.arrival])
    start = (arr, jnp.int32(0), jnp.zeros((config.query_size,), jnp.int32), s.n_arrivals)
    (arr, taken, picks, end), _ = jax.lax.scan(functools.partial(_arrive, s, scores), start,
                                               jnp.arange(s.arrival.shape[0]))
    got = jnp.arange(config.query_size) < taken
    state = dataclasses.replace(
        state,
        labeled=state.labeled.at[picks].max(got),
        order=jax.lax.dynamic_update_slice(state.order, picks, (state.n_labeled,)),
        targets=jax.lax.dynamic_update_slice(state.targets, data.pool.y[picks], (state.n_labeled,)),
        n_labeled=state.n_labeled + taken,
    )
    ctx = RoundContext(round=r, n_labeled=state.n_labeled, n_new=taken, budget=config.budget)
    state, info, logits = fit(s.rnd, data, s.hyper, state, logits, ctx)
    arr = dataclasses.replace(arr, position=end)
    return (state, logits, arr), (info, arr.seen)


def make_stream(stream: StreamConfig, rnd: Round | None = None):
    """``run(data, hyper, key) -> (state, info, seen)``: info as in pool mode (refit periods + 1) and
    seen (periods,): how many arrivals had gone by at each refit. ``rnd``: the round pieces (default:
    ``make_round(stream.base)``); the stream drives their init, fit and finish."""
    config = stream.base
    rnd = make_round(config) if rnd is None else rnd
    budget = config.rounds * config.query_size

    def run(data: Data, hyper: Hyper, key: jax.Array):
        k_order, k_state = jax.random.split(key)
        state = rnd.init(data, hyper, k_state)
        before = rnd.pool_logits(data, state.params)
        state, first, logits = fit(rnd, data, hyper, state, before, round_context(config, state, 0))
        open_rows = data.pool.valid & ~state.labeled
        arrival = jnp.argsort(jnp.where(open_rows, jax.random.uniform(k_order, open_rows.shape), 2.0))
        n_arrivals = jnp.sum(open_rows)
        s = Arriving(stream, rnd, data, hyper, arrival, n_arrivals, budget / jnp.maximum(n_arrivals, 1), budget)
        arr = Arrivals(jnp.int32(0), jnp.full((stream.window,), -jnp.inf), jnp.int32(0), jnp.int32(0))
        (state, _, _), (infos, seen) = jax.lax.scan(functools.partial(_period, s), (state, logits, arr),
                                                    jnp.arange(1, config.rounds + 1))
        info = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, infos)
        return state, info, seen

    return run
