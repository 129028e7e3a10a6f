"""Strategies: the same contract tests for every registry entry, plus a hand-computed check per family."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax.strategies import committee, registry
from aljax.models import ensemble, from_functions, mlp, softmax_regression
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
from aljax.testing import assert_close, check_strategy

N, D, C, L, Q = 48, 6, 4, 12, 3
MODEL = softmax_regression(C)
# Every registry entry, plus each combinator once.
NAMES = [*STRATEGIES, "subsample(least_confidence,20)", "epsilon(margin,0.5)", "alternate(kcenter,entropy)",
         "epsilon(kcenter,0.5)", "softmax_sampling(entropy,3)", "power_sampling(entropy,2)"]
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


# Strategies that reduce sampled logits (ctx.samples): on softmax regression every MC dropout sample is
# the same and their scores are 0, so their contract runs on a small dropout MLP, where they are not.
BAYESIAN = set(registry.SAMPLED) | {"power_sampling(bald)", "softmax_sampling(bald,2)"}
NAMES += ["power_sampling(bald)", "softmax_sampling(bald,2)"]
DROPOUT_MLP = mlp(C, hidden=16, dropout=0.5)


@pytest.mark.parametrize("name", NAMES)
def test_contract(name):
    model = DROPOUT_MLP if name in BAYESIAN else None
    check_strategy(name, candidates=SUBSET.get(name), model=model)  # batch-aware, deterministic: as declared


@pytest.mark.parametrize("name", ["bald", "variation_ratios", "mean_std", "max_entropy"])
def test_bayesian_scores_follow_a_permutation_of_the_pool(name):
    """Consistent MC dropout: sample k uses one mask for every row, so a row's score depends on the row
    and the key only, and permuting the pool permutes the scores (checked with deterministic=True)."""
    check_strategy(name, model=DROPOUT_MLP, deterministic=True)


def test_bayesian_strategies_run_on_a_deep_ensemble():
    ens = ensemble(C, "mlp(hidden=8)", members=3)
    for name in ("bald", "batchbald(configs=20)", "power_sampling(bald)"):
        check_strategy(name, model=ens)


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
    assert_close(g[0], jnp.concatenate([grad["W"].T, grad["b"][None]]).ravel(), rtol=1e-5, atol=1e-7)


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
        with pytest.raises(ValueError, match="strategy|arguments|malformed") as err:
            resolve(bad)
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- settings, names, out-of-tree


def test_settings_defaults_are_the_plain_strategy(pool):
    x, sel, params = pool
    ctx = make_ctx(params, x, sel)
    key = jax.random.key(7)
    for plain, spelled in (("qbc_kl", "qbc_kl(members=5,steps=20,learning_rate=0.05,optimizer=adam)"),
                           ("expected_error_reduction", "expected_error_reduction(candidates=256,eval_rows=256,"
                                                        "step_size=0.5)")):
        np.testing.assert_array_equal(resolve(spelled)(key, ctx), resolve(plain)(key, ctx))
    # a setting changes the committee: 7 members, 30 SGD steps
    other = resolve("qbc_kl(members=7,steps=30,optimizer=sgd)")(key, ctx)
    assert other.shape == (N,) and not np.array_equal(other, resolve("qbc_kl")(key, ctx))
    few = resolve("expected_error_reduction(candidates=5)")(key, ctx)
    assert int(jnp.sum(jnp.isfinite(few))) == 5


def test_resolve_errors_are_one_line_with_a_hint():
    for bad, text in (("marign", "did you mean 'margin'"), ("subsample(marign)", "did you mean 'margin'"),
                      ("alternate(kcenter,entrpy)", "did you mean 'entropy'"),
                      ("qbc_kl(member=3)", "no setting 'member'"), ("margin(3)", "KEY=VALUE"),
                      ("no_such_module_xyz:score", "cannot import"), ("subsample(margin", "malformed"),
                      ("os:kill", "'os:kill' is not a declared aljax strategy; decorate it with "
                       "@aljax.declare.strategy"), ("subsample(builtins:print,5)", "not a declared aljax strategy"),
                      ("numpy:argsort", "not a declared aljax strategy")):
        with pytest.raises(ValueError, match=text) as err:
            resolve(bad)
        assert "\n" not in str(err.value)


def test_an_out_of_tree_strategy_resolves_everywhere(tmp_path, monkeypatch, pool):
    (tmp_path / "my_strategies.py").write_text(
        "import jax\n"
        "import aljax\n"
        "from aljax.strategies import margin\n"
        "@aljax.declare.strategy\n"
        "def my_margin(key, ctx, *, scale=1.0):\n"
        "    return scale * jax.vmap(margin)(ctx.logits)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    x, sel, params = pool
    ctx = make_ctx(params, x, sel)
    key = jax.random.key(0)
    np.testing.assert_array_equal(resolve("my_strategies:my_margin")(key, ctx), STRATEGIES["margin"](key, ctx))
    np.testing.assert_array_equal(resolve("subsample(my_strategies:my_margin,20)")(key, ctx),
                                  resolve("subsample(margin,20)")(key, ctx))
    np.testing.assert_array_equal(resolve("my_strategies:my_margin(scale=2.0)")(key, ctx),
                                  2 * STRATEGIES["margin"](key, ctx))
    check_strategy("my_strategies:my_margin")
    with pytest.raises(ValueError, match="has no 'nope'"):
        resolve("my_strategies:nope")


def test_each_strategy_module_imports_alone_and_combinators_import_only_base_and_spec():
    import ast
    import pathlib
    import subprocess
    import sys

    modules = ["base", "uncertainty", "committee", "model_change", "diversity", "combinators", "registry"]
    code = ("import sys\n"
            f"for m in {modules!r}:\n"
            "    for name in [n for n in sys.modules if n.startswith('aljax')]:\n"
            "        del sys.modules[name]\n"
            "    __import__('aljax.strategies.' + m)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[1],
                   env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
    tree = ast.parse((pathlib.Path(__file__).parents[1] / "aljax/strategies/combinators.py").read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    modules = {m if m != "aljax" else f"aljax.{name}" for m, name in imported if m.startswith("aljax")}
    assert modules == {"aljax.strategies.base", "aljax.declare", "aljax.spec"}  # neither imports anything of aljax


# ----------------------------------------------------------------------------- stateful strategies


def kcenter_reference(ctx: Context) -> jax.Array:
    """k-center as it was before it kept state: distances to every labeled row, every round."""
    from aljax import cluster
    from aljax.strategies import rank_batch

    e = ctx.embed()
    d2 = jnp.min(jnp.where(ctx.train_w[None, :] > 0, cluster.sq_distances(e, ctx.embed(ctx.train_x)), jnp.inf), axis=1)
    d2 = jnp.where(jnp.isfinite(d2), d2, jnp.max(jnp.where(jnp.isfinite(d2), d2, 0.0)))

    def take(d2, _):
        i = jnp.argmax(jnp.where(ctx.selectable, d2, -jnp.inf))
        return jnp.minimum(d2, jnp.sum((e - e[i]) ** 2, axis=1)), i

    d2, batch = jax.lax.scan(take, d2, length=ctx.query_size)
    return rank_batch(batch, d2)


@pytest.mark.parametrize("name", ["kcenter", "alternate(kcenter,margin)"])
def test_stateful_kcenter_selects_as_the_full_recompute_over_rounds(name):
    from aljax.strategies import StatefulStrategy, make_context

    n, q, rounds, first = 300, 7, 5, 4
    model = softmax_regression(C, init_scale=1.0)
    x = jax.random.uniform(jax.random.key(0), (n, 16))
    params = model.init(jax.random.key(1), (16,))
    logits = model.apply(params, x)
    strategy = resolve(name)
    assert isinstance(strategy, StatefulStrategy)

    @jax.jit
    def both(order, labeled, n_labeled, state):
        ctx = make_context(model, params, x, logits, ~labeled, order, order % C, n_labeled, q)
        scores, state = strategy.score(jax.random.key(2), ctx, state)
        return select(scores, ~labeled, q), select(kcenter_reference(ctx), ~labeled, q), state

    order = jnp.zeros((first + rounds * q,), jnp.int32).at[:first].set(jnp.arange(first))
    labeled = jnp.zeros((n,), bool).at[:first].set(True)
    n_labeled = first
    state = strategy.init(make_context(model, params, x, logits, ~labeled, order, order % C, n_labeled, q))
    for _ in range(rounds):
        got, want, state = both(order, labeled, jnp.int32(n_labeled), state)
        if name == "kcenter" or (n_labeled // q) % 2 == 1:  # the rounds where alternate uses kcenter
            np.testing.assert_array_equal(got, want)
        order = order.at[n_labeled:n_labeled + q].set(got)
        labeled = labeled.at[got].set(True)
        n_labeled += q
    assert int(jax.tree.leaves(state)[-1]) == n_labeled - q  # the state has seen every labeled row so far


def test_the_loop_carries_the_strategy_state(tiny):
    from aljax.fit import Hyper
    from aljax.loop import Config, make_run

    config = Config(strategy="kcenter", n_initial=4, query_size=3, rounds=3, initial="random", n_classes=3)
    state, _ = jax.jit(make_run(config))(tiny, Hyper(), jax.random.key(0))
    assert int(state.strategy_state.seen) == config.budget - config.query_size
    plain, _ = jax.jit(make_run(dataclasses.replace(config, strategy="margin")))(tiny, Hyper(), jax.random.key(0))
    assert plain.strategy_state == ()


def test_badge_without_embeddings_selects_as_kmeans_plus_plus_on_them():
    from aljax import cluster

    n, q = 400, 10
    model = softmax_regression(C, init_scale=1.0)
    x = jax.random.uniform(jax.random.key(0), (n, 16))
    params = model.init(jax.random.key(1), (16,))
    sel = jnp.arange(n) >= 20
    ctx = make_ctx(params, x[:, :16], sel, q)
    ctx = dataclasses.replace(ctx, model=model, logits=model.apply(params, x))
    for seed in range(5):
        key = jax.random.key(seed)
        want = cluster.kmeans_plus_plus(key, gradient_embedding(ctx), q, weights=sel)
        np.testing.assert_array_equal(select(STRATEGIES["badge"](key, ctx), sel, q), want)


# ----------------------------------------------------------------------------- Bayesian strategies


def dropout_ctx(model, query_size=Q, n=N):
    kx, kp = jax.random.split(jax.random.key(7))
    x = jax.random.uniform(kx, (n, D))
    params = model.init(kp, (D,))
    labeled = jnp.arange(n) < L // 2
    return Context(model=model, params=params, x=x, logits=model.apply(params, x), selectable=~labeled,
                   train_x=x[:L], train_y=jnp.arange(L) % C, train_w=mean_weights(jnp.arange(L) < L // 2),
                   query_size=query_size)


@pytest.mark.parametrize("name", ["bald", "variation_ratios", "mean_std"])
def test_disagreement_of_a_model_without_dropout_is_zero(name):
    ctx = dropout_ctx(mlp(C, hidden=16, dropout=0.0))
    np.testing.assert_allclose(resolve(name)(jax.random.key(0), ctx), 0.0, atol=1e-6)
    with_dropout = resolve(name)(jax.random.key(0), dropout_ctx(DROPOUT_MLP))
    assert float(jnp.max(with_dropout)) > 1e-3


def test_max_entropy_without_dropout_is_the_entropy_of_the_logits():
    ctx = dropout_ctx(mlp(C, hidden=16, dropout=0.0))
    np.testing.assert_allclose(resolve("max_entropy(samples=3)")(jax.random.key(0), ctx),
                               jax.vmap(entropy)(ctx.logits), rtol=1e-5)


def test_batchbald_of_one_row_is_balds_argmax():
    ctx = dropout_ctx(DROPOUT_MLP, query_size=1)
    key = jax.random.key(3)
    k_samples, _ = jax.random.split(key)
    bald_scores = resolve("bald(samples=10)")(k_samples, ctx)  # the same samples batchbald draws
    chosen = select(resolve("batchbald(samples=10)")(key, ctx), ctx.selectable, 1)
    assert int(chosen[0]) == int(select(bald_scores, ctx.selectable, 1)[0])


def test_batchbald_picks_distinct_selectable_rows_under_jit():
    ctx = dropout_ctx(DROPOUT_MLP, query_size=4)
    scores = jax.jit(lambda k: resolve("batchbald(samples=8,configs=30)")(k, ctx))(jax.random.key(1))
    batch = select(scores, ctx.selectable, 4)
    assert len(set(batch.tolist())) == 4 and bool(jnp.all(ctx.selectable[batch]))


def test_ensemble_samples_are_the_members_and_chunking_is_exact():
    ens = ensemble(C, "mlp(hidden=8)", members=3)
    ctx = dropout_ctx(ens)
    s = ctx.samples(jax.random.key(0), 20)
    assert s.shape == (3, N, C)
    assert_close(ctx.samples(jax.random.key(0), 20, chunk=7), s, rtol=1e-6, atol=1e-6)
    assert_close(ens.apply(ctx.params, ctx.x), jax.nn.logsumexp(jax.nn.log_softmax(s), axis=0) - np.log(3),
                 rtol=1e-5, atol=1e-6)
