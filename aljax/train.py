"""Training: the article's "fit until overfit" as one bounded ``lax.while_loop``.

``fit`` takes full-batch optimiser steps on a fixed-size, weighted training buffer (padding rows
weigh 0) and early-stops on an evaluation set with patience, returning the BEST weights. The
optimiser state is returned as it is after the last step: the article neither restores nor resets
it, so it carries over to the next active-learning round.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from aljax.data import Split
from aljax.models import Params


@jax.custom_vjp
def softmax_xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example cross-entropy (n,) of logits (n, C) against int labels (n,).

    Forward and backward follow ``tf.nn.sparse_softmax_cross_entropy_with_logits``: the gradient
    is ``exp(z − max z) / Σ exp(z − max z) − onehot``, scaled by the incoming per-example cotangent.
    """
    return _xent_fwd(logits, labels)[0]


def _xent_fwd(logits, labels):
    z = logits - jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.exp(z)
    s = jnp.sum(e, axis=-1, keepdims=True)
    loss = jnp.log(s[:, 0]) - jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
    backprop = e / s - jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return loss, backprop


def _xent_bwd(backprop, g):
    return g[:, None] * backprop, None


softmax_xent.defvjp(_xent_fwd, _xent_bwd)


def mean_weights(mask: jax.Array) -> jax.Array:
    """Per-row weights (L,) of a masked mean: ``mask · float32(1/n)``, TF's ``reduce_mean`` gradient."""
    n = jnp.sum(mask).astype(jnp.float32)
    return jnp.where(mask, jnp.float32(1) / jnp.maximum(n, 1), jnp.float32(0))


def weighted_loss(apply: Callable, params: Params, x: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    """Σ_i w_i · xent(apply(params, x)_i, y_i) for x (L, D), y (L,), w (L,)."""
    return jnp.sum(softmax_xent(apply(params, x), y) * w)


def n_correct(apply: Callable, params: Params, split: Split) -> jax.Array:
    """Number (int32) of rows of ``split`` whose argmax logit equals the label."""
    return jnp.sum(jnp.argmax(apply(params, split.x), axis=-1) == split.y, dtype=jnp.int32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FitResult:
    """Best params, optimiser state after the last step, best eval correct count, steps taken."""

    params: Params
    opt_state: optax.OptState
    correct: jax.Array
    steps: jax.Array


def fit(
    apply: Callable,
    optimizer: optax.GradientTransformation,
    params: Params,
    opt_state: optax.OptState,
    x: jax.Array,
    y: jax.Array,
    w: jax.Array,
    eval_split: Split,
    patience: jax.Array,
    max_steps: jax.Array,
) -> FitResult:
    """Train until ``patience`` steps in a row fail to strictly improve eval accuracy.

    x (L, D), y (L,), w (L,) is the training buffer (padding rows have w = 0); ``patience`` and
    ``max_steps`` are traced int32 scalars (``max_steps`` bounds the loop).
    """
    grad_fn = jax.grad(lambda p: weighted_loss(apply, p, x, y, w))

    def cond(carry):
        *_, trials, steps = carry
        return (trials > 0) & (steps < max_steps)

    def body(carry):
        params, opt_state, best, best_correct, trials, steps = carry
        updates, opt_state = optimizer.update(grad_fn(params), opt_state, params)
        params = optax.apply_updates(params, updates)
        correct = n_correct(apply, params, eval_split)
        better = correct > best_correct
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), params, best)
        best_correct = jnp.where(better, correct, best_correct)
        trials = jnp.where(better, patience, trials - 1)
        return params, opt_state, best, best_correct, trials, steps + 1

    start = (params, opt_state, params, n_correct(apply, params, eval_split), jnp.asarray(patience, jnp.int32), jnp.int32(0))
    _, opt_state, best, best_correct, _, steps = jax.lax.while_loop(cond, body, start)
    return FitResult(best, opt_state, best_correct, steps)
