"""The round's plug-ins: per-round metrics and the learning-rate schedule by round.

A **metric** is a pure function of the finished round, declared with ``@aljax.declare.metric``::

    @aljax.declare.metric
    def test_nll(view: RoundView) -> dict[str, jax.Array]:
        ...                                  # named scalars, shape ()

It receives a :class:`RoundView`: the model, the data, the state after the fit (``state.params`` are
the fitted params), the pool logits (N, C) under them and the :class:`aljax.round_state.RoundContext`.
Every name it returns becomes a field of ``RoundInfo.extra``, a column of ``metrics.csv`` and a
curve for ``aljax plot --metric NAME``, under every schedule. ``Config.metrics`` names metrics by spec:
a built-in of :data:`METRICS` (``"ece(bins=10)"``) or an out-of-tree ``"pkg.mod:fn"``; settings in
the spec go to the function as keywords.

A **learning-rate schedule** (``Config.lr_schedule``), declared with ``@aljax.declare.schedule``, maps
the round context to a multiplier of the (traced) learning rate of that round's fit::

    @aljax.declare.schedule
    def halve_every_ten(ctx: RoundContext):
        return 0.5 ** (ctx.round // 10)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Callable

import jax
import jax.numpy as jnp

from aljax import declare
from aljax import spec as specs
from aljax.fit import softmax_xent
from aljax.models import predictive
from aljax.round_state import RoundContext, State

if TYPE_CHECKING:
    from aljax.data import Data
    from aljax.models import Model


class MetricError(ValueError):
    """A metric returned something the round cannot record. One line; raised while tracing."""


@dataclasses.dataclass(frozen=True)
class RoundView:
    """What a metric reads after a round's fit (built inside the traced round; never stored).

    model: the :class:`~aljax.models.Model`; data: the :class:`~aljax.data.Data`; state: the
    :class:`~aljax.round_state.State` after the fit (fitted params, the label buffer with this round's
    acquisitions); logits (N, C): the pool under the fitted params; context: the round's
    :class:`~aljax.round_state.RoundContext`.
    """

    model: Model
    data: Data
    state: State
    logits: jax.Array
    context: RoundContext

    def test_logits(self) -> jax.Array:
        """Logits (T, C) of the reporting (test) split under the fitted params: the model's test-time
        predictive (:func:`aljax.models.predictive`: its ``predict``, else eval-mode ``apply``)."""
        return predictive(self.model)(self.state.params, self.data.test.x)

    def acquired(self) -> jax.Array:
        """(L,) bool over the label buffer: the rows this round's acquisition added (the initial
        labels in round 0)."""
        row = jnp.arange(self.state.order.shape[-1])
        held = self.context.n_labeled
        return (row < held) & (row >= held - self.context.n_new)


Metric = Callable[[RoundView], dict[str, jax.Array]]


@declare.metric
def test_nll(view: RoundView) -> dict[str, jax.Array]:
    """Mean negative log-likelihood (nats) of the test labels under the fitted model."""
    return {"test_nll": jnp.mean(softmax_xent(view.test_logits(), view.data.test.y))}


@declare.metric
def ece(view: RoundView, *, bins: int = 15) -> dict[str, jax.Array]:
    """Expected calibration error on the test split: Σ_b (n_b / n)·|accuracy_b − confidence_b| over
    ``bins`` equal-width bins of the max softmax probability."""
    probs = jax.nn.softmax(view.test_logits())
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(probs, axis=-1) == view.data.test.y).astype(jnp.float32)
    which = jax.nn.one_hot(jnp.clip(jnp.ceil(confidence * bins).astype(jnp.int32) - 1, 0, bins - 1), bins)  # (T, B)
    gap = jnp.abs(jnp.sum(which * (correct - confidence)[:, None], axis=0))  # |Σ_b (correct − confidence)|
    return {"ece": jnp.sum(gap) / confidence.shape[0]}


@declare.metric
def label_entropy(view: RoundView) -> dict[str, jax.Array]:
    """Entropy (nats) of the class histogram of the labels this round acquired (log C: balanced)."""
    n_classes = view.logits.shape[-1]
    counts = jnp.sum(jax.nn.one_hot(view.state.targets, n_classes) * view.acquired()[:, None], axis=0)
    p = counts / jnp.maximum(jnp.sum(counts), 1)
    return {"label_entropy": -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1)), 0.0))}


METRICS: dict[str, Metric] = {"test_nll": test_nll, "ece": ece, "label_entropy": label_entropy}


@declare.schedule
def step_decay(ctx: RoundContext, *, every: int = 10, factor: float = 0.5) -> jax.Array:
    """Multiply the learning rate by ``factor`` every ``every`` rounds: factor ** (round // every)."""
    return jnp.float32(factor) ** (ctx.round // every)


LR_SCHEDULES: dict[str, Callable] = {"step_decay": step_decay}


def split_specs(value: Any) -> tuple[str | Metric, ...]:
    """``Config.metrics`` as a tuple: None -> (); ``"a,b(k=1)"`` -> ("a", "b(k=1)"); a tuple or list of
    spec strings and metric functions as it is. One-line TypeError otherwise."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in specs._split_args(value.replace(" ", "")) if part.strip())
    if isinstance(value, (tuple, list)) and all(isinstance(v, str) or callable(v) for v in value):
        return tuple(value)
    raise TypeError(f"metrics must be a comma-separated string or a tuple of spec strings and metric functions, "
                    f"got {value!r}")


def _plugin(registry: dict[str, Callable], text: str, kind: str) -> Callable:
    """The function a spec names (a built-in, or an out-of-tree one declared as ``kind``), with the
    spec's settings bound as keywords; one-line SpecError otherwise."""
    fn = specs.lookup(registry, specs.parse(text).name, kind)
    if not declare.is_declared(fn, kind):
        raise specs.SpecError(f"{kind} {specs.parse(text).name!r} is not declared; decorate it with "
                              f"@aljax.declare.{kind}")
    spec = specs.check(registry, text, kind, None)
    return functools.partial(fn, *spec.args, **dict(spec.kwargs)) if spec.args or spec.kwargs else fn


@functools.cache
def make_metrics(names: tuple[str | Metric, ...]) -> tuple[tuple[str, Metric], ...]:
    """(name, metric function) of each entry of ``names``: a spec (one-line SpecError for an unknown
    name, an undeclared function or a bad setting) or a metric function itself (the Python API);
    a SpecError for an entry given twice."""
    if len(set(names)) < len(names):
        raise specs.SpecError(f"metrics {', '.join(map(str, names))}: a metric is named twice")
    return tuple((name, _plugin(METRICS, name, "metric")) if isinstance(name, str)
                 else (getattr(name, "__name__", repr(name)), name) for name in names)


@functools.cache
def make_lr_schedule(name: str | Callable) -> Callable:
    """The learning-rate multiplier function ``fn(ctx) -> ()`` a spec names (:data:`LR_SCHEDULES` or
    an out-of-tree ``pkg.mod:fn`` declared with ``@aljax.declare.schedule``), or the function itself."""
    return _plugin(LR_SCHEDULES, name, "schedule") if isinstance(name, str) else name


RESERVED = ("seed", "round", "order", "targets", "seconds")  # columns and chunk arrays that are not metrics


def record(view: RoundView, metrics: tuple[tuple[str, Metric], ...], builtin: tuple[str, ...]) -> dict[str, jax.Array]:
    """The named scalars of every metric on ``view``, checked: each a scalar, each name new (not a
    built-in field of ``builtin`` nor another metric's, nor a reserved column)."""
    out: dict[str, jax.Array] = {}
    for spec, metric in metrics:
        values = metric(view)
        if not isinstance(values, dict):
            raise MetricError(f"metric {spec!r} returned {type(values).__name__}; return a dict of named scalars")
        for name, value in values.items():
            if name in out or name in builtin or name in RESERVED or not str(name).isidentifier():
                raise MetricError(f"metric {spec!r}: column {name!r} is taken or not a name; rename it")
            if jnp.shape(value) != ():
                raise MetricError(f"metric {spec!r}: {name!r} has shape {jnp.shape(value)}; return scalars")
            out[name] = jnp.asarray(value)
    return out
