"""``make gpu-check``: the GPU verification of issue 21 in one go, within 10 minutes on one H200.

Steps, each in its own process under its own timeout (and all within ``--budget-s``), with
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` and the tree on ``PYTHONPATH``:

1. ``tests``       the test suite (``pytest -n 8`` when pytest-xdist is importable, else serial);
2. ``run_c_1000``  ``aljax run`` with 1000 seeds of the article's run (c): seed protocol, least
                   confidence, random initial labels, 10 -> 400 labels, 10 a round;
3. ``run_c_10000`` the same with 10 000 seeds (target: under 60 s, start-up and compile included);
   ``cpu_vs_gpu``  the first 100 seeds of ``run_c_1000`` again on the CPU backend: a seed's AL path
                   differs between devices, so the check is that the distributions agree (the paired
                   difference's 95 % CI contains 0);
4. ``c_then_d``    1000 seeds of (c), then from each seed's state (d), the 360 rounds that auto-label
                   the 10 most confident rows (as ``experiments/reproduce.py`` runs them; target:
                   under 30 s for the whole process);
5. ``bench_deep``  ``experiments/bench_deep.py`` (training step and MC-dropout scoring of
                   ``cnn_gal2017``), against PyTorch on the same GPU when torch is importable;
6. ``numpy``       the NumPy reference of (c) (``experiments/numpy_reference.py``), one seed per
                   process on the host's cores.

Writes ONE JSON (``gpu_check.json``) and a short markdown report (``report.md``) into ``--out``
(default ``docs/bench/gpu``; with ``--tiny``, ``results/gpu-check-tiny``). Runs with the machine's
own Python and nothing installed: ``make gpu-check PY=python3`` (data from ``$ALJAX_DATA``).
``--tiny``: CPU-sized runs of every step on a small pool (the test suite checks the script this way).
Exit status 0 when every step finished with status 0, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the steps share the GPU with this process

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
TAIL = 3000  # characters of a step's output kept in the JSON when it fails


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What each step runs; :data:`FULL` is the issue's check, :data:`TINY` its CPU-sized shadow."""

    pool: int = 4000
    test: int = 400
    initial: int = 10
    query: int = 10
    budget: int = 400
    run_seeds: tuple[int, ...] = (1000, 10_000)
    cpu_seeds: int = 100  # the first seeds of run_c_{run_seeds[0]} rerun on the CPU backend, paired
    cd_seeds: int = 1000
    numpy_seeds: int = 32
    tests: tuple[str, ...] = ()  # pytest arguments: () = the whole suite
    bench: tuple[str, ...] = ("--seeds", "10", "--pool", "20000")
    # seconds: a step's own limit (the overall --budget-s also bounds it)
    timeouts: tuple[tuple[str, int], ...] = (("tests", 300), ("run_c", 150), ("cpu_vs_gpu", 120), ("c_then_d", 150),
                                             ("bench_deep", 150), ("numpy", 90))
    # seconds the issue asks for, one per step name
    targets: tuple[tuple[str, float], ...] = (("run_c_10000", 60.0), ("c_then_d", 30.0))
    budget_s: float = 540.0  # all steps together: within 10 minutes on one H200, with a margin

    @property
    def auto_rounds(self) -> int:
        return (self.pool - self.budget) // self.query


FULL = Sizes()
TINY = Sizes(pool=120, test=60, initial=4, query=4, budget=20, run_seeds=(4,), cpu_seeds=4, cd_seeds=4,
             numpy_seeds=2, tests=("tests/test_precision.py",),
             bench=("--quick", "--seeds", "2", "--batch", "8", "--model", "mlp(hidden=8,dropout=0.5)"),
             timeouts=(("tests", 300), ("run_c", 300), ("cpu_vs_gpu", 300), ("c_then_d", 300), ("bench_deep", 300),
                       ("numpy", 300)),
             budget_s=1800.0)  # generous: a shared CI machine may be slow


# ----------------------------------------------------------------------------- steps


def step_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every step: the tree on the path, no GPU memory preallocation; ``extra``
    on top (a step's own variables, which its shell line shows)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1", **(extra or {}))


def shell(command: list[str], work: Path | None = None) -> str:
    """``command`` as a shell line to run from the tree's root: this Python as ``python``, paths in the
    tree relative to it, the temporary folder of the steps as ``WORK``."""
    def word(w: str) -> str:
        if w == sys.executable:
            return "python"
        if work is not None and w.startswith(str(work)):
            return "WORK" + w[len(str(work)):]
        return w[len(str(ROOT)) + 1:] if w.startswith(str(ROOT) + os.sep) else w
    return shlex.join(word(w) for w in command)


def run_step(name: str, command: list[str], timeout: float, parse=None, work: Path | None = None,
             env: dict[str, str] | None = None) -> dict:
    """Run ``command`` from the tree's root under ``timeout`` seconds, with ``env`` added to
    :func:`step_env`; its record: status, wall seconds, ``parse(output)`` when it succeeded, the tail of
    its output when it did not; ``shell``: the command as a shell line (:func:`shell`, ``work`` the
    steps' temporary folder), after ``env``'s assignments."""
    print(f"[gpu-check] {name}: {' '.join(command)} (timeout {timeout:.0f} s)", flush=True)
    assignments = "".join(f"{k}={v} " for k, v in (env or {}).items())
    record = {"name": name, "command": " ".join(command), "shell": assignments + shell(command, work),
              "timeout_s": round(timeout)}
    if timeout < 1:
        return {**record, "status": "skipped", "note": "no time left in --budget-s"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=step_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)
        output, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as err:
        output, rc = err.stdout or b"", None
    output = output.decode(errors="replace")
    record.update(wall_s=round(time.perf_counter() - start, 2), rc=rc,
                  status="ok" if rc == 0 else "timed out" if rc is None else "failed")
    if parse is not None and rc is not None:
        try:
            record["result"] = parse(output)
        except (ValueError, KeyError, IndexError, OSError) as err:
            record["parse_error"] = f"{type(err).__name__}: {err}"
    if rc != 0:
        record["output_tail"] = output[-TAIL:]
    print(f"[gpu-check] {name}: {record['status']} in {record['wall_s']} s", flush=True)
    return record


def last_json(output: str) -> dict:
    """The last line of ``output`` that is a JSON object."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def pytest_summary(output: str) -> dict:
    """Counts from pytest's last line and the FAILED / ERROR lines of ``-rfE``."""
    last = next(line for line in reversed(output.splitlines()) if " in " in line and ("passed" in line or "failed" in line
                                                                                        or "error" in line))
    counts = {word: int(n) for n, word in (part.strip().split(" ")[:2] for part in last.strip("= ").split(" in ")[0].split(","))}
    failures = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return {"summary": last.strip("= "), "counts": counts, "failures": failures}


def run_summary(out: Path):
    """A parser of ``aljax run``'s output: its folder's final test accuracies and timings, and the chunk
    size and schedule the CLI resolved (its config.toml)."""
    def parse(_output: str) -> dict:
        import numpy as np

        from aljax.store import read_metrics, read_toml

        final = np.asarray(read_metrics(out)["test_accuracy"])[:, -1]
        timings = json.loads((out / "timings.json").read_text())
        settings = read_toml(out / "config.toml")
        return {"seeds": int(final.size), "mean_test_accuracy": float(final.mean()),
                "std_test_accuracy": float(final.std()), "timings_s": timings,
                "chunk_size": settings.get("chunk_size"), "schedule": settings.get("schedule") or "lockstep"}
    return parse


def agreement(cpu_out: Path, accelerator_out: Path):
    """A parser of the CPU rerun of (c): its final test accuracies against the same seeds' (the first S)
    on JAX's default device, paired seed by seed (the same keys and initial labels). Both summaries and
    the paired difference with their 95 % CIs (:mod:`aljax.compare`), the seeds whose final accuracy is
    equal, and ``agree``: whether the difference's CI contains 0."""
    def parse(output: str) -> dict:
        import numpy as np

        from aljax.compare import paired, summary
        from aljax.store import read_metrics

        cpu = np.asarray(read_metrics(cpu_out)["test_accuracy"], np.float64)[:, -1]
        accelerator = np.asarray(read_metrics(accelerator_out)["test_accuracy"], np.float64)[: cpu.size, -1]
        diff = paired(accelerator, cpu)
        return {**run_summary(cpu_out)(output), "paired_seeds": int(cpu.size), "cpu": summary(cpu),
                "accelerator": summary(accelerator), "difference": diff,
                "same_final": int(np.sum(np.isclose(accelerator, cpu, rtol=0, atol=1e-6))),
                "agree": bool(diff["low"] <= 0 <= diff["high"]) if cpu.size > 1 else bool(diff["mean"] == 0)}
    return parse


def data_flags(args) -> list[str]:
    return ["--dataset", args.dataset] + (["--data-dir", str(args.data_dir)] if args.data_dir else [])


def size_flags(sizes: Sizes) -> list[str]:
    return ["--pool-size", str(sizes.pool), "--test-size", str(sizes.test), "--init", str(sizes.initial),
            "--query-size", str(sizes.query), "--budget", str(sizes.budget)]


def pytest_command(sizes: Sizes) -> list[str]:
    parallel = ["-n", str(min(8, os.cpu_count() or 1))] if importlib.util.find_spec("xdist") else []
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *parallel, *sizes.tests]


def check(args, sizes: Sizes, work: Path) -> list[dict]:
    """Every step in order, within ``args.budget_s`` (default ``sizes.budget_s``) seconds in all."""
    deadline = time.perf_counter() + (args.budget_s or sizes.budget_s)
    limit = dict(sizes.timeouts)

    def left(step: str) -> float:
        return min(limit[step], deadline - time.perf_counter())

    py = sys.executable
    steps = [run_step("tests", pytest_command(sizes), left("tests"), pytest_summary, work)]
    for seeds in sizes.run_seeds:
        out = work / f"run_c_{seeds}"
        command = [py, "-m", "aljax", "run", "--protocol", "seed", "--strategy", "least_confidence", "--initial",
                   "random", *size_flags(sizes), "--seeds", str(seeds), "--quiet", "--out", str(out), *data_flags(args)]
        steps.append(run_step(f"run_c_{seeds}", command, left("run_c"), run_summary(out), work))
    first = work / f"run_c_{sizes.run_seeds[0]}"
    out = work / "cpu_vs_gpu"
    command = [py, "-m", "aljax", "run", "--protocol", "seed", "--strategy", "least_confidence", "--initial", "random",
               *size_flags(sizes), "--seeds", str(sizes.cpu_seeds), "--quiet", "--out", str(out), *data_flags(args)]
    record = run_step("cpu_vs_gpu", command, left("cpu_vs_gpu"), agreement(out, first), work, env={"JAX_PLATFORMS": "cpu"})
    steps.append({**record, "compared_with": first.name})
    command = [py, str(Path(__file__).resolve()), "--c-then-d", str(sizes.cd_seeds), *size_flags(sizes),
               *data_flags(args)]
    steps.append(run_step("c_then_d", command, left("c_then_d"), last_json, work))
    torch = importlib.util.find_spec("torch") is not None
    command = [py, str(EXPERIMENTS / "bench_deep.py"), *sizes.bench, "--out", str(work / "bench-deep")]
    record = run_step("bench_deep", command, left("bench_deep"),
                      lambda _: json.loads((work / "bench-deep" / "bench_deep.json").read_text()), work)
    steps.append({**record, "torch_importable": torch})
    command = [py, str(EXPERIMENTS / "numpy_reference.py"), "--seeds", str(sizes.numpy_seeds),
               *size_flags(sizes), *data_flags(args)]
    steps.append(run_step("numpy", command, left("numpy"), last_json, work))
    return steps


# ----------------------------------------------------------------------------- (c) then (d), in one process


def c_then_d(args) -> dict:
    """``--c-then-d S``: S seeds of (c) in one chunk, then (d) from every seed's state, as
    ``experiments/reproduce.py`` runs them; prints one JSON line of compile and run seconds."""
    import jax
    import numpy as np

    import reproduce
    from aljax.data import find_data_dir, load_dataset, seed_data
    from aljax.loop import Hyper

    start = time.perf_counter()
    plan = reproduce.Plan(pool=args.pool_size, test=args.test_size, initial=args.init, query=args.query_size,
                          budget=args.budget, seeds=args.c_then_d, auto_seeds=args.c_then_d,
                          auto_chunk=args.auto_chunk or args.c_then_d)
    data = seed_data(load_dataset(args.dataset, *find_data_dir(args.data_dir)), plan.pool, plan.test)
    hyper = Hyper()
    (state, c_info), c_compile, c_run = reproduce.run_seeds(plan, plan.al_config("least_confidence", "random"),
                                                            data, hyper)
    (_, d_info), d_compile, d_run = reproduce.timed(reproduce.auto_label(plan, plan.query, plan.auto_chunk),
                                                    data, hyper, state)
    c_acc, d_acc = np.asarray(c_info.test_accuracy)[:, -1], np.asarray(d_info.test_accuracy)[:, -1]
    result = {"seeds": plan.seeds, "auto_rounds": (plan.pool - plan.budget) // plan.query,
              "auto_chunk": plan.auto_chunk, "device": str(jax.devices()[0]),
              "c_compile_s": c_compile, "c_run_s": c_run, "d_compile_s": d_compile, "d_run_s": d_run,
              "c_mean_test_accuracy": float(c_acc.mean()), "d_mean_test_accuracy": float(d_acc.mean()),
              "in_process_s": time.perf_counter() - start}
    print(json.dumps(result), flush=True)
    return result


# ----------------------------------------------------------------------------- report


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def machine() -> dict:
    """Versions and devices, asked of JAX after the steps (so this process held no GPU memory meanwhile)."""
    import platform
    from importlib.metadata import PackageNotFoundError

    import jax

    from aljax.store import environment

    try:
        env = environment()
    except PackageNotFoundError as err:  # a package without metadata must not lose the measurements
        device = jax.devices()[0]
        return {"python": platform.python_version(), "jax": jax.__version__, "platform": device.platform,
                "device": device.device_kind, "device_count": jax.device_count(), "cpus": os.cpu_count(),
                "environment_error": f"no metadata for {err}"}
    env["command"] = " ".join(env["command"])
    return env


def pct(s: dict, signed: bool = False) -> str:
    """'86.82 [86.53, 87.12]' (in %, or points when ``signed``) from a summary with mean, low, high."""
    f = "{:+.2f}" if signed else "{:.2f}"
    low, high = ("–" if s[k] != s[k] else f.format(100 * s[k]) for k in ("low", "high"))  # NaN: one seed
    return f"{f.format(100 * s['mean'])} [{low}, {high}]"


def step_line(step: dict, targets: dict) -> str:
    result, name = step.get("result", {}), step["name"]
    if name == "tests":
        what = result.get("summary", "")
    elif name.startswith("run_c_"):
        what = f"{result['seeds']} seeds, mean test accuracy {100 * result['mean_test_accuracy']:.2f} %" if result else ""
    elif name == "cpu_vs_gpu":
        what = (f"the first {result['paired_seeds']} seeds of {step['compared_with']} rerun on the CPU: CPU "
                f"{pct(result['cpu'])}, this device {pct(result['accelerator'])}, paired difference "
                f"{pct(result['difference'], signed=True)} points ({'agree' if result['agree'] else 'DIFFER'}: the "
                f"difference's 95 % CI {'contains' if result['agree'] else 'excludes'} 0); {result['same_final']} "
                "seeds end at the same accuracy") if result else ""
    elif name == "c_then_d":
        what = (f"{result['seeds']} seeds; (c) compile {result['c_compile_s']:.1f} s + run {result['c_run_s']:.1f} s, "
                f"{100 * result['c_mean_test_accuracy']:.2f} %; (d) {result['auto_rounds']} rounds compile "
                f"{result['d_compile_s']:.1f} s + run {result['d_run_s']:.1f} s, "
                f"{100 * result['d_mean_test_accuracy']:.2f} %") if result else ""
    elif name == "bench_deep":
        torch = result.get("torch") or {}
        what = ("jax train " + ", ".join(f"{k}: {v:,.0f}" for k, v in result.get("jax_train_images_per_s", {}).items())
                + " images/s; torch " + (f"{torch['train_images_per_s']:,.0f} images/s on {torch['device']}"
                                         if torch else "not run")) if result else ""
    else:
        what = (f"{result['seeds']} seeds on {result['processes']} processes, {result['per_seed_s']:.2f} s a seed, "
                f"mean accuracy {100 * result['mean_accuracy']:.2f} %") if result else ""
    target = targets.get(name)
    verdict = "" if target is None or step["status"] != "ok" else (
        f"{'met' if step['wall_s'] < target else 'missed'} (< {target:.0f} s)")
    return f"| {name} | {step['status']} | {step.get('wall_s', '–')} | {verdict} | {what} |"


def step_reproduce(step: dict, results: dict, ran_on: str) -> list[str]:
    """The lines under the table for one step (:func:`provenance.reproduce_lines`): the command it ran
    as a shell line (an ``aljax run`` step's with the chunk size and schedule its config.toml recorded,
    written out as flags), how it ran its seeds, the machine kind, what may differ elsewhere."""
    from provenance import DIGITS_MAY_DIFFER, TIMES_DIFFER, reproduce_lines

    name, result, sizes = step["name"], step.get("result") or {}, results["sizes"]
    command, elsewhere = step.get("shell") or step["command"], f"{TIMES_DIFFER}; accuracies: {DIGITS_MAY_DIFFER}"
    if name == "tests":
        how = "one pytest process" + (" with pytest-xdist's `-n` workers" if " -n " in command else ", serial")
        elsewhere = f"{TIMES_DIFFER}; on a GPU the tests compare with a wider tolerance (aljax.precision)"
    elif name.startswith("run_c_"):
        if result.get("schedule"):
            command += f" --schedule {result['schedule']} --chunk-size {result['chunk_size']}"
            lanes = " (its lanes: aljax.seeds.plan's for the backend)" if result["schedule"] == "continuous" else ""
            how = (f"the CLI's defaults for this machine, read back from the run's config.toml and written out as flags: "
                   f"chunks of {result['chunk_size']} seeds, schedule {result['schedule']}{lanes}; one process, timed "
                   "whole (start-up, data and compilation included)")
        else:
            how = "the CLI's default chunk size and schedule for this machine (not read back: the step did not finish)"
    elif name == "cpu_vs_gpu":
        if result.get("schedule"):
            command += f" --schedule {result['schedule']} --chunk-size {result['chunk_size']}"
        how = (f"the command of {step['compared_with']} with fewer seeds, on the CPU backend (`JAX_PLATFORMS=cpu`), "
               f"the CPU's default schedule and chunk size; seed i has the same key and initial labels in both runs, "
               "so the final accuracies are compared seed by seed (a paired t interval)")
        elsewhere = ("a seed's AL path differs between a CPU and a GPU (TF32 products, another summation order), "
                     "which is why the distributions, not the seeds, are compared")
    elif name == "c_then_d":
        seeds = result.get("seeds", sizes["cd_seeds"])
        how = (f"(c): {seeds} seeds as one vmap in one chunk (lockstep, as experiments/reproduce.py runs them); (d): "
               f"the auto-labeling rounds from every seed's state, `lax.map` over vmapped batches of "
               f"{result.get('auto_chunk', seeds)} seeds (`--auto-chunk`); one process, compile and run seconds apart")
    elif name == "bench_deep":
        torch = result.get("torch")
        how = (f"JAX: 1 seed, {result.get('seeds_vmapped', '?')} seeds vmapped and in sequence (`lax.map`), each rate "
               "the median of timed calls after a warm-up; PyTorch: "
               + (f"eager on {torch.get('device_type', '?')} ({torch['device']})" if torch else "not run"))
        elsewhere = TIMES_DIFFER
    else:
        how = (f"the NumPy reference of (c), one seed per process on {result.get('processes', 'the host')} processes "
               "(the host's cores)")
        elsewhere = TIMES_DIFFER + "; the NumPy reference runs on the host's CPU whatever the device"
    return reproduce_lines(f"step {name}", [command], ran_on, how=how, elsewhere=elsewhere)


def report_markdown(results: dict) -> str:
    env, targets = results["machine"], dict(results["targets_s"]) if not results["tiny"] else {}
    lines = [f"# `make gpu-check` — {results['date']}, commit {results['commit']}", "",
             f"Machine: {env['device_count']} x {env['platform']}"
             + ("" if env["platform"] == "cpu" else f" ({env['device']})") + f", {env['cpus']} CPU cores, "
             f"jax {env['jax']}, Python {env['python']}." + (" Tiny sizes (`--tiny`): a check of the script, not a "
                                                             "measurement." if results["tiny"] else ""),
             "", "| step | status | wall s | target | result |", "|---|---|---:|---|---|"]
    lines += [step_line(step, targets) for step in results["steps"]]
    ran_on = results.get("ran_on_words") or (f"{env['platform'].upper()} ({env['device_count']} x {env['device']}, "
                                             f"{env['cpus']} cores)")
    if "command" in results:
        from provenance import TIMES_DIFFER, reproduce_lines

        lines += reproduce_lines("the whole table", [results["command"]], ran_on, how=(
            "the steps below in order, each in its own process under its own timeout, all within `--budget-s`; "
            "WORK: the steps' temporary folder"), elsewhere=TIMES_DIFFER)
    for step in results["steps"]:
        lines += step_reproduce(step, results, ran_on)
    failures = next((s.get("result", {}).get("failures", []) for s in results["steps"] if s["name"] == "tests"), [])
    if failures:
        lines += ["", "Test failures:", ""] + [f"- `{line}`" for line in failures]
    lines += ["", f"Commands and full numbers: `{results['json']}`.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


class OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"gpu_check: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrors(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU-sized runs of every step (checks the script)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of gpu_check.json and report.md (default docs/bench/gpu; --tiny: "
                             "results/gpu-check-tiny)")
    parser.add_argument("--dataset", default="mnist", help="a dataset name or idx:DIR, as for `aljax run`")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $ALJAX_DATA, as for `aljax run`")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds for all steps together (default 540; --tiny: 1800)")
    parser.add_argument("--c-then-d", type=int, default=None, metavar="SEEDS", help=argparse.SUPPRESS)
    parser.add_argument("--auto-chunk", type=int, default=None,
                        help="(d): seeds vmapped at once (default: all of them)")
    for flag, default in (("--pool-size", 4000), ("--test-size", 400), ("--init", 10), ("--query-size", 10),
                          ("--budget", 400)):
        parser.add_argument(flag, type=int, default=default, help=argparse.SUPPRESS)  # for --c-then-d
    args = parser.parse_args(argv)
    if args.budget_s is not None and args.budget_s <= 0:
        parser.error(f"--budget-s must be positive, got {args.budget_s}")
    if args.c_then_d is not None:
        c_then_d(args)
        return 0
    from aljax.atomic import write_text

    sizes = TINY if args.tiny else FULL
    out = args.out or ROOT / ("results/gpu-check-tiny" if args.tiny else "docs/bench/gpu")
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        steps = check(args, sizes, Path(work))
    import provenance  # imports jax: after the steps, so this process held no GPU memory meanwhile

    ran_on = provenance.machine()
    results = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(), "tiny": args.tiny,
               "command": provenance.script("gpu_check.py", sys.argv[1:] if argv is None else argv),
               "sizes": dataclasses.asdict(sizes), "targets_s": list(sizes.targets), "steps": steps,
               "machine": machine(), "ran_on": ran_on, "ran_on_words": provenance.machine_words(ran_on),
               "json": "gpu_check.json"}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "gpu_check.json", json.dumps(results, indent=1) + "\n")
    write_text(out / "report.md", report_markdown(results))
    print(f"[gpu-check] wrote {out / 'gpu_check.json'} and {out / 'report.md'}", flush=True)
    return 0 if all(step["status"] == "ok" for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
