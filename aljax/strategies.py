"""Query strategies and the registry.

A strategy is one function ``score(key, ctx) -> (N,)`` over the whole pool, higher = ask first, and
one line in :data:`STRATEGIES`. Per-sample strategies are written for ONE example's logits (C,)
and lifted over the pool with ``jax.vmap`` by :func:`per_sample`. Selection is shared
(:func:`select`): rows that are labeled or padding get ``-inf``, then ``lax.top_k``, whose ties go
to the lower pool index.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from aljax.models import Params


@dataclasses.dataclass(frozen=True)
class Context:
    """What a strategy may look at (built inside the traced round; never stored in the state).

    apply: the model's apply function; params: its current (best) params;
    x (N, D): pool features; selectable (N,) bool: valid and not yet labeled;
    train_x (L, D), train_y (L,), train_w (L,): the weighted training buffer (w sums to 1).
    """

    apply: Callable[[Params, jax.Array], jax.Array]
    params: Params
    x: jax.Array
    selectable: jax.Array
    train_x: jax.Array
    train_y: jax.Array
    train_w: jax.Array

    def logits(self) -> jax.Array:
        """(N, C) logits of the whole pool under the current params."""
        return self.apply(self.params, self.x)


Strategy = Callable[[jax.Array, Context], jax.Array]


def per_sample(score_one: Callable[[jax.Array], jax.Array]) -> Strategy:
    """Lift ``score_one(logits (C,)) -> ()`` to a pool strategy ``(key, ctx) -> (N,)`` with vmap."""

    def score(key: jax.Array, ctx: Context) -> jax.Array:
        del key
        return jax.vmap(score_one)(ctx.logits())

    score.__doc__ = score_one.__doc__
    return score


def least_confidence(logits: jax.Array) -> jax.Array:
    """Least confidence: ranks like 1 − max p. Returned as −max p (softmax as in TF, exp(z−max)/Σ),
    so float rounding never merges distinct confidences: "sort by max softmax ascending"."""
    return -jnp.max(jax.nn.softmax(logits))


def confidence(logits: jax.Array) -> jax.Array:
    """Most confident first: max p (the article's auto-labeling order)."""
    return jnp.max(jax.nn.softmax(logits))


def margin(logits: jax.Array) -> jax.Array:
    """Smallest margin first: −(p₁ − p₂) between the two most probable classes."""
    top2 = jax.lax.top_k(jax.nn.softmax(logits), 2)[0]
    return top2[1] - top2[0]


def entropy(logits: jax.Array) -> jax.Array:
    """Predictive entropy −Σ p log p, from log-softmax (finite even when some p underflow to 0)."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp)


def random(key: jax.Array, ctx: Context) -> jax.Array:
    """Uniformly random scores: a random subset of the selectable rows."""
    return jax.random.uniform(key, (ctx.x.shape[0],))


STRATEGIES: dict[str, Strategy] = {
    "random": random,
    "least_confidence": per_sample(least_confidence),
    "margin": per_sample(margin),
    "entropy": per_sample(entropy),
    "most_confident": per_sample(confidence),
}


def select(scores: jax.Array, selectable: jax.Array, k: int) -> jax.Array:
    """Indices (k,) of the k highest ``scores`` (N,) among ``selectable`` (N,) rows; ties to lower index."""
    return jax.lax.top_k(jnp.where(selectable, scores, -jnp.inf), k)[1]
