"""Cross-checks of declared traits against traced behaviour, for the tests only.

The engine reads what a component declares (:mod:`aljax.declare`); these helpers read the same traits
off the traced programs (jaxprs, abstract shapes) or off scores, so a test can assert that every
declaration tells the truth. Nothing in ``aljax`` may use them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.extend.core import Literal
from jax.interpreters import partial_eval as pe

from aljax.models import Model, mlp
from aljax.strategies import make_context, stateful


def _traced_apply(model: Model, sample_shape: tuple[int, ...], rows: int, train: bool):
    """The closed jaxpr of ``apply(params, x, key=key, train=train)`` for ``rows`` rows of
    ``sample_shape``, traced on abstract values (nothing is computed); its inputs: key, params, x."""
    params = jax.eval_shape(lambda key: model.init(key, tuple(sample_shape)), jax.random.key(0))
    x = jax.ShapeDtypeStruct((rows, *sample_shape), jnp.float32)
    return jax.make_jaxpr(lambda key, p, x: model.apply(p, x, key=key, train=train))(jax.random.key(0), params, x)


def _uses_first_input(closed) -> bool:
    """Whether the first input of a closed jaxpr reaches its outputs (after dead-code elimination)."""
    _, used = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
    return bool(used[0])


def samples_differ(model: Model, sample_shape: tuple[int, ...]) -> bool:
    """Whether ``model``'s sampled predictions differ from sample to sample: its own ``samples`` hook
    gives more than one (an ensemble's members), or its train-mode ``apply`` reads its key (dropout)."""
    if model.samples is not None:
        params = jax.eval_shape(lambda key: model.init(key, tuple(sample_shape)), jax.random.key(0))
        x = jax.ShapeDtypeStruct((2, *sample_shape), jnp.float32)
        out = jax.eval_shape(lambda p, x: model.samples(p, x, key=jax.random.key(0), k=4, chunk=None), params, x)
        return out.shape[0] > 1
    return _uses_first_input(_traced_apply(model, sample_shape, 2, train=True))


def convolves(model: Model, sample_shape: tuple[int, ...]) -> bool:
    """Whether ``model`` applies a convolution to rows of ``sample_shape`` (its traced eval-mode program)."""
    return "conv_general_dilated" in str(_traced_apply(model, sample_shape, 1, train=False))


def embedding_reads_params(model: Model, sample_shape: tuple[int, ...]) -> bool:
    """Whether ``model.embed(params, x)`` depends on the params: a walk over its jaxpr on abstract values
    that marks every output of an equation one of whose inputs depends on them (what k-center read at
    trace time before models declared ``fixed_embedding``). Softmax regression's embedding (x itself)
    does not."""
    params = jax.eval_shape(lambda key: model.init(key, tuple(sample_shape)), jax.random.key(0))
    x = jax.ShapeDtypeStruct((1, *sample_shape), jnp.float32)
    closed = jax.make_jaxpr(model.embed)(params, x)
    n_params = len(jax.tree.leaves(params))
    tainted = set(closed.jaxpr.invars[:n_params])
    for eqn in closed.jaxpr.eqns:
        if any(not isinstance(v, Literal) and v in tainted for v in eqn.invars):
            tainted.update(eqn.outvars)
    return any(not isinstance(v, Literal) and v in tainted for v in closed.jaxpr.outvars)


class _Recorder:
    """A model ``samples`` hook that records being called and gives K sampled logits of a dropout MLP."""

    def __init__(self, model: Model):
        self.model, self.called = model, False

    def __call__(self, params, x, *, key, k, chunk=None):
        self.called = True
        keys = jax.random.split(key, k)
        return jax.vmap(lambda key: self.model.apply(params, x, key=key, train=True))(keys)


def probe_context(query_size: int = 3, n: int = 12, classes: int = 3, samples=None):
    """A tiny Context on a dropout MLP (so a strategy that samples dropout masks reads its key)."""
    model = mlp(classes, hidden=4, dropout=0.5)
    if samples is not None:
        model = model._replace(samples=samples)
    x = jax.random.uniform(jax.random.key(0), (n, 4))
    params = model.init(jax.random.key(1), (4,))
    return make_context(model, params, x, model.apply(params, x), jnp.arange(n) >= 3, jnp.arange(6),
                        jnp.arange(6) % classes, 3, query_size)


def reads_key(strategy) -> bool:
    """Whether a strategy's scores depend on its key: the key reaches the scores in the traced program
    after dead-code elimination (a key split and then unused, ``alternate(margin,entropy)``, does not)."""
    pair, ctx = stateful(strategy), probe_context()
    closed = jax.make_jaxpr(lambda key: pair.score(key, ctx, pair.init(ctx))[0])(jax.random.key(2))
    return _uses_first_input(closed)


def reads_samples(strategy) -> bool:
    """Whether a strategy draws sampled logits (``ctx.samples``) while it is traced."""
    recorder = _Recorder(mlp(3, hidden=4, dropout=0.5))
    pair, ctx = stateful(strategy), probe_context(samples=recorder)
    jax.make_jaxpr(lambda key: pair.score(key, ctx, pair.init(ctx))[0])(jax.random.key(2))
    return recorder.called


def ranks_a_batch(strategy) -> bool:
    """Whether a strategy's scores depend on the batch size (``ctx.query_size``): a batch-aware one
    ranks a different batch first when asked for 2 rows than for 3 (same key, same pool)."""
    pair, ctx = stateful(strategy), probe_context(query_size=3)
    two = dataclasses.replace(ctx, query_size=2)
    key = jax.random.key(2)
    return not bool(jnp.array_equal(pair.score(key, ctx, pair.init(ctx))[0], pair.score(key, two, pair.init(two))[0]))
