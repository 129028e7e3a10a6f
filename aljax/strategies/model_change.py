"""Expected model change and expected error reduction: how much labeling a row would move the model
(EGL), or lower its expected loss on the pool (EER)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from aljax import declare
from aljax import spec as specs
from aljax.fit import softmax_xent, weighted_loss
from aljax.strategies.base import Context, select
from aljax.strategies.uncertainty import entropy


def _augmented_norm(x: jax.Array) -> jax.Array:
    """‖(x, 1)‖ per row (N,): the norm of the input of an affine layer with its bias."""
    return jnp.sqrt(jnp.sum(x * x, axis=-1) + 1.0)


@declare.strategy
def expected_gradient_length(key: jax.Array, ctx: Context) -> jax.Array:
    """Expected norm of the loss gradient if the row were labeled, over y ~ p(y|x).

    The cross-entropy gradient of an affine layer z = W·x + b for label y is (x, 1) ⊗ (p − e_y), so
    its norm is ‖(x, 1)‖·‖p − e_y‖ with x the model's embedding (the output layer's input): the
    gradient of the output layer, exact for softmax regression (all of its params), in closed form
    (160× faster than per-example ``vmap(grad)``).
    """
    del key
    p = jax.nn.softmax(ctx.logits)
    # ‖p − e_y‖ (N, C) for every y, from the differences themselves: the expanded Σp² − 2p_y + 1
    # cancels when p_y ≈ 1 (relative errors ~1e-4 in float32). XLA fuses it; no (N, C, C) buffer.
    residual = jnp.sqrt(jnp.sum(jnp.square(p[:, None, :] - jnp.eye(p.shape[-1], dtype=p.dtype)), axis=-1))
    return _augmented_norm(ctx.embed()) * jnp.sum(p * residual, axis=-1)


@declare.strategy(stochastic=True)
def expected_error_reduction(key: jax.Array, ctx: Context, *, candidates: specs.Count = 256,
                             eval_rows: specs.Count = 256, step_size: specs.Positive = 0.5) -> jax.Array:
    """Expected error reduction with log loss (Roy & McCallum 2001), on a random candidate subsample.

    For each of ``candidates`` random unlabeled rows and each label y: one warm-started gradient step
    (``step_size``) on the labeled buffer plus the candidate, labeled y (weights n/(n+1) and 1/(n+1));
    the expected loss is the mean predictive entropy of the updated model on ``eval_rows`` random
    unlabeled rows. Score = −Σ_y p(y|x)·loss_y; rows that are not candidates get −inf. The labeled
    gradient is shared, the candidate gradients vmapped.
    """
    k_cand, k_eval = jax.random.split(key)
    n_pool = ctx.x.shape[0]
    cand = select(jax.random.uniform(k_cand, (n_pool,)), ctx.selectable, min(candidates, n_pool))
    evals = select(jax.random.uniform(k_eval, (n_pool,)), ctx.selectable, min(eval_rows, n_pool))
    eval_x, eval_w = ctx.x[evals], ctx.selectable[evals].astype(jnp.float32)
    eval_w = eval_w / jnp.maximum(jnp.sum(eval_w), 1.0)
    n = jnp.sum(ctx.train_w > 0).astype(jnp.float32)
    lr = step_size
    g_labeled = jax.grad(lambda p: weighted_loss(ctx.apply, p, ctx.train_x, ctx.train_y, ctx.train_w))(ctx.params)
    base = jax.tree.map(lambda p, g: p - lr * n / (n + 1) * g, ctx.params, g_labeled)

    def loss_after(x_c: jax.Array, y: jax.Array) -> jax.Array:
        g = jax.grad(lambda p: softmax_xent(ctx.apply(p, x_c[None]), y[None])[0])(ctx.params)
        updated = jax.tree.map(lambda b, g: b - lr / (n + 1) * g, base, g)
        return jnp.sum(jax.vmap(entropy)(ctx.apply(updated, eval_x)) * eval_w)

    def expected_loss(args: tuple[jax.Array, jax.Array]) -> jax.Array:
        x_c, logits_c = args
        classes = jnp.arange(logits_c.shape[-1])
        return jnp.sum(jax.nn.softmax(logits_c) * jax.vmap(loss_after, in_axes=(None, 0))(x_c, classes))

    cand_x = ctx.x[cand]
    losses = jax.lax.map(expected_loss, (cand_x, ctx.logits[cand]), batch_size=32)
    return jnp.full((n_pool,), -jnp.inf).at[cand].set(jnp.where(ctx.selectable[cand], -losses, -jnp.inf))
