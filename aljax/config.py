"""The experiment's static settings (:class:`Config`) and what they build (:func:`components`).

A :class:`Config` is hashable: everything in it fixes a shape or a branch of the compiled program.
Its ``model``, ``strategy``, ``fitter`` and ``optimizer`` are specs (:mod:`aljax.spec`: names with
settings, ``"mlp(hidden=256)"``, or an out-of-tree ``"pkg.mod:fn"``) or the objects themselves (a
:class:`~aljax.models.Model`, a strategy function or :class:`~aljax.strategies.StatefulStrategy`, an
:class:`~aljax.fit.Fitter` or a fitter function, a function of the learning rate returning an optax
transformation). ``metrics`` and ``lr_schedule`` name the round's plug-ins (:mod:`aljax.round_metrics`,
:func:`aljax.round.make_lr_schedule`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Callable, NamedTuple

import jax
import optax

from aljax.fit import Fitter, FitCarry, FitResult, make_fitter
from aljax.models import Model, chunked, make_model
from aljax.optim import check_optimizer, make_optimizer
from aljax.round_metrics import Metric, make_lr_schedule, make_metrics, split_specs
from aljax.spec import unknown
from aljax.strategies import StatefulStrategy, Strategy, resolve

INITIAL = ("first", "random", "kmeans", "balanced")
ORACLES = ("true", "model")


def _setting(default, help: str):
    """A Config field whose help text the command line reads (``aljax run --help``)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Config:
    """Static, hashable experiment settings: everything that fixes a shape or a branch.

    n_initial labels are taken first (``initial='first'``: the first rows in pool order, the
    article's "label manually"; ``'random'``: a random subset; ``'kmeans'``: the row nearest each
    centroid of k-means with ``n_initial`` clusters, a cold start; ``'balanced'``: n_initial / n_classes
    random rows of each class, as Gal et al. 2017 and BatchBALD start), then ``rounds`` rounds each label
    ``query_size`` rows chosen by ``strategy``. ``oracle='true'`` reveals pool labels;
    ``'model'`` auto-labels with the model's argmax. ``model``, ``fitter``, ``optimizer`` and
    ``strategy`` are specs (:mod:`aljax.spec`), names with settings such as ``"mlp(hidden=256)"``, or
    the objects themselves (module docstring). ``capacity`` is the label buffer's length (default:
    every label this config will ever take). ``metrics``: metric plug-ins computed after every fit
    (a tuple of specs or metric functions, or one string ``"test_nll,ece"``); ``lr_schedule``: a
    function of the :class:`aljax.round.RoundContext` (or its spec) that multiplies the learning rate
    of each round's fit.

    ``phases > 1`` splits the rounds into that many consecutive scans inside the same program and
    grows the buffer before each to the labels that phase will hold, so early fits multiply fewer
    padding rows (the article's 360 auto-labeling rounds run 2.5x faster with ``phases=9``). Fits
    then sum over shorter buffers, which may change float rounding; ``phases=1`` is the reference.
    """

    strategy: str | Strategy | StatefulStrategy = _setting(
        "least_confidence", "query strategy, e.g. margin or subsample(margin,500) (`aljax list`)")
    n_initial: int = _setting(10, "initial labels")
    query_size: int = _setting(10, "labels per round")
    rounds: int = _setting(39, "query rounds")
    initial: str = _setting("first", f"initial labels: {' | '.join(INITIAL)} (pool order, a random set, "
                                     "k-means representatives, n_initial/n_classes random rows per class)")
    oracle: str = _setting("true", "true (reveal labels) or model (auto-label with the argmax)")
    model: str | Model = _setting("softmax_regression", "model spec, e.g. mlp(hidden=256,dropout=0.5) (`aljax list`)")
    fitter: str | Fitter | Callable = _setting("patience", "fitter spec: patience (full batch, eval mode: a model's "
                                                           "dropout stays off) or minibatch(batch_size=64,...) "
                                                           "(train mode: dropout on)")
    optimizer: str | Callable = _setting("tf1_adam", "optimizer spec, e.g. adam or sgd(momentum=0.9); the learning "
                                                     "rate is a separate setting")
    n_classes: int = _setting(10, "number of classes (default: from the dataset)")
    capacity: int | None = _setting(None, "label buffer length (default: the budget)")
    phases: int = _setting(1, "grow the label buffer in this many phases (faster early fits)")
    forward_rows: int | None = _setting(None, "rows per eval-mode forward pass over the pool and the evaluation "
                                              "sets (bounds a deep model's memory); default: all at once")
    metrics: tuple[str | Metric, ...] = _setting((), "per-round metric plug-ins, comma-separated: test_nll, ece, "
                                            "label_entropy or pkg.mod:fn (@aljax.declare.metric)")
    lr_schedule: str | Callable | None = _setting(None, "learning-rate multiplier by round: pkg.mod:fn "
                                             "(@aljax.declare.schedule, a function of the round context)")

    def __post_init__(self):
        object.__setattr__(self, "metrics", split_specs(self.metrics))  # "a,b" -> ("a", "b"): hashable
        for name, value, valid in (("initial", self.initial, INITIAL), ("oracle", self.oracle, ORACLES)):
            if value not in valid:
                raise ValueError(unknown(name, value, valid))
        if self.forward_rows is not None and self.forward_rows < 1:
            raise ValueError(f"forward_rows must be at least 1, got {self.forward_rows}")
        for name in ("n_initial", "query_size", "n_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.initial == "balanced" and self.n_initial % self.n_classes:
            raise ValueError(f"initial='balanced' takes n_initial / n_classes rows per class: n_initial "
                             f"({self.n_initial}) must be a multiple of n_classes ({self.n_classes})")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.capacity is not None and self.capacity < self.budget:
            raise ValueError(f"capacity ({self.capacity}) is below the budget ({self.budget} labels): the label "
                             "buffer must hold every label; raise capacity or leave it out")
        if not 1 <= self.phases <= max(self.rounds, 1):
            raise ValueError(f"phases must be between 1 and the number of rounds ({self.rounds}), got {self.phases}")
        check_objects(self)
        components(self)  # builds (and caches) model, fitter, optimiser and strategy: one-line errors

    @property
    def budget(self) -> int:
        """Labels held after the last round."""
        return self.n_initial + self.rounds * self.query_size

    @property
    def buffer(self) -> int:
        return self.budget if self.capacity is None else self.capacity

    def phase_edges(self) -> list[int]:
        """Round indices where phases start and end: [0, ..., rounds], split as evenly as possible."""
        return [round(i * self.rounds / self.phases) for i in range(self.phases + 1)]

    def check_pool(self, n_valid: int) -> None:
        """Raise a one-line ValueError if the pool cannot supply this config's labels."""
        if self.budget > n_valid:
            raise ValueError(
                f"budget of {self.budget} labels ({self.n_initial} initial + {self.rounds} rounds x "
                f"{self.query_size}) exceeds the pool of {n_valid}; lower rounds or query size"
            )


# field -> (what an object in it must be, a test); a string is always a spec
OBJECTS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "model": ("an aljax.models.Model", lambda v: isinstance(v, Model)),
    "strategy": ("a strategy function (key, ctx) -> scores or a StatefulStrategy",
                 lambda v: isinstance(v, StatefulStrategy) or callable(v)),
    "fitter": ("an aljax.fit.Fitter or a fitter function", callable),
    "optimizer": ("a function of the learning rate returning an optax transformation (e.g. optax.adam)",
                  lambda v: callable(v) and not isinstance(v, optax.GradientTransformation)),
}


def check_objects(config: Config) -> None:
    """One-line TypeError for a component field that is neither a spec string nor the right object,
    and for an object that cannot be hashed (a Config is a cache key)."""
    for name, (what, accepts) in OBJECTS.items():
        value = getattr(config, name)
        if not isinstance(value, str) and not accepts(value):
            raise TypeError(f"Config.{name} must be a spec string or {what}, got {type(value).__name__}")
        try:
            hash(value)
        except TypeError:
            raise TypeError(f"Config.{name}: a {type(value).__name__} cannot be hashed; pass a spec string or "
                            "a hashable object (a function, a frozen dataclass)") from None
    if not (config.lr_schedule is None or isinstance(config.lr_schedule, str) or callable(config.lr_schedule)):
        raise TypeError(f"Config.lr_schedule must be a spec string, a function of the round context or None, "
                        f"got {type(config.lr_schedule).__name__}")


class Components(NamedTuple):
    """What a :class:`Config` builds, once: the model, the fitter (always with epoch pieces), the
    optimiser as a function of the (traced) learning rate, the strategy, the metric plug-ins
    ((name, function) pairs) and the learning-rate schedule (None: constant)."""

    model: Model
    fitter: Fitter
    optimizer: Callable[[jax.Array], optax.GradientTransformation]
    strategy: Strategy | StatefulStrategy
    metrics: tuple[tuple[str, Metric], ...] = ()
    lr_schedule: Callable | None = None


class WholeFit(Fitter):
    """A fitter function ``fit(model, optimizer, params, opt_state, key, x, y, w, eval_split, hyper) ->
    FitResult`` (held in ``train_epoch``) as epoch pieces: ``start`` runs the whole fit (passing
    ``context=`` if the function takes it), then no epoch is due. Every schedule can then drive it
    (under the continuous one its fit simply takes no epochs)."""

    def start(self, model, optimizer, params, opt_state, key, x, y, w, eval_split, hyper, *, context=None) -> FitCarry:
        fit = self.train_epoch
        extra = {"context": context} if "context" in inspect.signature(fit).parameters else {}
        r: FitResult = fit(model, optimizer, params, opt_state, key, x, y, w, eval_split, hyper, **extra)
        return FitCarry(r.params, r.opt_state, r.params, r.correct, jax.numpy.int32(0), r.steps, jax.numpy.int32(0))

    def running(self, carry: FitCarry, hyper) -> jax.Array:
        return jax.numpy.bool_(False)

    def epoch(self, model, optimizer, carry: FitCarry, x, y, w, eval_split, hyper, *, context=None) -> FitCarry:
        return carry


def _fitter(fitter: str | Fitter | Callable) -> Fitter:
    built = make_fitter(fitter) if isinstance(fitter, str) else fitter
    return built if isinstance(built, Fitter) else WholeFit(built)


@functools.cache
def components(config: Config) -> Components:
    """The model, fitter, optimiser, strategy and plug-ins that ``config`` names (cached per config)."""
    if isinstance(config.optimizer, str):
        check_optimizer(config.optimizer)  # now, not at trace time
    model = config.model if isinstance(config.model, Model) else make_model(config.model, config.n_classes)
    return Components(
        model=model if config.forward_rows is None else chunked(model, config.forward_rows),
        fitter=_fitter(config.fitter),
        optimizer=(functools.partial(make_optimizer, config.optimizer) if isinstance(config.optimizer, str)
                   else config.optimizer),
        strategy=resolve(config.strategy) if isinstance(config.strategy, str) else config.strategy,
        metrics=make_metrics(config.metrics),
        lr_schedule=None if config.lr_schedule is None else make_lr_schedule(config.lr_schedule),
    )
