import jax
import jax.numpy as jnp
import numpy as np
import optax

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
