"""Representativeness and diversity in the model's embedding: information density, the k-center
core-set (a :class:`~aljax.strategies.base.StatefulStrategy`), BADGE and k-means representatives.

Their building blocks are public: distances, greedy k-center selection and k-means in
:mod:`aljax.cluster`; here :func:`gradient_embedding` (BADGE's (N, (E+1)·C) embeddings),
:func:`kmeans_representatives` (k,) and :class:`KCenterState` (k-center's memory across rounds)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from aljax import cluster, declare
from aljax import spec as specs
from aljax.strategies.base import Context, StatefulStrategy, rank_batch
from aljax.strategies.uncertainty import entropy


@declare.strategy
def density_weighted(key: jax.Array, ctx: Context) -> jax.Array:
    """Information density (Settles & Craven 2008): entropy × mean cosine similarity to the unlabeled
    pool (β = 1) in the model's embedding, so representative uncertain rows beat uncertain outliers."""
    del key
    e = ctx.embed()
    unit = e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    weights = ctx.selectable.astype(unit.dtype) / jnp.maximum(jnp.sum(ctx.selectable), 1)
    similarity = unit @ (weights @ unit)
    return jax.vmap(entropy)(ctx.logits) * similarity


# ----------------------------------------------------------------------------- k-center


class KCenterState(NamedTuple):
    """d2 (N,): each pool row's squared distance to its nearest labeled row (inf: none yet); seen ():
    how many rows of the labeled buffer d2 already accounts for."""

    d2: jax.Array
    seen: jax.Array


def _kcenter_init(ctx: Context) -> KCenterState:
    return KCenterState(d2=jnp.full((ctx.x.shape[0],), jnp.inf, jnp.float32), seen=jnp.int32(0))


def _kcenter_score(key: jax.Array, ctx: Context, state: KCenterState) -> tuple[jax.Array, KCenterState]:
    """Greedy k-center core-set (Sener & Savarese 2018): ``query_size`` times, take the unlabeled row
    farthest (Euclidean, in the model's embedding) from the labeled rows and those already taken. Other
    rows rank by their final distance to the centers.

    Stateful: the state keeps each row's distance to the labeled rows, so a round folds in only the
    rows labeled since the last one, a block of ``query_size`` rows per pass over the pool (N·q·E work
    instead of N·L·E). That holds only while the embedding does not change from round to round: unless
    the model is declared ``fixed_embedding`` (:class:`aljax.models.Model`; softmax regression's
    embedding is x itself), the distances are recomputed from all labeled rows each round.
    """
    del key
    e = ctx.embed()
    n_labeled = jnp.sum(ctx.train_w > 0).astype(jnp.int32)
    if not ctx.model.fixed_embedding:  # None (not said) or False: the params may move the embedding
        d2 = cluster.nearest_sq_distances(e, ctx.embed(ctx.train_x), ctx.train_w > 0)
    else:
        block = min(ctx.query_size, ctx.train_x.shape[0])  # new rows are folded a block at a time: one pass

        def fold(b, d2):
            start = jnp.minimum(state.seen + b * block, ctx.train_x.shape[0] - block)  # a clamped block
            rows = start + jnp.arange(block)  # refolds some seen rows (harmless: min is idempotent)
            centers = ctx.embed(jax.lax.dynamic_slice_in_dim(ctx.train_x, start, block))
            return jnp.minimum(d2, cluster.nearest_sq_distances(e, centers, rows < n_labeled))

        d2 = jax.lax.fori_loop(0, (n_labeled - state.seen + block - 1) // block, fold, state.d2.astype(e.dtype))
    state = KCenterState(d2=d2, seen=n_labeled)
    d2 = jnp.where(jnp.isfinite(d2), d2, jnp.max(jnp.where(jnp.isfinite(d2), d2, 0.0)))  # no labels yet
    batch, d2 = cluster.farthest_first(e, d2, ctx.selectable, ctx.query_size)
    return rank_batch(batch, d2), state


kcenter = declare.strategy(StatefulStrategy(init=_kcenter_init, score=_kcenter_score), batch_aware=True)


# ----------------------------------------------------------------------------- BADGE


def gradient_embedding(ctx: Context) -> jax.Array:
    """BADGE embeddings (N, (E+1)·C): (e, 1) ⊗ (p − e_ŷ) with e the model's embedding and ŷ the
    predicted class: the loss gradient of the output layer under the model's own label."""
    logits = ctx.logits
    p = jax.nn.softmax(logits)
    residual = p - jax.nn.one_hot(jnp.argmax(logits, -1), p.shape[-1], dtype=p.dtype)
    e = ctx.embed()
    x1 = jnp.concatenate([e, jnp.ones((e.shape[0], 1), e.dtype)], axis=1)
    return (x1[:, :, None] * residual[:, None, :]).reshape(x1.shape[0], -1)


@declare.strategy(batch_aware=True, stochastic=True)
def badge(key: jax.Array, ctx: Context) -> jax.Array:
    """BADGE (Ash et al. 2020): k-means++ seeding over the gradient embeddings (e, 1) ⊗ r of the
    unlabeled rows (as :func:`gradient_embedding` defines them). Other rows rank by gradient norm.

    The (N, (E+1)·C) embeddings are never built: ‖a⊗r − b⊗s‖² = ‖a‖²‖r‖² + ‖b‖²‖s‖² − 2(a·b)(r·s),
    so a distance to one center costs N·(E+C) (:func:`aljax.cluster.kmeans_plus_plus_by`).
    """
    p = jax.nn.softmax(ctx.logits)
    r = p - jax.nn.one_hot(jnp.argmax(ctx.logits, -1), p.shape[-1], dtype=p.dtype)
    e = ctx.embed()
    a2 = jnp.sum(e * e, axis=1) + 1.0  # ‖(e, 1)‖²
    norm2 = a2 * jnp.sum(r * r, axis=1)

    def sq_distance_to(i):
        return jnp.maximum(norm2 + norm2[i] - 2 * (e @ e[i] + 1.0) * (r @ r[i]), 0.0)

    batch = cluster.kmeans_plus_plus_by(key, e.shape[0], ctx.query_size, sq_distance_to, ctx.selectable, e.dtype)
    return rank_batch(batch, jnp.sqrt(norm2))


# ----------------------------------------------------------------------------- k-means


def kmeans_representatives(key: jax.Array, x: jax.Array, selectable: jax.Array, k: int, iters: int = 10) -> jax.Array:
    """Indices (k,) of distinct selectable rows nearest to the centroids of k-means (``iters``
    Lloyd steps) on the rows of x (N, D): the ``kmeans`` strategy and the k-means cold starts."""
    centers, _ = cluster.kmeans(key, x, k, iters=iters, weights=selectable)
    d2 = cluster.sq_distances(x, centers)

    def take(free, center_d2):
        i = jnp.argmin(jnp.where(free, center_d2, jnp.inf))
        return free.at[i].set(False), i

    _, batch = jax.lax.scan(take, selectable, d2.T)
    return batch


@declare.strategy(batch_aware=True, stochastic=True)
def kmeans(key: jax.Array, ctx: Context, *, iters: specs.Count = 10) -> jax.Array:
    """k-means representatives (Nguyen & Smeulders 2004; Zhdanov 2019's diversity step): cluster the
    unlabeled rows (in the model's embedding) into ``query_size`` clusters (``iters`` Lloyd steps) and
    take the row nearest each centroid. Other rows rank by closeness to their nearest centroid."""
    e = ctx.embed()
    batch = kmeans_representatives(key, e, ctx.selectable, ctx.query_size, iters)
    rest = -jnp.min(cluster.sq_distances(e, e[batch]), axis=1)
    return rank_batch(batch, rest)
