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
from typing import Callable

import jax

from aljax import declare
from aljax import spec as specs
from aljax.strategies import combinators
from aljax.strategies import bayesian
from aljax.strategies.base import StatefulStrategy, Strategy, per_sample
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
    if spec.args:
        raise specs.SpecError(f"strategy {spec.name!r} takes settings as KEY=VALUE, got {str(spec)!r}")
    if not spec.kwargs:
        return strategy
    accepted = specs.settings_of(score)
    for key, _ in spec.kwargs:
        if key not in accepted:
            listed = ", ".join(f"{k}={v}" for k, v in accepted.items()) or "none"
            raise specs.SpecError(f"strategy {spec.name!r} has no setting {key!r} (settings: {listed})")
    configured = functools.partial(score, **dict(spec.kwargs))
    if is_stateful:
        return declare.strategy(StatefulStrategy(init=strategy.init, score=configured), **traits(strategy))
    return declare.strategy(functools.update_wrapper(configured, score), **traits(strategy))


def is_stochastic(name: str | specs.Spec) -> bool:
    """Whether the strategy a spec names draws from its key, as declared (:func:`traits`). Seeds of a
    deterministic strategy that start from the same labels acquire the same rows."""
    return traits(resolve(name))["stochastic"]
