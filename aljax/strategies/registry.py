"""The registries and :func:`resolve`, which turns a strategy spec into a strategy.

A spec (:mod:`aljax.spec`) names a registry entry with settings (``"qbc_kl(members=7,steps=30)"``),
an out-of-tree function ``score(key, ctx) -> (N,)`` or :class:`StatefulStrategy`
(``"my_package.my_module:my_score"``), or a combinator over specs and numbers
(``"subsample(my_module:my_score,500)"``, ``"epsilon(alternate(kcenter,margin),0.1)"``). A
strategy's settings are its keyword-only arguments.

What the engine needs to know about a strategy (batch-aware, stochastic, needs samples) is declared
(:mod:`aljax.declare`), never traced: :func:`traits` reads it, for a configured strategy and a
combination too (the configured one is declared like its entry; combinators derive theirs).
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from aljax import declare
from aljax import spec as specs
from aljax.models import Model
from aljax.strategies import combinators
from aljax.strategies import bayesian
from aljax.strategies.base import StatefulStrategy, Strategy, make_context, per_sample, stateful
from aljax.strategies.committee import qbc_kl, qbc_vote_entropy
from aljax.strategies.diversity import badge, density_weighted, kcenter, kmeans
from aljax.strategies.model_change import expected_error_reduction, expected_gradient_length
from aljax.strategies.uncertainty import confidence, entropy, least_confidence, margin, random

# Per-sample scores of one example's logits (C,): lifted into STRATEGIES, and scored one arrival at
# a time by stream mode (aljax.stream).
PER_SAMPLE: dict[str, Callable[[jax.Array], jax.Array]] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "most_confident": confidence,
}

STRATEGIES: dict[str, Strategy | StatefulStrategy] = {
    "random": random,
    **{name: declare.strategy(per_sample(score_one)) for name, score_one in PER_SAMPLE.items()},
    "qbc_vote_entropy": qbc_vote_entropy,
    "qbc_kl": qbc_kl,
    "expected_gradient_length": expected_gradient_length,
    "expected_error_reduction": expected_error_reduction,
    "density_weighted": density_weighted,
    "kcenter": kcenter,
    "badge": badge,
    "kmeans": kmeans,
    "bald": bayesian.bald,
    "variation_ratios": bayesian.variation_ratios,
    "mean_std": bayesian.mean_std,
    "max_entropy": bayesian.max_entropy,
    "batchbald": bayesian.batchbald,
    "epig": bayesian.epig,
}



def traits(strategy: Strategy | StatefulStrategy) -> dict[str, bool]:
    """The declared traits of a strategy object, ``{"batch_aware", "stochastic", "needs_samples": bool}``
    (all False for an undeclared one, e.g. a function passed directly in Python)."""
    return declare.traits_of(strategy, "strategy")


# Strategies that reduce sampled logits (declared ``needs_samples``): they need a model with dropout or
# an ensemble; on a deterministic model every sample is the same and BALD-like scores are 0 everywhere.
SAMPLED: frozenset[str] = frozenset(name for name, fn in STRATEGIES.items() if traits(fn)["needs_samples"])

COMBINATORS: dict[str, Callable[..., Strategy | StatefulStrategy]] = {
    "subsample": combinators.subsample,
    "epsilon": combinators.epsilon,
    "alternate": combinators.alternate,
    "softmax_sampling": combinators.softmax_sampling,
    "power_sampling": combinators.power_sampling,
}


def resolve(name: str | specs.Spec) -> Strategy | StatefulStrategy:
    """The strategy a spec names (spaces ignored; one object per spec, so jit caches are shared).

    Raises a one-line :class:`aljax.spec.SpecError` (a ValueError) for a malformed spec, an unknown
    name (with a closest-match hint, also for names inside a combinator), an unknown setting, or an
    out-of-tree name that does not import.
    """
    return _resolve(specs.parse(name))


@functools.cache
def _resolve(spec: specs.Spec) -> Strategy | StatefulStrategy:
    if spec.name in COMBINATORS:
        args = tuple(_resolve(a) if isinstance(a, specs.Spec) else a for a in spec.args)
        return specs.build(COMBINATORS, specs.Spec(spec.name, (), spec.kwargs), "combinator", *args)
    if ":" not in spec.name and spec.name not in STRATEGIES:
        raise specs.SpecError(specs.unknown("strategy", spec.name, [*STRATEGIES, *COMBINATORS]))
    strategy = specs.lookup(STRATEGIES, spec.name, "strategy")
    is_stateful = isinstance(strategy, StatefulStrategy)
    score = strategy.score if is_stateful else strategy
    if not callable(score):
        raise specs.SpecError(f"strategy {spec.name!r} is not a function score(key, ctx) nor a StatefulStrategy")
    if ":" in spec.name:
        check_signature(spec.name, strategy)
    if spec.args:
        raise specs.SpecError(f"strategy {spec.name!r} takes settings as KEY=VALUE, got {str(spec)!r}")
    if not spec.kwargs:
        return strategy
    accepted = specs.settings_of(score)
    for key, _ in spec.kwargs:
        if key not in accepted:
            listed = ", ".join(f"{k}={v}" for k, v in accepted.items()) or "none"
            raise specs.SpecError(f"strategy {spec.name!r} has no setting {key!r} (settings: {listed})")
    specs.check_settings(score, "strategy", spec.name, dict(spec.kwargs))
    configured = functools.partial(score, **dict(spec.kwargs))
    if is_stateful:
        return declare.strategy(StatefulStrategy(init=strategy.init, score=configured), **traits(strategy))
    return declare.strategy(functools.update_wrapper(configured, score), **traits(strategy))

def check_signature(name: str, strategy: Strategy | StatefulStrategy) -> None:
    """Raise a one-line :class:`aljax.spec.SpecError` unless the out-of-tree ``strategy`` takes the
    arguments the loop passes: ``score(key, ctx)``, or for a :class:`StatefulStrategy` ``init(ctx)`` and
    ``score(key, ctx, state)`` (settings after them as keyword-only arguments with defaults)."""
    stateful_form = isinstance(strategy, StatefulStrategy)
    parts = [("init", strategy.init, 1), ("score", strategy.score, 3)] if stateful_form else [("score", strategy, 2)]
    for part, fn, n_args in parts:
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: nothing to check
            continue
        try:
            signature.bind(*range(n_args))
        except TypeError:
            wanted = {1: "init(ctx)", 2: "score(key, ctx)", 3: "score(key, ctx, state)"}[n_args]
            takes = f"its {part} takes" if stateful_form else "takes"
            raise specs.SpecError(f"strategy {name!r} {takes} {signature}, so it cannot be called as {wanted}; "
                                  "a strategy is score(key, ctx) -> (N,) scores (settings keyword-only) or a "
                                  "StatefulStrategy") from None


def out_of_tree(spec: specs.Spec) -> list[specs.Spec]:
    """The out-of-tree strategies (``package.module:function``) a spec names, combinators' included."""
    inner = [node for arg in spec.args if isinstance(arg, specs.Spec) for node in out_of_tree(arg)]
    return ([spec] if ":" in spec.name else []) + inner


def trial(name: str | specs.Spec, model: Model, x: jax.Array, y: jax.Array, query_size: int) -> None:
    """Call each out-of-tree strategy of the spec ``name`` once, eagerly, on a small context: rows x
    (n, *sample_shape) labeled y (n,), the first n // 4 labeled, under ``model``'s fresh params (a few
    rows, so this costs little next to a compilation). Raises a one-line :class:`aljax.spec.SpecError`
    if a call raises, or its scores are not a float array (n,), or a selectable row's score is NaN or
    +inf, or fewer than ``min(query_size, selectable rows)`` selectable rows have a finite score (−inf
    is "not a candidate"; a query must not fall back on pool order)."""
    nodes = out_of_tree(specs.parse(name))
    if not nodes:
        return
    n = x.shape[0]
    held = max(1, n // 4)
    take = min(query_size, n - held)
    params = model.init(jax.random.key(0), x.shape[1:])
    ctx = make_context(model, params, x, model.apply(params, x), jnp.arange(n) >= held, jnp.arange(held),
                       jnp.asarray(y[:held], jnp.int32), held, take)
    where = f"on a {n}-row trial pool"
    for node in nodes:
        pair = stateful(_resolve(node))
        try:
            out = pair.score(jax.random.key(1), ctx, pair.init(ctx))
            scores = out[0]
        except Exception as err:  # the user's code: any failure is reported in one line
            text = " ".join(f"{type(err).__name__}: {err}".split())[:300]
            raise specs.SpecError(f"strategy {node.name!r} failed {where} ({text})") from None
        shape, dtype = getattr(scores, "shape", None), getattr(scores, "dtype", None)
        if shape != (n,) or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            got = f"{type(scores).__name__} of shape {shape} and dtype {dtype}"
            raise specs.SpecError(f"strategy {node.name!r} returned {got} {where}; a strategy returns one float "
                                  f"score per pool row, shape ({n},)")
        chosen = np.asarray(scores)[held:]  # the selectable rows
        if np.isnan(chosen).any() or np.isposinf(chosen).any() or np.isfinite(chosen).sum() < take:
            raise specs.SpecError(f"strategy {node.name!r} scored selectable rows NaN or +inf, or fewer than {take} "
                                  f"of them finite, {where}; the query would then take rows in pool order")


def is_stochastic(name: str | specs.Spec) -> bool:
    """Whether the strategy a spec names draws from its key, as declared (:func:`traits`). Seeds of a
    deterministic strategy that start from the same labels acquire the same rows."""
    return traits(resolve(name))["stochastic"]
