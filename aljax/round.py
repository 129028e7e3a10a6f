"""One active-learning round, defined once: pure pieces over ONE seed that every schedule drives.

Round ``r`` (1..rounds; round 0 is the fit on the initial labels) is, in this order::

    query(data, state, logits, r)                 score the pool under the last fit, select, acquire
    begin(data, hyper, state, ctx)                gather the label buffer, start the fit
    epoch(data, hyper, state, carry, x, ctx)      one fitter epoch and one evaluation, while running(hyper, carry)
    finish(data, state, carry, before, ctx)       fitted state, RoundInfo (built-ins + metric plug-ins), pool logits

A :class:`Round` holds these pieces (and ``init``, ``fresh_strategy``) as fields, built once from a
:class:`~aljax.config.Config` by :func:`make_round`. The schedules (:mod:`aljax.schedules`: one seed,
lockstep chunks, sequential seeds, continuous lanes; :mod:`aljax.stream`) decide only when each piece
runs and for which seed, so a round changed here, or a piece replaced with
``dataclasses.replace(make_round(config), finish=...)``, changes every schedule alike.

The :class:`RoundContext` (round index, labels held, labels just added, budget) flows down to the
fitter (``context=``), to the learning-rate schedule and to the metrics; strategies read the same
facts from their :class:`~aljax.strategies.Context` (``ctx.round``, ``ctx.n_labeled``, ``ctx.budget``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from aljax.config import Components, Config, components
from aljax.data import Data
from aljax.fit import FitCarry, Hyper, n_correct
from aljax.models import flatten, predictive
from aljax.round_metrics import RoundView, record
from aljax.round_state import BUILTIN, RoundContext, RoundInfo, State, columns  # noqa: F401 (re-exported)
from aljax.stopping import cohen_kappa
from aljax.strategies import Context, StatefulStrategy, kmeans_representatives, make_context, select, stateful


def round_context(config: Config, state: State, r) -> RoundContext:
    """The context of round ``r``'s fit on ``state`` (after the round's acquisition): each query round
    adds ``query_size`` labels, round 0 holds only the initial ones."""
    r = jnp.asarray(r, jnp.int32)
    return RoundContext(round=r, n_labeled=state.n_labeled,
                        n_new=jnp.where(r == 0, state.n_labeled, config.query_size).astype(jnp.int32),
                        budget=config.budget)


def grow(state: State, capacity: int) -> State:
    """The same state with its label buffer padded to ``capacity`` rows (for a longer next phase)."""
    pad = capacity - state.order.shape[-1]
    if pad < 0:
        raise ValueError(f"cannot shrink the label buffer from {state.order.shape[-1]} to {capacity}")
    widths = [(0, 0)] * (state.order.ndim - 1) + [(0, pad)]
    return dataclasses.replace(state, order=jnp.pad(state.order, widths), targets=jnp.pad(state.targets, widths))


def acquire(state: State, idx: jax.Array, targets: jax.Array) -> State:
    """Append pool rows ``idx`` (k,) with labels ``targets`` (k,) to the labeled buffer."""
    return dataclasses.replace(
        state,
        labeled=state.labeled.at[idx].set(True),
        order=jax.lax.dynamic_update_slice(state.order, idx.astype(jnp.int32), (state.n_labeled,)),
        targets=jax.lax.dynamic_update_slice(state.targets, targets.astype(jnp.int32), (state.n_labeled,)),
        n_labeled=state.n_labeled + idx.shape[0],
    )


def context(parts: Components, data: Data, state: State, logits: jax.Array, query_size: int,
            r=0, budget: int | None = None) -> Context:
    """The strategy's view of ``state`` in round ``r``: :func:`aljax.strategies.make_context` on the pool."""
    return make_context(parts.model, state.params, data.pool.x, logits, data.pool.valid & ~state.labeled,
                        state.order, state.targets, state.n_labeled, query_size, round=r, budget=budget)


def init_state(config: Config, data: Data, hyper: Hyper, key: jax.Array) -> State:
    """Initial params, optimiser state and the ``n_initial`` first labels (not yet fitted)."""
    parts = components(config)
    fit_key = jax.random.fold_in(key, 1)
    key, k_init, k_first = jax.random.split(key, 3)
    length = config.buffer if config.phases == 1 else config.n_initial  # phases grow it as they go
    params = parts.model.init(k_init, data.pool.x.shape[1:])
    n_pool = data.pool.size
    if config.initial == "first":
        first = jnp.arange(config.n_initial)
    elif config.initial == "random":
        first = select(jax.random.uniform(k_first, (n_pool,)), data.pool.valid, config.n_initial)
    elif config.initial == "balanced":  # the same random draw ranks every class: per-class top n/C
        u, per = jax.random.uniform(k_first, (n_pool,)), config.n_initial // config.n_classes
        first = jax.vmap(lambda c: select(u, data.pool.valid & (data.pool.y == c), per))(jnp.arange(config.n_classes))
        first = first.reshape(-1)
    else:
        first = kmeans_representatives(k_first, flatten(data.pool.x), data.pool.valid, config.n_initial)
    state = State(
        params=params,
        opt_state=parts.optimizer(hyper.learning_rate).init(params),
        labeled=jnp.zeros((n_pool,), bool),
        order=jnp.zeros((length,), jnp.int32),
        targets=jnp.zeros((length,), jnp.int32),
        n_labeled=jnp.int32(0),
        key=key,
        fit_key=fit_key,
    )
    return acquire(state, first, data.pool.y[first])


def optimizer_at(parts: Components, hyper: Hyper, ctx: RoundContext) -> optax.GradientTransformation:
    """The optimiser of a round's fit: at ``hyper.learning_rate``, times ``lr_schedule(ctx)`` if any."""
    rate = hyper.learning_rate if parts.lr_schedule is None else hyper.learning_rate * parts.lr_schedule(ctx)
    return parts.optimizer(rate)


def begin(parts: Components, data: Data, hyper: Hyper, state: State,
          ctx: RoundContext) -> tuple[State, FitCarry, jax.Array]:
    """Start the round's fit: split the fit key, gather the label buffer's rows x (L, *sample_shape)
    through ``order``, and ``fitter.start``. Returns the state (its ``fit_key`` advanced), the fit and x."""
    fit_key, k_fit = jax.random.split(state.fit_key)
    x = data.pool.x[state.order]
    carry = parts.fitter.start(parts.model, optimizer_at(parts, hyper, ctx), state.params, state.opt_state, k_fit,
                               x, state.targets, state.weights, data.eval, hyper, context=ctx)
    return dataclasses.replace(state, fit_key=fit_key), carry, x


def running(parts: Components, hyper: Hyper, carry: FitCarry) -> jax.Array:
    """Whether the fit ``carry`` has another epoch due."""
    return parts.fitter.running(carry, hyper)


def epoch(parts: Components, data: Data, hyper: Hyper, state: State, carry: FitCarry, x: jax.Array,
          ctx: RoundContext) -> FitCarry:
    """One fitter epoch (and one evaluation) of the fit ``carry`` on the buffer rows ``x``."""
    return parts.fitter.epoch(parts.model, optimizer_at(parts, hyper, ctx), carry, x, state.targets, state.weights,
                              data.eval, hyper, context=ctx)


def finish(parts: Components, data: Data, state: State, carry: FitCarry, before: jax.Array,
           ctx: RoundContext) -> tuple[State, RoundInfo, jax.Array]:
    """End the round: the state with the fit's best params and its optimiser state, the round's info
    (built-ins, then the metric plug-ins on a :class:`RoundView`) and the pool logits (N, C) under the
    fitted params, the one pass over the pool of a round, reused by the next round's strategy. Test
    accuracy reads the model's test-time predictive (:func:`aljax.models.predictive`), the pool
    logits and the fit's early stopping its eval-mode ``apply``.
    ``before`` (N, C): the pool logits under the params the fit started from."""
    result = parts.fitter.result(carry)
    model = parts.model
    mask = state.in_buffer
    logits = model.apply(result.params, data.pool.x)
    confidence = jnp.max(jax.nn.softmax(logits), axis=-1)
    state = dataclasses.replace(state, params=result.params, opt_state=result.opt_state)
    info = RoundInfo(
        n_labeled=state.n_labeled,
        eval_correct=result.correct,
        test_accuracy=n_correct(predictive(model), result.params, data.test) / data.test.y.shape[0],
        steps=result.steps,
        wrong_labels=jnp.sum(mask & (state.targets != data.pool.y[state.order]), dtype=jnp.int32),
        min_confidence=jnp.min(jnp.where(data.pool.valid & ~state.labeled, confidence, 1.0)),
        agreement=cohen_kappa(jnp.argmax(before, axis=-1), jnp.argmax(logits, axis=-1), data.pool.valid,
                              logits.shape[-1]),
        nonfinite_picks=state.nonfinite_picks,
        extra=record(RoundView(model, data, state, logits, ctx), parts.metrics, BUILTIN),
    )
    return state, info, logits


def fresh_strategy(config: Config, strategy: StatefulStrategy, data: Data, state: State, logits: jax.Array,
                   r) -> Any:
    """The strategy's initial state (``init``) on ``state``, before the query of round ``r``."""
    parts = components(config)
    return strategy.init(context(parts, data, state, logits, config.query_size, r, config.budget))


def query(config: Config, strategy: StatefulStrategy, data: Data, state: State, logits: jax.Array, r) -> State:
    """Round ``r``'s acquisition: score the pool (``logits`` under ``state.params``), select
    ``query_size`` rows and label them (true labels, or the model's argmax)."""
    key, k_score = jax.random.split(state.key)
    ctx = context(components(config), data, state, logits, config.query_size, r, config.budget)
    scores, strategy_state = strategy.score(k_score, ctx, state.strategy_state)
    idx = select(scores, ctx.selectable, config.query_size)
    targets = data.pool.y[idx] if config.oracle == "true" else jnp.argmax(logits[idx], axis=-1)
    nonfinite = jnp.sum(~jnp.isfinite(scores[idx]), dtype=jnp.int32)
    return acquire(dataclasses.replace(state, key=key, strategy_state=strategy_state, nonfinite_picks=nonfinite),
                   idx, targets)


@dataclasses.dataclass(frozen=True)
class Round:
    """The pieces of one round of ``config``, each over one seed (schedules vmap them).

    init(data, hyper, key) -> State; query(data, state, logits, r) -> State; begin(data, hyper,
    state, ctx) -> (State, FitCarry, x); running(hyper, carry) -> bool; epoch(data, hyper, state,
    carry, x, ctx) -> FitCarry; finish(data, state, carry, before, ctx) -> (State, RoundInfo, logits);
    fresh_strategy(data, state, logits, r) -> the strategy's initial state; pool_logits(data, params)
    -> (N, C), the eval-mode pass over the pool (where a fit starts). Replace a field
    (``dataclasses.replace``) to change that piece under every schedule.
    """

    config: Config
    init: Callable
    query: Callable
    begin: Callable
    running: Callable
    epoch: Callable
    finish: Callable
    fresh_strategy: Callable
    pool_logits: Callable


def make_round(config: Config) -> Round:
    """The :class:`Round` of ``config`` (its components built once, :func:`aljax.config.components`)."""
    parts = components(config)
    strategy = stateful(parts.strategy)
    return Round(
        config=config,
        init=lambda data, hyper, key: init_state(config, data, hyper, key),
        query=lambda data, state, logits, r: query(config, strategy, data, state, logits, r),
        begin=lambda data, hyper, state, ctx: begin(parts, data, hyper, state, ctx),
        running=lambda hyper, carry: running(parts, hyper, carry),
        epoch=lambda data, hyper, state, carry, x, ctx: epoch(parts, data, hyper, state, carry, x, ctx),
        finish=lambda data, state, carry, before, ctx: finish(parts, data, state, carry, before, ctx),
        fresh_strategy=lambda data, state, logits, r: fresh_strategy(config, strategy, data, state, logits, r),
        pool_logits=lambda data, params: parts.model.apply(params, data.pool.x),
    )


def fit(rnd: Round, data: Data, hyper: Hyper, state: State, before: jax.Array,
        ctx: RoundContext) -> tuple[State, RoundInfo, jax.Array]:
    """A whole fit of one seed from its pieces: begin, epochs while running, finish."""
    state, carry, x = rnd.begin(data, hyper, state, ctx)
    carry = jax.lax.while_loop(lambda c: rnd.running(hyper, c),
                               lambda c: rnd.epoch(data, hyper, state, c, x, ctx), carry)
    return rnd.finish(data, state, carry, before, ctx)


def same_layout(a, b) -> bool:
    """Whether pytrees ``a`` and ``b`` have the same structure, shapes and dtypes (static)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        jnp.shape(x) == jnp.shape(y) and jnp.result_type(x) == jnp.result_type(y) for x, y in zip(leaves_a, leaves_b))
