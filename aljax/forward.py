"""Forward passes over many rows: in chunks of rows, and sampled (MC dropout, ensemble members).

* :func:`in_chunks` — any function of a batch of rows, computed ``chunk`` rows at a time under
  ``lax.map`` (``Config.forward_rows`` and the Bayesian strategies' ``chunk=`` use it), so a large pool
  never holds all its activations at once;
* :func:`mc_dropout_logits` — K forward passes in train mode with *consistent* MC dropout: sample k
  uses the same dropout mask for every row of the call (Gal et al. 2017; BatchBALD needs it);
* :func:`ensemble_logits` — one forward pass per member of a deep ensemble (params with a leading
  member axis);
* :func:`sample_scores` — samples reduced to one score per row, chunk by chunk (K×chunk×C live).

``model`` arguments are :class:`aljax.models.Model`s; this module needs only their ``apply``, so it
imports none of the package (models and the Bayesian acquisitions both build on it).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Params = Any


def in_chunks(fn: Callable[[jax.Array], jax.Array], x: jax.Array, chunk: int | None, row_axis: int = 0) -> jax.Array:
    """``fn(x)`` computed ``chunk`` rows of ``x`` (N, *S) at a time with ``lax.map``; ``fn`` maps
    (n, *S) to an array with its n rows on ``row_axis``. The last chunk is padded with copies of row 0
    and the padding dropped, so any N works. ``chunk=None`` (or ≥ N) calls ``fn(x)`` once."""
    n = x.shape[0]
    if chunk is None or chunk >= n:
        return fn(x)
    n_chunks = -(-n // chunk)
    padded = jnp.concatenate([x, jnp.broadcast_to(x[:1], (n_chunks * chunk - n, *x.shape[1:]))])
    out = jax.lax.map(fn, padded.reshape(n_chunks, chunk, *x.shape[1:]))  # (n_chunks, ..., chunk, ...)
    out = jnp.moveaxis(out, 0, row_axis)  # (..., n_chunks, chunk, ...)
    out = out.reshape(*out.shape[:row_axis], n_chunks * chunk, *out.shape[row_axis + 2:])
    return jax.lax.slice_in_dim(out, 0, n, axis=row_axis)


def mc_dropout_logits(model, params: Params, x: jax.Array, key: jax.Array, k: int, *,
                      chunk: int | None = None) -> jax.Array:
    """K train-mode forward passes of ``model`` on x (N, *S) -> logits (K, N, C), with consistent MC
    dropout: sample k draws its masks from key_k for each row alone (a vmap over rows of a one-row
    ``apply``), so every row — and every chunk — sees sample k's same mask."""
    keys = jax.random.split(key, k)

    def one_sample(key_k: jax.Array, x: jax.Array) -> jax.Array:  # (n, *S) -> (n, C)
        return jax.vmap(lambda xi: model.apply(params, xi[None], key=key_k, train=True)[0])(x)

    return in_chunks(lambda x: jax.vmap(one_sample, in_axes=(0, None))(keys, x), x, chunk, row_axis=1)


def ensemble_logits(model, members: Params, x: jax.Array, *, chunk: int | None = None) -> jax.Array:
    """Eval-mode logits of each ensemble member on x (N, *S) -> (M, N, C); ``members`` are params
    with a leading member axis M."""
    return in_chunks(lambda x: jax.vmap(lambda p: model.apply(p, x))(members), x, chunk, row_axis=1)


def sample_scores(samples: Callable[[jax.Array], jax.Array], score: Callable[[jax.Array], jax.Array],
                  x: jax.Array, *, chunk: int | None = None) -> jax.Array:
    """One score per row of x (N, *S) -> (N,): ``samples`` maps rows (n, *S) to logits (K, n, C) (e.g.
    ``functools.partial(mc_dropout_logits, model, params, key=key, k=20)``) and ``score`` reduces one
    example's (K, C) to a scalar (e.g. :func:`bald`); per chunk, so K×chunk×C is live, not K×N×C."""
    return in_chunks(lambda x: jax.vmap(score, in_axes=1)(samples(x)), x, chunk)
