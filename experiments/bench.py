"""`make bench`: aljax against a plain NumPy reference, side by side in one run on this machine.

Writes results/bench/bench.json and prints a table. Every speed is reported as a ratio against a
reference measured in the same run (the machine may be shared and noisy):

* machine: matmul peak (GFLOP/s, jax) and memory bandwidth (GB/s, a large jax copy);
* (c) least-confidence AL 10 -> 400 on the 4000-pool and (d) the 360 auto-labeling rounds after it,
  aljax vs experiments/numpy_reference.py, with their accuracies (article: 359/400 and 362/400);
* seeds: (c) vmapped over S seeds (random initial labels), all at once or in groups, seconds per
  seed vs NumPy per seed, achieved GFLOP/s vs the matmul peak;
* pool scaling: one full round and scoring alone for pools of 4k, 60k (MNIST) and 1M (synthetic);
* compilations per experiment (jax's backend-compile events) and peak memory.

``--quick`` runs CI-sized versions (under a minute on an idle 2-core machine).
"""

from __future__ import annotations

import os

# The NumPy reference runs single-threaded BLAS: on this shared 2-core machine OpenBLAS's second
# thread makes it ~10x SLOWER (spin-waiting); export OPENBLAS_NUM_THREADS to override.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import resource
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import numpy_reference as ref  # noqa: E402
import provenance  # noqa: E402

from aljax.atomic import write_text  # noqa: E402
from aljax.data import Data, DataError, Pool, features, load_mnist, make_pool, make_split, seed_data  # noqa: E402
from aljax.loop import Config, Hyper, components, context, make_rounds, make_run, make_seeds_run  # noqa: E402
from aljax.store import read_toml  # noqa: E402
from aljax.strategies import select  # noqa: E402
from aljax.fit import mean_weights

D, C = 784, 10
AUTO = dict(strategy="most_confident", n_initial=1, query_size=10, oracle="model")

# ----------------------------------------------------------------------------- measuring


class Compiles:
    """Counts XLA backend compilations (jax.monitoring's compile event) inside a ``with`` block."""

    current: Compiles | None = None

    def __init__(self):
        self.count = 0

    @staticmethod
    def listen(event: str, _duration: float, **_) -> None:
        if Compiles.current is not None and event == "/jax/core/compile/backend_compile_duration":
            Compiles.current.count += 1

    def __enter__(self):
        Compiles.current = self
        return self

    def __exit__(self, *_):
        Compiles.current = None


jax.monitoring.register_event_duration_secs_listener(Compiles.listen)


def timed(fn, *args, repeat: int = 1):
    """(result, best seconds of ``repeat`` calls, compilations while compiling ``fn`` for ``args``,
    compilations during the calls (must be 0), compile seconds)."""
    with Compiles() as compiles:
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        compile_s = time.perf_counter() - start
    best = float("inf")
    with Compiles() as later:
        for _ in range(repeat):
            start = time.perf_counter()
            out = jax.block_until_ready(compiled(*args))
            best = min(best, time.perf_counter() - start)
    return out, best, compiles.count, later.count, compile_s


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def device_peak_gb() -> float | None:
    stats = jax.devices()[0].memory_stats()
    return None if not stats or "peak_bytes_in_use" not in stats else stats["peak_bytes_in_use"] / 2**30


def machine(quick: bool) -> dict:
    """Matmul peak (best of several n x n float32 jax products) and memory bandwidth: the best of a
    jax copy and a numpy copy into a preallocated buffer (bytes read + written per second)."""
    n = 1024 if quick else 2048
    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    _, sec, *_ = timed(jax.jit(lambda a: a @ a), a, repeat=5 if quick else 10)
    m = (64 if quick else 256) * 2**20 // 4
    x = jnp.ones((m,), jnp.float32)
    _, jax_copy, *_ = timed(jax.jit(lambda x: x + 1), x, repeat=5)
    src, dst = np.ones(m, np.float32), np.empty(m, np.float32)
    np_copy = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(dst, src)
        np_copy = min(np_copy, time.perf_counter() - start)
    return {
        "matmul_gflops": 2 * n**3 / sec / 1e9, "matmul_n": n, "copy_mb": 4 * m / 2**20,
        "jax_copy_gbs": 8 * m / jax_copy / 1e9, "numpy_copy_gbs": 8 * m / np_copy / 1e9,
        "bandwidth_gbs": 8 * m / min(jax_copy, np_copy) / 1e9,
    }


# ----------------------------------------------------------------------------- workloads


def cost(steps, rows, n_eval: int, n_pool: int) -> tuple[float, float]:
    """(FLOPs, bytes read) of fits that took ``steps`` (..., fits) optimiser steps on label buffers of
    ``rows`` (fits,) rows, each fit followed by one pass over an ``n_pool``-row pool. A step's forward
    and weight-gradient products read the buffer twice (4·rows·D·C FLOPs, 8·rows·D bytes), its
    evaluation product the n_eval-row split (2·n_eval·D·C, 4·n_eval·D); a pool pass 2·n_pool·D·C, 4·n_pool·D.
    """
    steps, rows = np.asarray(steps), np.asarray(rows)
    flops = np.sum(steps * (4 * rows * D * C + 2 * n_eval * D * C)) + steps.size * 2 * n_pool * D * C
    moved = np.sum(steps * (8 * rows * D + 4 * n_eval * D)) + steps.size * 4 * n_pool * D
    return float(flops), float(moved)


def buffer_rows(config: Config, start: int | None = None) -> np.ndarray:
    """Label-buffer rows of each fit (fits,): ``make_rounds`` continuing from ``start`` labels, or
    ``make_run`` (its initial fit, then the rounds) when ``start`` is None."""
    first = [] if start is not None else [config.buffer if config.phases == 1 else config.n_initial]
    start = config.n_initial if start is None else start
    edges = config.phase_edges()
    return np.array(first + [start + hi * config.query_size for lo, hi in zip(edges, edges[1:]) for _ in range(hi - lo)])


def fit_steps(data: Data, host: tuple, peak: float, bandwidth: float, quick: bool) -> list[dict]:
    """The ceiling of the workloads: fit steps alone (no rounds, no stopped seeds), timed per step.

    S seeds (vmapped when S > 1) on L-row label buffers drawn from the pool, ``max_steps`` steps with
    a patience that never runs out. FLOPs and bytes as in :func:`cost`, the evaluation split read once
    per step (one product for all S seeds).
    """
    x, y, ex, _ = host
    parts, steps = components(Config()), 50 if quick else 200
    model, fit, optimizer = parts.model, parts.fitter, parts.optimizer(Hyper().learning_rate)
    hyper = Hyper(patience=jnp.int32(2**30), max_steps=jnp.int32(steps))
    rng = np.random.default_rng(0)
    rows = []
    for s, n in ((1, 400), (4, 220)) if quick else ((1, 400), (1, 4000), (4, 220), (8, 220)):
        idx = np.stack([rng.permutation(len(x))[:n] for _ in range(s)])
        params = jax.vmap(lambda k: model.init(k, x.shape[1:]))(jax.random.split(jax.random.key(0), s))

        def one(params, bx, by):
            w = mean_weights(jnp.ones(by.shape, bool))
            return fit(model, optimizer, params, optimizer.init(params), jax.random.key(0), bx, by, w, data.eval, hyper)

        args = params, x[idx], y[idx].astype(np.int32)
        if s == 1:
            _, sec, *_ = timed(one, *jax.tree.map(lambda a: a[0], args), repeat=3)
        else:
            _, sec, *_ = timed(jax.vmap(one), *args, repeat=3)
        flops = cost(np.full(s, steps), n, len(ex), 0)[0]
        moved = cost(np.full(s, steps), n, 0, 0)[1] + cost(steps, 0, len(ex), 0)[1]
        rows.append({"seeds": s, "rows": n, "step_us": sec / steps * 1e6, "per_seed_step_us": sec / steps / s * 1e6,
                     "gflops": flops / sec / 1e9, "fraction_of_peak": flops / sec / 1e9 / peak,
                     "gbs": moved / sec / 1e9, "fraction_of_bandwidth": moved / sec / 1e9 / bandwidth})
    return rows


def article(data: Data, host: tuple, quick: bool) -> dict:
    """(c) and (d), single seed (the article's runs), aljax vs NumPy, times and accuracies."""
    x, y, ex, ey = host
    c_rounds, d_rounds = (9, 20) if quick else (39, 360)
    c_config = Config(rounds=c_rounds)
    run = jax.jit(make_run(c_config))
    (state, info), c_sec, c_comp, c_re, c_first = timed(run, data, Hyper(), jax.random.key(0), repeat=3)
    d_config = Config(rounds=d_rounds, phases=max(1, d_rounds // 40), **AUTO)  # as `make reproduce` runs it
    (_, dinfo), d_sec, d_comp, d_re, d_first = timed(jax.jit(make_rounds(d_config)), data, Hyper(), state, repeat=1)
    d_rows = buffer_rows(d_config, start=state.order.shape[-1])
    c_cost = cost(info.steps, buffer_rows(c_config), len(ey), len(x))
    d_cost = cost(dinfo.steps, d_rows, len(ey), len(x))

    start = time.perf_counter()
    np_state, np_c = ref.active(x, y, ex, ey, np.arange(10), c_rounds)
    np_c_sec = time.perf_counter() - start
    start = time.perf_counter()
    _, np_d = ref.active(x, y, ex, ey, None, d_rounds, oracle="model", strategy="most_confident", state=np_state)
    np_d_sec = time.perf_counter() - start
    return {
        "c": {
            "rounds": c_rounds, "aljax_s": c_sec, "numpy_s": np_c_sec, "speedup": np_c_sec / c_sec,
            "compile_s": c_first, "compilations": c_comp, "recompilations": c_re,
            "aljax_correct": int(info.eval_correct[-1]), "numpy_correct": np_c[-1],
            "same_curve": [int(v) for v in info.eval_correct] == np_c, "steps": int(info.steps.sum()),
            "gflops": c_cost[0] / c_sec / 1e9, "gbs": c_cost[1] / c_sec / 1e9,
        },
        "d": {
            "rounds": d_rounds, "aljax_s": d_sec, "numpy_s": np_d_sec, "speedup": np_d_sec / d_sec,
            "compile_s": d_first, "compilations": d_comp, "recompilations": d_re,
            "aljax_correct": int(dinfo.eval_correct[-1]), "numpy_correct": np_d[-1],
            # aljax fits on a fixed-shape buffer per phase; NumPy on the n labeled rows only.
            "phases": d_config.phases,
            "buffer_rows_over_labeled_rows": float(
                np.sum(np.asarray(dinfo.steps) * d_rows) / np.sum(np.asarray(dinfo.steps) * np.asarray(dinfo.n_labeled))
            ),
            "same_curve": [int(v) for v in dinfo.eval_correct] == np_d, "steps": int(dinfo.steps.sum()),
            "gflops": d_cost[0] / d_sec / 1e9, "gbs": d_cost[1] / d_sec / 1e9,
        },
    }


def seeds(data: Data, host: tuple, peak: float, quick: bool, sizes: tuple[int, ...] = (64, 256)) -> list[dict]:
    """(c) with random initial labels over S seeds vs NumPy per seed (same initial labels).

    Lockstep rows: seeds run vmapped in groups of ``group`` (``lax.map`` over groups: one program;
    S = group is a plain vmap; group 1 runs the seeds one after another, unbatched), as ``aljax run
    --schedule lockstep`` runs a chunk. A vmapped fit runs until its group's slowest seed stops, so
    large groups waste steps; float rounding in the batched pool product depends on the group size, so
    a few seeds' trajectories differ between group sizes. ``phases`` > 1 (as the study runs) fits on
    buffers that grow with the labels instead of the full 400 rows from the first round.

    Continuous rows (``make_seeds_run``, ``group`` = lanes): one program steps ``group`` seeds at a
    time, a seed whose fit stopped goes on to its next round, a finished seed hands its lane to the
    next; wasted = epochs run on lanes that were idle or waiting to finish their round.
    """
    x, y, ex, ey = host
    rounds = 9 if quick else 39
    lockstep = ((1, 1, 1), (8, 8, 1), (16, 4, 1), (16, 4, 3)) if quick else (
        (1, 1, 1), (8, 8, 1), *[(s, s, 1) for s in sizes], *[(s, 4, 1) for s in sizes], (max(sizes), 4, 8))
    continuous = ((16, 4, 1), (16, 4, 3)) if quick else (
        *[(s, lanes, 1) for s in sizes for lanes in (4, 8)], (max(sizes), 4, 8))
    rows = []
    for schedule, s, group, phases in [("lockstep", *v) for v in lockstep] + [("continuous", *v) for v in continuous]:
        config = Config(rounds=rounds, initial="random", phases=phases)
        keys = jax.random.split(jax.random.key(0), s)
        if schedule == "lockstep":
            run = make_run(config)
            grouped = functools.partial(jax.lax.map, batch_size=group if group > 1 else None)  # 1: no vmap
            (state, info), sec, comp, recomp, first = timed(
                lambda d, h, k: grouped(lambda key: run(d, h, key), k), data, Hyper(), keys, repeat=1)
            steps = np.asarray(info.steps)  # (S, rounds + 1)
            executed_steps = steps.reshape(s // group, group, -1).max(axis=1) * group
            ratio = executed_steps.sum() / steps.sum()
        else:
            (state, info, epochs), sec, comp, recomp, first = timed(
                make_seeds_run(config, lanes=group, stats=True), data, Hyper(), keys, repeat=1)
            steps = np.asarray(info.steps)
            ratio = int(epochs) * group / steps.sum()
        progress(f"seeds {schedule} {s} group {group} phases {phases}: {sec:.1f} s")
        fit_rows = buffer_rows(config)
        useful = cost(steps, fit_rows, len(ey), len(x))[0]
        executed = cost(steps * ratio, fit_rows, len(ey), len(x))[0]
        rows.append({
            "schedule": schedule, "seeds": s, "group": group, "phases": phases, "aljax_s": sec, "per_seed_s": sec / s,
            "compile_s": first, "compilations": comp, "recompilations": recomp,
            "useful_gflops": useful / sec / 1e9, "executed_gflops": executed / sec / 1e9,
            "fraction_of_peak": executed / sec / 1e9 / peak, "wasted_steps": float(1 - 1 / ratio),
            # the work NumPy does: every step on the labeled rows only, per seed
            "labeled_gflop_per_seed": cost(steps, np.asarray(info.n_labeled[0]), len(ey), len(x))[0] / s / 1e9,
            "mean_correct": float(info.eval_correct[:, -1].mean()),
        })
        if phases == 1 and schedule == "lockstep":
            compared = rows[-1], state, info
    # NumPy per seed: the same protocol from the same random initial labels, for two seeds of the
    # last lockstep run with phases=1 (the reference's buffer length).
    n_np, (compared_row, state, info) = 2, compared
    order = np.asarray(state.order)
    start = time.perf_counter()
    np_correct = [ref.active(x, y, ex, ey, order[i, :10], rounds)[1][-1] for i in range(n_np)]
    np_per_seed = (time.perf_counter() - start) / n_np
    for row in rows:
        row["numpy_per_seed_s"] = np_per_seed
        row["speedup_per_seed"] = np_per_seed / row["per_seed_s"]
    compared_row["numpy_correct_first_seeds"] = np_correct
    compared_row["aljax_correct_first_seeds"] = [int(v) for v in info.eval_correct[:n_np, -1]]
    return rows


def cli_runs(host: tuple, sizes: tuple[int, ...], quick: bool) -> list[dict]:
    """What a user gets: ``aljax run --protocol seed --initial random --seeds S`` (least confidence,
    10 -> 400 labels, the default chunk size and schedule), wall-clock seconds of the whole command
    (start-up, data, compilation, checkpoints) against NumPy per seed, timed just after it."""
    import subprocess
    import tempfile

    x, y, ex, ey = host
    budget = 100 if quick else 400
    rows = []
    # the defaults, then lockstep chunks of 4 (the fastest lockstep groups in the seeds rows) for comparison
    for s, flags in [(s, flags) for s in sizes for flags in ([], ["--schedule", "lockstep", "--chunk-size", "4"])]:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "aljax", "run", "--protocol", "seed", "--initial", "random",
                       "--strategy", "least_confidence", "--budget", str(budget), "--seeds", str(s), "--quiet",
                       "--out", out, *flags]
            start = time.perf_counter()
            subprocess.run(command, check=True, cwd=Path(__file__).parents[1])
            wall = time.perf_counter() - start
            settings = read_toml(Path(out) / "config.toml")
            timings = json.loads((Path(out) / "timings.json").read_text())
            orders = np.load(Path(out) / "orders.npz")["order"]
        start = time.perf_counter()
        for i in range(2):
            ref.active(x, y, ex, ey, orders[i, :10], (budget - 10) // 10)
        np_per_seed = (time.perf_counter() - start) / 2
        progress(f"aljax run --seeds {s} {' '.join(flags)}: {wall:.1f} s")
        compile_s = timings.get("compile_s")
        # the command as run (`python -m aljax` is `aljax`), its temporary --out folder named OUT
        shown = shlex.join(["aljax", *command[3:command.index("--out") + 1], "OUT", *flags])
        rows.append({"seeds": s, "command": shown, "wall_s": wall, "per_seed_s": wall / s,
                     "compile_s": compile_s[-1] if isinstance(compile_s, list) else compile_s,
                     "chunk_size": settings["chunk_size"], "schedule": settings.get("schedule"),
                     "numpy_per_seed_s": np_per_seed, "speedup_per_seed": np_per_seed * s / wall})
    return rows


@functools.partial(jax.jit, static_argnums=1)
def synthetic_features(key: jax.Array, n: int) -> jax.Array:
    """(n, D) uniform features filled in place in chunks of 100 000 rows (peak ~ one copy)."""
    chunk = 100_000

    def fill(i, x):
        rows = jax.random.uniform(jax.random.fold_in(key, i), (chunk, D), jnp.float32)
        return jax.lax.dynamic_update_slice(x, rows, (i * chunk, 0))

    return jax.lax.fori_loop(0, n // chunk, fill, jnp.zeros((n, D), jnp.float32))


def synthetic_data(n: int) -> Data:
    """A 1M-row-style pool without a host copy: uniform features, labels from a random linear teacher."""
    key_x, key_t, key_e = jax.random.split(jax.random.key(7), 3)
    x = synthetic_features(key_x, n)
    teacher = jax.random.normal(key_t, (D, C)) - 0.5
    y = jnp.argmax(x @ teacher, axis=1).astype(jnp.int32)
    ex = jax.random.uniform(key_e, (400, D), jnp.float32)
    split = make_split(np.asarray(ex), np.asarray(jnp.argmax(ex @ teacher, axis=1)))
    return Data(Pool(x, y, jnp.ones((n,), bool)), split, split)


def pool_scaling(raw, bandwidth: float, sizes: tuple[int, ...]) -> list[dict]:
    """One full round (fit + score + select + label) and scoring alone per pool size (> 60 000:
    synthetic)."""
    init = Config(n_initial=100, rounds=0)
    one_round = jax.jit(make_rounds(Config(n_initial=100, rounds=1)))
    parts = components(init)

    @jax.jit
    def score_select(data, state):
        ctx = context(parts, data, state, parts.model.apply(state.params, data.pool.x), 10)
        return select(parts.strategy(state.key, ctx), ctx.selectable, 10)

    rows = []
    for n in sizes:
        if n <= 60_000:
            test = make_split(features(raw.test_x[:400]), raw.test_y[:400])
            data = Data(make_pool(features(raw.train_x[:n]), raw.train_y[:n]), test, test)
        else:
            data = synthetic_data(n)
        state, _ = jax.jit(make_run(init))(data, Hyper(), jax.random.key(0))
        (_, info), round_s, round_comp, round_re, _ = timed(one_round, data, Hyper(), state, repeat=3)
        _, score_s, score_comp, score_re, _ = timed(score_select, data, state, repeat=3)
        x_host = np.asarray(data.pool.x).reshape(n, -1) if n <= 60_000 else None
        np_score_s = None
        if x_host is not None:
            w, b = np.asarray(state.params["W"]), np.asarray(state.params["b"])
            start = time.perf_counter()
            ref.top(-ref.softmax(x_host @ w.T + b).max(axis=1), ~np.asarray(state.labeled), 10)
            np_score_s = time.perf_counter() - start
        moved = n * D * 4 + n * (4 + 1)  # features read once, plus labels/mask
        rows.append({
            "pool": n, "round_s": round_s, "round_steps": int(info.steps[0]), "score_s": score_s,
            "score_gbs": moved / score_s / 1e9, "fraction_of_bandwidth": moved / score_s / 1e9 / bandwidth,
            "numpy_score_s": np_score_s, "compilations": [round_comp, score_comp], "recompilations": round_re + score_re,
            "peak_rss_gb": peak_rss_gb(), "device_peak_gb": device_peak_gb(),
        })
        del data, state, x_host
    return rows


# ----------------------------------------------------------------------------- report


def article_table(result: dict) -> list[str]:
    m, a = result["machine"], result["article"]
    lines = [
        f"machine: matmul peak {m['matmul_gflops']:.1f} GFLOP/s (n={m['matmul_n']}), memory bandwidth {m['bandwidth_gbs']:.1f} GB/s"
        f" (jax copy {m['jax_copy_gbs']:.1f}, numpy copy {m['numpy_copy_gbs']:.1f}); numpy BLAS threads {result['numpy_threads']}",
        "",
        f"{'workload':<26}{'aljax s':>9}{'numpy s':>9}{'speedup':>9}{'compile s':>10}{'#comp':>6}{'GFLOP/s':>9}{'GB/s':>6}  correct (aljax/numpy)",
    ]
    for name, label in (("c", "(c) AL 10->400"), ("d", "(d) auto rounds")):
        r = a[name]
        lines.append(
            f"{label + ' x' + str(r['rounds']):<26}{r['aljax_s']:>9.3f}{r['numpy_s']:>9.3f}{r['speedup']:>8.1f}x"
            f"{r['compile_s']:>10.1f}{r['compilations']:>6}{r['gflops']:>9.1f}{r['gbs']:>6.1f}  {r['aljax_correct']}/{r['numpy_correct']} same curve: {r['same_curve']}"
        )
    return lines


def fit_steps_table(result: dict) -> list[str]:
    lines = [f"{'fit steps: seeds':>16}{'rows':>6}{'us/step':>9}{'us/seed-step':>13}{'GFLOP/s':>9}{'% peak':>8}{'GB/s':>7}{'% bw':>7}"]
    for r in result["fit_steps"]:
        lines.append(
            f"{r['seeds']:>16}{r['rows']:>6}{r['step_us']:>9.0f}{r['per_seed_step_us']:>13.0f}{r['gflops']:>9.1f}"
            f"{100 * r['fraction_of_peak']:>7.1f}%{r['gbs']:>7.1f}{100 * r['fraction_of_bandwidth']:>6.0f}%"
        )
    return lines


def seeds_table(result: dict) -> list[str]:
    lines = [f"{'schedule':>11}{'seeds':>6}{'group':>6}{'phases':>7}{'s/seed':>10}{'numpy s/seed':>13}{'speedup':>9}{'GFLOP/s':>9}{'% peak':>8}{'wasted':>8}{'#comp':>6}"]
    for r in result["seeds"]:
        lines.append(
            f"{r.get('schedule', 'lockstep'):>11}{r['seeds']:>6}{r['group']:>6}{r['phases']:>7}{r['per_seed_s']:>10.4f}{r['numpy_per_seed_s']:>13.3f}{r['speedup_per_seed']:>8.1f}x"
            f"{r['executed_gflops']:>9.1f}{100 * r['fraction_of_peak']:>7.1f}%{100 * r['wasted_steps']:>7.1f}%{r['compilations']:>6}"
        )
    return lines


def cli_table(result: dict) -> list[str]:
    lines = [f"{'aljax run --seeds':>18}{'chunk':>6}{'schedule':>11}{'wall s':>8}{'compile s':>10}{'s/seed':>8}{'numpy s/seed':>13}{'speedup':>9}"]
    for r in result.get("cli", []):
        lines.append(f"{r['seeds']:>18}{r['chunk_size']:>6}{str(r['schedule']):>11}{r['wall_s']:>8.1f}{r['compile_s']:>10.1f}"
                     f"{r['per_seed_s']:>8.3f}{r['numpy_per_seed_s']:>13.3f}{r['speedup_per_seed']:>8.1f}x")
    return lines


def pool_table(result: dict) -> list[str]:
    lines = [f"{'pool':>9}{'round s':>9}{'score s':>9}{'GB/s':>7}{'% bw':>7}{'numpy score s':>14}{'peak RSS GB':>12}"]
    for r in result["pool"]:
        np_s = "-" if r["numpy_score_s"] is None else f"{r['numpy_score_s']:.4f}"
        lines.append(
            f"{r['pool']:>9}{r['round_s']:>9.4f}{r['score_s']:>9.4f}{r['score_gbs']:>7.1f}"
            f"{100 * r['fraction_of_bandwidth']:>6.0f}%{np_s:>14}{r['peak_rss_gb']:>12.2f}"
        )
    return lines


def reproduce(result: dict, what: str, how: str, commands: list[str] | None = None,
              elsewhere: str = provenance.TIMES_DIFFER) -> list[str]:
    """The lines under one of the benchmark's tables (:func:`provenance.reproduce_lines`): this
    invocation's command unless ``commands`` are given, the machine kind it ran on, and that times
    differ elsewhere."""
    return provenance.reproduce_lines(what, commands or [result["command"]],
                                      provenance.machine_words(result["ran_on"]), how=how, elsewhere=elsewhere)


def markdown(result: dict) -> str:
    """Every table ``result`` holds, each in a code block followed by the lines that reproduce it."""
    blocks = []

    def add(table_lines: list[str], lines: list[str]) -> None:
        blocks.append("```\n" + "\n".join(table_lines) + "\n```\n" + "\n".join(lines).lstrip("\n"))

    if "article" in result:
        c, d = result["article"]["c"], result["article"]["d"]
        add(article_table(result), reproduce(
            result, "the machine line and the (c), (d) rows",
            f"the matmul peak is the best of several n x n products, the bandwidth the best of a jax and a numpy copy; "
            f"(c) is one seed, {c['rounds']} rounds, compiled once, the best of 3 calls; (d) the {d['rounds']} "
            f"auto-labeling rounds from (c)'s state (phases={d['phases']}), one call; NumPy "
            f"(experiments/numpy_reference.py, {result['numpy_threads']} BLAS thread) just after, in the same process",
            elsewhere=f"{provenance.TIMES_DIFFER}; the correct counts are the CPU's (aljax.precision: on a GPU "
                      "float32 rounding may move them)"))
    if "fit_steps" in result:
        add(fit_steps_table(result), reproduce(
            result, "the fit-step rows",
            "each row's seeds (vmapped when more than 1) fit its label-buffer rows for a fixed number of steps "
            "(patience that never runs out), compiled once, the best of 3 calls"))
    if "seeds" in result:
        add(seeds_table(result), reproduce(
            result, "the seeds rows",
            "each row's schedule, seeds, group and phases are its own columns: a lockstep row runs `lax.map` over "
            "vmapped groups of GROUP seeds (group 1: one seed after another, unbatched; group = seeds: one vmap), a "
            "continuous row runs `make_seeds_run` with GROUP lanes; one compiled program per row over its seeds "
            "(run (c) with random initial labels), one timed call after compiling; NumPy per seed from 2 seeds of "
            "the last lockstep row with phases 1"))
    if result.get("cli"):
        chosen = "; ".join(f"`--seeds {r['seeds']}`" + ("" if "--schedule" in r.get("command", "") else " (defaults)")
                           + f": chunks of {r['chunk_size']}, {r['schedule']}" for r in result["cli"])
        add(cli_table(result), reproduce(
            result, "the `aljax run` rows (OUT: a temporary folder)",
            "each row is one process timed whole (start-up, data, compilation, checkpoints); the chunk size and "
            "schedule each ran, as its config.toml recorded them (the defaults: aljax.seeds.plan for this machine "
            f"kind; continuous lanes: the plan's lanes): {chosen}; NumPy per seed: 2 seeds just after",
            commands=[r.get("command") or f"aljax run ... --seeds {r['seeds']}" for r in result["cli"]]))
    if "pool" in result:
        add(pool_table(result), reproduce(
            result, "the pool rows",
            "one full round (fit, score, select, label) and scoring alone, each compiled once and the best of 3 "
            "calls, per pool size (pools over 60 000 rows are synthetic); NumPy scores the same pool once"))
    if "pool_strategies" in result:
        add(pool_strategies_table(result["pool_strategies"]), reproduce(
            result, "the strategy rows",
            "one round of each strategy at the row's pool, labels and query size: today's computation against the "
            "full one it replaces, each compiled once and the best of 3 calls (the full BADGE: 1 call outside "
            "--quick)"))
    return "\n\n".join(blocks)


def report(result: dict) -> str:
    """results/bench/report.md: every table with the lines that reproduce it, then the roofline note."""
    return f"# aljax benchmark\n\n{markdown(result)}\n\n{roofline(result)}"


def roofline(result: dict) -> str:
    """A markdown note: what bounds the fit on this machine, from this run's numbers."""
    m, a = result["machine"], result["article"]
    peak, bw = m["matmul_gflops"], m["bandwidth_gbs"]
    alone = "\n".join(
        f"- {r['seeds']} seed{'s' if r['seeds'] > 1 else ''} on {r['rows']} rows: {r['gflops']:.1f} GFLOP/s"
        f" ({100 * r['fraction_of_peak']:.0f}% of peak), {r['gbs']:.1f} GB/s ({100 * r['fraction_of_bandwidth']:.0f}% of bandwidth),"
        f" {r['per_seed_step_us']:.0f} µs per seed and step"
        for r in result["fit_steps"]
    )
    c_config = Config(rounds=a["c"]["rounds"])
    flat = [r for r in result["seeds"] if r["phases"] == 1 and r.get("schedule", "lockstep") == "lockstep"]
    big = max((r for r in flat if r["group"] == r["seeds"]), key=lambda r: r["seeds"])
    small = min((r for r in flat if r["seeds"] == big["seeds"]), key=lambda r: r["group"])
    grouped = "" if small is big else (
        f" The same {small['seeds']} seeds in groups of {small['group']} (`lax.map` over vmapped groups) took"
        f" {small['per_seed_s']:.3f} s per seed instead of {big['per_seed_s']:.3f} ({big['per_seed_s'] / small['per_seed_s']:.1f}x"
        f" faster), wasting {100 * small['wasted_steps']:.0f}% of their steps, with each group's label buffers small"
        " enough to stay in cache.")
    grown = [(r, next(f for f in flat if (f["seeds"], f["group"]) == (r["seeds"], r["group"])))
             for r in result["seeds"] if r["phases"] > 1]
    continuous = "\n".join(
        f"- {r['seeds']} seeds, {r['group']} lanes: {r['per_seed_s']:.3f} s per seed ({r['speedup_per_seed']:.1f}x NumPy),"
        f" {100 * r['wasted_steps']:.0f}% of the epochs wasted, {r['executed_gflops']:.1f} GFLOP/s executed"
        for r in result["seeds"] if r.get("schedule") == "continuous")
    cli = "\n".join(
        f"- `aljax run --seeds {r['seeds']}` (chunks of {r['chunk_size']}, {r['schedule']}): {r['wall_s']:.1f} s in all,"
        f" {r['per_seed_s']:.3f} s per seed, {r['speedup_per_seed']:.1f}x NumPy per seed" for r in result.get("cli", []))
    phases = " ".join(
        f"With `phases={r['phases']}` the same {r['seeds']} seeds in groups of {r['group']} took {r['per_seed_s']:.3f} s"
        f" per seed instead of {f['per_seed_s']:.3f} ({f['per_seed_s'] / r['per_seed_s']:.1f}x faster,"
        f" {r['speedup_per_seed']:.1f}x NumPy)." for r, f in grown
    )
    best = max(r["gflops"] for r in result["fit_steps"])
    widest = max(result["seeds"], key=lambda r: (r["seeds"], r.get("schedule") == "continuous"))
    need = widest["labeled_gflop_per_seed"]
    floor = (f"Even doing only NumPy's work, {need:.2f} GFLOP per seed (its steps on the labeled rows, one pool"
             f" pass per round), at the best rate fit steps reached alone here ({best:.1f} GFLOP/s), a seed"
             f" needs {need / best:.3f} s: {widest['numpy_per_seed_s'] * best / need:.1f}x NumPy is this"
             " CPU's ceiling for the workload, before the rounds' other work, start-up and compilation.")
    return f"""## Roofline note

**A fit step.** Softmax regression on an L-row label buffer does the forward product X·Wᵀ
(2·L·D·C FLOPs) and the weight gradient Gᵀ·X (2·L·D·C), reading the L×D float32 buffer twice
(8·L·D bytes): C/2 = {C / 2:.0f} FLOP per byte whatever L is (C = {C} classes). Streaming X from memory
at the measured {bw:.1f} GB/s caps a step at {C / 2 * bw:.0f} GFLOP/s, {100 * min(1, C / 2 * bw / peak):.0f}% of the measured
matmul peak ({peak:.1f} GFLOP/s, square n = {m['matmul_n']} products). Fit steps measured alone, with no
rounds around them and no stopped seeds, are the ceiling of the workloads:

{alone}

Large buffers approach the memory bandwidth. Buffers that stay in cache are bound by how fast
XLA:CPU multiplies products only C = {C} columns wide, far below the square-matrix peak. The
workloads around these steps ran at {a['c']['gflops']:.1f} GFLOP/s ((c), with its pool passes) and
{a['d']['gflops']:.1f} GFLOP/s, {a['d']['gbs']:.1f} GB/s ((d)).

**Seeds in lockstep.** A vmapped `while_loop` runs until its slowest seed stops. The {big['seeds']}-seed
vmapped run executed {big['executed_gflops']:.1f} GFLOP/s ({100 * big['fraction_of_peak']:.0f}% of peak), but
{100 * big['wasted_steps']:.0f}% of its fit steps belonged to seeds that had already stopped.{grouped}

**Seeds that never wait** (`make_seeds_run`, continuous batching). One `while_loop` steps a few
lanes; a seed whose fit stopped finishes its round (pool logits, metrics, strategy, next fit's start,
for the ready lanes only) and goes on while the others fit; a finished seed hands its lane to the next.
The wasted epochs are the last seeds' tail and lanes waiting for their round to finish:

{continuous}

What a user gets, start-up and compilation included:

{cli}

Why not 4x NumPy per seed on this CPU: a vmapped epoch costs the same per lane whether its seed is
fitting or not, so removing wasted steps saves at most their share; the cost left is the useful steps
themselves, each multiplying the whole label buffer (NumPy multiplies only the labeled rows, 205 on
average over the run with 400-row buffers), at the thin-product speed above, plus one pool pass and the
metrics per round. {floor}

**Padding rows.** Fixed shapes mean a fit multiplies its whole buffer, padding rows included.
(c) keeps one {c_config.buffer}-row buffer (`phases=1`), because the article's rounding depends on the buffer
length, so its first fit multiplies {c_config.buffer - c_config.n_initial} padding rows. {phases} The auto-labeling phase (d) runs with
`phases={a['d']['phases']}`, buffers that grow to the labels each phase will hold: it touches
{a['d']['buffer_rows_over_labeled_rows']:.2f}x the rows NumPy does (NumPy slices the labeled rows).
Scoring is one pass over the pool (D·4 bytes per row) and scales linearly with pool size (table above).
"""


# ----------------------------------------------------------------------------- strategies that grow with the pool


def pool_strategies(raw, quick: bool) -> list[dict]:
    """One round of k-center and of BADGE on the dev protocol's pool (59 000 rows; quick: 4000) at 1000
    labels (quick: 200), query size 10: today's strategies against the full computations they replace,
    side by side, with their selections compared.

    * k-center keeps each row's distance to the labeled rows as state and folds in the 10 rows labeled
      since the last round (N·q·D); the full recompute measures every row against all L labeled rows
      (N·L·D), as the strategy did before it had state.
    * BADGE runs k-means++ on distances from norms and dot products (N·(D+C) per center); the full
      computation builds the (N, (D+1)·C) gradient embeddings and seeds k-means++ on them.
    """
    from aljax.cluster import kmeans_plus_plus, sq_distances
    from aljax.models import softmax_regression
    from aljax.strategies import badge, gradient_embedding, kcenter, make_context, rank_batch

    n, n_labeled, q = (4000, 200, 10) if quick else (59_000, 1000, 10)
    x = jnp.asarray(features(raw.train_x[:n]))
    model = softmax_regression(C, init_scale=0.01)
    params = model.init(jax.random.key(0), x.shape[1:])
    order = jax.random.permutation(jax.random.key(1), n)[:n_labeled].astype(jnp.int32)
    labeled = jnp.zeros((n,), bool).at[order].set(True)
    targets = jnp.asarray(raw.train_y[:n])[order].astype(jnp.int32)

    def ctx_of(params):
        return make_context(model, params, x, model.apply(params, x), ~labeled, order, targets, n_labeled, q)

    def kcenter_state(params):  # the state after the previous round: distances to the first L - q labeled rows
        ctx = make_context(model, params, x, model.apply(params, x), ~labeled, order, targets, n_labeled - q, q)
        return kcenter.score(jax.random.key(2), ctx, kcenter.init(ctx))[1]

    def kcenter_incremental(params, state):
        return kcenter.score(jax.random.key(2), ctx_of(params), state)[0]

    def kcenter_full(params):
        ctx = ctx_of(params)
        e = ctx.embed()
        d2 = jnp.min(jnp.where(ctx.train_w[None, :] > 0, sq_distances(e, ctx.embed(ctx.train_x)), jnp.inf), axis=1)

        def take(d2, _):
            i = jnp.argmax(jnp.where(ctx.selectable, d2, -jnp.inf))
            return jnp.minimum(d2, jnp.sum((e - e[i]) ** 2, axis=1)), i

        d2, batch = jax.lax.scan(take, d2, length=q)
        return rank_batch(batch, d2)

    def badge_full(params):
        ctx = ctx_of(params)
        g = gradient_embedding(ctx)
        return rank_batch(kmeans_plus_plus(jax.random.key(3), g, q, weights=ctx.selectable), jnp.linalg.norm(g, axis=-1))

    state = jax.block_until_ready(jax.jit(kcenter_state)(params))
    rows = []
    for name, new, old, new_args in (
        ("kcenter", kcenter_incremental, kcenter_full, (params, state)),
        ("badge", lambda p: badge(jax.random.key(3), ctx_of(p)), badge_full, (params,)),
    ):
        new_scores, new_s, *_ = timed(new, *new_args, repeat=3)
        old_scores, old_s, *_ = timed(old, params, repeat=1 if name == "badge" and not quick else 3)
        picked_new, picked_old = (np.asarray(select(sc, ~labeled, q)) for sc in (new_scores, old_scores))
        rows.append({"strategy": name, "pool": n, "labels": n_labeled, "query_size": q, "new_s": new_s,
                     "full_s": old_s, "speedup": old_s / new_s,
                     "same_selection": bool(np.array_equal(picked_new, picked_old)),
                     "same_rows": int(np.isin(picked_new, picked_old).sum()),
                     "same_prefix": int(np.cumprod(picked_new == picked_old).sum())})
        progress(f"{name}: {rows[-1]}")
    return rows


def pool_strategies_table(rows: list[dict]) -> list[str]:
    lines = ["strategy    pool  labels  today s  full computation s  speedup  same rows  same first picks"]
    for r in rows:
        lines.append(f"{r['strategy']:8} {r['pool']:7} {r['labels']:7} {r['new_s']:8.3f} {r['full_s']:19.3f} "
                     f"{r['speedup']:7.1f}x  {r['same_rows']:4}/{r['query_size']}  {r['same_prefix']:8}/{r['query_size']}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized runs (well under a minute)")
    parser.add_argument("--out", default="results/bench", help="output directory (default: results/bench)")
    parser.add_argument("--only-seeds", action="store_true", help="only the seeds rows and `aljax run` rows")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="seed counts of the seeds rows")
    parser.add_argument("--only-strategies", action="store_true",
                        help="only one round of k-center and BADGE against their full computations")
    args = parser.parse_args(argv)
    try:
        raw = load_mnist()
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    data = seed_data(raw)
    host = (features(raw.train_x[:4000]).reshape(4000, D), raw.train_y[:4000], features(raw.test_x[:400]).reshape(400, D),
            raw.test_y[:400])
    result = {"quick": args.quick, "command": provenance.script("bench.py", sys.argv[1:] if argv is None else argv),
              "ran_on": provenance.machine(), "devices": str(jax.devices()), "jax": jax.__version__,
              "numpy_threads": os.environ["OPENBLAS_NUM_THREADS"]}
    result["machine"] = machine(args.quick)
    progress(f"machine: {result['machine']}")
    sizes = (16,) if args.quick else tuple(args.sizes)
    if args.only_strategies:
        result["pool_strategies"] = pool_strategies(raw, args.quick)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "strategies.json", json.dumps(result, indent=2))
        print(markdown(result))
        return 0
    if args.only_seeds:
        result["seeds"] = seeds(data, host, result["machine"]["matmul_gflops"], args.quick, sizes)
        result["cli"] = cli_runs(host, sizes, args.quick)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "bench.json", json.dumps(result, indent=2))
        print(markdown(result))
        return 0
    result["fit_steps"] = fit_steps(data, host, result["machine"]["matmul_gflops"], result["machine"]["bandwidth_gbs"], args.quick)
    progress(f"fit steps: {result['fit_steps']}")
    result["article"] = article(data, host, args.quick)
    progress(f"article: {result['article']}")
    result["seeds"] = seeds(data, host, result["machine"]["matmul_gflops"], args.quick, sizes)
    progress(f"seeds: {result['seeds']}")
    result["cli"] = cli_runs(host, sizes, args.quick)
    progress(f"aljax run: {result['cli']}")
    result["pool"] = pool_scaling(raw, result["machine"]["bandwidth_gbs"], (4000,) if args.quick else (4000, 60_000, 1_000_000))
    result["pool_strategies"] = pool_strategies(raw, args.quick)
    result["peak_rss_gb"] = peak_rss_gb()
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "bench.json", json.dumps(result, indent=2))
    write_text(out / "report.md", report(result))
    print(markdown(result))
    print(f"\nwrote {out / 'bench.json'} and {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
