"""Strategies: the same contract tests for every registry entry, plus a hand-computed check per family."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax import committee
from aljax.models import from_functions, softmax_regression
from aljax.strategies import (
    STRATEGIES,
    Context,
    entropy,
    gradient_embedding,
    kmeans_representatives,
    least_confidence,
    margin,
    resolve,
    select,
)
from aljax.fit import mean_weights, softmax_xent

N, D, C, L, Q = 48, 6, 4, 12, 3
MODEL = softmax_regression(C)
# Every registry entry, plus each combinator once.
NAMES = [*STRATEGIES, "subsample(least_confidence,20)", "epsilon(margin,0.5)", "alternate(kcenter,entropy)",
         "softmax_sampling(entropy,3)", "power_sampling(entropy,2)"]
# Strategies whose randomness is drawn per pool INDEX (candidate subsets, k-means++ seeds, noise): their
# scores cannot follow a permutation of the pool for one key; they are checked by hand below instead.
RANDOMIZED = {"random", "expected_error_reduction", "badge", "kmeans", *NAMES[len(STRATEGIES):]}
# Strategies that give -inf to rows outside a random candidate subset.
SUBSET = {"subsample(least_confidence,20)": 20}


def make_ctx(params, x, selectable, query_size=Q) -> Context:
    """A pool of N rows whose first L // 2 rows are labeled (in the training buffer)."""
    rows = jnp.arange(L)
    mask = rows < L // 2
    return Context(
        model=MODEL,
        params=params,
        x=x,
        logits=MODEL.apply(params, x),
        selectable=selectable,
        train_x=x[rows],
        train_y=rows % C,
        train_w=mean_weights(mask),
        query_size=query_size,
    )


def random_params(key):
    k1, k2 = jax.random.split(key)
    return {"W": jax.random.normal(k1, (C, D)), "b": 0.1 * jax.random.normal(k2, (C,))}


@pytest.fixture(scope="module")
def pool():
    kx, kp = jax.random.split(jax.random.key(42))
    x = jax.random.uniform(kx, (N, D))
    labeled = jnp.arange(N) < L // 2
    padding = jnp.arange(N) >= N - 4
    return x, ~labeled & ~padding, random_params(kp)


@functools.cache
def scorer(name):
    """One jitted ``(key, params, x, selectable) -> (N,)`` per strategy, shared by the tests."""
    strategy = resolve(name)
    return jax.jit(lambda key, params, x, sel: strategy(key, make_ctx(params, x, sel)))


@pytest.mark.parametrize("name", NAMES)
def test_contract(name, pool):
    x, sel, params = pool
    key = jax.random.key(1)
    scores = scorer(name)(key, params, x, sel)
    assert scores.shape == (N,)
    assert not jnp.any(jnp.isnan(scores)) and not jnp.any(scores == jnp.inf)
    finite = int(jnp.sum(jnp.isfinite(scores) & sel))
    assert finite == min(SUBSET.get(name, N), int(jnp.sum(sel)))
    # jit equals eager; the same key gives the same scores
    eager = resolve(name)(key, make_ctx(params, x, sel))
    np.testing.assert_allclose(eager, scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(scorer(name)(key, params, x, sel), scores)
    # never selects labeled or padding rows, never twice
    idx = np.asarray(select(scores, sel, Q))
    assert np.all(np.asarray(sel)[idx]) and len(set(idx.tolist())) == Q
    # ... even when only Q rows are selectable
    few = jnp.zeros((N,), bool).at[jnp.array([7, 20, 30])].set(True)
    idx = np.asarray(select(scorer(name)(key, params, x, few), few, Q))
    assert sorted(idx.tolist()) == [7, 20, 30]


@pytest.mark.parametrize("name", NAMES)
def test_vmap_equals_unbatched(name, pool):
    x, sel, _ = pool
    keys = jax.random.split(jax.random.key(2), 3)
    params = jax.vmap(random_params)(keys)
    batched = jax.vmap(scorer(name), in_axes=(0, 0, None, None))(keys, params, x, sel)
    for i in range(3):
        single = scorer(name)(keys[i], jax.tree.map(lambda a: a[i], params), x, sel)
        np.testing.assert_allclose(batched[i], single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(NAMES) - RANDOMIZED))
def test_permuting_the_pool_permutes_the_scores(name, pool):
    x, sel, params = pool
    perm = jax.random.permutation(jax.random.key(3), N)
    # the training buffer holds the rows' features, so it is unchanged by permuting the pool
    strategy = resolve(name)
    key = jax.random.key(4)
    ctx = make_ctx(params, x, sel)
    permute = lambda x, s: strategy(key, dataclasses.replace(ctx, x=x, logits=MODEL.apply(params, x), selectable=s))
    permuted = jax.jit(permute)(x[perm], sel[perm])
    np.testing.assert_allclose(permuted, scorer(name)(key, params, x, sel)[perm], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- hand-computed values


def test_uncertainty_values():
    uniform = jnp.zeros((C,))
    one_hot_like = jnp.array([100.0, 0.0, 0.0, 0.0])
    assert entropy(uniform) == pytest.approx(np.log(C), rel=1e-6)
    assert entropy(one_hot_like) == pytest.approx(0.0, abs=1e-6)
    assert margin(one_hot_like) == pytest.approx(-1.0)  # the most extreme margin
    assert margin(uniform) == pytest.approx(0.0)
    assert least_confidence(uniform) == pytest.approx(-1 / C)


def test_margin_equals_the_top_two_probabilities():
    logits = jax.random.normal(jax.random.key(0), (500, C))
    logits = logits.at[:50, 1].set(logits[:50, 0])  # ties between the two largest in some rows
    top2 = jax.lax.top_k(jax.nn.softmax(logits), 2)[0]
    np.testing.assert_array_equal(jax.vmap(margin)(logits), top2[:, 1] - top2[:, 0])


def test_committee_of_identical_members_disagrees_zero():
    same = jnp.tile(jnp.array([[2.0, -1.0, 0.5, 0.0]]), (5, 1))
    assert committee.vote_entropy(same) == 0.0
    assert committee.mean_kl(same) == pytest.approx(0.0, abs=1e-6)
    split = jnp.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0]])
    assert committee.vote_entropy(split) == pytest.approx(np.log(2))
    assert committee.mean_kl(split) > 0.5


def test_bootstrap_weights_resample_only_labeled_rows():
    w = mean_weights(jnp.arange(10) < 4)
    wb = committee.bootstrap_weights(jax.random.key(0), w)
    assert float(jnp.sum(wb)) == pytest.approx(1.0) and float(jnp.sum(wb[4:])) == 0.0
    assert set(np.round(np.asarray(wb[:4]) * 4).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_expected_gradient_length_matches_per_example_gradients(pool):
    x, sel, params = pool
    ctx = make_ctx(params, x, sel)

    def expected_norm(xi):
        p = jax.nn.softmax(MODEL.apply(params, xi[None])[0])

        def norm(y):
            g = jax.grad(lambda q: softmax_xent(MODEL.apply(q, xi[None]), y[None])[0])(params)
            return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(g)))

        return jnp.sum(p * jax.vmap(norm)(jnp.arange(C)))

    np.testing.assert_allclose(STRATEGIES["expected_gradient_length"](None, ctx), jax.vmap(expected_norm)(x), rtol=1e-5)
    # a confident row changes the model little, an unsure one a lot
    confident = {"W": jnp.zeros((C, D)), "b": jnp.array([20.0, 0, 0, 0])}
    unsure = {"W": jnp.zeros((C, D)), "b": jnp.zeros((C,))}
    egl = [STRATEGIES["expected_gradient_length"](None, make_ctx(p, x, sel))[0] for p in (confident, unsure)]
    assert egl[0] < 1e-6 < 0.5 < egl[1]


def test_badge_embedding_is_the_gradient_under_the_predicted_label(pool):
    x, sel, params = pool
    g = gradient_embedding(make_ctx(params, x, sel))
    y_hat = jnp.argmax(MODEL.apply(params, x[:1]), -1)
    grad = jax.grad(lambda q: softmax_xent(MODEL.apply(q, x[:1]), y_hat)[0])(params)
    np.testing.assert_allclose(g[0], jnp.concatenate([grad["W"].T, grad["b"][None]]).ravel(), rtol=1e-5, atol=1e-7)


def line_ctx(points, labeled, query_size):
    """A 1-D pool at ``points`` with the rows ``labeled`` in the training buffer."""
    x = jnp.array(points, jnp.float32)[:, None]
    sel = ~jnp.isin(jnp.arange(len(points)), jnp.array(labeled))
    return Context(
        model=from_functions(lambda k, s: {}, lambda p, x: jnp.zeros((x.shape[0], 2))), params={}, x=x, logits=jnp.zeros((x.shape[0], 2)),
        selectable=sel,
        train_x=x[jnp.array(labeled)], train_y=jnp.zeros(len(labeled), jnp.int32),
        train_w=mean_weights(jnp.ones(len(labeled), bool)), query_size=query_size,
    )


def test_kcenter_picks_the_farthest_point_first():
    ctx = line_ctx([0.0, 1.0, 2.0, 10.0, 9.5], labeled=[0], query_size=2)
    scores = STRATEGIES["kcenter"](None, ctx)
    assert select(scores, ctx.selectable, 2).tolist() == [3, 2]  # 10, then 2 (farthest from {0, 10})


def test_kmeans_takes_one_row_per_blob():
    centers = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = jnp.repeat(centers, 5, axis=0) + 0.1 * jax.random.normal(jax.random.key(0), (15, 2))
    idx = kmeans_representatives(jax.random.key(1), x, jnp.ones(15, bool), 3)
    assert sorted((np.asarray(idx) // 5).tolist()) == [0, 1, 2]


def test_density_weighting_demotes_an_outlier():
    x = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.9, 0.0], [0.0, 1.0]])  # row 3 points elsewhere
    params = {"W": jnp.zeros((C, 2)), "b": jnp.zeros(C)}
    ctx = Context(MODEL, params, x, MODEL.apply(params, x), jnp.ones(4, bool),
                  x[:1], jnp.zeros(1, jnp.int32), jnp.ones(1), 1)
    scores = STRATEGIES["density_weighted"](None, ctx)
    assert int(jnp.argmin(scores)) == 3


def test_expected_error_reduction_scores_only_its_candidates():
    x = jax.random.uniform(jax.random.key(0), (300, D))
    sel = jnp.arange(300) >= 10
    ctx = make_ctx(random_params(jax.random.key(1)), x, sel)
    scores = jax.jit(lambda k: STRATEGIES["expected_error_reduction"](k, ctx))(jax.random.key(2))
    assert int(jnp.sum(jnp.isfinite(scores))) == 256 and not jnp.any(jnp.isfinite(scores) & ~sel)


# ----------------------------------------------------------------------------- combinators and names


def test_combinators(pool):
    x, sel, params = pool
    key = jax.random.key(5)
    ctx = make_ctx(params, x, sel)
    inner = STRATEGIES["margin"](key, ctx)
    never = resolve("epsilon(margin,0.0)")(key, ctx)
    always = resolve("epsilon(margin,1.0)")(key, ctx)
    np.testing.assert_array_equal(never, inner)
    assert jnp.all((always >= 0) & (always < 1))
    # a huge beta makes stochastic top-k the plain top-k
    sharp = resolve("softmax_sampling(margin,10000)")(key, ctx)
    assert set(select(sharp, sel, Q).tolist()) == set(select(inner, sel, Q).tolist())
    # alternate: 6 labels // Q=3 -> round 2 (even) uses the second strategy
    np.testing.assert_array_equal(resolve("alternate(kcenter,margin)")(key, ctx), inner)


def test_resolve_names():
    assert resolve("subsample( least_confidence , 500 )") is resolve("subsample(least_confidence,500)")
    for bad in ("nope", "subsample(nope)", "subsample(margin", "alternate(margin)"):
        with pytest.raises(ValueError, match="strategy|arguments") as err:
            resolve(bad)
        assert "\n" not in str(err.value)
