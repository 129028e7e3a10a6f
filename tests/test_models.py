"""Models: the init/apply/embed contract for every registered model, specs, and the adapters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax.loop import Config, Hyper, make_run
from aljax.models import MODELS, conv_valid, from_functions, make_model
from aljax.spec import SpecError
from aljax.testing import assert_close

SAMPLE = (2, 3, 1)  # a tiny image: models flatten what they need
PUBLISHED_CNNS = ("cnn_batchbald2019", "cnn_gal2017")  # valid 4×4 and 5×5 convolutions need MNIST-sized images
WRAPPERS = ("ensemble", "standardized", "mc_averaged")  # models of models: tested below and in test_deep.py
FLAT = sorted(set(MODELS) - set(PUBLISHED_CNNS) - set(WRAPPERS))  # tested at SAMPLE, with the init_scale setting they share


@pytest.mark.parametrize("name", FLAT)
def test_model_contract_and_weights_output_major(name):
    model = make_model(f"{name}(init_scale=1.0)", 3)
    params = model.init(jax.random.key(0), SAMPLE)
    x = jnp.ones((5, *SAMPLE))
    assert model.apply(params, x).shape == (5, 3)
    assert model.embed(params, x).ndim == 2 and model.embed(params, x).shape[0] == 5
    matrices = [leaf for leaf in jax.tree.leaves(params) if leaf.ndim == 2]
    assert matrices[0].shape[1] == 6 and matrices[-1].shape[0] == 3  # (out, in), like torch.nn.Linear


@pytest.mark.parametrize("name", FLAT)
def test_embedding_is_the_output_layers_input(name):
    """logits = embed · W_outᵀ + b_out: the embedding is exactly what the output layer reads."""
    model = make_model(f"{name}(init_scale=1.0)", 3)
    params = model.init(jax.random.key(1), SAMPLE)
    x = jax.random.normal(jax.random.key(2), (4, *SAMPLE))
    w_out, b_out = (params["W"], params["b"]) if "W" in params else (params["W2"], params["b2"])
    np.testing.assert_allclose(model.embed(params, x) @ w_out.T + b_out, model.apply(params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", FLAT)
def test_every_model_runs_in_the_loop_and_learns(tiny, name):
    config = Config(model=f"{name}(init_scale=0.5)", n_initial=6, query_size=6, rounds=3, initial="random")
    _, info = jax.jit(make_run(config))(tiny, Hyper(learning_rate=jnp.float32(0.05)), jax.random.key(0))
    accuracy = np.asarray(info.test_accuracy)
    assert accuracy[-1] > 0.6 and accuracy[-1] >= accuracy[0]  # 3 blobs: chance is 1/3


def test_mlp_dropout_is_train_mode_only_and_keyed():
    model = make_model("mlp(hidden=64,dropout=0.5)", 3)
    params = model.init(jax.random.key(0), SAMPLE)
    x = jax.random.normal(jax.random.key(1), (8, *SAMPLE))
    eval_logits = model.apply(params, x)
    np.testing.assert_array_equal(eval_logits, model.apply(params, x, key=jax.random.key(5)))
    a = model.apply(params, x, key=jax.random.key(5), train=True)
    b = model.apply(params, x, key=jax.random.key(6), train=True)
    assert not np.allclose(a, eval_logits) and not np.allclose(a, b)
    np.testing.assert_array_equal(a, model.apply(params, x, key=jax.random.key(5), train=True))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.apply(params, x, train=True)


@pytest.mark.parametrize("spec, message", [
    ("mpl", "did you mean 'mlp'"),
    ("mlp(width=3)", "has no setting 'width'"),
    ("mlp(hidden=", "malformed"),
])
def test_bad_model_specs_are_one_line_errors(spec, message):
    with pytest.raises(SpecError, match=message) as err:
        Config(model=spec)
    assert "\n" not in str(err.value)


def test_plain_function_pair_adapter():
    model = from_functions(lambda key, shape: {"w": jnp.ones((3, 6))}, lambda p, x: x.reshape(len(x), -1) @ p["w"].T)
    params = model.init(jax.random.key(0), SAMPLE)
    x = jnp.ones((2, *SAMPLE))
    assert model.apply(params, x, key=jax.random.key(0), train=True).shape == (2, 3)
    assert model.embed(params, x).shape == (2, 6)


# ----------------------------------------------------------------------------- a flax network, out of tree

import flax.linen as nn  # noqa: E402

from aljax.data import Data, make_pool, make_split  # noqa: E402
from aljax.models import from_flax  # noqa: E402
from aljax import declare  # noqa: E402


class SmallCNN(nn.Module):
    """A user's network: conv → pool → dense → dropout → dense, as a flax.linen Module."""

    n_classes: int
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.max_pool(nn.relu(nn.Conv(4, (3, 3))(x)), (2, 2), (2, 2))
        x = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.n_classes)(x)


@declare.model(dropout=True, convolutional=True)
def small_cnn(n_classes: int, *, dropout: float = 0.5):
    """The factory a spec names from outside aljax: ``"test_models:small_cnn(dropout=0.3)"``."""
    return from_flax(SmallCNN(n_classes, dropout))


def image_blobs(n: int = 48, c: int = 3, side: int = 6, seed: int = 0) -> Data:
    """Images (n, side, side, 1) whose class sets one bright quadrant-ish band, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, 2 * n)
    x = rng.normal(0, 0.3, (2 * n, side, side, 1)).astype(np.float32)
    for k in range(c):
        x[y == k, 2 * k : 2 * k + 2, :, 0] += 2.0
    split = make_split(x[n:], y[n:])
    return Data(pool=make_pool(x[:n], y[:n]), eval=split, test=split)


def test_flax_adapter_embeds_the_output_layers_input():
    model = small_cnn(3)
    params = model.init(jax.random.key(0), (6, 6, 1))
    x = jax.random.normal(jax.random.key(1), (5, 6, 6, 1))
    e = model.embed(params, x)
    assert e.shape == (5, 16)
    out = params["Dense_1"]
    np.testing.assert_allclose(e @ out["kernel"] + out["bias"], model.apply(params, x), rtol=1e-5, atol=1e-5)
    a = model.apply(params, x, key=jax.random.key(2), train=True)
    assert not np.allclose(a, model.apply(params, x))  # dropout only in train mode


def test_flax_cnn_with_dropout_runs_in_the_loop_vmapped_in_one_compilation():
    data = image_blobs()
    config = Config(model="test_models:small_cnn(dropout=0.3)", strategy="kcenter", optimizer="adam",
                    fitter="minibatch(batch_size=8,epoch_points=32,max_epochs=6)",
                    n_initial=6, query_size=4, rounds=3, initial="random", n_classes=3)
    traces = []
    inner = jax.vmap(make_run(config), in_axes=(None, None, 0))

    def counted(data, hyper, keys):
        traces.append(1)
        return inner(data, hyper, keys)

    run = jax.jit(counted)
    hyper = Hyper(learning_rate=jnp.float32(0.01), patience=jnp.int32(3))
    for seed in (0, 1):
        state, info = run(data, hyper, jax.random.split(jax.random.key(seed), 3))
    assert len(traces) == 1 and run._cache_size() == 1
    assert state.n_labeled.tolist() == [18, 18, 18]
    orders = np.asarray(state.order)
    assert len({tuple(o) for o in orders}) == 3  # seeds differ
    assert (np.asarray(info.steps) % 4 == 0).all() and (np.asarray(info.steps) > 0).all()  # whole epochs of 4 steps
    assert np.asarray(info.test_accuracy)[:, -1].mean() > 0.6  # 3 classes: chance is 1/3


# ----------------------------------------------------------------------------- the published CNNs, at 28×28×1


@pytest.mark.parametrize("name, flat_features", [("cnn_gal2017", 11 * 11 * 32), ("cnn_batchbald2019", 4 * 4 * 64)])
def test_published_cnns_shapes_embedding_and_train_mode_dropout(name, flat_features):
    """The dense layer reads the published flattened size; embed is the output layer's input; dropout
    acts in train mode only."""
    model = make_model(name, 10)
    params = jax.jit(model.init, static_argnums=1)(jax.random.key(0), (28, 28, 1))
    dense = [leaf for leaf in jax.tree.leaves(params) if leaf.ndim == 2]
    assert [d.shape for d in dense] == [(flat_features, 128), (128, 10)]
    x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
    logits, e, dropped = jax.jit(lambda params, x: (model.apply(params, x), model.embed(params, x),
                                                   model.apply(params, x, key=jax.random.key(2), train=True)))(params, x)
    assert logits.shape == (2, 10) and e.shape == (2, 128)
    out = params["Dense_1"]
    np.testing.assert_allclose(e @ out["kernel"] + out["bias"], logits, rtol=1e-5, atol=1e-5)
    assert not np.allclose(dropped, logits)


def test_models_declare_dropout_by_their_settings():
    """The declared trait (tests/test_traits.py checks it against the traced program for every entry)."""
    assert not make_model("softmax_regression", 3).dropout
    assert not make_model("mlp(hidden=4)", 3).dropout
    assert make_model("mlp(hidden=4,dropout=0.5)", 3).dropout
    assert make_model("cnn_gal2017(filters=2,kernel=2,hidden=4)", 3).dropout
    assert make_model("ensemble(softmax_regression,members=2)", 3).dropout
    assert not make_model("ensemble(softmax_regression,members=1)", 3).dropout


@pytest.mark.parametrize("channels", [2, 20])  # kernel gradient from one patch matrix / from shifted products
def test_conv_valid_has_the_values_and_gradients_of_xla_convolution(channels):
    x = jax.random.normal(jax.random.key(0), (3, 9, 8, channels))
    w = jax.random.normal(jax.random.key(1), (3, 2, channels, 4))
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w, (1, 1), "VALID", dimension_numbers=dn)))

    ours, xla = loss(conv_valid), loss(jax.lax.conv_general_dilated)
    assert_close(ours(x, w), xla(x, w), rtol=1e-5)
    for a, b in zip(jax.grad(ours, argnums=(0, 1))(x, w), jax.grad(xla, argnums=(0, 1))(x, w)):
        assert_close(a, b, rtol=1e-4, atol=1e-5)
    strided = conv_valid(x, w, (2, 2), "VALID", dimension_numbers=dn)  # other cases: XLA's own
    assert_close(strided, jax.lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=dn))


def test_published_cnn_settings_change_the_network():
    model = make_model("cnn_gal2017(filters=8,kernel=3,hidden=16,dropout_conv=0.0)", 10)
    params = jax.eval_shape(lambda key: model.init(key, (28, 28, 1)), jax.random.key(0))
    assert params["Dense_0"]["kernel"].shape == (12 * 12 * 8, 16)  # 28 → 26 → 24 → pool 12


# ----------------------------------------------------------------------------- deep ensembles


def test_ensemble_spec_stacks_members_and_its_loss_is_the_sum_of_members_losses():
    from aljax.fit import softmax_xent

    ens = make_model("ensemble(mlp(hidden=8,dropout=0.5),members=3)", 4)
    params = ens.init(jax.random.key(0), (5,))
    assert jax.tree.leaves(params)[0].shape[0] == 3
    x, y = jax.random.normal(jax.random.key(1), (6, 5)), jnp.arange(6) % 4
    inner = make_model("mlp(hidden=8,dropout=0.5)", 4)
    keys = jax.random.split(jax.random.key(2), 3)
    by_member = sum(softmax_xent(inner.apply(jax.tree.map(lambda a: a[m], params), x, key=keys[m], train=True), y)
                    for m in range(3))
    assert_close(ens.loss(params, x, y, key=jax.random.key(2)), by_member, rtol=1e-5)
    assert ens.embed(params, x).shape == (6, 24)


def test_minibatch_fitter_trains_every_member_of_an_ensemble():
    from aljax.data import Split
    from aljax.fit import Hyper, make_fitter, mean_weights
    import optax

    ens = make_model("ensemble(mlp(hidden=16),members=2)", 2)
    x = jax.random.normal(jax.random.key(0), (32, 4))
    y = (x[:, 0] > 0).astype(jnp.int32)
    params = ens.init(jax.random.key(1), (4,))
    opt = optax.adam(0.05)
    fit = make_fitter("minibatch(batch_size=16,epoch_points=32,max_epochs=20,reinit=true)")
    result = fit(ens, opt, params, opt.init(params), jax.random.key(2), x, y, mean_weights(jnp.ones(32, bool)),
                 Split(x, y), Hyper(patience=jnp.int32(20)))
    assert int(result.correct) >= 30
    for m in range(2):  # each member alone has learnt the labels, not just their mean
        member = jax.tree.map(lambda a: a[m], result.params)
        inner = make_model("mlp(hidden=16)", 2)
        assert float(jnp.mean(jnp.argmax(inner.apply(member, x), -1) == y)) >= 0.9


def test_an_ensemble_runs_in_the_loop_with_bald_and_learns(tiny):
    config = Config(model="ensemble(mlp(init_scale=0.5),members=3)", strategy="bald", n_initial=6, query_size=6,
                    rounds=3, initial="random", fitter="minibatch(batch_size=8,epoch_points=16,max_epochs=10)")
    _, info = jax.jit(make_run(config))(tiny, Hyper(learning_rate=jnp.float32(0.05)), jax.random.key(0))
    assert np.asarray(info.test_accuracy)[-1] > 0.6


def test_forward_rows_chunks_eval_passes_with_the_same_results(tiny):
    """Config.forward_rows bounds the rows of each eval-mode forward pass; the experiment is unchanged."""
    config = Config(model="mlp(hidden=8,init_scale=0.5)", strategy="kcenter", n_initial=6, query_size=6, rounds=3,
                    initial="random")
    chunked_config = Config(**{**config.__dict__, "forward_rows": 10})
    hyper = Hyper(learning_rate=jnp.float32(0.05))
    (state, info), (state_c, info_c) = (jax.jit(make_run(c))(tiny, hyper, jax.random.key(3)) for c in (config, chunked_config))
    np.testing.assert_array_equal(state.order, state_c.order)
    np.testing.assert_allclose(info.test_accuracy, info_c.test_accuracy)
    scans = [str(jax.make_jaxpr(make_run(c))(tiny, hyper, jax.random.key(3))).count("scan[") for c in (config, chunked_config)]
    assert scans[1] > scans[0]  # the pool and evaluation passes run as lax.map over chunks of 10 rows
