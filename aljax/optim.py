"""Optimisers as optax ``GradientTransformation``s, including TensorFlow 1's exact Adam.

The article trains with ``tf.train.AdamOptimizer(0.1)``. Its kernel (``training_ops.ApplyAdam``)
orders the float32 arithmetic differently from ``optax.adam``, and the active-learning rows of the
article depend on that rounding, so :func:`tf1_adam` reproduces it operation by operation.

Float note: on CPUs with FMA3, XLA:CPU fuses ``a + b·c`` into one fused multiply-add (one rounding
instead of TF1's two), so jitted updates can differ from TF1 in the last bit after a few steps.
Eager execution, or ``XLA_FLAGS=--xla_cpu_max_isa=AVX``, is bit-exact (tests/test_optim.py). The
article's six rows come out identical either way; the default keeps FMA because it is faster.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from aljax import spec as specs


class TF1AdamState(NamedTuple):
    """m, v: pytrees like the params; b1_power, b2_power: float32 scalars β1^t, β2^t for the next step."""

    m: optax.Updates
    v: optax.Updates
    b1_power: jax.Array
    b2_power: jax.Array


def tf1_adam(learning_rate, b1: specs.Fraction = 0.9, b2: specs.Fraction = 0.999,
             eps: specs.Positive = 1e-8) -> optax.GradientTransformation:
    """TF1 ``AdamOptimizer`` in float32, bit-for-bit in operation order.

    ``lr_t = lr·√(1−β2^t)/(1−β1^t)``; ``m += (g−m)(1−β1)``; ``v += (g²−v)(1−β2)``;
    ``update = −(m·lr_t)/(√v + ε)``. β^t is kept as a float32 running product (TF's beta powers).
    ``learning_rate`` may be a traced scalar, so it can be swept with ``vmap``.
    """
    f32 = jnp.float32
    one = f32(1)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return TF1AdamState(m=zeros, v=jax.tree.map(jnp.zeros_like, params), b1_power=f32(b1), b2_power=f32(b2))

    def update(grads, state, params=None):
        del params
        lr = jnp.asarray(learning_rate, f32)
        lr_t = lr * jnp.sqrt(one - state.b2_power) / (one - state.b1_power)
        m = jax.tree.map(lambda m, g: m + (g - m) * (one - f32(b1)), state.m, grads)
        v = jax.tree.map(lambda v, g: v + (g * g - v) * (one - f32(b2)), state.v, grads)
        updates = jax.tree.map(lambda m, v: -(m * lr_t) / (jnp.sqrt(v) + f32(eps)), m, v)
        new_state = TF1AdamState(m, v, state.b1_power * f32(b1), state.b2_power * f32(b2))
        return updates, new_state

    return optax.GradientTransformation(init, update)


def adam(learning_rate, *, b1: specs.Fraction = 0.9, b2: specs.Fraction = 0.999, eps: specs.Positive = 1e-8,
         nesterov: bool = False) -> optax.GradientTransformation:
    """``optax.adam`` (Kingma & Ba 2015)."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps, nesterov=nesterov)


def adamw(learning_rate, *, b1: specs.Fraction = 0.9, b2: specs.Fraction = 0.999, eps: specs.Positive = 1e-8,
          weight_decay: specs.NonNegative = 1e-4, nesterov: bool = False) -> optax.GradientTransformation:
    """``optax.adamw`` (Loshchilov & Hutter 2019): Adam with decoupled weight decay."""
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, nesterov=nesterov)


def sgd(learning_rate, *, momentum: specs.Fraction | None = None, nesterov: bool = False) -> optax.GradientTransformation:
    """``optax.sgd``: plain gradient descent, with optional (Nesterov) momentum."""
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "tf1_adam": tf1_adam,
    "adam": adam,
    "adamw": adamw,
    "sgd": sgd,
}


def make_optimizer(name: str, learning_rate) -> optax.GradientTransformation:
    """The optimiser a spec names (``"tf1_adam"``, ``"adamw(weight_decay=1e-4)"``, ``"sgd(momentum=0.9)"``)
    at ``learning_rate`` (a traced scalar: the learning rate is a :class:`aljax.loop.Hyper`, so vmap
    can sweep it); one-line :class:`aljax.spec.SpecError` for an unknown name or setting."""
    return specs.build(OPTIMIZERS, name, "optimizer", learning_rate)


def check_optimizer(name: str) -> None:
    """Raise a one-line :class:`aljax.spec.SpecError` if ``name`` is not a valid optimiser spec
    (without building it: building touches the JAX backend)."""
    specs.check(OPTIMIZERS, name, "optimizer", 0.1)
