"""Bayesian building blocks: consistent MC dropout and ensemble samples, chunking, and the acquisition
functions on samples, against hand-computed values."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax import bayesian as B
from aljax import forward as F
from aljax.models import make_model
from aljax.precision import tolerance
from aljax.testing import assert_close

SAMPLE = (2, 3, 1)
LOG2 = math.log(2.0)


def sure(label, c=2, k=1):
    """K identical, nearly one-hot sampled logits (K, C) for ``label``."""
    return jnp.tile(30.0 * jax.nn.one_hot(label, c), (k, 1))


# ----------------------------------------------------------------------------- samples


@pytest.mark.parametrize("spec, sample", [
    ("mlp(hidden=32,dropout=0.5)", SAMPLE),  # aljax's own dropout
    ("cnn_batchbald2019(filters1=2,filters2=2,kernel=2,hidden=8)", (10, 10, 1)),  # flax's nn.Dropout
])
def test_mc_dropout_masks_are_consistent_across_rows_and_chunks_and_differ_across_samples(spec, sample):
    model = make_model(spec, 3)
    params = model.init(jax.random.key(0), sample)
    row = jax.random.normal(jax.random.key(1), (1, *sample))
    x = jnp.concatenate([row, jax.random.normal(jax.random.key(2), (3, *sample)), row])  # rows 0 and 4 identical
    logits = jax.jit(F.mc_dropout_logits, static_argnums=(0, 4))(model, params, x, jax.random.key(3), 4)
    assert logits.shape == (4, 5, 3)
    np.testing.assert_array_equal(logits[:, 0], logits[:, 4])  # same mask for every row of a sample
    assert not np.allclose(logits[0], logits[1])  # samples differ
    chunked = F.mc_dropout_logits(model, params, x, jax.random.key(3), 4, chunk=2)  # 3 chunks, one padded
    assert_close(chunked, logits, rtol=1e-6, atol=1e-6)


def test_ensemble_logits_are_each_members_eval_logits():
    model = make_model("mlp(hidden=8,dropout=0.5)", 3)
    members = jax.vmap(model.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 2), SAMPLE)
    x = jax.random.normal(jax.random.key(1), (5, *SAMPLE))
    logits = F.ensemble_logits(model, members, x, chunk=2)
    assert logits.shape == (2, 5, 3)
    for m in range(2):
        member = jax.tree.map(functools.partial(jnp.take, indices=m, axis=0), members)
        assert_close(logits[m], model.apply(member, x), rtol=1e-6)


def test_sample_scores_per_chunk_equal_scores_of_the_whole_pool():
    model = make_model("mlp(hidden=16,dropout=0.5)", 3)
    params = model.init(jax.random.key(0), SAMPLE)
    x = jax.random.normal(jax.random.key(1), (7, *SAMPLE))
    samples = functools.partial(F.mc_dropout_logits, model, params, key=jax.random.key(2), k=5)
    whole = jax.vmap(B.bald, in_axes=1)(samples(x))
    np.testing.assert_allclose(F.sample_scores(samples, B.bald, x, chunk=3), whole, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- acquisition functions


def test_hand_computed_values():
    agree = jnp.tile(jnp.array([[1.0, 2.0, 3.0]]), (4, 1))
    assert B.bald(agree) == pytest.approx(0.0, abs=1e-6)
    assert B.variation_ratios(agree) == 0.0
    assert B.mean_std(agree) == pytest.approx(0.0, abs=1e-7)
    assert B.predictive_entropy(jnp.zeros((3, 4))) == pytest.approx(math.log(4), rel=1e-6)
    # Two confident samples that disagree: predictive (1/2, 1/2), each sample's entropy ~0.
    split = jnp.concatenate([sure(0), sure(1)])
    assert B.bald(split) == pytest.approx(LOG2, rel=1e-5)
    assert B.predictive_entropy(split) == pytest.approx(LOG2, rel=1e-5)
    assert B.variation_ratios(split) == pytest.approx(0.5)
    assert B.mean_std(split) == pytest.approx(0.5, rel=1e-5)  # each class: p in {0, 1}, std 1/2
    votes = jnp.concatenate([sure(0, 3, 3), sure(2, 3, 1)])  # 3 of 4 samples say class 0
    assert B.variation_ratios(votes) == pytest.approx(0.25)


def test_bald_between_zero_and_predictive_entropy_and_jit_vmap_agree():
    logits = 3.0 * jax.random.normal(jax.random.key(0), (6, 20, 5))  # (K, N, C)
    for f in (B.bald, B.predictive_entropy, B.variation_ratios, B.mean_std):
        batched = jax.vmap(f, in_axes=1)(logits)
        np.testing.assert_allclose(jax.jit(jax.vmap(f, in_axes=1))(logits), batched, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched, [f(logits[:, i]) for i in range(20)], rtol=1e-5, atol=1e-6)
    mi = jax.vmap(B.bald, in_axes=1)(logits)
    assert (mi >= -1e-6).all() and (mi <= jax.vmap(B.predictive_entropy, in_axes=1)(logits) + 1e-6).all()


def test_epig_is_zero_for_agreeing_samples_at_most_bald_and_hand_computed():
    logits = 3.0 * jax.random.normal(jax.random.key(0), (6, 20, 5))  # (K, N, C)
    targets = jax.nn.log_softmax(logits[:, :7])
    gain = jax.vmap(B.epig, in_axes=(1, None))(logits, targets)
    mi = jax.vmap(B.bald, in_axes=1)(logits)
    _, atol = tolerance(0.0, 1e-6, scale=float(mi.max()))  # the backend's rounding of the (T, C, C) joint
    assert (gain >= -atol).all() and (gain <= mi + 10 * atol).all() and (gain > 1e-3).any()
    agree = jnp.tile(logits[:1], (6, 1, 1))  # every sample the same: labels carry no information
    assert jnp.abs(jax.vmap(B.epig, in_axes=(1, None))(agree, jax.nn.log_softmax(agree[:, :7]))).max() < atol
    # Two confident samples that disagree, and a target that copies them: y determines y*, I = log 2.
    split = jnp.concatenate([sure(0), sure(1)])
    assert_close(B.epig(split, jax.nn.log_softmax(split)[:, None]), LOG2, rtol=1e-4)
    # ... and a target every sample is sure about: nothing to learn about it.
    assert abs(B.epig(split, jax.nn.log_softmax(jnp.concatenate([sure(0), sure(0)]))[:, None])) < atol


def test_joint_entropy_hand_computed():
    # Identical samples: the points are independent, so the joint entropy is the sum of the entropies.
    p = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]))  # (B=3, C=2)
    log_probs = jnp.tile(p[None], (4, 1, 1))
    expected = sum(-(q * np.log(q)).sum() for q in np.exp(np.asarray(p)))
    assert B.joint_entropy(log_probs) == pytest.approx(expected, rel=1e-5)
    # Two samples that each label both points the same way, 0 0 or 1 1: one bit, not two.
    log_probs = jax.nn.log_softmax(jnp.stack([jnp.stack([sure(0)[0]] * 2), jnp.stack([sure(1)[0]] * 2)]))
    assert B.joint_entropy(log_probs) == pytest.approx(LOG2, rel=1e-5)


# ----------------------------------------------------------------------------- BatchBALD


def duplicated_pool():
    """Sampled log-probs (K=4, N=5, C=2): points 0 and 1 are the same most-informative point, point 2
    is as informative but independent of them, 3 and 4 are certain."""
    a = jnp.array([0.05, 0.95, 0.05, 0.95])  # p(y=1 | w_k): the samples disagree
    b = jnp.array([0.05, 0.05, 0.95, 0.95])  # as uncertain, independent of a over the samples
    one = jnp.stack([a, a, b, jnp.full(4, 0.5), jnp.full(4, 0.01)], axis=1)  # (K, N)
    return jnp.log(jnp.stack([1 - one, one], axis=-1))


def test_batchbald_of_one_is_balds_argmax():
    logits = 2.0 * jax.random.normal(jax.random.key(0), (8, 30, 4))
    order = B.batchbald(jax.nn.log_softmax(logits), 1, jax.random.key(1))
    assert order.tolist() == [int(jnp.argmax(jax.vmap(B.bald, in_axes=1)(logits)))]


def test_batchbald_skips_a_duplicate_that_bald_would_take():
    log_probs = duplicated_pool()
    top2 = jnp.argsort(-jax.vmap(B.bald, in_axes=1)(log_probs))[:2]
    assert sorted(top2.tolist()) == [0, 1]  # BALD takes the same information twice
    order = B.batchbald(log_probs, 2, jax.random.key(0))
    assert order[0] in (0, 1) and order[1] == 2
    # Without point 2, the duplicate still beats the rest: its label is noisy given w, so it tells a
    # little more about w (0.115 nats, hand-computed), while points 3 and 4 tell nothing.
    without_2 = B.batchbald(log_probs, 2, jax.random.key(0), available=jnp.arange(5) != 2)
    assert sorted(without_2.tolist()) == [0, 1]


def test_batchbald_sampled_configurations_jit_equals_eager_and_vmaps_over_seeds():
    logits = 2.0 * jax.random.normal(jax.random.key(0), (8, 12, 3))
    log_probs = jax.nn.log_softmax(logits)
    run = jax.jit(B.batchbald, static_argnums=(1, 3), static_argnames="chunk")
    exact = run(log_probs, 4, jax.random.key(1), 100)  # 3^3 = 27 ≤ 100 configurations: exact throughout
    sampled = B.batchbald(log_probs, 4, jax.random.key(1), 4, chunk=5)  # sampled from step 3 on
    assert len(set(sampled.tolist())) == 4 and sampled[:2].tolist() == exact[:2].tolist()
    np.testing.assert_array_equal(run(log_probs, 4, jax.random.key(1), 4, chunk=5), sampled)
    keys = jax.random.split(jax.random.key(2), 3)
    seeds = jax.jit(jax.vmap(lambda key: B.batchbald(log_probs, 4, key, 4, chunk=5)))(keys)
    for s in range(3):
        np.testing.assert_array_equal(seeds[s], run(log_probs, 4, keys[s], 4, chunk=5))


def test_sampled_joint_entropy_estimates_the_exact_one():
    log_probs = jax.nn.log_softmax(2.0 * jax.random.normal(jax.random.key(0), (6, 3, 3)))
    exact_configs = B._extend(B._extend(jnp.zeros((6, 1)), log_probs[:, 0]), log_probs[:, 1])  # (K, 9)
    m = 6000
    drawn = jax.random.categorical(jax.random.key(1), exact_configs[jnp.arange(m) % 6])
    estimate = B._joint_entropy_with(exact_configs[:, drawn], log_probs[:, 2], sampled=True)
    assert estimate == pytest.approx(float(B.joint_entropy(log_probs)), rel=0.02)
