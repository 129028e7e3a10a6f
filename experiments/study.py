"""The strategy study (``make study``, ``make study-quick``): every registered query strategy against
random over many paired seeds, on three settings, with CIs from the seed distribution.

Settings (dev protocol: early stopping on a held-out dev split of the training set, accuracy on the
whole 10 000-image test set):

* A: MNIST, pool = the first 4000 training images, 10 random initial labels, 10 per round up to 400;
* B: MNIST, pool = all 59 000 training images that are not dev, 20 initial labels, 10 per round up to
  1000 (the sizes of Gal et al. 2017);
* C: Fashion-MNIST with the sizes of A.

Each (setting, strategy, query size) is ONE compiled program vmapped over seeds (seeds run in
chunks of ``--chunk`` so memory stays bounded). Fits grow their label buffer in ``Setting.phases``
phases (:class:`aljax.loop.Config`), 1.3x faster than one buffer of the full budget; it changes float
rounding only. Seed i uses the key ``fold_in(key(0), i)`` for every
strategy, so seed i starts from the same random initial labels everywhere (checked, recorded as
``paired_initial_labels``): all comparisons are paired per seed before averaging. The quick mode's
16 seeds are the first 16 of the full mode's.

Outputs in ``--out`` (default results/study, quick: results/study-quick):
``runs/<setting>_<strategy>_q<size>_s<seeds>.json`` (per-seed curves, reused on the next call unless
``--fresh``; a run in progress keeps its finished chunks in ``runs/<tag>.partial`` and resumes from
them), ``study.json`` (every summary number; an invocation that runs some settings keeps the
others a previous invocation of the same mode stored there), ``report.md`` (written only from study.json),
``<setting>_curves.png`` and ``<setting>_vs_random.png`` (paired differences), ``A_query_size.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np

from aljax import atomic, seeds, store
from aljax.compare import at_labels, auc, paired, reach_summary, summary
from aljax.data import DEFAULT_DATA_DIR, DataError, Raw, dev_data, load_dataset
from aljax.loop import Config, Hyper, make_run
from aljax.metrics import mean_ci
from aljax.plots import plot_curves
from aljax.progress import Progress
from aljax.strategies import STRATEGIES, registry, resolve
from provenance import DIGITS_MAY_DIFFER, reproduce_lines

REFERENCE = "random"
AUTO_LABEL = ("most_confident",)  # auto-labeling orders, not query strategies: left out of the study
# Acquisitions that reduce sampled logits (aljax.strategies.bayesian): on the study's softmax regression,
# which has no dropout, every sample is equal and BALD, variation ratios and mean std are 0 everywhere.
# experiments/deep.py runs them on dropout CNNs.
SAMPLED = tuple(name for name in STRATEGIES if name in registry.SAMPLED)
QUERY_SIZE_STRATEGIES = ("margin", "entropy")
QUERY_SIZES = (1, 10, 50)
# (variant, base) pairs compared head to head (pool subsampling); a variant must resolve (aljax.strategies.resolve).
COMBINATOR_VARIANTS = (("subsample(least_confidence)", "least_confidence"),)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One pool/budget setting: n_initial random labels, then ``query_size`` per round up to budget.

    pool_size None = every training image that is not dev. at: label counts of the accuracy table;
    targets: accuracies for the labels-needed table.
    """

    name: str
    title: str
    dataset: str
    pool_size: int | None
    n_initial: int
    budget: int
    at: tuple[int, ...]
    targets: tuple[float, ...]
    query_size: int = 10
    dev_size: int = 1000
    phases: int = 3

    def config(self, strategy: str, query_size: int | None = None) -> Config:
        q = self.query_size if query_size is None else query_size
        rounds = (self.budget - self.n_initial) // q
        return Config(strategy=strategy, n_initial=self.n_initial, query_size=q, rounds=rounds,
                      initial="random", phases=min(self.phases, rounds))


SETTINGS = {
    "A": Setting("A", "MNIST, pool = first 4000 training images", "mnist", 4000, 10, 400,
                 (50, 100, 200, 400), (0.80, 0.85, 0.90)),
    "B": Setting("B", "MNIST, full pool (59 000 = 60 000 − 1000 dev)", "mnist", None, 20, 1000,
                 (50, 100, 200, 400, 1000), (0.80, 0.85, 0.90), phases=7),
    # Softmax regression tops out near 84 % on Fashion-MNIST with all labels: lower targets.
    "C": Setting("C", "Fashion-MNIST, pool = first 4000 training images", "fashion_mnist", 4000, 10, 400,
                 (50, 100, 200, 400), (0.70, 0.75, 0.80)),
}


def study_strategies() -> list[str]:
    """Every registered strategy except the auto-labeling orders and the sampled (Bayesian) acquisitions,
    the reference first."""
    return [REFERENCE] + [name for name in STRATEGIES if name not in (REFERENCE, *AUTO_LABEL, *SAMPLED)]


def command(setting: dict, pool_size: int, strategy: str, query_size: int, n_seeds: int, chunk: int) -> str:
    """The ``aljax run`` command that reruns one run of the study to the digit on the same kind of machine:
    the same program (a vmap over chunks of ``chunk`` seeds, i.e. ``--schedule lockstep``, with the
    setting's ``phases``), the same data and seeds. ``setting`` is a :class:`Setting` as a dict (as
    study.json stores it), ``pool_size`` the pool's rows."""
    sizes = Setting(**{k: tuple(v) if isinstance(v, list) else v for k, v in setting.items()}).config(
        REFERENCE, query_size)  # sizes and phases do not depend on the strategy (a placeholder may stand there)
    tag = re.sub(r"\W+", "_", strategy).strip("_")
    return shlex.join([
        "aljax", "run", "--dataset", setting["dataset"], "--protocol", "dev", "--pool-size", str(pool_size),
        "--dev-size", str(setting["dev_size"]), "--strategy", strategy, "--initial", "random",
        "--init", str(sizes.n_initial), "--query-size", str(sizes.query_size), "--budget", str(sizes.budget),
        "--phases", str(sizes.phases), "--seeds", str(n_seeds), "--schedule", "lockstep",
        "--chunk-size", str(min(chunk, n_seeds)), "--out", f"results/{setting['name']}-{tag}-q{query_size}"])


def provenance(r: dict, what: str, commands: list[str]) -> list[str]:
    """The lines under a report table (:func:`provenance.reproduce_lines`): the command(s) that reproduce
    it, the machine kind it ran on, and what may differ elsewhere."""
    kind = r.get("backend", "cpu" if " cpu " in r["machine"] else "?").upper()
    return reproduce_lines(what, commands, f"{kind} ({r['machine']})", elsewhere=(
        f"{DIGITS_MAY_DIFFER} (the CLI's defaults run continuous lanes). The run's metrics.csv holds float32 "
        "accuracies: round them to test-set counts (x 10 000) before comparing the last digit"))


def seed_keys(start: int, stop: int) -> jax.Array:
    """Typed keys (stop − start,) of seeds start..stop−1: ``fold_in(key(0), i)`` (independent of S)."""
    return seeds.seed_keys(0, np.arange(start, stop))


def run_seeds(data, config: Config, n_seeds: int, chunk: int, checkpoints: Path) -> dict:
    """Per-seed curves of one config: labels (R,), acc (S, R), initial (S, n_initial), timings.

    :func:`aljax.seeds.run_seeds`: one compiled program for all chunks; the last chunk is padded with
    extra seeds, then dropped; a bar on a terminal's stderr, a line per chunk otherwise. Each finished
    chunk is saved in ``checkpoints`` (:func:`aljax.store.save_chunk`); verified chunks found there are not
    rerun, so a killed study resumes where it stopped.
    """
    config.check_pool(int(np.asarray(data.pool.valid).sum()))
    chunk = min(chunk, n_seeds)
    n = seeds.n_chunks(n_seeds, chunk)
    done = [c for c in store.chunk_sizes(checkpoints) if c < n]  # verified chunks only: a damaged one reruns
    compile_s = 0.0
    if len(done) < n:
        (checkpoints / store.CHUNKS).mkdir(parents=True, exist_ok=True)
        if done:
            print(f"    resuming: {len(done)}/{n} chunks already in {checkpoints}", flush=True)
        progress = Progress(config.rounds)
        run = make_run(config, progress.hook)
        outputs = lambda state, info: {"acc": info.test_accuracy,  # noqa: E731
                                       "initial": state.order[:, : config.n_initial], "labels": info.n_labeled}
        t0 = time.perf_counter()
        compiled = seeds.compile_chunks(run, data, Hyper(), chunk, outputs)
        compile_s = time.perf_counter() - t0
        seeds.run_seeds(run, data, Hyper(), n_seeds, chunk_size=chunk, outputs=outputs, progress=progress,
                        skip=done, on_chunk=store.chunk_saver(checkpoints), compiled=compiled)
    result = store.load_chunks(checkpoints, n)
    return {
        "labels": result["labels"][0].tolist(),
        "acc": np.round(result["acc"].astype(np.float64), 6).tolist(),
        "initial": result["initial"].tolist(),
        "compile_s": round(compile_s, 2),
        "run_s": round(float(np.sum(result["seconds"])), 2),
    }


def cached_run(out: Path, setting: Setting, data, strategy: str, query_size: int, n_seeds: int,
               chunk: int, fresh: bool) -> dict:
    """:func:`run_seeds`, stored in ``out/runs`` and reused when the same run is stored there; its chunk
    checkpoints live in ``out/runs/<tag>.partial`` (with the spec they belong to) until the run is stored."""
    config = setting.config(strategy, query_size)
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{setting.name}_{strategy}_q{query_size}_s{n_seeds}")
    path = out / "runs" / f"{tag}.json"
    spec = {"setting": dataclasses.asdict(setting), "config": dataclasses.asdict(config), "seeds": n_seeds}
    spec = json.loads(json.dumps(spec))
    if path.exists() and not fresh:
        stored = json.loads(path.read_text())
        if stored["spec"] == spec:
            print(f"  {setting.name} {strategy} q={query_size}: reused {path}", flush=True)
            return stored
    checkpoints = out / "runs" / f"{tag}.partial"
    spec_file = checkpoints / "spec.json"
    if checkpoints.exists() and (fresh or not spec_file.exists() or json.loads(spec_file.read_text()) != [spec, chunk]):
        shutil.rmtree(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    atomic.write_json(spec_file, [spec, chunk])
    result = {"spec": spec, **run_seeds(data, config, n_seeds, chunk, checkpoints)}
    atomic.write_json(path, result, indent=None)
    shutil.rmtree(checkpoints)
    final = np.mean(np.asarray(result["acc"])[:, -1])
    print(f"  {setting.name} {strategy} q={query_size}: compile {result['compile_s']:.0f} s, "
          f"run {result['run_s']:.0f} s, mean final accuracy {final:.4f}", flush=True)
    return result


def curve_summary(run: dict, setting: Setting, reference: dict | None) -> dict:
    """Every summary number of one strategy's curves (paired against ``reference`` when given)."""
    labels, acc = np.asarray(run["labels"]), np.asarray(run["acc"])
    mean, low, high = mean_ci(acc)
    out = {
        "query_size": run["spec"]["config"]["query_size"],
        "labels": labels.tolist(),
        "curve": {"mean": mean.tolist(), "low": low.tolist(), "high": high.tolist()},
        "at": {str(n): summary(at_labels(labels, acc, n)) for n in setting.at},
        "reach": {f"{t:.2f}": reach_summary(labels, acc, t) for t in setting.targets},
        "auc": summary(auc(labels, acc)),
        "compile_s": run["compile_s"],
        "run_s": run["run_s"],
    }
    if reference is not None:
        ref = np.asarray(reference["acc"])
        out["vs_random"] = {
            "at": {str(n): paired(at_labels(labels, acc, n), at_labels(labels, ref, n)) for n in setting.at},
            "auc": paired(auc(labels, acc), auc(labels, ref)),
        }
    return out


def query_size_study(runs: dict, setting: Setting) -> dict:
    """Per strategy: accuracy at the label counts every query size visits, and the AUC up to the
    largest common count, each paired against the setting's own query size."""
    out = {}
    for strategy, by_size in runs.items():
        common = sorted(set.intersection(*(set(r["labels"]) for r in by_size.values())))
        upto, counts = common[-1], common[1:]
        base = by_size[setting.query_size]
        base_labels, base_acc = np.asarray(base["labels"]), np.asarray(base["acc"])
        out[strategy] = {"common_labels": counts, "auc_upto": upto, "sizes": {}}
        for q, run in by_size.items():
            labels, acc = np.asarray(run["labels"]), np.asarray(run["acc"])
            out[strategy]["sizes"][str(q)] = {
                "rounds": run["spec"]["config"]["rounds"],
                "at": {str(n): summary(at_labels(labels, acc, n)) for n in counts},
                "auc": summary(auc(labels, acc, upto)),
                "vs_base_auc": paired(auc(labels, acc, upto), auc(base_labels, base_acc, upto)),
                "compile_s": run["compile_s"],
                "run_s": run["run_s"],
            }
    return out


def run_setting(setting: Setting, raw: Raw, out: Path, strategies: list[str], n_seeds: int, chunk: int,
                query_sizes: tuple[int, ...], query_strategies: tuple[str, ...] = QUERY_SIZE_STRATEGIES,
                combinators: tuple[tuple[str, str], ...] = COMBINATOR_VARIANTS, fresh: bool = False) -> dict:
    """Run one setting and return its summary (JSON-ready); figures go to ``out``."""
    t0 = time.perf_counter()
    data = dev_data(raw, setting.pool_size, setting.dev_size)
    print(f"setting {setting.name}: {setting.title}; pool {data.pool.size}, {n_seeds} seeds", flush=True)
    runs = {s: cached_run(out, setting, data, s, setting.query_size, n_seeds, chunk, fresh) for s in strategies}
    sized = {}  # strategy -> query size -> run (only when query sizes are studied in this setting)
    for strategy in (s for s in query_strategies if s in strategies and query_sizes):
        sized[strategy] = {q: runs[strategy] if q == setting.query_size else
                           cached_run(out, setting, data, strategy, q, n_seeds, chunk, fresh)
                           for q in sorted({*query_sizes, setting.query_size})}
    variants = {}
    for variant, base in combinators:
        try:
            resolve(variant)
        except ValueError as err:
            print(f"  note: combinator variant {variant!r} skipped ({err})")
            continue
        if base in runs:
            variants[variant] = cached_run(out, setting, data, variant, setting.query_size, n_seeds, chunk, fresh)
    every = (list(runs.values()) + list(variants.values())
             + [r for by_size in sized.values() for q, r in by_size.items() if q != setting.query_size])
    paired_initial = all(r["initial"] == runs[REFERENCE]["initial"] for r in every)
    if not paired_initial:
        raise RuntimeError(f"setting {setting.name}: initial labels differ across strategies for the same seed")
    result = {
        "setting": dataclasses.asdict(setting),
        "pool_size": data.pool.size,
        "seeds": n_seeds,
        "seed_keys": f"jax.random.fold_in(jax.random.key(0), i) for i in 0..{n_seeds - 1}",
        "paired_initial_labels": paired_initial,
        "strategies": {s: curve_summary(r, setting, None if s == REFERENCE else runs[REFERENCE])
                       for s, r in runs.items()},
        "query_size": query_size_study(sized, setting),
        "combinators": [],
    }
    for variant, base in combinators:
        if variant not in variants:
            continue
        v, b = variants[variant], runs[base]
        result["combinators"].append({
            "variant": variant, "base": base,
            "at": {str(n): paired(at_labels(v["labels"], v["acc"], n), at_labels(b["labels"], b["acc"], n))
                   for n in setting.at},
            "auc": paired(auc(v["labels"], v["acc"]), auc(b["labels"], b["acc"])),
        })
    plot_curves({s: (r["labels"], np.asarray(r["acc"])) for s, r in runs.items()},
                out / f"{setting.name}_curves.png", title=f"{setting.name}: {setting.title} ({n_seeds} seeds)")
    ref = np.asarray(runs[REFERENCE]["acc"])
    plot_curves({s: (r["labels"], np.asarray(r["acc"]) - ref) for s, r in runs.items() if s != REFERENCE},
                out / f"{setting.name}_vs_random.png", title=f"{setting.name}: paired difference to random",
                ylabel="test accuracy − random (same seed)")
    if result["query_size"]:
        plot_curves({f"{s} q={q}": (r["labels"], np.asarray(r["acc"])) for s, by in sized.items() for q, r in by.items()},
                    out / f"{setting.name}_query_size.png", title=f"{setting.name}: query size")
    result["chunk"] = chunk  # lockstep: a vmap over chunks of this many seeds (command() names it)
    result["backend"] = jax.default_backend()
    result["machine"] = (f"{jax.device_count()} {jax.default_backend()} device(s), {os.cpu_count()} cores, load "
                         f"average {os.getloadavg()[0]:.1f} at the end of the setting")
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["compute_s"] = round(sum(r["compile_s"] + r["run_s"] for r in every), 1)
    return result


# ----------------------------------------------------------------------------- report


def pct(s: dict) -> str:
    """'83.1 [82.7, 83.5]' from a summary of accuracies (or accuracy differences, in points)."""
    return f"{100 * s['mean']:.1f} [{100 * s['low']:.1f}, {100 * s['high']:.1f}]"


def diff(p: dict) -> str:
    """A paired difference in accuracy points with its CI and the fraction of seeds won."""
    return f"{100 * p['mean']:+.2f} [{100 * p['low']:+.2f}, {100 * p['high']:+.2f}], wins {100 * p['wins']:.0f} %"


def verdict(p: dict) -> str:
    """'+' if the paired CI lies above 0, '−' below, '=' if it contains 0."""
    return "+" if p["low"] > 0 else "−" if p["high"] < 0 else "="


def setting_report(r: dict) -> list[str]:
    st = r["setting"]
    names = list(r["strategies"])
    at = [str(n) for n in st["at"]]
    lines = [
        f"## Setting {st['name']}: {st['title']}",
        "",
        f"Pool {r['pool_size']}, dev {st['dev_size']}, test 10 000; {st['n_initial']} random initial labels, "
        f"{st['query_size']} per round up to {st['budget']}; {r['seeds']} seeds ({r['seed_keys']}); "
        f"same initial labels per seed across strategies: {'verified' if r['paired_initial_labels'] else 'NO'}. "
        f"Compile + run time of its runs (as measured when each ran): {r['compute_s']:.0f} s; this "
        f"invocation's wall time {r['wall_s']:.0f} s (less when runs stored in runs/ were reused) on "
        f"{r['machine']}; times include compilation and grow when other jobs share the machine.",
        "",
        f"![curves]({st['name']}_curves.png) ![paired difference to random]({st['name']}_vs_random.png)",
        "",
        "Test accuracy (%) at fixed label counts, mean [95 % CI over seeds]:",
        "",
        "| strategy | " + " | ".join(at) + " | AUC (mean accuracy over the budget) |",
        "|---|" + "---|" * (len(at) + 1),
    ]
    lines += [f"| {s} | " + " | ".join(pct(v["at"][n]) for n in at) + f" | {pct(v['auc'])} |"
              for s, v in r["strategies"].items()]
    chunk = r.get("chunk", 8)  # a study.json from before the chunk was recorded ran with --chunk's default, 8
    run = lambda strategy, q=st["query_size"]: command(st, r["pool_size"], strategy, q, r["seeds"], chunk)  # noqa: E731
    lines += provenance(r, "a row (STRATEGY: the row's name, quoted in a shell when it has parentheses)",
                        [run("STRATEGY")])
    missing = [s for s in study_strategies() if s not in r["strategies"]]
    if missing:
        lines += ["", f"Not run in this setting (left out with `--strategies`): {', '.join(missing)}."]
    targets = list(r["strategies"][names[0]]["reach"])
    lines += [
        "",
        "Labels needed to first reach a test accuracy: mean [95 % CI] over the seeds that reach it within "
        "the budget (conditional on reaching it), and how many seeds never do:",
        "",
        "| strategy | " + " | ".join(f"{100 * float(t):.0f} %" for t in targets) + " |",
        "|---|" + "---|" * len(targets),
    ]
    for s, v in r["strategies"].items():
        cells = [(f"{x['mean']:.0f} [{x['low']:.0f}, {x['high']:.0f}]" if x["n"] > 1 else
                  f"{x['mean']:.0f}" if x["n"] == 1 else "—") + f" (never {x['never']}/{x['seeds']})"
                 for x in (v["reach"][t] for t in targets)]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "Reproduce: the runs of the first table (the same commands)."]
    lines += [
        "",
        "Paired against random over the same seeds: accuracy difference in points, mean [95 % CI], and the "
        "fraction of seeds where the strategy is strictly better:",
        "",
        "| strategy | " + " | ".join(at) + " | AUC | verdict per count (+ better, − worse, = CI contains 0) |",
        "|---|" + "---|" * (len(at) + 2),
    ]
    for s, v in r["strategies"].items():
        if "vs_random" in v:
            vs = v["vs_random"]
            lines.append(f"| {s} | " + " | ".join(diff(vs["at"][n]) for n in at) + f" | {diff(vs['auc'])} | "
                         + " ".join(verdict(vs["at"][n]) for n in at) + f" / AUC {verdict(vs['auc'])} |")
    lines += ["", "Reproduce: the runs of the first table (the same commands)."]
    for c in r["combinators"]:
        lines += ["", f"Pool subsampling: {c['variant']} minus {c['base']} (paired): "
                  + "; ".join(f"{n}: {diff(p)}" for n, p in c["at"].items()) + f"; AUC {diff(c['auc'])}."]
        lines += provenance(r, f"{c['variant']}", [run(c["variant"])])
    for s, q in r["query_size"].items():
        counts = [str(n) for n in q["common_labels"]]
        lines += [
            "",
            f"Query size, {s}: accuracy (%) at the label counts every size visits; AUC up to {q['auc_upto']} "
            f"labels, and its paired difference to query size {st['query_size']}:",
            "",
            "| query size | rounds | " + " | ".join(counts) + f" | AUC ≤ {q['auc_upto']} | vs q={st['query_size']} | compile + run (s) |",
            "|---|---|" + "---|" * (len(counts) + 3),
        ]
        lines += [f"| {size} | {v['rounds']} | " + " | ".join(pct(v["at"][n]) for n in counts)
                  + f" | {pct(v['auc'])} | {'—' if size == str(st['query_size']) else diff(v['vs_base_auc'])}"
                  + f" | {v['compile_s'] + v['run_s']:.0f} |"
                  for size, v in q["sizes"].items()]
        lines += provenance(r, "the rows, by query size", [run(s, int(size)) for size in q["sizes"]])
    if r["query_size"]:
        lines += ["", f"![query size]({st['name']}_query_size.png)"]
    lines += ["", "Time per strategy (s, compile + run): "
              + ", ".join(f"{s} {v['compile_s']:.0f} + {v['run_s']:.0f}" for s, v in r["strategies"].items()), ""]
    return lines


def write_report(results: dict, out: Path) -> Path:
    """report.md from the study.json content only (every number in it is in study.json)."""
    meta = results["meta"]
    lines = [
        "# Active-learning strategy study",
        "",
        f"Mode: {meta['mode']}. Model: softmax regression, TF1 Adam lr 0.1, patience 10 (aljax defaults). "
        f"Strategies: {', '.join(meta['strategies'])} (every registered strategy except the auto-labeling "
        f"{', '.join(meta['left_out'])} and the sampled acquisitions {', '.join(meta.get('sampled', []))}, which "
        "need a model with dropout or an ensemble: `make deep` runs them; a setting that ran fewer says so).",
        "",
    ]
    for name in sorted(results["settings"]):
        lines += setting_report(results["settings"][name])
    for note in meta["notes"]:
        lines.append(f"- {note}")
    return atomic.write_text(out / "report.md", "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- command line


def kept_settings(out: Path, mode: str, running: list[str]) -> dict:
    """The settings a previous invocation of the same ``mode`` stored in ``out/study.json`` and this
    one does not rerun: ``--settings B`` after ``--settings A`` keeps A in the report."""
    path = out / "study.json"
    stored = json.loads(path.read_text()) if path.exists() else {"meta": {"mode": None}, "settings": {}}
    if stored["meta"]["mode"] != mode:
        return {}
    return {name: r for name, r in stored["settings"].items() if name not in running}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 seeds, setting A, query sizes 10 and 50")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, help="default: A B C (quick: A)")
    parser.add_argument("--seeds", type=int, help="default 100 (quick: 16)")
    parser.add_argument("--chunk", type=int, default=8,
                        help="seeds per compiled call (default 8: on a 2-core CPU, 32 seeds at once ran 1.8x "
                             "slower per seed in setting A, as lockstep fits wait for the slowest seed)")
    parser.add_argument("--query-sizes", type=int, nargs="+", help="default 1 10 50 (quick: 10 50)")
    parser.add_argument("--strategies", nargs="+", help="default: every registered one but auto-labeling")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, help="default results/study (quick: results/study-quick)")
    parser.add_argument("--fresh", action="store_true", help="recompute runs already stored in OUT/runs")
    parser.add_argument("--no-variants", action="store_true",
                        help="leave out the pool-subsampling variants (e.g. to report the strategies run so far)")
    args = parser.parse_args(argv)
    settings = args.settings or (["A"] if args.quick else list(SETTINGS))
    n_seeds = args.seeds or (16 if args.quick else 100)
    query_sizes = tuple(args.query_sizes or ((10, 50) if args.quick else QUERY_SIZES))
    out = args.out or Path("results/study-quick" if args.quick else "results/study")
    strategies = study_strategies()
    if args.strategies:
        unknown = [s for s in args.strategies if s not in STRATEGIES]
        if unknown:
            print(f"error: unknown strategies {', '.join(unknown)}; registered: {', '.join(STRATEGIES)}", file=sys.stderr)
            return 2
        strategies = [REFERENCE] + [s for s in args.strategies if s != REFERENCE]
    if n_seeds < 2 or args.chunk < 1 or min(query_sizes) < 1:
        print("error: need --seeds >= 2 (for CIs), --chunk >= 1 and query sizes >= 1", file=sys.stderr)
        return 2
    try:  # load every dataset first: a missing one fails before hours of compute, not after
        raws = {name: load_dataset(SETTINGS[name].dataset, args.data_dir) for name in settings}
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    results = {
        "meta": {
            "mode": mode,
            "strategies": study_strategies(),
            "left_out": list(AUTO_LABEL),
            "sampled": list(SAMPLED),
            "notes": [],
        },
        "settings": kept_settings(out, mode, settings),
    }
    if 1 not in query_sizes and "A" in settings:
        results["meta"]["notes"].append("query size 1 left out in this mode (390 rounds: the slowest run)")
    for name in settings:
        results["settings"][name] = run_setting(SETTINGS[name], raws[name], out, strategies, n_seeds, args.chunk,
                                                query_sizes if name == "A" else (), fresh=args.fresh,
                                                combinators=() if args.no_variants else COMBINATOR_VARIANTS)
        atomic.write_text(out / "study.json", json.dumps(results, indent=1))  # after each setting: nothing is lost
        write_report(results, out)
    print(f"wrote {out / 'study.json'}, {out / 'report.md'} and figures", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
