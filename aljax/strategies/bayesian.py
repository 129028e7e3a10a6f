"""Deep Bayesian acquisitions: each reduces the sampled logits (K, N, C) that ONE helper,
:meth:`Context.samples <aljax.strategies.base.Context.samples>`, draws — consistent MC dropout for a
dropout network, the members for an :func:`~aljax.models.ensemble` — with a function of
:mod:`aljax.bayesian` written for one example's (K, C).

Settings: ``samples`` (K, MC dropout passes; an ensemble gives its M members instead), EPIG's
``targets`` (target inputs drawn from the unlabeled pool), ``chunk``
(score the pool that many rows at a time; None: all at once), and BatchBALD's ``configs`` (label
configurations of the batch beyond which joint entropies are importance-sampled). A model without
dropout gives K equal samples: BALD, variation ratios and mean std are then 0 everywhere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from aljax import bayesian
from aljax import declare
from aljax import spec as specs
from aljax.forward import in_chunks
from aljax.strategies.base import Context, rank_batch, select


def _reduce(fn, key: jax.Array, ctx: Context, samples: int, chunk: int | None) -> jax.Array:
    return jax.vmap(fn, in_axes=1)(ctx.samples(key, samples, chunk=chunk))


@declare.strategy(stochastic=True, needs_samples=True)
def bald(key: jax.Array, ctx: Context, *, samples: specs.Count = 20, chunk: specs.Count | None = None) -> jax.Array:
    """BALD (Houlsby et al. 2011; Gal et al. 2017): mutual information between a row's label and the
    weights, H[mean_k p_k] − mean_k H[p_k], over ``samples`` MC dropout passes (or ensemble members)."""
    return _reduce(bayesian.bald, key, ctx, samples, chunk)


@declare.strategy(stochastic=True, needs_samples=True)
def variation_ratios(key: jax.Array, ctx: Context, *, samples: specs.Count = 20, chunk: specs.Count | None = None) -> jax.Array:
    """Variation ratios (Freeman 1965; Gal et al. 2017): 1 − the frequency of the modal predicted class
    over ``samples`` MC dropout passes (or ensemble members)."""
    return _reduce(bayesian.variation_ratios, key, ctx, samples, chunk)


@declare.strategy(stochastic=True, needs_samples=True)
def mean_std(key: jax.Array, ctx: Context, *, samples: specs.Count = 20, chunk: specs.Count | None = None) -> jax.Array:
    """Mean STD (Kampffmeyer et al. 2016; Gal et al. 2017): the std over samples of each class's
    probability, averaged over classes."""
    return _reduce(bayesian.mean_std, key, ctx, samples, chunk)


@declare.strategy(stochastic=True, needs_samples=True)
def max_entropy(key: jax.Array, ctx: Context, *, samples: specs.Count = 20, chunk: specs.Count | None = None) -> jax.Array:
    """Max entropy (Shannon 1948; Gal et al. 2017): entropy of the MC-averaged predictive
    mean_k softmax(logits_k) (with ``samples=1`` and no dropout: plain predictive entropy)."""
    return _reduce(bayesian.predictive_entropy, key, ctx, samples, chunk)


@declare.strategy(stochastic=True, needs_samples=True)
def epig(key: jax.Array, ctx: Context, *, samples: specs.Count = 20, targets: specs.Count = 100, chunk: specs.Count | None = None) -> jax.Array:
    """EPIG (Bickford Smith, Kirsch, Farquhar, Gal, Foster & Rainforth 2023): the expected information
    a row's label gives about the labels of ``targets`` target inputs drawn at random from the
    unlabeled pool (the input distribution of interest), over ``samples`` MC dropout passes (or
    ensemble members). Work and memory: N·T·C² per round, reduced ``chunk`` rows at a time (default
    1024 for this reduction)."""
    k_samples, k_targets = jax.random.split(key)
    log_probs = jax.nn.log_softmax(ctx.samples(k_samples, samples, chunk=chunk))  # (K, N, C)
    n = ctx.selectable.shape[0]
    picked = select(jax.random.uniform(k_targets, (n,)), ctx.selectable, min(targets, n))
    target_log_probs = log_probs[:, picked]  # (K, T, C)
    rows = jnp.moveaxis(log_probs, 1, 0)  # (N, K, C)
    return in_chunks(jax.vmap(lambda lp: bayesian.epig(lp, target_log_probs)), rows, chunk or 1024)


@declare.strategy(batch_aware=True, stochastic=True, needs_samples=True)
def batchbald(key: jax.Array, ctx: Context, *, samples: specs.Count = 20, configs: specs.Count = 1000,
              chunk: specs.Count | None = None) -> jax.Array:
    """BatchBALD (Kirsch, van Amersfoort & Gal 2019): greedily picks the whole batch maximising the
    mutual information between the batch's joint labels and the weights (exact while the batch has at
    most ``configs`` label configurations, importance-sampled with ``configs`` beyond). Batch-aware:
    the batch ranks first; other rows rank by BALD. With a batch of 1 it is BALD's argmax."""
    k_samples, k_batch = jax.random.split(key)
    logits = ctx.samples(k_samples, samples, chunk=chunk)
    log_probs = jax.nn.log_softmax(logits)
    batch = bayesian.batchbald(log_probs, ctx.query_size, k_batch, configs, available=ctx.selectable, chunk=chunk)
    return rank_batch(batch, jax.vmap(bayesian.bald, in_axes=1)(logits))
