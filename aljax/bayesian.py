"""Deep Bayesian active learning: the acquisition functions that reduce sampled predictions.

A Bayesian model gives K sampled logits per pool row, (K, N, C), through :mod:`aljax.forward`
(``mc_dropout_logits``: consistent MC dropout; ``ensemble_logits``: deep-ensemble members;
``sample_scores``: reduced chunk by chunk); strategies get them from ``ctx.samples(key, k)``.

Acquisition functions, written for ONE example's sampled logits (K, C) -> () and lifted to the pool
with ``jax.vmap(f, in_axes=1)`` (higher = ask first, as strategies' scores are):

* :func:`bald` — mutual information between the label and the weights (Houlsby et al. 2011);
* :func:`predictive_entropy` — entropy of the MC-averaged predictive ("max entropy");
* :func:`variation_ratios` — 1 − the frequency of the modal predicted class (Freeman 1965; Gal 2017);
* :func:`mean_std` — the mean over classes of the std over samples of the probabilities (Kampffmeyer
  et al. 2016);
* :func:`epig` — expected predictive information gain (Bickford Smith et al. 2023): the mutual
  information between the label and the labels of target inputs, which also takes their (K, T, C);

and one batch acquisition on the whole pool's samples:

* :func:`batchbald` — greedy BatchBALD (Kirsch et al. 2019): the batch indices (b,) in acquisition
  order, with exact joint entropies while the label configurations are few and importance-sampled
  ones beyond; :func:`joint_entropy` is its exact joint entropy of a few points, exposed for tests.

:mod:`aljax.strategies.bayesian` registers them: e.g. BALD's score is
``jax.vmap(bald, in_axes=1)(ctx.samples(key, k))``, and BatchBALD's selection is
``batchbald(jax.nn.log_softmax(samples), query_size, key, available=ctx.selectable)``.
Everything here keeps static shapes and no host sync, so it runs under ``jit`` and ``vmap`` over seeds.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Params = Any


# ----------------------------------------------------------------------------- samples


# ----------------------------------------------------------------------------- acquisition functions, one example


def _entropy(log_p: jax.Array) -> jax.Array:
    """Entropy (nats) of a distribution given by its log-probabilities (..., C) -> (...)."""
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def _mean_log_predictive(logits: jax.Array) -> jax.Array:
    """log of the MC-averaged predictive, (K, C) -> (C,), by logsumexp over samples."""
    return jax.nn.logsumexp(jax.nn.log_softmax(logits), axis=0) - jnp.log(logits.shape[0])


def predictive_entropy(logits: jax.Array) -> jax.Array:
    """H[ mean_k softmax(logits_k) ] for one example's sampled logits (K, C) -> ()."""
    return _entropy(_mean_log_predictive(logits))


def bald(logits: jax.Array) -> jax.Array:
    """Mutual information I[y; w] = H[mean_k p_k] − mean_k H[p_k] for one example's sampled logits
    (K, C) -> (), from log-softmax. Zero when all samples agree; at most the predictive entropy."""
    return predictive_entropy(logits) - jnp.mean(_entropy(jax.nn.log_softmax(logits)))


def variation_ratios(logits: jax.Array) -> jax.Array:
    """1 − max_c (1/K)·#{k: argmax logits_k = c} for one example's sampled logits (K, C) -> ()."""
    votes = jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1])
    return 1.0 - jnp.max(jnp.mean(votes, axis=0))


def mean_std(logits: jax.Array) -> jax.Array:
    """mean_c std_k softmax(logits_k)_c for one example's sampled logits (K, C) -> ()."""
    return jnp.mean(jnp.std(jax.nn.softmax(logits), axis=0))


def epig(logits: jax.Array, target_log_probs: jax.Array) -> jax.Array:
    """EPIG (Bickford Smith et al. 2023): the mutual information between one example's label y and the
    label y* of a target input, averaged over T target inputs, for sampled logits (K, C) and the
    targets' sampled log-probabilities (K, T, C) (the same K weight samples) -> ().

    I[y; y*] = KL(p(y, y*) ‖ p(y) p(y*)) with the joint p(y, y*) = mean_k p_k(y) p_k(y*): zero when
    all samples agree, and at most :func:`bald` (y* depends on y only through the weights)."""
    k = logits.shape[0]
    p = jax.nn.softmax(logits)  # (K, C)
    p_t = jnp.exp(target_log_probs)  # (K, T, C)
    joint = jnp.einsum("kc,ktd->tcd", p, p_t) / k  # (T, C, C)
    independent = jnp.mean(p, axis=0)[None, :, None] * jnp.mean(p_t, axis=0)[:, None, :]
    kl = jax.scipy.special.xlogy(joint, joint) - jax.scipy.special.xlogy(joint, independent)
    return jnp.mean(jnp.sum(kl, axis=(1, 2)))


# ----------------------------------------------------------------------------- BatchBALD


def _extend(log_configs: jax.Array, log_p: jax.Array) -> jax.Array:
    """Configurations of a batch extended by one point, exactly: log p(configs, y | w_k), (K, S) and
    the point's (K, C) -> (K, S·C), configuration s·C + c being (config s, label c)."""
    return (log_configs[:, :, None] + log_p[:, None, :]).reshape(log_configs.shape[0], -1)


def _joint_entropy_with(log_configs: jax.Array, log_p: jax.Array, sampled: bool) -> jax.Array:
    """H[y_batch, y] for S configurations of a batch, log p(config_s | w_k) (K, S), and one more point
    log p(y | w_k) (K, C) -> (). Exact (``sampled=False``): the S configurations are all of them.
    Sampled: they are drawn from p(y_batch), and H = E_{ŷ~p(y_batch)} Σ_y p(y | ŷ)(−log p(ŷ, y)),
    Kirsch et al.'s importance-sampled estimate. Columns are rescaled by their max over k, so long
    batches' tiny joint probabilities do not underflow."""
    scale = jnp.max(log_configs, axis=0)  # (S,)
    configs = jnp.exp(log_configs - scale)  # (K, S), max 1 per column
    k = log_configs.shape[0]
    q = configs.T @ jnp.exp(log_p) / k  # (S, C): p(config_s, y) / exp(scale_s)
    log_q = scale[:, None] + jnp.log(q)  # log p(config_s, y)
    if sampled:
        weight = q / jnp.mean(configs, axis=0)[:, None] / log_configs.shape[1]  # p(y | ŷ_s) / S
    else:
        weight = q * jnp.exp(scale)[:, None]  # p(config_s, y)
    return -jnp.sum(jnp.where(q > 0, weight * log_q, 0.0))


def joint_entropy(log_probs: jax.Array) -> jax.Array:
    """Exact H[y_1, ..., y_B] of B points under the K-sample mixture, log p(y_b | w_k) (K, B, C) -> (),
    enumerating all C^B label configurations (keep B small)."""
    k, b, _ = log_probs.shape
    log_configs = jnp.zeros((k, 1))
    for i in range(b - 1):
        log_configs = _extend(log_configs, log_probs[:, i])
    return _joint_entropy_with(log_configs, log_probs[:, -1], sampled=False)


def batchbald(log_probs: jax.Array, batch_size: int, key: jax.Array, n_configs: int = 1000, *,
              available: jax.Array | None = None, chunk: int | None = None) -> jax.Array:
    """Greedy BatchBALD (Kirsch, van Amersfoort & Gal 2019, algorithm 1) -> pool indices (b,) in
    acquisition order.

    ``log_probs`` (K, N, C) are log-softmaxed sampled predictions (consistent MC dropout or an
    ensemble). Step i adds the n maximising H[y_batch, y_n] − Σ_{j ∈ batch+n} E_w H[y_j | w]. Joint
    entropies are exact over all C^i configurations of the batch while C^i ≤ ``n_configs``; beyond,
    ``n_configs`` configurations are drawn from p(y_batch) (stratified over the K samples, extended one
    label at a time) and the entropy importance-sampled. Rows where ``available`` (N,) is False are
    never chosen. ``batch_size`` and ``n_configs`` are static; ``chunk`` scores candidates that many at
    a time (memory chunk·S·C instead of N·S·C). Step 1 is BALD's argmax.
    """
    k, n, _ = log_probs.shape
    expected = jnp.mean(_entropy(log_probs), axis=0)  # (N,) E_w H[y_n | w]
    candidates = jnp.moveaxis(log_probs, 1, 0)  # (N, K, C)
    taken = jnp.zeros((n,), bool) if available is None else ~available

    def select(log_configs, sampled, taken):
        def gain(log_p):
            return _joint_entropy_with(log_configs, log_p, sampled)

        joint = jax.lax.map(gain, candidates, batch_size=chunk or n)
        i = jnp.argmax(jnp.where(taken, -jnp.inf, joint - expected))
        return i, taken.at[i].set(True)

    # Exact steps: the batch's C^i configurations fit in n_configs.
    order, log_configs = [], jnp.zeros((k, 1))
    while len(order) < batch_size and log_configs.shape[1] <= n_configs:
        i, taken = select(log_configs, False, taken)
        order.append(i)
        log_configs = _extend(log_configs, log_probs[:, i])
    order = jnp.stack(order)
    if len(order) == batch_size:
        return order

    # Sampled steps: draw n_configs configurations of the batch from the exact table (≤ C·n_configs
    # columns), configuration m from sample k_m = m mod K; extend each by a label drawn from that sample.
    component = jnp.arange(n_configs) % k

    def extend_sampled(key, log_configs, i):
        label = jax.random.categorical(key, log_probs[component, i])  # (n_configs,)
        return log_configs + log_probs[:, i, label]

    key, k_draw = jax.random.split(key)
    drawn = jax.random.categorical(k_draw, log_configs[component])  # (n_configs,) of the exact table
    log_configs = log_configs[:, drawn]

    def step(carry, key):
        log_configs, taken = carry
        i, taken = select(log_configs, True, taken)
        return (extend_sampled(key, log_configs, i), taken), i

    _, rest = jax.lax.scan(step, (log_configs, taken), jax.random.split(key, batch_size - len(order)))
    return jnp.concatenate([order, rest])
