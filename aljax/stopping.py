"""Stopping criteria, evaluated every round from the per-round :class:`aljax.loop.RoundInfo`.

:func:`stop_rounds` says at which round each criterion would have stopped the experiment;
:func:`stop_at` masks the rounds after a stop (they repeat the stop round), so shapes stay static and
an experiment "stops" on any criterion after the fact. Rounds index info's leading time axis
(0 = the initial fit); arrays may carry leading seed axes, time is the LAST axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cohen_kappa(a: jax.Array, b: jax.Array, weights: jax.Array, n_classes: int) -> jax.Array:
    """Cohen's κ between two label vectors a, b (N,) over rows with weight 1 in ``weights`` (N,):
    (p_o − p_e)/(1 − p_e), p_e from the two label marginals; 1 when both are one same constant."""
    w = weights.astype(jnp.float32) / jnp.maximum(jnp.sum(weights), 1)
    observed = jnp.sum(w * (a == b))
    pa = jax.nn.one_hot(a, n_classes).T @ w
    pb = jax.nn.one_hot(b, n_classes).T @ w
    chance = jnp.sum(pa * pb)
    return jnp.where(chance >= 1, 1.0, (observed - chance) / jnp.maximum(1 - chance, 1e-12))


def _first(holds: jax.Array) -> jax.Array:
    """Index of the first True along the last axis; its length when there is none."""
    n = holds.shape[-1]
    return jnp.min(jnp.where(holds, jnp.arange(n), n), axis=-1)


def stop_rounds(
    info,
    *,
    budget: int | None = None,
    target_eval_correct: int | None = None,
    min_confidence: float | None = None,
    kappa: float | None = None,
    window: int = 3,
) -> dict[str, jax.Array]:
    """The round at which each given criterion first holds (the time axis' length if never):

    budget: n_labeled ≥ budget; target_eval_correct: the early-stopping (dev) set count reaches it;
    min_confidence: every unlabeled row's max softmax ≥ it (max-confidence, Vlachos 2008 / Zhu et
    al. 2008); kappa: κ between successive fits' pool predictions ≥ it for ``window`` rounds in a row
    (stabilising predictions, Bloodgood & Vijay-Shanker 2009).
    """
    stops = {}
    if budget is not None:
        stops["budget"] = _first(info.n_labeled >= budget)
    if target_eval_correct is not None:
        stops["target_eval_correct"] = _first(info.eval_correct >= target_eval_correct)
    if min_confidence is not None:
        stops["min_confidence"] = _first(info.min_confidence >= min_confidence)
    if kappa is not None:
        stable = info.agreement >= kappa
        held = stable
        for lag in range(1, window):  # held at t: stable at t, t-1, ..., t-window+1
            held = held & jnp.pad(stable[..., :-lag], [(0, 0)] * (stable.ndim - 1) + [(lag, 0)])
        stops["kappa"] = _first(held)
    return stops


def stop_at(info, stop: jax.Array):
    """``info`` with every round after ``stop`` (one round index per leading seed index) replaced by
    the stop round: the experiment as if it had stopped there (info's fields are per-round scalars)."""
    n = info.n_labeled.shape[-1]
    rounds = jnp.minimum(jnp.arange(n), jnp.asarray(stop)[..., None])
    return jax.tree.map(lambda a: jnp.take_along_axis(a, rounds, axis=-1), info)
