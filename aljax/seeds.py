"""One way to run seeds: keys, chunks, one compilation, progress, checkpoints.

Seed ``i`` runs with the key ``fold_in(key(base_seed), i)``, whatever the number of seeds, so adding
seeds never changes the ones already run. Seeds run in chunks of a static size (a ``vmap`` over the
chunk): the last chunk is padded with the next seeds to keep one compiled shape, and the padded
results are dropped. All chunks share one compiled program::

    from aljax.seeds import run_seeds
    state, info = run_seeds(make_run(config), data, Hyper(), n_seeds=100, chunk_size=8, progress=True)

``run(data, hyper, key) -> (state, info)`` is any experiment (:func:`aljax.loop.make_run` builds one);
the runner does not care how it is built. A run marked ``over_seeds`` takes a chunk's keys (S,) at
once: :func:`aljax.schedules.make_seeds_run`, the continuous program, where a seed whose fit has stopped
goes on to its next round while the others fit, and a finished seed hands its lane to the next one.
:func:`make_program` builds the backend's default (:func:`plan`: the one place the defaults live). ``progress=True`` prints one line per finished chunk with an
ETA (or a bar on a terminal); to tick the bar per round too, build the run with the progress object's
hook: ``progress = Progress(config.rounds); run_seeds(make_run(config, progress.hook), ..., progress=progress)``.

The pool product is batched over a chunk's seeds, so float rounding depends on the chunk size: keep it
fixed within a comparison (a run and its resumption or extension use the same chunk size).
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from aljax.progress import Progress


def seed_keys(base_seed: int | jax.Array, seeds) -> jax.Array:
    """Typed keys of ``seeds`` (S,): ``fold_in(key(base_seed), i)`` (equal to ``split(key(base_seed), n)[i]``
    under JAX's default partitionable threefry). ``base_seed`` may be the typed key itself."""
    base = base_seed if isinstance(base_seed, jax.Array) else jax.random.key(base_seed)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base, jnp.asarray(seeds))


def n_chunks(n_seeds: int, chunk_size: int) -> int:
    return math.ceil(n_seeds / chunk_size)


def chunk_seeds(index: int, chunk_size: int) -> np.ndarray:
    """The seed indices chunk ``index`` computes (the last chunk of a run computes some it drops)."""
    return np.arange(index * chunk_size, (index + 1) * chunk_size)


def chunk_program(run: Callable, outputs: Callable | None = None) -> Callable:
    """``program(data, hyper, base_key, seeds (C,)) -> outputs(state, info)`` batched over the seeds, jitted.
    A ``run`` marked ``over_seeds`` (:func:`aljax.schedules.make_seeds_run`) takes the chunk's keys itself;
    any other is vmapped."""
    batched = run if getattr(run, "over_seeds", False) else jax.vmap(run, in_axes=(None, None, 0))

    def program(data, hyper, base_key, seeds):
        state, info = batched(data, hyper, seed_keys(base_key, seeds))
        return (state, info) if outputs is None else outputs(state, info)

    return jax.jit(program)


def compile_chunks(run: Callable, data, hyper, chunk_size: int, outputs: Callable | None = None):
    """The one compiled program of all chunks (``jax.stages.Compiled``); its ``memory_analysis()``
    tells the bytes a chunk needs before any runs (see :func:`memory_needed`)."""
    return chunk_program(run, outputs).lower(data, hyper, jax.random.key(0), np.arange(chunk_size)).compile()


def memory_needed(compiled, chunk_size: int) -> tuple[int, int] | None:
    """(bytes shared by all seeds (data), bytes per seed) of a compiled chunk program, or None when the
    backend gives no memory analysis. Temporaries and outputs grow linearly with the chunk (measured)."""
    try:
        m = compiled.memory_analysis()
        shared, per_chunk = int(m.argument_size_in_bytes), int(m.temp_size_in_bytes + m.output_size_in_bytes)
    except Exception:  # noqa: BLE001 - backends without the analysis raise various errors
        return None
    return shared, math.ceil(per_chunk / chunk_size)


def memory_available(device=None) -> int | None:
    """Bytes free for a program on ``device`` (default: the first): the accelerator's free memory, or on
    a CPU the host's available RAM; None if unknown."""
    device = jax.devices()[0] if device is None else device
    if device.platform != "cpu":
        try:
            stats = device.memory_stats()
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        except Exception:  # noqa: BLE001
            return None
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


SCHEDULES = ("continuous", "lockstep", "sequential")


class Plan(NamedTuple):
    """How seeds run on a backend: ``chunk_size`` seeds per compiled call (and per checkpoint), and the
    ``schedule`` of a chunk (:data:`SCHEDULES`): ``continuous`` through :func:`aljax.schedules.make_seeds_run`
    with ``lanes`` seeds stepped at a time; ``lockstep``, one ``vmap`` of :func:`aljax.loop.make_run`;
    ``sequential``, :func:`aljax.schedules.make_sequential` (the chunk's seeds one after another, in the same program)."""

    chunk_size: int
    schedule: str
    lanes: int


# The one place the defaults live (`aljax run --help` shows the rule). On a CPU, measured on a shared
# 2-core machine (experiments/bench.py, seeds rows): 4 lanes ran fastest per seed, a lane's 400-row
# label buffer staying in cache; chunks of 64 seeds leave few epochs to the last seeds' tail and give
# a checkpoint every few minutes. On accelerators, wide lanes fill the device (not measured here: no
# GPU was available).
PLANS = {"cpu": Plan(64, "continuous", 4), "gpu": Plan(256, "continuous", 256), "tpu": Plan(256, "continuous", 256)}
# Convolutional models on a CPU: XLA:CPU runs convolutions whose kernels differ per seed (a vmap over
# seeds) slower than the same seeds one after another (experiments/bench_deep.py, 4 seeds: 1.1-1.3x
# for cnn_gal2017, 1.9-2.5x for a small one; training and MC scoring), so their seeds run in sequence.
CPU_CONVOLUTIONAL = Plan(8, "sequential", 1)


def plan(backend: str | None = None, convolutional: bool = False) -> Plan:
    """The default :class:`Plan` of ``backend`` (default: ``jax.default_backend()``) for a model that
    does (``convolutional``, its declared trait: :class:`aljax.models.Model`) or does not convolve."""
    backend = backend or jax.default_backend()
    if convolutional and backend == "cpu":
        return CPU_CONVOLUTIONAL
    return PLANS.get(backend, PLANS["gpu"])


def describe_plans() -> str:
    """The rule, in words, for help texts."""
    rules = [f"{b}: {p.chunk_size} ({p.schedule}" + (f", {p.lanes} lanes)" if p.schedule == "continuous" else ")")
             for b, p in PLANS.items()]
    return "; ".join(rules) + f"; convolutional models on a cpu: {CPU_CONVOLUTIONAL.chunk_size} (sequential)"


def make_program(config, on_round=None, schedule: str | None = None, lanes: int | None = None,
                 backend: str | None = None) -> Callable:
    """The seeds program of ``config`` for :func:`run_seeds` with ``schedule`` (:data:`SCHEDULES`;
    default: the backend's :func:`plan` for a model that does not convolve; for one that does, pass
    ``plan(backend, convolutional=True).schedule``). ``config`` may be a :class:`aljax.round.Round`
    (pieces replaced): every schedule drives the same round pieces (:mod:`aljax.schedules`)."""
    from aljax.schedules import make_run, make_seeds_run, make_sequential

    default = plan(backend)
    schedule = schedule or default.schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule == "continuous":
        return make_seeds_run(config, on_round, lanes=default.lanes if lanes is None else lanes)
    return (make_sequential if schedule == "sequential" else make_run)(config, on_round)


SAFETY = 0.8  # use at most this fraction of the free memory


def fitting_chunk(compiled, chunk_size: int, device=None) -> int | None:
    """None if a chunk of ``chunk_size`` seeds fits in memory, else the largest chunk that does (0: none)."""
    need, free = memory_needed(compiled, chunk_size), memory_available(device)
    if need is None or free is None:
        return None
    shared, per_seed = need
    if shared + per_seed * chunk_size <= SAFETY * free:
        return None
    return max(int((SAFETY * free - shared) // max(per_seed, 1)), 0)


def run_seeds(run: Callable, data, hyper, n_seeds: int, *, seed: int = 0, chunk_size: int | None = None,
              outputs: Callable | None = None, progress: bool | Progress = False, skip: Iterable[int] = (),
              on_chunk: Callable | None = None, compiled=None):
    """Run seeds ``0..n_seeds-1`` of ``run(data, hyper, key) -> (state, info)`` in chunks.

    seed: the base seed (seed i's key is ``fold_in(key(seed), i)``); chunk_size: seeds per compiled
    call (default: all at once); outputs: ``(state, info) -> pytree`` computed inside the program (to
    bring back only what is needed); progress: True for a bar on a terminal or one line per chunk
    otherwise, or a :class:`Progress`; skip: chunk indices already done (not run); on_chunk:
    ``on_chunk(index, seeds, result, seconds)`` after each chunk (a checkpoint hook; ``result`` holds
    only the kept seeds); compiled: a program from :func:`compile_chunks` (compiled here otherwise).

    Returns the results of the chunks run, concatenated over seeds (leading axis), or None if none ran.
    """
    chunk_size = n_seeds if chunk_size is None else min(chunk_size, n_seeds)
    if n_seeds < 1 or chunk_size < 1:
        raise ValueError(f"need n_seeds >= 1 and chunk_size >= 1, got {n_seeds} and {chunk_size}")
    if not isinstance(progress, Progress):
        progress = Progress(quiet=not progress)
    if compiled is None:
        compiled = compile_chunks(run, data, hyper, chunk_size, outputs)
    skip = set(skip)
    pending = [c for c in range(n_chunks(n_seeds, chunk_size)) if c not in skip]
    base_key, parts = jax.random.key(seed), []
    progress.begin(len(pending))
    try:
        for position, c in enumerate(pending):
            seeds = chunk_seeds(c, chunk_size)
            kept = int((seeds < n_seeds).sum())
            progress.start_chunk(position, int(seeds[0]), int(seeds[kept - 1]))
            t = time.perf_counter()
            result = jax.block_until_ready(compiled(data, hyper, base_key, seeds))
            seconds = time.perf_counter() - t
            result = jax.tree.map(lambda a: a[:kept], result) if kept < chunk_size else result
            progress.end_chunk()
            if on_chunk is not None:
                on_chunk(c, seeds[:kept], result, seconds)
            parts.append(result)
    finally:
        progress.close()
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else jax.tree.map(lambda *a: jnp.concatenate(a), *parts)
