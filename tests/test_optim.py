import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aljax.optim import tf1_adam

GRADS = list(np.random.default_rng(0).normal(size=50).astype(np.float32))


def tf1_adam_by_hand(grads, lr=0.1, b1=0.9, b2=0.999, eps=1e-8):
    """TF1's ApplyAdam, written out in numpy float32, one step per gradient."""
    f = np.float32
    theta, m, v = f(0.5), f(0), f(0)
    b1p, b2p = f(b1), f(b2)
    for g in map(f, grads):
        lr_t = f(lr) * np.sqrt(f(1) - b2p) / (f(1) - b1p)
        m = m + (g - m) * (f(1) - f(b1))
        v = v + (g * g - v) * (f(1) - f(b2))
        theta = theta - (m * lr_t) / (np.sqrt(v) + f(eps))
        b1p, b2p = b1p * f(b1), b2p * f(b2)
    return theta


def run(opt, grads, jit):
    params = {"w": jnp.float32(0.5)}
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    for g in grads:
        updates, state = update({"w": jnp.float32(g)}, state)
        params = optax.apply_updates(params, updates)
    return np.float32(params["w"])


def test_two_steps_match_hand_computation_bit_for_bit():
    grads = [0.3, -1.7]
    # after one step Adam moves by ~lr in the gradient's sign: 0.5 - 0.1
    assert abs(tf1_adam_by_hand(grads[:1]) - 0.4) < 1e-6
    for jit in (False, True):
        assert run(tf1_adam(0.1), grads, jit) == tf1_adam_by_hand(grads)


def test_eager_is_bit_for_bit_over_many_steps():
    assert run(tf1_adam(0.1), GRADS, jit=False) == tf1_adam_by_hand(GRADS)


def test_jit_within_a_few_ulp_and_exact_without_fma():
    """XLA:CPU may fuse multiply-adds (FMA): a few ulp apart; with FMA disabled, bit-exact."""
    hand = tf1_adam_by_hand(GRADS)
    assert abs(run(tf1_adam(0.1), GRADS, jit=True) - hand) <= 4 * np.spacing(hand)
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_optim import *; "
        "print(run(tf1_adam(0.1), GRADS, jit=True) == tf1_adam_by_hand(GRADS))"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_max_isa=AVX", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_differs_from_optax_adam_only_in_rounding():
    hand = tf1_adam_by_hand(GRADS)
    other = run(optax.adam(0.1), GRADS, jit=False)
    assert other != hand and abs(other - hand) < 1e-3


def test_learning_rate_can_be_traced_and_vmapped():
    def final(lr):
        opt = tf1_adam(lr)
        params = jnp.float32(1.0)
        updates, _ = opt.update(jnp.float32(2.0), opt.init(params))
        return params + updates

    out = jax.vmap(final)(jnp.float32([0.1, 0.01]))
    np.testing.assert_allclose(out, [0.9, 0.99], rtol=1e-5)
