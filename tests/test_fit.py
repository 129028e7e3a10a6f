import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aljax.models import softmax_regression
from aljax.optim import tf1_adam
from aljax.fit import Hyper, make_fitter, mean_weights, n_correct, softmax_xent, weighted_loss


def test_xent_matches_log_softmax_and_its_gradient():
    logits = jax.random.normal(jax.random.key(0), (5, 4)) * 3
    labels = jnp.array([0, 3, 1, 1, 2])
    ref = optax.softmax_cross_entropy_with_integer_labels
    np.testing.assert_allclose(softmax_xent(logits, labels), ref(logits, labels), rtol=1e-6)
    g = jax.grad(lambda z: jnp.sum(softmax_xent(z, labels) * 0.2))(logits)
    g_ref = jax.grad(lambda z: jnp.mean(ref(z, labels)))(logits)
    np.testing.assert_allclose(g, g_ref, atol=1e-7)


def test_mean_weights_are_float32_one_over_n():
    w = mean_weights(jnp.array([True, True, True, False]))
    assert w.dtype == jnp.float32 and w.tolist() == [np.float32(1) / np.float32(3)] * 3 + [0.0]


def replay(model, opt, params, x, y, w, split, patience, max_steps=1000):
    """fit written as a plain Python loop, for comparison."""
    state = opt.init(params)
    best, best_c, trials, steps = params, int(n_correct(model.apply, params, split)), patience, 0
    grad = jax.jit(jax.grad(lambda p: weighted_loss(model.apply, p, x, y, w)))
    while trials > 0 and steps < max_steps:
        updates, state = opt.update(grad(params), state)
        params = optax.apply_updates(params, updates)
        c = int(n_correct(model.apply, params, split))
        steps += 1
        if c > best_c:
            best, best_c, trials = params, c, patience
        else:
            trials -= 1
    return best, best_c, steps


def test_fit_returns_best_weights_and_stops_after_patience(tiny):
    model = softmax_regression(3)
    opt = tf1_adam(0.1)
    params = model.init(jax.random.key(0), tiny.pool.x.shape[1:])
    x, y = tiny.pool.x[:20], tiny.pool.y[:20]
    w = mean_weights(jnp.ones(20, bool))
    fit = make_fitter("patience")
    hyper = Hyper(patience=jnp.int32(3), max_steps=jnp.int32(1000))
    result = jax.jit(lambda p, s: fit(model, opt, p, s, jax.random.key(1), x, y, w, tiny.eval, hyper))(
        params, opt.init(params)
    )
    best, best_c, steps = replay(model, opt, params, x, y, w, tiny.eval, 3)
    assert int(result.steps) == steps and int(result.correct) == best_c
    assert int(n_correct(model.apply, result.params, tiny.eval)) == best_c > 11  # better than zero init's
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), result.params, best)


def test_fit_is_bounded_by_max_steps(tiny):
    model = softmax_regression(3)
    opt = tf1_adam(0.1)
    params = model.init(jax.random.key(0), tiny.pool.x.shape[1:])
    w = mean_weights(jnp.ones(20, bool))
    hyper = Hyper(patience=jnp.int32(1_000_000), max_steps=jnp.int32(7))
    result = make_fitter("patience")(model, opt, params, opt.init(params), jax.random.key(1), tiny.pool.x[:20],
                                     tiny.pool.y[:20], w, tiny.eval, hyper)
    assert int(result.steps) == 7


def test_keep_last_runs_every_epoch_of_passes_and_returns_the_last_params(tiny):
    model = softmax_regression(3)
    opt = optax.sgd(0.1)
    params = model.init(jax.random.key(0), tiny.pool.x.shape[1:])
    labeled = jnp.arange(30) < 20  # 20 labeled rows in a buffer of 30: passes of ⌈20/8⌉ = 3 steps
    w = mean_weights(labeled)
    hyper = Hyper(patience=jnp.int32(1), max_steps=jnp.int32(1000))
    fit = make_fitter("minibatch(batch_size=8,epoch=passes,keep=last,max_epochs=4)")
    result = fit(model, opt, params, opt.init(params), jax.random.key(1), tiny.pool.x[:30], tiny.pool.y[:30], w,
                 tiny.eval, hyper)
    assert int(result.steps) == 12  # 4 epochs x 3 steps; patience 1 would have stopped a keep=best fit
    assert int(result.correct) == int(n_correct(model.apply, result.params, tiny.eval))


def one_step(fitter: str, tiny):
    """W1 after one SGD step (a pass of one batch over the 8 labeled rows) of an mlp."""
    from aljax.models import mlp

    model = mlp(3, hidden=4)
    params = model.init(jax.random.key(0), tiny.pool.x.shape[1:])
    w = mean_weights(jnp.arange(16) < 8)
    result = make_fitter(fitter)(model, optax.sgd(0.5), params, optax.sgd(0.5).init(params), jax.random.key(1),
                                 tiny.pool.x[:16], tiny.pool.y[:16], w, tiny.eval,
                                 Hyper(patience=jnp.int32(1), max_steps=jnp.int32(10)))
    return params, result.params


def test_keras_weight_decay_is_c_over_n_on_the_named_parameters_only(tiny):
    base = "minibatch(batch_size=8,epoch=passes,keep=last,max_epochs=1"
    start, plain = one_step(base + ")", tiny)
    _, decayed = one_step(base + ",weight_decay=2.0,decay_per_label=true,decay_on=W1,decay_half=false)", tiny)
    # Keras l2(λ) with λ = c / N = 2 / 8: gradient 2·λ·W1, so W1 moves by lr·2·λ·W1 = 0.5·0.5·W1 more
    np.testing.assert_allclose(decayed["W1"], plain["W1"] - 0.5 * 2 * (2.0 / 8) * start["W1"], atol=1e-6)
    for name in ("b1", "W2", "b2"):
        np.testing.assert_array_equal(decayed[name], plain[name])


def test_decay_mask_names_parameters_by_path():
    from aljax.fit import decay_mask

    params = {"Dense_0": {"kernel": 1, "bias": 2}, "Conv_0": {"kernel": 3}}
    leaves = jax.tree.leaves(params)
    mask = decay_mask(params, "Dense_0/kernel")
    assert [v for v, on in zip(leaves, mask) if on] == [1]
    assert all(decay_mask(params, "all"))
    with pytest.raises(ValueError, match="names no parameter 'Dense_1/kernel'"):
        decay_mask(params, "Dense_1/kernel")


def test_minibatch_refuses_unknown_modes():
    with pytest.raises(ValueError, match="epoch must be one of: points, passes"):
        make_fitter("minibatch(epoch=steps)")
    with pytest.raises(ValueError, match="keep must be one of: best, last"):
        make_fitter("minibatch(keep=first)")
