"""Combinators: each turns strategies ``score(key, ctx) -> (N,)`` into a new strategy.

They are reached from :func:`aljax.strategies.resolve` by name, e.g. ``"subsample(least_confidence)"``,
``"epsilon(margin,0.2)"``, ``"alternate(kcenter,entropy)"``, ``"power_sampling(entropy,2)"``; they nest.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from aljax.strategies import Context

Strategy = Callable[[jax.Array, "Context"], jax.Array]


def random_subset(key: jax.Array, selectable: jax.Array, size: int) -> jax.Array:
    """Mask (N,) of ``min(size, N)`` random rows, selectable rows first (all of them if fewer)."""
    from aljax.strategies import select  # strategies imports this module

    n = selectable.shape[0]
    idx = select(jax.random.uniform(key, (n,)), selectable, min(size, n))
    return jnp.zeros((n,), bool).at[idx].set(True)


def subsample(strategy: Strategy, size: int = 1000) -> Strategy:
    """Score only a random subset of ``size`` unlabeled rows per round; the rest get −inf.

    The remedy the article's tutorial gives for least confidence chasing outliers: the most
    uncertain of a random subset is rarely the pool's single most extreme point.
    """

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        k_subset, k_inner = jax.random.split(key)
        subset = random_subset(k_subset, ctx.selectable, size)
        inner = strategy(k_inner, dataclasses.replace(ctx, selectable=ctx.selectable & subset))
        return jnp.where(subset, inner, -jnp.inf)

    return score


def epsilon(strategy: Strategy, eps: float = 0.1) -> Strategy:
    """ε-greedy mixture with random: with probability ``eps`` a round's scores are uniformly random."""

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        k_coin, k_random, k_inner = jax.random.split(key, 3)
        explore = jax.random.bernoulli(k_coin, eps)
        return jnp.where(explore, jax.random.uniform(k_random, ctx.selectable.shape), strategy(k_inner, ctx))

    return score


def alternate(first: Strategy, second: Strategy) -> Strategy:
    """Alternate two strategies round by round (the round is #labels // query_size, from the buffer)."""

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        k1, k2 = jax.random.split(key)
        n_labeled = jnp.sum(ctx.train_w > 0)
        use_first = (n_labeled // ctx.query_size) % 2 == 1
        return jnp.where(use_first, first(k1, ctx), second(k2, ctx))

    return score


def softmax_sampling(strategy: Strategy, beta: float = 1.0) -> Strategy:
    """Stochastic top-k (Kirsch et al. 2023): β·s + Gumbel noise, so ``select``'s top-k draws a batch
    without replacement with probabilities ∝ exp(β·s)."""

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        k_noise, k_inner = jax.random.split(key)
        return beta * strategy(k_inner, ctx) + jax.random.gumbel(k_noise, ctx.selectable.shape)

    return score


def power_sampling(strategy: Strategy, beta: float = 1.0) -> Strategy:
    """Stochastic top-k (Kirsch et al. 2023) for non-negative scores: β·log s + Gumbel, i.e. a batch
    drawn without replacement with probabilities ∝ s^β (scores ≤ 0 become the smallest float)."""

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        k_noise, k_inner = jax.random.split(key)
        s = strategy(k_inner, ctx)
        log_s = jnp.log(jnp.maximum(s, jnp.finfo(jnp.float32).tiny))
        return jnp.where(s == -jnp.inf, -jnp.inf, beta * log_s) + jax.random.gumbel(k_noise, s.shape)

    return score


COMBINATORS: dict[str, Callable[..., Strategy]] = {
    "subsample": subsample,
    "epsilon": epsilon,
    "alternate": alternate,
    "softmax_sampling": softmax_sampling,
    "power_sampling": power_sampling,
}
