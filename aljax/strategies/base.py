"""What every strategy shares: the :class:`Context` it reads, the :data:`Strategy` and
:class:`StatefulStrategy` types, :func:`per_sample` lifting, and selection (:func:`select`,
:func:`rank_batch`).

A strategy is one function ``score(key, ctx) -> (N,)`` over the whole pool, higher = ask first.
Per-sample strategies are written for ONE example's logits (C,) and lifted over the pool with
``jax.vmap`` by :func:`per_sample`. Selection is shared (:func:`select`): rows that are labeled or
padding get ``-inf``, then ``lax.top_k``, whose ties go to the lower pool index. Batch-aware
strategies (k-center, BADGE, k-means) choose a whole batch of ``ctx.query_size`` rows and give it
descending scores above every other row (:func:`rank_batch`), so ``select`` takes exactly that batch.
A strategy that remembers something across rounds is a :class:`StatefulStrategy` (optax style).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from aljax import forward
from aljax.fit import mean_weights
from aljax.models import Model, Params


@dataclasses.dataclass(frozen=True)
class Context:
    """What a strategy may look at (built inside the traced round by :func:`make_context`; never stored
    in the state).

    model: the :class:`aljax.models.Model` (``ctx.apply`` and ``ctx.embed`` call it); params: its
    current (best) params; x (N, *sample_shape): the pool; logits (N, C): ``apply(params, x)`` in eval
    mode, computed once per round by the caller (the loop reuses them for its metrics); selectable
    (N,) bool: valid and not yet labeled; train_x (L, *sample_shape), train_y (L,), train_w (L,): the
    weighted training buffer (w sums to 1; w > 0 marks the labeled rows, which come first, in
    acquisition order); query_size: rows taken this round (static int); where the round is (the
    engine's round context): round () int32, the round this query starts (1 for the first query);
    n_labeled () int32, labels held before this query; budget (static int or None), labels held after
    the last round (None where no experiment sets one: labeling, one-off callers).
    """

    model: Model
    params: Params
    x: jax.Array
    logits: jax.Array
    selectable: jax.Array
    train_x: jax.Array
    train_y: jax.Array
    train_w: jax.Array
    query_size: int
    round: jax.Array | int = 0
    n_labeled: jax.Array | int = 0
    budget: int | None = None

    def apply(self, params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        """The model's logits (n, C) for x (n, *sample_shape); ``train=True`` with a ``key`` samples dropout."""
        return self.model.apply(params, x, key=key, train=train)

    def embed(self, x: jax.Array | None = None) -> jax.Array:
        """The output layer's input (n, E) under the current params, for x (default: the pool)."""
        return self.model.embed(self.params, self.x if x is None else x)

    def samples(self, key: jax.Array, k: int, *, x: jax.Array | None = None, chunk: int | None = None) -> jax.Array:
        """Sampled logits (K, n, C) of x (default: the pool), the one source of every Bayesian strategy:
        the model's own ``samples`` hook if it has one (an :func:`~aljax.models.ensemble`: its M
        members, whatever ``k``), else ``k`` passes of consistent MC dropout
        (:func:`aljax.forward.mc_dropout_logits`; a model without dropout gives k equal samples).
        ``chunk``: score that many rows at a time."""
        x = self.x if x is None else x
        if self.model.samples is not None:
            return self.model.samples(self.params, x, key=key, k=k, chunk=chunk)
        return forward.mc_dropout_logits(self.model, self.params, x, key, k, chunk=chunk)


def make_context(model: Model, params: Params, pool_x: jax.Array, logits: jax.Array, selectable: jax.Array,
                 order: jax.Array, targets: jax.Array, n_labeled: jax.Array, query_size: int, *, round=0,
                 budget: int | None = None) -> Context:
    """The one way a :class:`Context` is built (the loop, labeling, the bench): the training buffer is
    the pool rows ``order`` (L,) labeled ``targets`` (L,), of which the first ``n_labeled`` are real;
    ``round`` and ``budget``: where the experiment is (:class:`Context`)."""
    mask = jnp.arange(order.shape[0]) < n_labeled
    return Context(model=model, params=params, x=pool_x, logits=logits, selectable=selectable,
                   train_x=pool_x[order], train_y=targets, train_w=mean_weights(mask), query_size=query_size,
                   round=round, n_labeled=n_labeled, budget=budget)


Strategy = Callable[[jax.Array, Context], jax.Array]


@dataclasses.dataclass(frozen=True)
class StatefulStrategy:
    """A strategy with memory across rounds, as an optax-style pair of pure functions.

    ``init(ctx) -> state``: a pytree of arrays (fixed shapes; vmappable); ``score(key, ctx, state) ->
    (scores (N,), state)``. The loop keeps the state in ``State.strategy_state`` and passes each
    round's new state to the next round. Called like a plain strategy, ``strategy(key, ctx)`` scores
    from a fresh ``init(ctx)``: what one-off callers (labeling, the bench) get, with the same scores.
    Keyword settings in a spec (``name(k=v)``) go to ``score``.
    """

    init: Callable[[Context], Any]
    score: Callable[[jax.Array, Context, Any], tuple[jax.Array, Any]]

    def __post_init__(self):
        object.__setattr__(self, "__doc__", inspect.getdoc(self.score))  # `aljax list` reads it

    def __call__(self, key: jax.Array, ctx: Context) -> jax.Array:
        return self.score(key, ctx, self.init(ctx))[0]


def stateful(strategy: Strategy | StatefulStrategy) -> StatefulStrategy:
    """``strategy`` as a :class:`StatefulStrategy`; a plain one carries the empty state ``()``."""
    if isinstance(strategy, StatefulStrategy):
        return strategy
    return StatefulStrategy(init=lambda ctx: (), score=lambda key, ctx, state: (strategy(key, ctx), state))


def per_sample(score_one: Callable[[jax.Array], jax.Array]) -> Strategy:
    """Lift ``score_one(logits (C,)) -> ()`` to a pool strategy ``(key, ctx) -> (N,)`` with vmap."""

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        del key
        return jax.vmap(score_one)(ctx.logits)

    score.__doc__ = score_one.__doc__
    return score


def select(scores: jax.Array, selectable: jax.Array, k: int) -> jax.Array:
    """Indices (k,) of the k highest ``scores`` (N,) among ``selectable`` (N,) rows; ties to lower index.

    A selectable row scored −inf (a strategy's "not a candidate") still ranks above every
    unselectable row, so labeled and padding rows are never chosen while k rows are selectable.
    """
    lowest = jnp.finfo(scores.dtype).min
    return jax.lax.top_k(jnp.where(selectable, jnp.maximum(scores, lowest), -jnp.inf), k)[1]


def rank_batch(batch: jax.Array, rest: jax.Array) -> jax.Array:
    """Scores (N,) that put the rows ``batch`` (k,) first, in order, above every finite ``rest`` (N,)."""
    top = jnp.max(jnp.where(jnp.isfinite(rest), rest, 0.0))
    k = batch.shape[0]
    return rest.at[batch].set(top + (k - jnp.arange(k)).astype(rest.dtype))
