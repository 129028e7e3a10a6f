"""Combinators: each turns strategies into a new strategy.

They are reached from :func:`aljax.strategies.resolve` by name, e.g. ``"subsample(least_confidence)"``,
``"epsilon(margin,0.2)"``, ``"alternate(kcenter,entropy)"``, ``"power_sampling(entropy,2)"``; they nest.

Stateful inner strategies are supported: each combinator is written once over the
:class:`~aljax.strategies.base.StatefulStrategy` form and threads its inner strategies' states (a
tuple of them) through every round; every inner strategy is scored every round (``epsilon`` and
``alternate`` pick between scores with ``jnp.where``), so no inner state goes stale. If no inner
strategy is stateful the result is a plain ``score(key, ctx)`` function, with the same arithmetic.

Each combined strategy is declared (:mod:`aljax.declare`) with traits derived from its inner
strategies' declarations and its own settings: ``subsample`` and the sampling combinators are
stochastic, ``epsilon`` is when ``eps > 0``; a combined strategy needs samples if any inner one does;
it is batch-aware only where every round's batch comes from batch-aware scores (``alternate`` of two
batch-aware strategies, ``subsample`` of one, ``epsilon`` at ``eps = 0``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from aljax import declare
from aljax.spec import Count, NonNegative, Probability
from aljax.strategies.base import Context, StatefulStrategy, Strategy, select, stateful

AnyStrategy = Strategy | StatefulStrategy


def random_subset(key: jax.Array, selectable: jax.Array, size: int) -> jax.Array:
    """Mask (N,) of ``min(size, N)`` random rows, selectable rows first (all of them if fewer)."""
    n = selectable.shape[0]
    idx = select(jax.random.uniform(key, (n,)), selectable, min(size, n))
    return jnp.zeros((n,), bool).at[idx].set(True)


def inner_traits(*inner: AnyStrategy) -> dict[str, bool]:
    """The traits a strategy combined from ``inner`` inherits: stochastic or needing samples if any
    inner strategy is (by its declaration), batch-aware if every one is."""
    found = [declare.traits_of(s, "strategy") for s in inner]
    return {"batch_aware": all(t["batch_aware"] for t in found),
            "stochastic": any(t["stochastic"] for t in found),
            "needs_samples": any(t["needs_samples"] for t in found)}


def _wrap(score: Callable, *inner: AnyStrategy, doc: str | None, **traits: bool) -> AnyStrategy:
    """The combined strategy from ``score(key, ctx, states) -> (scores, states)`` over the inner
    strategies' states: stateful if any inner strategy is, else a plain ``(key, ctx) -> (N,)``;
    declared with :func:`inner_traits` overridden by ``traits``."""
    parts = [stateful(s) for s in inner]
    traits = inner_traits(*inner) | traits

    def init(ctx: Context):
        return tuple(p.init(ctx) for p in parts)

    if any(isinstance(s, StatefulStrategy) for s in inner):
        score.__doc__ = doc
        return declare.strategy(StatefulStrategy(init=init, score=score), **traits)

    def plain(key: jax.Array, ctx: Context) -> jax.Array:
        return score(key, ctx, init(ctx))[0]

    plain.__doc__ = doc
    return declare.strategy(plain, **traits)


@declare.combinator
def subsample(strategy: AnyStrategy, size: Count = 1000) -> AnyStrategy:
    """Score only a random subset of ``size`` unlabeled rows per round; the rest get −inf.

    The remedy the article's tutorial gives for least confidence chasing outliers: the most
    uncertain of a random subset is rarely the pool's single most extreme point.
    """
    inner = stateful(strategy)

    def score(key: jax.Array, ctx: Context, states):
        k_subset, k_inner = jax.random.split(key)
        subset = random_subset(k_subset, ctx.selectable, size)
        s, state = inner.score(k_inner, dataclasses.replace(ctx, selectable=ctx.selectable & subset), states[0])
        return jnp.where(subset, s, -jnp.inf), (state,)

    return _wrap(score, strategy, doc=subsample.__doc__, stochastic=True)


@declare.combinator
def epsilon(strategy: AnyStrategy, eps: Probability = 0.1) -> AnyStrategy:
    """ε-greedy mixture with random: with probability ``eps`` a round's scores are uniformly random."""
    inner = stateful(strategy)

    def score(key: jax.Array, ctx: Context, states):
        k_coin, k_random, k_inner = jax.random.split(key, 3)
        explore = jax.random.bernoulli(k_coin, jnp.asarray(eps, jnp.float32))  # eps=0 parses as an int
        s, state = inner.score(k_inner, ctx, states[0])
        return jnp.where(explore, jax.random.uniform(k_random, ctx.selectable.shape), s), (state,)

    explores = bool(eps > 0)
    return _wrap(score, strategy, doc=epsilon.__doc__,
                 stochastic=explores or inner_traits(strategy)["stochastic"],
                 batch_aware=not explores and inner_traits(strategy)["batch_aware"])


@declare.combinator
def alternate(first: AnyStrategy, second: AnyStrategy) -> AnyStrategy:
    """Alternate two strategies round by round (the round is #labels // query_size, from the buffer)."""
    one, two = stateful(first), stateful(second)

    def score(key: jax.Array, ctx: Context, states):
        k1, k2 = jax.random.split(key)
        n_labeled = jnp.sum(ctx.train_w > 0)
        use_first = (n_labeled // ctx.query_size) % 2 == 1
        s1, state1 = one.score(k1, ctx, states[0])
        s2, state2 = two.score(k2, ctx, states[1])
        return jnp.where(use_first, s1, s2), (state1, state2)

    return _wrap(score, first, second, doc=alternate.__doc__)


@declare.combinator
def softmax_sampling(strategy: AnyStrategy, beta: NonNegative = 1.0) -> AnyStrategy:
    """Stochastic top-k (Kirsch et al. 2023): β·s + Gumbel noise, so ``select``'s top-k draws a batch
    without replacement with probabilities ∝ exp(β·s)."""
    inner = stateful(strategy)

    def score(key: jax.Array, ctx: Context, states):
        k_noise, k_inner = jax.random.split(key)
        s, state = inner.score(k_inner, ctx, states[0])
        return beta * s + jax.random.gumbel(k_noise, ctx.selectable.shape), (state,)

    return _wrap(score, strategy, doc=softmax_sampling.__doc__, stochastic=True, batch_aware=False)


@declare.combinator
def power_sampling(strategy: AnyStrategy, beta: NonNegative = 1.0) -> AnyStrategy:
    """Stochastic top-k (Kirsch et al. 2023) for non-negative scores: β·log s + Gumbel: a batch
    drawn without replacement with probabilities ∝ s^β (scores ≤ 0 become the smallest float)."""
    inner = stateful(strategy)

    def score(key: jax.Array, ctx: Context, states):
        k_noise, k_inner = jax.random.split(key)
        s, state = inner.score(k_inner, ctx, states[0])
        log_s = jnp.log(jnp.maximum(s, jnp.finfo(jnp.float32).tiny))
        return jnp.where(s == -jnp.inf, -jnp.inf, beta * log_s) + jax.random.gumbel(k_noise, s.shape), (state,)

    return _wrap(score, strategy, doc=power_sampling.__doc__, stochastic=True, batch_aware=False)
