"""The round's data, apart from the round's code (:mod:`aljax.round`), so that the metric plug-ins
(:mod:`aljax.round_metrics`) can name it without importing the round that calls them.

:class:`State`, the immutable experiment state of one seed; :class:`RoundInfo`, one fit's metrics
(:func:`columns` flattens it into ``metrics.csv``'s columns); :class:`RoundContext`, where a round
is, passed down to fitters, learning-rate schedules and metrics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from aljax.fit import mean_weights
from aljax.models import Params


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class State:
    """The immutable experiment state (arrays only).

    labeled (N,) bool; order (L,) int32: pool indices in acquisition order (rows >= n_labeled are 0);
    targets (L,) int32: the label each acquired row was given (true or auto); n_labeled () int32;
    key: the strategies' key stream; fit_key: the fitters' (minibatches, dropout, re-initialisation),
    a separate stream so that a stochastic fitter does not shift the strategies' draws;
    strategy_state: a :class:`~aljax.strategies.StatefulStrategy`'s state (a pytree of arrays), ``()``
    for a plain strategy; nonfinite_picks () int32: rows the last query took whose score was not finite.
    """

    params: Params
    opt_state: optax.OptState
    labeled: jax.Array
    order: jax.Array
    targets: jax.Array
    n_labeled: jax.Array
    key: jax.Array
    fit_key: jax.Array
    strategy_state: Any = ()
    nonfinite_picks: jax.Array = dataclasses.field(default_factory=lambda: jnp.int32(0))

    @property
    def in_buffer(self) -> jax.Array:
        """(L,) bool: which rows of the label buffer hold labels (the first ``n_labeled``)."""
        return jnp.arange(self.order.shape[-1]) < self.n_labeled

    @property
    def weights(self) -> jax.Array:
        """(L,) float32: the fit's weights, the labeled rows' mean (:func:`aljax.fit.mean_weights`)."""
        return mean_weights(self.in_buffer)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RoundInfo:
    """Per-fit metrics (scalars; stacked over rounds by the schedules).

    n_labeled; eval_correct (early-stopping set); test_accuracy (reporting set); steps (optimiser
    steps of this fit); wrong_labels (acquired targets that differ from the truth); for stopping
    criteria (:mod:`aljax.stopping`): min_confidence (lowest max softmax over the unlabeled rows)
    and agreement (Cohen's κ of the pool predictions of this fit and of the params it started from);
    nonfinite_picks: rows this round's query took whose score was NaN or ±inf, so that ``select`` took
    them in pool order, not by the strategy (0 in a sound run; ``aljax run`` refuses any other);
    extra: the metric plug-ins' named scalars (``Config.metrics``, :mod:`aljax.round_metrics`).
    A new built-in field is one line here and one in :func:`finish`.
    """

    n_labeled: jax.Array
    eval_correct: jax.Array
    test_accuracy: jax.Array
    steps: jax.Array
    wrong_labels: jax.Array
    min_confidence: jax.Array
    agreement: jax.Array
    nonfinite_picks: jax.Array
    extra: dict[str, jax.Array] = dataclasses.field(default_factory=dict)


BUILTIN = tuple(f.name for f in dataclasses.fields(RoundInfo) if f.name != "extra")


def columns(info: RoundInfo) -> dict[str, jax.Array]:
    """``info`` as flat named columns: the built-in fields, then the plug-ins' (``metrics.csv``)."""
    return {name: getattr(info, name) for name in BUILTIN} | info.extra


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RoundContext:
    """Where a round is (optax's extra-args pattern): round () int32, 0 for the fit on the initial
    labels, r for the fit after the r-th query; n_labeled () int32, the labels the round's fit holds;
    n_new () int32, the labels the round's acquisition added (the initial labels in round 0); budget
    (static int), the labels held after the last round."""

    round: jax.Array
    n_labeled: jax.Array
    n_new: jax.Array
    budget: int = dataclasses.field(metadata={"static": True})
