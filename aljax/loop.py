"""The active-learning loop as one compiled program.

``make_run(config)`` returns ``run(data, hyper, key) -> (state, info)``: initial labels, a fit, then
``config.rounds`` rounds of score -> select -> label -> fit under ``lax.scan``. ``info`` is a
:class:`RoundInfo` whose arrays have a leading axis of ``rounds + 1`` (the initial fit, then each
round). Seeds are a vmap axis::

    run = jax.jit(jax.vmap(make_run(config), in_axes=(None, None, 0)))
    state, info = run(data, Hyper(), jax.random.split(jax.random.key(0), 64))

``make_rounds(config)`` continues an existing state (the article's auto-labeling phases start
from the active-learning state, optimiser moments included), growing its label buffer as needed.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from aljax.data import Data
from aljax.fit import Fitter, Hyper, make_fitter, mean_weights, n_correct
from aljax.models import Model, Params, flatten, make_model
from aljax.optim import check_optimizer, make_optimizer
from aljax.spec import unknown
from aljax.stopping import cohen_kappa
from aljax.strategies import (Context, StatefulStrategy, Strategy, kmeans_representatives, make_context, resolve, select,
                              stateful)

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
    ``strategy`` are specs (:mod:`aljax.spec`), names with settings such as ``"mlp(hidden=256)"``.
    ``capacity`` is the label buffer's length (default: every label this config will ever take).

    ``phases > 1`` splits the rounds into that many consecutive scans inside the same program and
    grows the buffer before each to the labels that phase will hold, so early fits multiply fewer
    padding rows (the article's 360 auto-labeling rounds run 2.5x faster with ``phases=9``). Fits
    then sum over shorter buffers, which may change float rounding; ``phases=1`` is the reference.
    """

    strategy: str = _setting("least_confidence", "query strategy, e.g. margin or subsample(margin,500) (`aljax list`)")
    n_initial: int = _setting(10, "initial labels")
    query_size: int = _setting(10, "labels per round")
    rounds: int = _setting(39, "query rounds")
    initial: str = _setting("first", f"initial labels: {' | '.join(INITIAL)} (pool order, a random set, "
                                     "k-means representatives, n_initial/n_classes random rows per class)")
    oracle: str = _setting("true", "true (reveal labels) or model (auto-label with the argmax)")
    model: str = _setting("softmax_regression", "model spec, e.g. mlp(hidden=256,dropout=0.5) (`aljax list`)")
    fitter: str = _setting("patience", "fitter spec: patience (full batch) or minibatch(batch_size=64,...)")
    optimizer: str = _setting("tf1_adam", "optimizer spec, e.g. adam or sgd(momentum=0.9); the learning rate "
                                          "is a separate setting")
    n_classes: int = _setting(10, "number of classes (default: from the dataset)")
    capacity: int | None = _setting(None, "label buffer length (default: the budget)")
    phases: int = _setting(1, "grow the label buffer in this many phases (faster early fits)")

    def __post_init__(self):
        for name, value, valid in (("initial", self.initial, INITIAL), ("oracle", self.oracle, ORACLES)):
            if value not in valid:
                raise ValueError(unknown(name, value, valid))
        for name in ("n_initial", "query_size", "n_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.initial == "balanced" and self.n_initial % self.n_classes:
            raise ValueError(f"initial='balanced' takes n_initial / n_classes rows per class: n_initial "
                             f"({self.n_initial}) must be a multiple of n_classes ({self.n_classes})")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if not 1 <= self.phases <= max(self.rounds, 1):
            raise ValueError(f"phases must be between 1 and the number of rounds ({self.rounds}), got {self.phases}")
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


class Components(NamedTuple):
    """What a :class:`Config` builds, once: the model, the fitter, the optimiser as a function of the
    (traced) learning rate, and the strategy."""

    model: Model
    fitter: Fitter
    optimizer: Callable[[jax.Array], optax.GradientTransformation]
    strategy: Strategy | StatefulStrategy


@functools.cache
def components(config: Config) -> Components:
    """The model, fitter, optimiser and strategy that ``config`` names (cached per config)."""
    check_optimizer(config.optimizer)  # now, not at trace time
    return Components(
        model=make_model(config.model, config.n_classes),
        fitter=make_fitter(config.fitter),
        optimizer=functools.partial(make_optimizer, config.optimizer),
        strategy=resolve(config.strategy),
    )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class State:
    """The immutable experiment state (arrays only).

    labeled (N,) bool; order (L,) int32: pool indices in acquisition order (rows >= n_labeled are 0);
    targets (L,) int32: the label each acquired row was given (true or auto); n_labeled () int32;
    key: the strategies' key stream; fit_key: the fitters' (minibatches, dropout, re-initialisation),
    a separate stream so that a stochastic fitter does not shift the strategies' draws;
    strategy_state: a :class:`~aljax.strategies.StatefulStrategy`'s state (a pytree of arrays), ``()``
    for a plain strategy.
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


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RoundInfo:
    """Per-fit metrics (scalars; stacked over rounds by the scan).

    n_labeled; eval_correct (early-stopping set); test_accuracy (reporting set); steps (optimiser
    steps of this fit); wrong_labels (acquired targets that differ from the truth); for stopping
    criteria (:mod:`aljax.stopping`): min_confidence (lowest max softmax over the unlabeled rows)
    and agreement (Cohen's κ of the pool predictions of this fit and of the params it started from).
    """

    n_labeled: jax.Array
    eval_correct: jax.Array
    test_accuracy: jax.Array
    steps: jax.Array
    wrong_labels: jax.Array
    min_confidence: jax.Array
    agreement: jax.Array


def grow(state: State, capacity: int) -> State:
    """The same state with its label buffer padded to ``capacity`` rows (for a longer next phase)."""
    pad = capacity - state.order.shape[-1]
    if pad < 0:
        raise ValueError(f"cannot shrink the label buffer from {state.order.shape[-1]} to {capacity}")
    widths = [(0, 0)] * (state.order.ndim - 1) + [(0, pad)]
    return dataclasses.replace(state, order=jnp.pad(state.order, widths), targets=jnp.pad(state.targets, widths))


def fit_round(parts: Components, data: Data, hyper: Hyper, state: State,
              before: jax.Array) -> tuple[State, RoundInfo, jax.Array]:
    """Fit on the labeled buffer (gathered through ``order``) and report the round's metrics.

    ``before`` (N, C): the pool logits under ``state.params`` (the fit's start). Returns the new
    state, the round's info and the pool logits (N, C) under the fitted params: the one pool pass
    of a round, reused by the next round's strategy.
    """
    model = parts.model
    mask = jnp.arange(state.order.shape[0]) < state.n_labeled
    fit_key, k_fit = jax.random.split(state.fit_key)
    result = parts.fitter(model, parts.optimizer(hyper.learning_rate), state.params, state.opt_state, k_fit,
                          data.pool.x[state.order], state.targets, mean_weights(mask), data.eval, hyper)
    logits = model.apply(result.params, data.pool.x)
    confidence = jnp.max(jax.nn.softmax(logits), axis=-1)
    state = dataclasses.replace(state, params=result.params, opt_state=result.opt_state, fit_key=fit_key)
    info = RoundInfo(
        n_labeled=state.n_labeled,
        eval_correct=result.correct,
        test_accuracy=n_correct(model.apply, result.params, data.test) / data.test.y.shape[0],
        steps=result.steps,
        wrong_labels=jnp.sum(mask & (state.targets != data.pool.y[state.order]), dtype=jnp.int32),
        min_confidence=jnp.min(jnp.where(data.pool.valid & ~state.labeled, confidence, 1.0)),
        agreement=cohen_kappa(jnp.argmax(before, axis=-1), jnp.argmax(logits, axis=-1), data.pool.valid,
                              logits.shape[-1]),
    )
    return state, info, logits


def acquire(state: State, idx: jax.Array, targets: jax.Array) -> State:
    """Append pool rows ``idx`` (k,) with labels ``targets`` (k,) to the labeled buffer."""
    return dataclasses.replace(
        state,
        labeled=state.labeled.at[idx].set(True),
        order=jax.lax.dynamic_update_slice(state.order, idx.astype(jnp.int32), (state.n_labeled,)),
        targets=jax.lax.dynamic_update_slice(state.targets, targets.astype(jnp.int32), (state.n_labeled,)),
        n_labeled=state.n_labeled + idx.shape[0],
    )


def context(parts: Components, data: Data, state: State, logits: jax.Array, query_size: int) -> Context:
    """The strategy's view of ``state``: :func:`aljax.strategies.make_context` on the pool."""
    return make_context(parts.model, state.params, data.pool.x, logits, data.pool.valid & ~state.labeled,
                        state.order, state.targets, state.n_labeled, query_size)


def init_state(config: Config, data: Data, hyper: Hyper, key: jax.Array) -> State:
    """Initial params, optimiser state and the ``n_initial`` first labels (not yet fitted)."""
    parts = components(config)
    fit_key = jax.random.fold_in(key, 1)
    key, k_init, k_first = jax.random.split(key, 3)
    length = config.buffer if config.phases == 1 else config.n_initial  # phases grow it as they go
    params = parts.model.init(k_init, data.pool.x.shape[1:])
    n_pool = data.pool.size
    if config.initial == "first":
        first = jnp.arange(config.n_initial)
    elif config.initial == "random":
        first = select(jax.random.uniform(k_first, (n_pool,)), data.pool.valid, config.n_initial)
    elif config.initial == "balanced":  # the same random draw ranks every class: per-class top n/C
        u, per = jax.random.uniform(k_first, (n_pool,)), config.n_initial // config.n_classes
        first = jax.vmap(lambda c: select(u, data.pool.valid & (data.pool.y == c), per))(jnp.arange(config.n_classes))
        first = first.reshape(-1)
    else:
        first = kmeans_representatives(k_first, flatten(data.pool.x), data.pool.valid, config.n_initial)
    state = State(
        params=params,
        opt_state=parts.optimizer(hyper.learning_rate).init(params),
        labeled=jnp.zeros((n_pool,), bool),
        order=jnp.zeros((length,), jnp.int32),
        targets=jnp.zeros((length,), jnp.int32),
        n_labeled=jnp.int32(0),
        key=key,
        fit_key=fit_key,
    )
    return acquire(state, first, data.pool.y[first])


def same_layout(a, b) -> bool:
    """Whether pytrees ``a`` and ``b`` have the same structure, shapes and dtypes (static)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        jnp.shape(x) == jnp.shape(y) and jnp.result_type(x) == jnp.result_type(y) for x, y in zip(leaves_a, leaves_b))


def make_rounds(config: Config, on_round=None, start: int | None = None):
    """``rounds(data, hyper, state, logits=None) -> (state, info)``: ``config.rounds`` query rounds
    from ``state``. ``logits`` (N, C), the pool logits under ``state.params``, are computed if not
    given; each round then takes one pass over the pool, after its fit, whose logits serve the round's
    metrics and the next round's strategy.

    The label buffer is grown (:func:`grow`), phase by phase, to hold ``start`` labels plus those the
    rounds add. ``start`` (static) is the number of labels the state holds; by default its buffer
    length: a state that ``make_run`` or ``make_rounds`` returned is full, so pass it as it is.

    A stateful strategy continues from ``state.strategy_state`` when it has the layout of the
    strategy's own state (``init``), and starts from ``init`` otherwise.

    ``on_round(i)``, if given, is called on the host (``jax.debug.callback``) as round ``i`` starts
    (``i`` rounds done): a progress hook. ``i`` does not depend on the seed, so under vmap it is
    called once per round, not once per seed.
    """
    parts = components(config)
    strategy = stateful(parts.strategy)

    def al_round(data: Data, hyper: Hyper, state: State, logits: jax.Array) -> tuple[State, RoundInfo, jax.Array]:
        key, k_score = jax.random.split(state.key)
        ctx = context(parts, data, state, logits, config.query_size)
        scores, strategy_state = strategy.score(k_score, ctx, state.strategy_state)
        idx = select(scores, ctx.selectable, config.query_size)
        if config.oracle == "true":
            targets = data.pool.y[idx]
        else:
            targets = jnp.argmax(logits[idx], axis=-1)
        state = acquire(dataclasses.replace(state, key=key, strategy_state=strategy_state), idx, targets)
        return fit_round(parts, data, hyper, state, logits)

    def step(data: Data, hyper: Hyper, carry: tuple[State, jax.Array], i: jax.Array):
        if on_round is not None:
            jax.debug.callback(on_round, i)
        state, info, logits = al_round(data, hyper, *carry)
        return (state, logits), info

    def rounds(data: Data, hyper: Hyper, state: State, logits: jax.Array | None = None) -> tuple[State, RoundInfo]:
        if logits is None:
            logits = parts.model.apply(state.params, data.pool.x)
        held = state.order.shape[-1] if start is None else start
        fresh = strategy.init(context(parts, data, state, logits, config.query_size))
        if not same_layout(fresh, state.strategy_state):  # a new run, or another strategy's state
            state = dataclasses.replace(state, strategy_state=fresh)
        edges, infos = config.phase_edges(), []
        for lo, hi in zip(edges[:-1], edges[1:]):
            state = grow(state, max(state.order.shape[-1], held + hi * config.query_size))
            (state, logits), info = jax.lax.scan(lambda c, i: step(data, hyper, c, i), (state, logits),
                                                 jnp.arange(lo, hi))
            infos.append(info)
        return state, jax.tree.map(lambda *parts: jnp.concatenate(parts), *infos)

    return rounds


def make_run(config: Config, on_round=None):
    """``run(data, hyper, key) -> (state, info)``: the whole experiment, info stacked over rounds + 1.

    The config is unpacked once (:func:`components`); ``on_round``: optional host progress hook, see
    :func:`make_rounds`.
    """
    parts = components(config)
    rounds = make_rounds(config, on_round, start=config.n_initial)

    def run(data: Data, hyper: Hyper, key: jax.Array) -> tuple[State, RoundInfo]:
        state = init_state(config, data, hyper, key)
        state, first, logits = fit_round(parts, data, hyper, state, parts.model.apply(state.params, data.pool.x))
        state, infos = rounds(data, hyper, state, logits)
        info = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, infos)
        return state, info

    return run
