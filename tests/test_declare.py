"""aljax.declare: what a component is declared as, and the traits it carries."""

import pytest

import aljax
from aljax import declare


def test_a_declared_strategy_carries_its_kind_and_traits():
    @aljax.declare.strategy(stochastic=True)
    def score(key, ctx):
        return ctx.logits[:, 0]

    found = declare.declaration(score)
    assert found.kind == "strategy"
    assert found.traits == {"batch_aware": False, "stochastic": True, "needs_samples": False}
    assert declare.is_declared(score, "strategy") and not declare.is_declared(score, "model")


def test_bare_decorator_and_undeclared_objects():
    @declare.metric
    def nll(state):
        return {"nll": 0.0}

    assert declare.is_declared(nll, "metric")
    assert declare.declaration(print) is None
    assert declare.declaration(lambda: 0) is None


def test_unknown_kinds_and_traits_are_refused():
    with pytest.raises(ValueError, match="unknown component kind"):
        declare.declare("widget")
    with pytest.raises(ValueError, match="has no trait 'dropout'"):
        declare.strategy(dropout=True)
    with pytest.raises(TypeError, match="must be True or False"):
        declare.model(dropout=1)
