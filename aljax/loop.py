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
from aljax.fit import FitCarry, Fitter, FitResult, Hyper, make_fitter, mean_weights, n_correct
from aljax.models import Model, Params, chunked, flatten, make_model
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
    fitter: str = _setting("patience", "fitter spec: patience (full batch, eval mode: a model's dropout stays off) "
                                       "or minibatch(batch_size=64,...) (train mode: dropout on)")
    optimizer: str = _setting("tf1_adam", "optimizer spec, e.g. adam or sgd(momentum=0.9); the learning rate "
                                          "is a separate setting")
    n_classes: int = _setting(10, "number of classes (default: from the dataset)")
    capacity: int | None = _setting(None, "label buffer length (default: the budget)")
    phases: int = _setting(1, "grow the label buffer in this many phases (faster early fits)")
    forward_rows: int | None = _setting(None, "rows per eval-mode forward pass over the pool and the evaluation "
                                              "sets (bounds a deep model's memory); default: all at once")

    def __post_init__(self):
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
    model = make_model(config.model, config.n_classes)
    return Components(
        model=model if config.forward_rows is None else chunked(model, config.forward_rows),
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
    """Per-fit metrics (scalars; stacked over rounds by the scan).

    n_labeled; eval_correct (early-stopping set); test_accuracy (reporting set); steps (optimiser
    steps of this fit); wrong_labels (acquired targets that differ from the truth); for stopping
    criteria (:mod:`aljax.stopping`): min_confidence (lowest max softmax over the unlabeled rows)
    and agreement (Cohen's κ of the pool predictions of this fit and of the params it started from);
    nonfinite_picks: rows this round's query took whose score was NaN or ±inf, so that ``select`` took
    them in pool order, not by the strategy (0 in a sound run; ``aljax run`` refuses any other).
    """

    n_labeled: jax.Array
    eval_correct: jax.Array
    test_accuracy: jax.Array
    steps: jax.Array
    wrong_labels: jax.Array
    min_confidence: jax.Array
    agreement: jax.Array
    nonfinite_picks: jax.Array


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
    state, the round's info and the pool logits (N, C) under the fitted params: the one pass over the
    pool of a round, reused by the next round's strategy.
    """
    fit_key, k_fit = jax.random.split(state.fit_key)
    result = parts.fitter(parts.model, parts.optimizer(hyper.learning_rate), state.params, state.opt_state, k_fit,
                          data.pool.x[state.order], state.targets, state.weights, data.eval, hyper)
    return finish_round(parts, data, dataclasses.replace(state, fit_key=fit_key), result, before)


def finish_round(parts: Components, data: Data, state: State, result: FitResult,
                 before: jax.Array) -> tuple[State, RoundInfo, jax.Array]:
    """The state after a fit's ``result``, the round's info and the pool logits under the fitted params."""
    model = parts.model
    mask = state.in_buffer
    logits = model.apply(result.params, data.pool.x)
    confidence = jnp.max(jax.nn.softmax(logits), axis=-1)
    state = dataclasses.replace(state, params=result.params, opt_state=result.opt_state)
    info = RoundInfo(
        n_labeled=state.n_labeled,
        eval_correct=result.correct,
        test_accuracy=n_correct(model.apply, result.params, data.test) / data.test.y.shape[0],
        steps=result.steps,
        wrong_labels=jnp.sum(mask & (state.targets != data.pool.y[state.order]), dtype=jnp.int32),
        min_confidence=jnp.min(jnp.where(data.pool.valid & ~state.labeled, confidence, 1.0)),
        agreement=cohen_kappa(jnp.argmax(before, axis=-1), jnp.argmax(logits, axis=-1), data.pool.valid,
                              logits.shape[-1]),
        nonfinite_picks=state.nonfinite_picks,
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


def query(config: Config, strategy: StatefulStrategy, data: Data, state: State, logits: jax.Array) -> State:
    """One acquisition: score the pool (``logits`` under ``state.params``), select ``query_size`` rows
    and label them (true labels, or the model's argmax)."""
    key, k_score = jax.random.split(state.key)
    ctx = context(components(config), data, state, logits, config.query_size)
    scores, strategy_state = strategy.score(k_score, ctx, state.strategy_state)
    idx = select(scores, ctx.selectable, config.query_size)
    targets = data.pool.y[idx] if config.oracle == "true" else jnp.argmax(logits[idx], axis=-1)
    nonfinite = jnp.sum(~jnp.isfinite(scores[idx]), dtype=jnp.int32)
    return acquire(dataclasses.replace(state, key=key, strategy_state=strategy_state, nonfinite_picks=nonfinite),
                   idx, targets)


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
        return fit_round(parts, data, hyper, query(config, strategy, data, state, logits), logits)

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


class _Lanes(NamedTuple):
    """The seeds a continuous program is running, one per lane (leading axis: lanes).

    seed: the seed each lane runs (S, the number of seeds, when idle); state: its state, whose
    ``fit_key`` is already split for the running fit; fit: the running fit; x: its label buffer's
    rows; logits: the pool logits under ``state.params`` (the fit's start); round: fits it finished."""

    seed: jax.Array
    state: State
    fit: FitCarry
    x: jax.Array
    logits: jax.Array
    round: jax.Array


class _Loop(NamedTuple):
    lanes: _Lanes
    states: State  # (S, ...): initial states of seeds not started, final states of seeds done
    info: RoundInfo  # (S, rounds + 1)
    next: jax.Array  # the next seed to start
    epochs: jax.Array  # loop iterations (each runs one fitter epoch on every lane)


def _where(mask: jax.Array, new, old):
    """``new`` where ``mask`` (leading axis), else ``old``, leaf by leaf."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


def _put(buffers, index: jax.Array, values):
    """``buffers[index] = values`` leaf by leaf; out-of-range indices are dropped."""
    return jax.tree.map(lambda b, v: b.at[index].set(v, mode="drop"), buffers, values)


def _take(buffers, index: jax.Array):
    return jax.tree.map(lambda b: b[jnp.minimum(index, b.shape[0] - 1)], buffers)


def make_seeds_run(config: Config, on_round=None, lanes: int = 8, batch: int | None = None, stats: bool = False):
    """``run(data, hyper, keys (S,)) -> (state, info)``: the experiment of :func:`make_run` for S
    seeds, each seed's results equal to ``make_run``'s up to the float rounding of batched products,
    with a leading seed axis. Seeds never wait for one another (continuous batching).

    One ``lax.while_loop`` steps ``lanes`` seeds at a time, written over a leading lanes axis: every
    iteration, each lane whose fit is running takes one fitter epoch (``patience``: one step and one
    evaluation); lanes whose fit has stopped are then finished, ``batch`` at a time inside a loop that
    runs only while some lane is ready (a scalar condition, so the pool-sized work of a round — the
    pool logits, the metrics, the strategy, the next fit's start — is done only for those lanes): the
    round's info is written, and the seed goes on to its next round (its query computed only if some
    finishing seed goes on in the phase) while the others keep fitting. A
    seed that has done its rounds hands its lane to the next seed not yet started; lanes idle only
    when no seed is left. ``S`` is static (the keys' length); ``lanes`` is capped at S.

    ``phases > 1`` runs that loop once per phase (:meth:`Config.phase_edges`), every seed through the
    phase's rounds on a label buffer that holds the labels of the phase's last round (:func:`grow`
    between phases), as :func:`make_rounds` does: early fits multiply fewer rows, and seeds wait for
    each other only at the phase ends.

    ``stats=True`` also returns the loop's iterations (fitter epochs executed per lane, all phases),
    from which the fraction of epochs spent on idle or waiting lanes follows. ``on_round(i)``: a
    progress hook called as the mean seed starts round ``i``.
    """
    parts = components(config)
    fitter, model, strategy = parts.fitter, parts.model, stateful(parts.strategy)
    if not isinstance(fitter, Fitter):
        raise ValueError(f"fitter {config.fitter!r} has no epoch pieces (aljax.fit.Fitter); use make_run")
    rounds = config.rounds

    def run(data: Data, hyper: Hyper, keys: jax.Array):
        n_seeds = keys.shape[0]
        width = min(lanes, n_seeds)
        slots = max(1, min(width, batch if batch is not None else -(-width // 4)))
        optimizer = parts.optimizer(hyper.learning_rate)

        def begin(state: State):  # one seed: split its fit key, gather the buffer, start the fit
            fit_key, k_fit = jax.random.split(state.fit_key)
            x = data.pool.x[state.order]
            fit = fitter.start(model, optimizer, state.params, state.opt_state, k_fit, x, state.targets,
                               state.weights, data.eval, hyper)
            return dataclasses.replace(state, fit_key=fit_key), fit, x

        def finish(state: State, fit: FitCarry, before: jax.Array, r: jax.Array):  # one seed's round ends
            state, info, logits = finish_round(parts, data, state, fitter.result(fit), before)
            fresh = strategy.init(context(parts, data, state, logits, config.query_size))
            return dataclasses.replace(state, strategy_state=_where(r == 0, fresh, state.strategy_state)), info, logits

        def query_all(states: State, logits: jax.Array) -> State:  # (lanes, ...) each seed's next query
            return jax.vmap(lambda st, lg: query(config, strategy, data, st, lg))(states, logits)

        def pool_logits(params):
            return jax.vmap(lambda p: model.apply(p, data.pool.x))(params)

        def phase(states: State, info: RoundInfo, first_round: int, last_round: int):
            """Every seed's fits first_round..last_round (static) on the buffer length of ``states``
            (S, ...), which hold each seed's state after its previous fit (before its query; the first
            phase: the initial labels); returns them after the last, the info so far and the loop's
            iterations. The query after a phase's last fit is the next phase's, on its longer buffer."""

            def arrive(seeds: State) -> tuple[State, jax.Array]:  # seeds (lanes, ...) ready to begin
                logits = pool_logits(seeds.params)
                if first_round > 0:
                    seeds = query_all(seeds, logits)
                return seeds, logits

            first, logits = arrive(jax.tree.map(lambda a: a[:width], states))
            state, fit, x = jax.vmap(begin)(first)
            lanes0 = _Lanes(jnp.arange(width, dtype=jnp.int32), state, fit, x, logits,
                            jnp.full((width,), first_round, jnp.int32))

            def ready(lanes: _Lanes) -> jax.Array:
                return (lanes.seed < n_seeds) & ~jax.vmap(lambda f: fitter.running(f, hyper))(lanes.fit)

            def finish_some(loop: _Loop) -> _Loop:  # up to `slots` ready lanes finish their round
                lanes = loop.lanes
                idx = jnp.nonzero(ready(lanes), size=slots, fill_value=width)[0]
                valid = idx < width
                mine = _take(lanes, idx)
                state, round_info, logits = jax.vmap(finish)(mine.state, mine.fit, mine.logits, mine.round)
                seed = jnp.where(valid, mine.seed, n_seeds)
                info = jax.tree.map(lambda buf, v: buf.at[seed, mine.round].set(v, mode="drop"), loop.info, round_info)
                more = mine.round < last_round
                done = valid & ~more
                # The next query only if a seed goes on in this phase (a phase's last query is the next's).
                queried = jax.lax.cond(jnp.any(valid & more), query_all, lambda st, _: st, state, logits)
                states = _put(loop.states, jnp.where(done, seed, n_seeds), state)
                # A lane whose seed is done starts the next seed not yet started (if any).
                new = loop.next + jnp.cumsum(done) - 1
                new = jnp.where(done & (new < n_seeds), new, n_seeds)
                fresh = _take(states, new)
                fresh, fresh_logits = jax.lax.cond(jnp.any(new < n_seeds), lambda: arrive(fresh),
                                                   lambda: (fresh, jnp.zeros_like(logits)))
                state, fit, x = jax.vmap(begin)(_where(more, queried, fresh))
                lane = _Lanes(jnp.where(more, seed, new), state, fit, x, _where(more, logits, fresh_logits),
                              jnp.where(more, mine.round + 1, first_round))
                lanes = _put(lanes, jnp.where(valid, idx, width), lane)
                if on_round is not None:
                    done_rounds = jnp.sum(info.n_labeled > 0) - n_seeds  # fits finished past the initial ones
                    jax.debug.callback(on_round, done_rounds // n_seeds)
                return loop._replace(lanes=lanes, states=states, info=info, next=loop.next + jnp.sum(done))

            def body(loop: _Loop) -> _Loop:
                loop = jax.lax.while_loop(lambda l: jnp.any(ready(l.lanes)), finish_some, loop)
                lanes = loop.lanes
                fitting = (lanes.seed < n_seeds) & jax.vmap(lambda f: fitter.running(f, hyper))(lanes.fit)
                stepped = jax.vmap(lambda f, x, s: fitter.epoch(model, optimizer, f, x, s.targets, s.weights,
                                                                data.eval, hyper))(lanes.fit, lanes.x, lanes.state)
                lanes = lanes._replace(fit=_where(fitting, stepped, lanes.fit))
                return loop._replace(lanes=lanes, epochs=loop.epochs + 1)

            loop = _Loop(lanes0, states, info, jnp.int32(width), jnp.int32(0))
            loop = jax.lax.while_loop(lambda l: jnp.any(l.lanes.seed < n_seeds), body, loop)
            return loop.states, loop.info, loop.epochs

        # Every seed's initial state (its strategy state zeros of the right layout until its first fit).
        states = jax.vmap(lambda k: init_state(config, data, hyper, k))(keys)
        one = jax.tree.map(lambda a: a[0], states)
        layout = jax.eval_shape(lambda: strategy.init(
            context(parts, data, one, model.apply(one.params, data.pool.x), config.query_size)))
        states = dataclasses.replace(states, strategy_state=jax.tree.map(
            lambda s: jnp.zeros((n_seeds, *s.shape), s.dtype), layout))

        def round_info(states: State) -> RoundInfo:  # (only its layout is used)
            first = jax.tree.map(lambda a: a[:width], states)
            state, fit, _ = jax.vmap(begin)(first)
            return jax.vmap(finish)(state, fit, pool_logits(first.params), jnp.zeros((width,), jnp.int32))[1]

        info_layout = jax.eval_shape(lambda s: round_info(grow(s, max(s.order.shape[-1], config.budget))), states)
        info = jax.tree.map(lambda s: jnp.zeros((n_seeds, rounds + 1), s.dtype), info_layout)
        epochs = jnp.int32(0)
        edges = config.phase_edges()
        for lo, hi in zip(edges[:-1], edges[1:]):  # fits lo+1..hi (the first phase: 0..hi too)
            states = grow(states, max(states.order.shape[-1], config.n_initial + hi * config.query_size))
            states, info, iterations = phase(states, info, 0 if lo == 0 else lo + 1, hi)
            epochs = epochs + iterations
        return (states, info, epochs) if stats else (states, info)

    run.over_seeds = True  # the seeds runner calls it on a chunk's keys, without vmap
    return run
