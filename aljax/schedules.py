"""Schedules: when the round's pieces (:mod:`aljax.round`) run, and for which seed.

Every schedule takes a :class:`~aljax.config.Config` or a :class:`~aljax.round.Round` (pieces
possibly replaced) and drives the same pieces, so all give each seed the same acquisitions:

* :func:`make_run`: one seed, ``run(data, hyper, key) -> (state, info)``; seeds in lockstep are a
  ``jax.vmap`` of it (a chunk's fits then wait for its slowest seed);
* :func:`make_rounds`: more rounds from an existing state (the article's auto-labeling phases);
* :func:`make_sequential`: a chunk's seeds one after another (``lax.map`` of :func:`make_run`);
* :func:`make_seeds_run`: continuous lanes, ``run(data, hyper, keys (S,))``: a seed whose fit has
  stopped goes on to its next round while the others fit, a finished seed hands its lane on.

``info`` is a :class:`~aljax.round.RoundInfo` stacked over the ``rounds + 1`` fits (leading seed axis
for the many-seed schedules). ``on_round(i)``, if given, is called on the host as round ``i`` starts
(``i`` rounds done): a progress hook, once per round whatever the number of seeds.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from aljax.config import Config
from aljax.data import Data
from aljax.fit import FitCarry, Hyper
from aljax.round import Round, RoundInfo, State, fit, grow, make_round, round_context, same_layout


def as_round(what: Config | Round) -> Round:
    """``what`` as a :class:`Round` (a Config's default pieces)."""
    return what if isinstance(what, Round) else make_round(what)


# ----------------------------------------------------------------------------- one seed (lockstep under vmap)


def _rounds_step(rnd: Round, data: Data, hyper: Hyper, on_round, carry: tuple[State, jax.Array], i: jax.Array):
    """One scan step: round ``i + 1``'s query, then its fit (``i``: rounds done)."""
    if on_round is not None:
        jax.debug.callback(on_round, i)
    state, logits = carry
    state = rnd.query(data, state, logits, i + 1)
    state, info, logits = fit(rnd, data, hyper, state, logits, round_context(rnd.config, state, i + 1))
    return (state, logits), info


def make_rounds(what: Config | Round, on_round=None, start: int | None = None):
    """``rounds(data, hyper, state, logits=None) -> (state, info)``: ``config.rounds`` query rounds
    from ``state``. ``logits`` (N, C), the pool logits under ``state.params``, are computed if not
    given; each round then takes one pass over the pool, after its fit, whose logits serve the round's
    metrics and the next round's strategy.

    The label buffer is grown (:func:`aljax.round.grow`), phase by phase, to hold ``start`` labels
    plus those the rounds add. ``start`` (static) is the number of labels the state holds; by default
    its buffer length: a state that ``make_run`` or ``make_rounds`` returned is full, so pass it as it is.

    A stateful strategy continues from ``state.strategy_state`` when it has the layout of the
    strategy's own state (``init``), and starts from ``init`` otherwise.
    """
    rnd = as_round(what)
    config = rnd.config

    def rounds(data: Data, hyper: Hyper, state: State, logits: jax.Array | None = None) -> tuple[State, RoundInfo]:
        if logits is None:
            logits = rnd.pool_logits(data, state.params)
        held = state.order.shape[-1] if start is None else start
        fresh = rnd.fresh_strategy(data, state, logits, 1)
        if not same_layout(fresh, state.strategy_state):  # a new run, or another strategy's state
            state = dataclasses.replace(state, strategy_state=fresh)
        edges, infos = config.phase_edges(), []
        step = functools.partial(_rounds_step, rnd, data, hyper, on_round)
        for lo, hi in zip(edges[:-1], edges[1:]):
            state = grow(state, max(state.order.shape[-1], held + hi * config.query_size))
            (state, logits), info = jax.lax.scan(step, (state, logits), jnp.arange(lo, hi))
            infos.append(info)
        return state, jax.tree.map(lambda *parts: jnp.concatenate(parts), *infos)

    return rounds


def make_run(what: Config | Round, on_round=None):
    """``run(data, hyper, key) -> (state, info)``: one seed's whole experiment (init, the fit on the
    initial labels, then :func:`make_rounds`), info stacked over rounds + 1. Lockstep seeds:
    ``jax.jit(jax.vmap(make_run(config), in_axes=(None, None, 0)))``."""
    rnd = as_round(what)
    rounds = make_rounds(rnd, on_round, start=rnd.config.n_initial)

    def run(data: Data, hyper: Hyper, key: jax.Array) -> tuple[State, RoundInfo]:
        state = rnd.init(data, hyper, key)
        before = rnd.pool_logits(data, state.params)
        state, first, logits = fit(rnd, data, hyper, state, before, round_context(rnd.config, state, 0))
        state, infos = rounds(data, hyper, state, logits)
        return state, jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, infos)

    return run


def make_sequential(what: Config | Round, on_round=None):
    """``run(data, hyper, keys (S,)) -> (state, info)``: the seeds one after another in one program
    (a ``lax.map`` of :func:`make_run`); marked ``over_seeds`` for :func:`aljax.seeds.run_seeds`."""
    run = make_run(what, on_round)

    def one_after_another(data: Data, hyper: Hyper, keys: jax.Array):
        return jax.lax.map(lambda key: run(data, hyper, key), keys)

    one_after_another.over_seeds = True
    return one_after_another


# ----------------------------------------------------------------------------- continuous lanes


class Lanes(NamedTuple):
    """The seeds a continuous phase is running, one per lane (leading axis: lanes).

    seed: the seed each lane runs (S, the number of seeds, when idle); state: its state, whose
    ``fit_key`` is already split for the running fit; fit: the running fit; x: its label buffer's
    rows; logits: the pool logits under ``state.params`` (the fit's start); round: the fit's round."""

    seed: jax.Array
    state: State
    fit: FitCarry
    x: jax.Array
    logits: jax.Array
    round: jax.Array


class Loop(NamedTuple):
    lanes: Lanes
    states: State  # (S, ...): initial states of seeds not started, final states of seeds done
    info: RoundInfo  # (S, rounds + 1)
    next: jax.Array  # the next seed to start
    epochs: jax.Array  # loop iterations (each runs one fitter epoch on every lane)


class Phase(NamedTuple):
    """What a continuous phase is (static except data and hyper): every seed's fits ``first..last``
    (round indices) through ``width`` lanes, up to ``slots`` of them finishing a round at once."""

    rnd: Round
    data: Data
    hyper: Hyper
    n_seeds: int
    width: int
    slots: int
    first: int
    last: int
    on_round: Callable | None


def _where(mask: jax.Array, new, old):
    """``new`` where ``mask`` (leading axis), else ``old``, leaf by leaf."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


def _put(buffers, index: jax.Array, values):
    """``buffers[index] = values`` leaf by leaf; out-of-range indices are dropped."""
    return jax.tree.map(lambda b, v: b.at[index].set(v, mode="drop"), buffers, values)


def _take(buffers, index: jax.Array):
    """``buffers[index]`` leaf by leaf, out-of-range indices clamped (their rows are masked later)."""
    return jax.tree.map(lambda b: b[jnp.minimum(index, b.shape[0] - 1)], buffers)


def _begin(p: Phase, state: State, r: jax.Array) -> tuple[State, FitCarry, jax.Array]:
    """One seed starts round ``r``'s fit (its query already made)."""
    return p.rnd.begin(p.data, p.hyper, state, round_context(p.rnd.config, state, r))


def _end(p: Phase, state: State, carry: FitCarry, before: jax.Array, r: jax.Array):
    """One seed's round ``r`` ends (:func:`aljax.round.finish`); after round 0 its strategy state
    starts from ``init``, as :func:`make_rounds` starts it before its first query."""
    state, info, logits = p.rnd.finish(p.data, state, carry, before, round_context(p.rnd.config, state, r))
    fresh = p.rnd.fresh_strategy(p.data, state, logits, r + 1)
    return dataclasses.replace(state, strategy_state=_where(r == 0, fresh, state.strategy_state)), info, logits


def _query(p: Phase, states: State, logits: jax.Array, r: jax.Array) -> State:
    """Each lane's query of round ``r`` (lanes, ...)."""
    return jax.vmap(lambda st, lg, ri: p.rnd.query(p.data, st, lg, ri))(states, logits, r)


def _arrive(p: Phase, seeds: State) -> tuple[State, jax.Array]:
    """Seeds (lanes, ...) entering the phase: their pool logits, and (after the first phase) the
    query of the phase's first round; the query after a phase's last fit is the next phase's."""
    logits = jax.vmap(lambda params: p.rnd.pool_logits(p.data, params))(seeds.params)
    if p.first > 0:
        seeds = _query(p, seeds, logits, jnp.full(logits.shape[:1], p.first, jnp.int32))
    return seeds, logits


def _ready(p: Phase, lanes: Lanes) -> jax.Array:
    """(lanes,) bool: lanes running a seed whose fit has stopped."""
    return (lanes.seed < p.n_seeds) & ~jax.vmap(lambda c: p.rnd.running(p.hyper, c))(lanes.fit)


def start_lanes(p: Phase, states: State) -> Lanes:
    """The first ``width`` seeds of ``states`` (S, ...) arrive and begin the phase's first fit."""
    first, logits = _arrive(p, jax.tree.map(lambda a: a[:p.width], states))
    rounds = jnp.full((p.width,), p.first, jnp.int32)
    state, carry, x = jax.vmap(functools.partial(_begin, p))(first, rounds)
    return Lanes(jnp.arange(p.width, dtype=jnp.int32), state, carry, x, logits, rounds)


def _hand_over(p: Phase, loop: Loop, done: jax.Array, states: State, logits: jax.Array):
    """Lanes whose seed is ``done`` take the next seeds not yet started (if any): their seed index
    (S where none is left), their arrived states and pool logits."""
    new = loop.next + jnp.cumsum(done) - 1
    new = jnp.where(done & (new < p.n_seeds), new, p.n_seeds)
    fresh = _take(states, new)
    fresh, fresh_logits = jax.lax.cond(jnp.any(new < p.n_seeds), lambda: _arrive(p, fresh),
                                       lambda: (fresh, jnp.zeros_like(logits)))
    return new, fresh, fresh_logits


def finish_ready(p: Phase, loop: Loop) -> Loop:
    """Up to ``slots`` lanes whose fit has stopped end their round.

    Invariants: the round's info is written at (seed, round) exactly once; a seed with rounds left in
    the phase makes its next query (computed only if some such seed finishes now) and begins its next
    fit in the same lane; a seed done with the phase is stored in ``states`` and its lane begins the
    next seed not started; lanes that were not ready are untouched; ``next`` counts seeds started.
    """
    lanes = loop.lanes
    idx = jnp.nonzero(_ready(p, lanes), size=p.slots, fill_value=p.width)[0]
    valid = idx < p.width
    mine = _take(lanes, idx)
    state, round_info, logits = jax.vmap(functools.partial(_end, p))(mine.state, mine.fit, mine.logits, mine.round)
    seed = jnp.where(valid, mine.seed, p.n_seeds)
    info = jax.tree.map(lambda buf, v: buf.at[seed, mine.round].set(v, mode="drop"), loop.info, round_info)
    more = mine.round < p.last
    done = valid & ~more
    queried = jax.lax.cond(jnp.any(valid & more), functools.partial(_query, p), lambda st, *_: st,
                           state, logits, mine.round + 1)
    states = _put(loop.states, jnp.where(done, seed, p.n_seeds), state)
    new, fresh, fresh_logits = _hand_over(p, loop, done, states, logits)
    rounds = jnp.where(more, mine.round + 1, p.first)
    state, carry, x = jax.vmap(functools.partial(_begin, p))(_where(more, queried, fresh), rounds)
    lane = Lanes(jnp.where(more, seed, new), state, carry, x, _where(more, logits, fresh_logits), rounds)
    lanes = _put(lanes, jnp.where(valid, idx, p.width), lane)
    if p.on_round is not None:
        done_rounds = jnp.sum(info.n_labeled > 0) - p.n_seeds  # fits finished past the initial ones
        jax.debug.callback(p.on_round, done_rounds // p.n_seeds)
    return loop._replace(lanes=lanes, states=states, info=info, next=loop.next + jnp.sum(done))


def step_lanes(p: Phase, loop: Loop) -> Loop:
    """One loop iteration: every ready lane finishes (:func:`finish_ready`, repeated while some lane
    is ready, so no lane idles), then every lane still fitting takes one epoch."""
    loop = jax.lax.while_loop(lambda l: jnp.any(_ready(p, l.lanes)), functools.partial(finish_ready, p), loop)
    lanes = loop.lanes
    fitting = (lanes.seed < p.n_seeds) & jax.vmap(lambda c: p.rnd.running(p.hyper, c))(lanes.fit)
    stepped = jax.vmap(lambda st, c, x, r: p.rnd.epoch(p.data, p.hyper, st, c, x, round_context(p.rnd.config, st, r)))(
        lanes.state, lanes.fit, lanes.x, lanes.round)
    return loop._replace(lanes=lanes._replace(fit=_where(fitting, stepped, lanes.fit)), epochs=loop.epochs + 1)


def run_phase(p: Phase, states: State, info: RoundInfo) -> tuple[State, RoundInfo, jax.Array]:
    """Every seed's fits ``p.first..p.last`` on the buffer length of ``states`` (S, ...), which hold
    each seed's state after its previous fit (before its query; the first phase: the initial labels).
    Returns them after the last fit, the info so far and the loop's iterations. The loop ends when
    every lane is idle: every seed has done the phase."""
    loop = Loop(start_lanes(p, states), states, info, jnp.int32(p.width), jnp.int32(0))
    loop = jax.lax.while_loop(lambda l: jnp.any(l.lanes.seed < p.n_seeds), functools.partial(step_lanes, p), loop)
    return loop.states, loop.info, loop.epochs


def initial_states(rnd: Round, data: Data, hyper: Hyper, keys: jax.Array) -> State:
    """Every seed's initial state (S, ...), its strategy state zeros of the right layout until its
    first fit ends (:func:`_end`)."""
    states = jax.vmap(lambda k: rnd.init(data, hyper, k))(keys)
    one = jax.tree.map(lambda a: a[0], states)
    layout = jax.eval_shape(lambda: rnd.fresh_strategy(data, one, rnd.pool_logits(data, one.params), 1))
    return dataclasses.replace(states, strategy_state=jax.tree.map(
        lambda s: jnp.zeros((keys.shape[0], *s.shape), s.dtype), layout))


def empty_info(p: Phase, states: State) -> RoundInfo:
    """Zeros (S, rounds + 1) of the layout of a round's info (the metric plug-ins' included)."""

    def one_round(states: State) -> RoundInfo:
        first = jax.tree.map(lambda a: a[:p.width], grow(states, max(states.order.shape[-1], p.rnd.config.budget)))
        logits = jax.vmap(lambda params: p.rnd.pool_logits(p.data, params))(first.params)
        state, carry, _ = jax.vmap(functools.partial(_begin, p))(first, jnp.zeros((p.width,), jnp.int32))
        return jax.vmap(functools.partial(_end, p))(state, carry, logits, jnp.zeros((p.width,), jnp.int32))[1]

    layout = jax.eval_shape(one_round, states)
    return jax.tree.map(lambda s: jnp.zeros((p.n_seeds, p.rnd.config.rounds + 1), s.dtype), layout)


def make_seeds_run(what: Config | Round, on_round=None, lanes: int = 8, batch: int | None = None,
                   stats: bool = False):
    """``run(data, hyper, keys (S,)) -> (state, info)``: the experiment of :func:`make_run` for S
    seeds, each seed's results equal to ``make_run``'s up to the float rounding of batched products,
    with a leading seed axis. Seeds never wait for one another (continuous batching).

    One ``lax.while_loop`` (:func:`run_phase`) steps ``lanes`` seeds at a time: every iteration, each
    lane whose fit is running takes one fitter epoch; lanes whose fit has stopped are finished,
    ``batch`` at a time, by :func:`finish_ready`, inside a loop that runs only while some lane is ready
    (the pool-sized work of a round is done only for those lanes). A seed that has done its rounds
    hands its lane to the next seed not yet started; lanes idle only when no seed is left. ``S`` is
    static (the keys' length); ``lanes`` is capped at S.

    ``phases > 1`` runs that loop once per phase (:meth:`Config.phase_edges`), every seed through the
    phase's rounds on a label buffer that holds the labels of the phase's last round (:func:`grow`
    between phases), as :func:`make_rounds` does: seeds wait for each other only at the phase ends.

    ``stats=True`` also returns the loop's iterations (fitter epochs executed per lane, all phases).
    ``on_round(i)``: a progress hook called as the mean seed starts round ``i``.
    """
    rnd = as_round(what)
    config = rnd.config

    def run(data: Data, hyper: Hyper, keys: jax.Array):
        n_seeds = keys.shape[0]
        width = min(lanes, n_seeds)
        slots = max(1, min(width, batch if batch is not None else -(-width // 4)))
        states = initial_states(rnd, data, hyper, keys)
        phase = functools.partial(Phase, rnd, data, hyper, n_seeds, width, slots)
        info = empty_info(phase(0, 0, None), states)
        epochs, edges = jnp.int32(0), config.phase_edges()
        for lo, hi in zip(edges[:-1], edges[1:]):  # fits lo+1..hi (the first phase: 0..hi too)
            states = grow(states, max(states.order.shape[-1], config.n_initial + hi * config.query_size))
            states, info, iterations = run_phase(phase(0 if lo == 0 else lo + 1, hi, on_round), states, info)
            epochs = epochs + iterations
        return (states, info, epochs) if stats else (states, info)

    run.over_seeds = True  # the seeds runner calls it on a chunk's keys, without vmap
    return run
