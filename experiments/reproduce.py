"""``make reproduce``: the article's table exactly, then as distributions over seeds, then honestly.

Parts (each timed; compile and run times are measured apart):

1. ``table``   protocol ``seed``, pool order, key 0: the article's six rows, to the test sample. They
               run on the CPU backend even where a GPU is present (about 20 s of work): exact
               results run there (:mod:`aljax.precision`).
2. ``seeds``   protocol ``seed`` over many seeds (random initial labels): least-confidence AL vs
               random 10 -> 400 (learning curves), and the auto-labeling phase from each AL state,
               on JAX's default device (the accelerator, if any).
3. ``dev``     protocol ``dev``: the same runs with early stopping on 1000 held-out training images
               and accuracy on the full 10 000-image test set.
4. ``figures`` k-means centroids of the pool, confidence of the unlabeled pool, learning curves,
               accuracy over auto-labeling rounds.

Writes ``results.json``, ``report.md`` and PNG figures (each atomically: temp file + rename) and prints
the tables. ``--table-only`` runs part 1 only (into ``<out>/table`` so a full run is never overwritten).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aljax import precision, seeds
from aljax.atomic import write_figure, write_text
from aljax.cluster import kmeans
from aljax.data import Data, DataError, Raw, dev_data, find_data_dir, load_dataset, seed_data
from aljax.loop import Config, Hyper, RoundInfo, State, components, make_rounds, make_run
from aljax.metrics import mean_ci
from aljax.models import flatten
from aljax.plots import plot_curves
from aljax.store import environment
from provenance import DIGITS_MAY_DIFFER, machine, machine_words, reproduce_lines, script

# The article's reported test accuracies (400-image test set).
ARTICLE = {
    "all_4000": 0.9225,
    "first_400": 0.8375,
    "first_10": 0.38,
    "active_400": 0.8975,
    "auto_all": 0.8975,
    "auto_confident": 0.905,
}
# Single-run times of a NumPy port of the article (seconds), the speed references.
NUMPY_SECONDS = {"active_400": 0.7, "auto_confident": 24.0}


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and seed counts of the experiment (the article's by default; smaller for quick checks)."""

    pool: int = 4000
    test: int = 400
    dev: int = 1000
    initial: int = 10
    query: int = 10
    budget: int = 400
    seeds: int = 100
    auto_seeds: int = 32
    auto_chunk: int = 8

    def __post_init__(self):
        if not self.initial <= self.budget <= self.pool:
            raise ValueError(f"need initial <= budget <= pool, got {self.initial}, {self.budget}, {self.pool}")
        if (self.budget - self.initial) % self.query or (self.pool - self.budget) % self.query:
            raise ValueError(f"budget - initial and pool - budget must be multiples of the query size {self.query}")
        if not 2 <= self.auto_seeds <= self.seeds:
            raise ValueError(f"need 2 <= --auto-seeds <= --seeds, got {self.auto_seeds} and {self.seeds}")
        if self.auto_chunk < 1:
            raise ValueError(f"--auto-chunk must be >= 1, got {self.auto_chunk}")

    @property
    def is_article(self) -> bool:
        """Whether these sizes are the article's, so its numbers apply."""
        return (self.pool, self.test, self.initial, self.query, self.budget) == (4000, 400, 10, 10, 400)

    def names(self) -> dict[str, str]:
        """Row key -> row name (the article's names at the article's sizes)."""
        return {"all": f"all_{self.pool}", "first": f"first_{self.budget}", "initial": f"first_{self.initial}",
                "active": f"active_{self.budget}", "random": f"random_{self.budget}",
                "auto_all": "auto_all", "auto_confident": "auto_confident"}

    def article(self, name: str) -> float | None:
        return ARTICLE.get(name) if self.is_article else None

    def al_config(self, strategy: str = "least_confidence", initial: str = "first") -> Config:
        return Config(strategy=strategy, n_initial=self.initial, query_size=self.query,
                      rounds=(self.budget - self.initial) // self.query, initial=initial)

    def auto_config(self, query_size: int) -> Config:
        """Auto-label the rest of the pool, ``query_size`` most confident rows per round (n_initial
        unused). The label buffer grows in phases of ``budget`` labels: the article's rows come out
        the same as with one 4000-row buffer (checked by the table), with 2.5x less work."""
        rounds = (self.pool - self.budget) // query_size
        return Config(strategy="most_confident", n_initial=1, query_size=query_size, rounds=rounds, oracle="model",
                      capacity=self.pool, phases=max(1, min(rounds, (self.pool - self.budget) // self.budget)))


# ----------------------------------------------------------------------------- commands


def run_command(plan: Plan, protocol: str, strategy: str, initial: str, n_initial: int, budget: int, n_seeds: int,
                seed: int, out: str) -> str:
    """The ``aljax run`` command that reruns one of this script's AL runs to the test sample, on the same
    kind of machine: the same data split, seeds (seed i's key ``fold_in(key(seed), i)``) and program
    (``--schedule lockstep``, every seed in one vmapped chunk, as :func:`run_seeds` and :func:`table`
    compile them)."""
    split = ["--test-size", str(plan.test)] if protocol == "seed" else ["--dev-size", str(plan.dev)]
    return shlex.join([
        "aljax", "run", "--dataset", "mnist", "--protocol", protocol, "--pool-size", str(plan.pool), *split,
        "--strategy", strategy, "--initial", initial, "--init", str(n_initial), "--query-size", str(plan.query),
        "--budget", str(budget), "--seeds", str(n_seeds), "--seed", str(seed), "--schedule", "lockstep",
        "--chunk-size", str(n_seeds), "--out", out])


def table_commands(plan: Plan) -> dict[str, str]:
    """Row name -> the ``aljax run`` command giving that row of the table (key 0, pool order, one seed)
    on the CPU backend; the auto-labeling rows have none (only this script runs them)."""
    names = plan.names()
    labels = {names["all"]: (plan.pool, plan.pool), names["first"]: (plan.budget, plan.budget),
              names["initial"]: (plan.initial, plan.initial), names["active"]: (plan.initial, plan.budget)}
    return {name: "JAX_PLATFORMS=cpu " + run_command(plan, "seed", "least_confidence", "first", n_initial, budget, 1, 0,
                                                     f"results/{name}")
            for name, (n_initial, budget) in labels.items()}


def seeds_commands(plan: Plan, protocol: str) -> dict[str, str]:
    """Row name -> the ``aljax run`` command giving that distribution row (AL and random; the
    auto-labeling row continues this script's AL states and has none)."""
    names = plan.names()
    return {names[key]: run_command(plan, protocol, strategy, "random", plan.initial, plan.budget, plan.seeds, 1,
                                    f"results/{protocol}-{names[key]}")
            for key, strategy in (("active", "least_confidence"), ("random", "random"))}


# ----------------------------------------------------------------------------- running


def timed(fn, *args):
    """(fn(*args), compile seconds, run seconds) for a jitted ``fn``, compiled ahead of time."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, t1 - t0, time.perf_counter() - t1


def host(info: RoundInfo) -> RoundInfo:
    return jax.tree.map(np.asarray, jax.device_get(info))


def run_seeds(plan: Plan, config: Config, data: Data, hyper: Hyper) -> tuple[tuple[State, RoundInfo], float, float]:
    """``plan.seeds`` seeds of ``config`` in one chunk (:func:`aljax.seeds.run_seeds`; seed i's key is
    ``fold_in(key(1), i)``, which equals ``split(key(1), seeds)[i]``); (state, info), compile and run seconds."""
    run = make_run(config)
    t0 = time.perf_counter()
    compiled = seeds.compile_chunks(run, data, hyper, plan.seeds)
    t1 = time.perf_counter()
    out = seeds.run_seeds(run, data, hyper, plan.seeds, seed=1, compiled=compiled)
    return out, t1 - t0, time.perf_counter() - t1


def auto_label(plan: Plan, query_size: int, chunk: int | None = None):
    """Jitted ``(data, hyper, state) -> (state, info)`` auto-labeling the rest of the pool.

    ``chunk=None``: one state; otherwise a batch of states, vmapped ``chunk`` seeds at a time.
    """
    rounds = make_rounds(plan.auto_config(query_size))
    if chunk is None:
        return jax.jit(rounds)
    return jax.jit(lambda data, hyper, states: jax.lax.map(lambda s: rounds(data, hyper, s), states, batch_size=chunk))


def row(name: str, info: RoundInfo, plan: Plan, n_test: int, seconds: float) -> dict:
    """One table row from the stacked infos of that row's fits."""
    accuracy = float(info.test_accuracy[-1])
    correct = int(round(accuracy * n_test))
    article = plan.article(name)
    return {
        "name": name,
        "labels": int(info.n_labeled[-1]),
        "accuracy": accuracy,
        "correct": correct,
        "article": article,
        "diff_samples": None if article is None else correct - int(round(article * n_test)),
        "steps": int(info.steps.sum()),
        "wrong_labels": int(info.wrong_labels[-1]),
        "run_s": seconds,
        "curve": [float(a) for a in info.test_accuracy],
        "curve_labels": [int(n) for n in info.n_labeled],
    }


def table(plan: Plan, data: Data, timing: dict) -> tuple[list[dict], dict[str, State]]:
    """Part 1: the article's rows in pool order with key 0, on the CPU device whatever the accelerator
    (:func:`aljax.precision.on_exact_device`). Returns rows and the states figures need (on the CPU)."""
    rows, states = [], {}

    def add(name, fn, *args):
        (state, info), compile_s, run_s = timed(fn, *args)
        timing["compile"][f"table/{name}"] = compile_s
        rows.append(row(name, host(info), plan, n_test, run_s))
        states[name] = state
        return state

    with precision.on_exact_device() as cpu:
        data = jax.device_put(data, cpu)
        hyper, key, names, n_test = Hyper(), jax.random.key(0), plan.names(), data.test.y.shape[0]
        for n, name in ((plan.pool, names["all"]), (plan.budget, names["first"]), (plan.initial, names["initial"])):
            add(name, jax.jit(make_run(dataclasses.replace(plan.al_config(), n_initial=n, rounds=0))), data, hyper, key)
        active = add(names["active"], jax.jit(make_run(plan.al_config())), data, hyper, key)
        add(names["auto_all"], auto_label(plan, plan.pool - plan.budget), data, hyper, active)
        add(names["auto_confident"], auto_label(plan, plan.query), data, hyper, active)
    return rows, states


def distributions(plan: Plan, data: Data, protocol: str, timing: dict) -> tuple[list[dict], dict]:
    """Parts 2 and 3: AL and random 10 -> budget over ``plan.seeds`` seeds, then auto-labeling from the
    first ``plan.auto_seeds`` AL states. Seeds are paired: seed i starts AL and random from the same
    random initial labels. Returns the summaries and the per-seed test-accuracy curves."""
    hyper, names = Hyper(), plan.names()
    summaries, curves = [], {}

    def summarize(name, info, n_seeds, compile_s, run_s):
        timing["compile"][f"{protocol}/{name}"] = compile_s
        final = info.test_accuracy[:, -1]
        mean, low, high = mean_ci(final)
        curves[name] = (info.n_labeled[0], info.test_accuracy)
        summaries.append({
            "name": name, "protocol": protocol, "labels": int(info.n_labeled[0, -1]),
            "dev_labels": plan.dev if protocol == "dev" else 0, "n_seeds": n_seeds,
            "mean": float(mean), "ci95_low": float(low), "ci95_high": float(high),
            "std": float(final.std(ddof=1)), "article": plan.article(name) if protocol == "seed" else None,
            "wrong_labels_mean": float(info.wrong_labels[:, -1].mean()),
            "run_s": run_s, "per_seed_s": run_s / n_seeds, "values": [float(v) for v in final],
        })

    for strategy, name in (("least_confidence", names["active"]), ("random", names["random"])):
        (state, info), compile_s, run_s = run_seeds(plan, plan.al_config(strategy, "random"), data, hyper)
        summarize(name, host(info), plan.seeds, compile_s, run_s)
        if strategy == "least_confidence":
            active = jax.tree.map(lambda a: a[: plan.auto_seeds], state)
    (_, info), compile_s, run_s = timed(auto_label(plan, plan.query, min(plan.auto_chunk, plan.auto_seeds)), data, hyper, active)
    summarize(names["auto_confident"], host(info), plan.auto_seeds, compile_s, run_s)
    return summaries, curves


# ----------------------------------------------------------------------------- figures


def cluster_figure(data: Data, path: Path) -> dict:
    """The 10 k-means centroids of the pool as 28x28 images side by side; purity against true labels."""
    import matplotlib.pyplot as plt

    x, y = flatten(data.pool.x[data.pool.valid]), np.asarray(data.pool.y[data.pool.valid])
    centers, assign = kmeans(jax.random.key(0), x, 10)
    counts = np.zeros((10, 10), int)
    np.add.at(counts, (np.asarray(assign), y), 1)
    majority = counts.argmax(axis=1)
    side = int(round(np.sqrt(x.shape[1])))

    fig, ax = plt.subplots(figsize=(10, 1.6))
    ax.imshow(np.concatenate(np.asarray(centers).reshape(10, side, side), axis=1), cmap="gray")
    ax.set_xticks(side * np.arange(10) + side / 2 - 0.5, [f"{m}" for m in majority])
    ax.set_yticks([])
    ax.set_xlabel("majority true label of each cluster")
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
    return {"purity": float(counts.max(axis=1).sum() / counts.sum()), "majority_labels": majority.tolist(),
            "sizes": counts.sum(axis=1).tolist()}


def confidence(data: Data, state: State, config: Config) -> np.ndarray:
    """Sorted (ascending) max softmax of the unlabeled valid pool rows under ``state.params``."""
    p = jax.nn.softmax(components(config).model.apply(state.params, data.pool.x))
    keep = np.asarray(data.pool.valid & ~state.labeled)
    return np.sort(np.asarray(jnp.max(p, axis=-1))[keep])


def confidence_figure(panels: dict[str, np.ndarray], path: Path) -> None:
    """The article's two plots: sorted max-softmax confidence of the unlabeled pool."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), sharey=True)
    for ax, (title, pmax) in zip(np.atleast_1d(axes), panels.items()):
        ax.plot(pmax)
        ax.set_title(title)
        ax.set_xlabel("unlabeled sample, sorted by confidence")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("max softmax")
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)


def figures(plan: Plan, data: Data, states: dict, rows: list[dict], curves: dict, out: Path) -> tuple[dict, dict]:
    """Part 4: every figure; returns the k-means summary and name -> file (relative to ``out``)."""
    names, files = plan.names(), {}
    clusters = cluster_figure(data, out / "centroids.png")
    files["k-means centroids of the pool"] = "centroids.png"
    confidence_figure({f"after {plan.initial} labels": confidence(data, states[names["initial"]], plan.al_config()),
                       f"after {plan.budget} labels (AL)": confidence(data, states[names["active"]], plan.al_config())},
                      out / "confidence.png")
    files["sorted confidence of the unlabeled pool"] = "confidence.png"
    active, rnd, auto = names["active"], names["random"], names["auto_confident"]
    for protocol, by_name in curves.items():
        file = "curves.png" if protocol == "seed" else f"curves_{protocol}.png"
        plot_curves({"least confidence": by_name[active], "random": by_name[rnd]}, out / file,
                      f"protocol {protocol}: test accuracy vs labels (95 % CI)")
        files[f"learning curves, protocol {protocol}"] = file
    exact = next((r["curve_labels"], r["curve"]) for r in rows if r["name"] == auto)
    auto_curves = {f"{auto} ({p}, {acc.shape[0]} seeds)": (labels, acc) for p, by in curves.items()
                   for labels, acc in [by[auto]]}
    auto_curves[f"{auto} (seed, pool order)"] = exact
    plot_curves(auto_curves, out / "auto_rounds.png", "test accuracy over auto-labeling rounds (95 % CI)")
    files["accuracy over auto-labeling rounds"] = "auto_rounds.png"
    return clusters, files


# ----------------------------------------------------------------------------- report


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def table_markdown(rows: list[dict], n_test: int) -> str:
    lines = [f"| run | labels | ours | correct / {n_test} | article | difference (test samples) | optimiser steps "
             "| wrong auto-labels |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        diff = "–" if r["diff_samples"] is None else f"{r['diff_samples']:+d}"
        lines.append(f"| {r['name']} | {r['labels']} | {pct(r['accuracy'])} | {r['correct']} | {pct(r['article'])} "
                     f"| {diff} | {r['steps']} | {r['wrong_labels']} |")
    return "\n".join(lines)


def multiseed_markdown(summaries: list[dict]) -> str:
    lines = ["| protocol | run | labels (+ dev labels) | seeds | mean | 95 % CI | std | article "
             "| wrong auto-labels (mean) | run s per seed |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        labels = f"{s['labels']} + {s['dev_labels']}" if s["dev_labels"] else f"{s['labels']}"
        lines.append(f"| {s['protocol']} | {s['name']} | {labels} | {s['n_seeds']} | {pct(s['mean'])} "
                     f"| {pct(s['ci95_low'])} – {pct(s['ci95_high'])} | {100 * s['std']:.2f} pp | {pct(s['article'])} "
                     f"| {s['wrong_labels_mean']:.1f} | {s['per_seed_s']:.3f} |")
    return "\n".join(lines)


def devices_markdown(devices: dict[str, str]) -> str:
    """Which device produced which numbers, and what that means for comparing them."""
    text = f"Devices: the table ran on {devices['table']} (exact results run on the CPU backend)"
    by_device: dict[str, list[str]] = {}
    for part, device in devices.items():
        if part != "table":
            by_device.setdefault(device, []).append(f"`{part}`")
    for device, parts in by_device.items():
        text += f"; the distributions of protocol {' and '.join(parts)} on {device}"
    text += "."
    if any(device != "cpu" for device in by_device):
        text += (" On an accelerator, float32 products round differently (TF32 on a GPU) and sums run in another "
                 "order, so a seed's AL path differs from its CPU path, seed by seed, while the distributions over "
                 "seeds should agree with the CPU's within their confidence intervals (docs/gpu.md).")
    return text


def findings(results: dict) -> list[str]:
    """Plain-language comparisons of the article's numbers with the distributions."""
    out = []
    for s in results["multiseed"]:
        if s["article"] is None:
            continue
        share = np.mean(np.asarray(s["values"]) >= s["article"] - 1e-9)
        where = ("inside" if s["ci95_low"] <= s["article"] <= s["ci95_high"]
                 else "above" if s["article"] > s["ci95_high"] else "below")
        out.append(f"- `{s['name']}`: the article's {pct(s['article'])} is {where} our 95 % CI of the mean "
                   f"({pct(s['ci95_low'])} – {pct(s['ci95_high'])}); {100 * share:.0f} % of our {s['n_seeds']} seeds "
                   f"reach it" + (" — the article's single run was likely a lucky draw." if where == "above" else "."))
    by = {(s["protocol"], s["name"]): s for s in results["multiseed"]}
    for protocol in ("seed", "dev"):
        names = [s["name"] for s in results["multiseed"] if s["protocol"] == protocol]
        if len(names) >= 2:
            al, rnd = by[(protocol, names[0])], by[(protocol, names[1])]
            gain = al["mean"] - rnd["mean"]
            out.append(f"- protocol `{protocol}`: least-confidence AL beats random at {al['labels']} labels by "
                       f"{100 * gain:.2f} pp on average ({pct(al['mean'])} vs {pct(rnd['mean'])}).")
    return out


def ran_on(results: dict, part: str) -> str:
    """'CPU (1 cpu device, 2 cores)', or 'the CPU device of a GPU (...) machine': the kind of device a
    part of the report ran on, and the machine."""
    kind, m = results["devices"][part].split(" ")[0].upper(), results["machine"]
    return machine_words(m) if kind == m["kind"] else f"the {kind} device of a {machine_words(m)} machine"


def table_provenance(results: dict, plan: Plan) -> list[str]:
    """The lines under the article's table: this script's command, each row's ``aljax run`` command,
    how they ran and what is exact where."""
    lines = reproduce_lines(
        "the table", [results["command"]], ran_on(results, "table"),
        how="each row is one run (one seed, key 0, pool order) compiled on its own on the CPU device; "
            "`auto_all` and `auto_confident` continue the AL row's state, so only this script runs them "
            "(`make reproduce-table` is the same script with `--table-only`)",
        elsewhere="the table is exact on the CPU backend, where the article's digits were checked; "
                  "a GPU's float32 products round differently (TF32) and change which points an AL run "
                  "picks, which is why the table never runs there (docs/gpu.md)")
    lines += ["", "Each row alone, through the command line (the same curve, to the test sample):", ""]
    lines += [f"- `{name}`: `{command}`" for name, command in table_commands(plan).items()]
    return lines


def seeds_provenance(results: dict, plan: Plan) -> list[str]:
    """The lines under the distributions' table: this script's command, each AL and random row's
    ``aljax run`` command, and the schedule and chunk sizes that produced the rows."""
    lines = []
    for protocol in ("seed", "dev"):
        commands = seeds_commands(plan, protocol)
        lines += reproduce_lines(
            f"protocol `{protocol}`'s rows", [results["command"], *commands.values()], ran_on(results, protocol),
            how=f"{' and '.join(f'`{n}`' for n in commands)} (the commands after the script's, in that order): all "
                f"{plan.seeds} seeds in one chunk, vmapped in lockstep, seed i's key `fold_in(key(1), i)`; "
                f"`auto_confident`: this script only, the first {plan.auto_seeds} AL states in vmapped batches "
                f"of {min(plan.auto_chunk, plan.auto_seeds)} (`--auto-chunk`)",
            elsewhere=DIGITS_MAY_DIFFER + " (the CLI's defaults run continuous lanes); the run's "
                      "metrics.csv holds float32 accuracies: round them to test-set counts before comparing")
    return lines


def report_markdown(results: dict) -> str:
    n_test = results["plan"]["test"]
    plan = Plan(**results["plan"])
    parts = ["# Reproduction of “Active Learning on MNIST: saving on labeling”", "",
             f"Protocol `seed`: pool = first {plan.pool} MNIST training images, early stopping AND "
             f"reporting on the first {n_test} test images (one test sample = {100 / n_test:.2f} pp). Pool order, "
             "key 0.", "", "## The article's table", "", table_markdown(results["rows"], n_test), "",
             devices_markdown(results["devices"]), *table_provenance(results, plan), ""]
    if results["multiseed"]:
        parts += ["## Distributions over seeds", "",
                  f"Each seed draws its {plan.initial} initial labels at random (AL and random share them); "
                  f"`auto_confident` continues the first {plan.auto_seeds} AL seeds. Protocol `dev`: early "
                  f"stopping on the last {plan.dev} training images (extra labels, counted as dev labels), "
                  "accuracy on the full 10 000-image test set.", "", multiseed_markdown(results["multiseed"]),
                  *seeds_provenance(results, plan), "", *findings(results), ""]
    if results.get("clusters"):
        c = results["clusters"]
        parts += ["## k-means", "", f"10 k-means++ / Lloyd clusters of the pool: purity {pct(c['purity'])} against "
                  f"the true labels; majority labels {c['majority_labels']} (sizes {c['sizes']}).", ""]
    if results.get("figures"):
        parts += ["## Figures", ""] + [f"![{name}]({file})" for name, file in results["figures"].items()] + [""]
    timing = results["timing_s"]
    parts += ["## Timing (seconds, compile excluded from run times)", "",
              "| part | wall s |", "|---|---:|"] + [f"| {k} | {v:.1f} |" for k, v in timing["parts"].items()]
    parts += ["", "Per seed, against the single-run NumPy references "
              f"({NUMPY_SECONDS['active_400']} s for AL 10 -> 400, {NUMPY_SECONDS['auto_confident']} s for the "
              "auto-labeling rounds):", "", "| run | s per seed |", "|---|---:|"]
    parts += [f"| {k} | {v:.3f} |" for k, v in timing["per_seed"].items()]
    parts += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()), ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- main


def reproduce(raw: Raw, plan: Plan, out: Path, table_only: bool = False,
              command: str = script("reproduce.py")) -> dict:
    """Run the parts of ``plan`` on ``raw``; write ``out``/results.json, report.md and figures.
    ``command``: the command line that called this, which the report prints under each table."""
    timing = {"parts": {}, "compile": {}, "per_seed": {}}
    results = {"protocol": "seed", "plan": dataclasses.asdict(plan), "rows": [], "multiseed": [],
               "timing_s": timing, "versions": environment(), "command": command, "machine": machine(),
               "devices": {"table": precision.describe(precision.exact_device())}}
    start = time.perf_counter()

    def part(name, fn, *args):
        t0 = time.perf_counter()
        value = fn(*args)
        timing["parts"][name] = time.perf_counter() - t0
        print(f"[{name}] {timing['parts'][name]:.1f} s", flush=True)
        return value

    out.mkdir(parents=True, exist_ok=True)
    seed = seed_data(raw, pool_size=plan.pool, test_size=plan.test)
    results["rows"], states = part("table", table, plan, seed, timing)
    names = plan.names()
    for r in results["rows"]:
        if r["name"] in (names["active"], names["auto_confident"]):
            timing["per_seed"][f"table/{r['name']}"] = r["run_s"]
    if not table_only:
        dev = dev_data(raw, pool_size=plan.pool, dev_size=plan.dev)
        curves = {}
        for protocol, data in (("seed", seed), ("dev", dev)):
            results["devices"][protocol] = precision.describe(jax.devices()[0])
            summaries, curves[protocol] = part(protocol, distributions, plan, data, protocol, timing)
            results["multiseed"] += summaries
            for s in summaries:
                timing["per_seed"][f"{protocol}/{s['name']}"] = s["per_seed_s"]
        results["curves"] = [
            {"protocol": p, "name": name, "labels": labels.tolist(),
             **dict(zip(("mean", "ci95_low", "ci95_high"), (v.tolist() for v in mean_ci(acc))))}
            for p, by_name in curves.items() for name, (labels, acc) in by_name.items()]
        results["clusters"], results["figures"] = part("figures", figures, plan, seed, states, results["rows"], curves, out)
    timing["parts"]["total"] = time.perf_counter() - start
    write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    report = report_markdown(results)
    write_text(out / "report.md", report)
    return results


class OneLineErrors(argparse.ArgumentParser):
    """Bad input: one line on stderr and exit status 2 (as ``aljax``'s other commands), no usage dump."""

    def error(self, message: str):
        self.exit(2, f"aljax reproduce: error: {message}\n")


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineErrors(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table-only", action="store_true", help="only the exact table (part 1)")
    parser.add_argument("--seeds", type=int, default=Plan.seeds, help="seeds of active/random runs")
    parser.add_argument("--auto-seeds", type=int, default=Plan.auto_seeds, help="seeds of auto_confident")
    parser.add_argument("--auto-chunk", type=int, default=Plan.auto_chunk, help="auto-labeling seeds vmapped at once (8: 22 %% faster per seed than 1 on 2 cores)")
    parser.add_argument("--pool", type=int, default=Plan.pool, help="pool size (4000 = the article)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding mnist/ (default: as for `aljax run`: $ALJAX_DATA, the checkout's data/, ...)")
    parser.add_argument("--out", type=Path, default=Path("results/reproduce"))
    args = parser.parse_args(argv)
    try:
        plan = Plan(pool=args.pool, seeds=args.seeds, auto_seeds=args.auto_seeds, auto_chunk=args.auto_chunk)
        raw = load_dataset("mnist", *find_data_dir(args.data_dir))
    except (ValueError, DataError) as err:
        parser.error(str(err))
    out = args.out / "table" if args.table_only else args.out
    results = reproduce(raw, plan, out, table_only=args.table_only,
                        command=script("reproduce.py", sys.argv[1:] if argv is None else argv))
    print()
    print(table_markdown(results["rows"], plan.test))
    if results["multiseed"]:
        print()
        print(multiseed_markdown(results["multiseed"]))
        print("\n".join(findings(results)))
    print(f"\nwrote {out / 'results.json'} and {out / 'report.md'}")
    return results

if __name__ == "__main__":
    main()
