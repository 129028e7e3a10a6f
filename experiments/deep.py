"""Deep Bayesian active learning on MNIST (``make deep``, ``make deep MODE=gpu``, ``make deep-quick``): the
protocols of Gal, Islam & Ghahramani 2017 and of BatchBALD (Kirsch, van Amersfoort & Gal 2019), as the
authors' released code runs them (docs/deep.md lists every point and its source).

* ``gal2017``: 20 balanced initial labels, 10 per round; random, BALD, variation ratios, max entropy, mean
  STD, EPIG; ``cnn_gal2017`` (the paper's text) trained as the released Keras scripts do (the model's
  recipe: 50 passes, no early stopping, the last weights, l2(3.5 / N) on the first dense kernel); BALD
  and co. score a fresh random 2000-row pool subset with 100 MC dropout samples each round.
* ``batchbald2019``: 20 balanced initial labels; acquisition sizes 10, 5, 40, 1; random, BALD (top-b),
  BatchBALD; ``cnn_batchbald2019`` on standardised inputs, test accuracy from the MC-averaged predictive
  (K = 100), trained as its recipe says (epochs of 5056 samples, patience 3 on 1024 dev images, best
  weights).
* sensitivity rows: Gal with the released scripts' network, and Gal as aljax ran it before.

Each (experiment, strategy, acquisition size) is a UNIT: ONE compiled program (:func:`aljax.loop.make_run`)
vmapped over seeds, saved to ``OUT/units/`` when it finishes; a rerun skips saved units whose settings
match, so ``--max-minutes`` splits a mode over several runs. Seed i uses the key ``fold_in(key(0), i)`` for
every strategy, so seed i starts from the same balanced initial labels and weights everywhere (checked and
recorded: ``paired_initial_labels``); comparisons are paired per seed.

Modes (every reduction is written into the report):

* ``--mode gpu``: 16 seeds, the published sizes (all 59 000 non-dev training images as the pool, the
  whole test set, the published networks and MC sample counts), to 300 (Gal) and 200 (BatchBALD) labels;
  meant for one GPU, under 15 minutes on an H200 by the measured rates;
* ``--mode cpu``: the 2-core CPU: 16 seeds of a dropout MLP on a 4000-image pool under Gal's protocol;
* ``--mode quick``: synthetic 8×8 images, a dropout MLP, a smoke test.

Outputs in ``--out`` (default ``results/deep-<mode>``): ``units/*.json`` (per-seed curves of each unit),
``deep_runs.json`` (all per-seed curves and every summary number), ``deep.json`` (summaries and mean
curves), ``report.md`` and ``<experiment>_q<size>.png`` (mean curves with 95 % CI bands).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aljax import recipes, seeds
from aljax.atomic import write_json, write_text
from aljax.compare import at_labels, auc, labels_to_reach, paired, summary
from aljax.data import Data, Split, dev_data, find_data_dir, load_dataset, make_pool, make_split
from aljax.fit import Hyper
from aljax.loop import Config, components
from aljax.plots import plot_curves
from provenance import DIGITS_MAY_DIFFER, machine, machine_words, reproduce_lines, script

NAMES = {"random": "Random", "bald": "BALD", "variation_ratios": "Var Ratios", "max_entropy": "Max Entropy",
         "mean_std": "Mean STD", "batchbald": "BatchBALD", "epig": "EPIG"}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One protocol (or one variant of it, a sensitivity row) at one mode's sizes. ``subset``: score a
    fresh random subset of that many pool rows per round (``subsample(...)``, Gal's released scripts),
    None: the whole pool. ``learning_rate`` and ``patience`` are the fit's traced hyper-parameters
    (``patience`` is unused by a ``keep=last`` fitter)."""

    name: str
    title: str
    model: str
    fitter: str
    strategies: tuple[str, ...]  # base names; ``samples`` are added from ``mc_samples``
    query_sizes: tuple[int, ...]
    budget: int
    mc_samples: int
    n_initial: int = 20
    configs: int = 1000  # BatchBALD's label configurations
    chunk: int | None = None  # pool rows per MC-sampled pass (the strategies' chunk=): K·chunk rows live
    forward_rows: int | None = None  # rows per eval-mode pass (Config.forward_rows)
    subset: int | None = None
    learning_rate: float = 1e-3
    patience: int = 3
    dev_size: int = 1000
    headline: bool = True  # False: a sensitivity row (a variant of a headline experiment)

    def strategy_spec(self, strategy: str) -> str:
        if strategy == "random":
            return strategy
        extra = f",configs={self.configs}" if strategy == "batchbald" else ""
        chunk = f",chunk={self.chunk}" if self.chunk else ""
        spec = f"{strategy}(samples={self.mc_samples}{extra}{chunk})"
        return spec if self.subset is None else f"subsample({spec},{self.subset})"

    def config(self, strategy: str, query_size: int, n_classes: int) -> Config:
        rounds = (self.budget - self.n_initial) // query_size
        return Config(strategy=self.strategy_spec(strategy), n_initial=self.n_initial, query_size=query_size,
                      rounds=rounds, initial="balanced", model=self.model, fitter=self.fitter, optimizer="adam",
                      n_classes=n_classes, forward_rows=self.forward_rows)

    def hyper(self) -> Hyper:
        return Hyper(learning_rate=jnp.float32(self.learning_rate), patience=jnp.int32(self.patience),
                     max_steps=jnp.int32(1_000_000))


@dataclasses.dataclass(frozen=True)
class Mode:
    seeds: int
    chunk: int  # seeds per compiled call
    pool_size: int | None  # None: every non-dev training image
    test_size: int | None  # None: the whole test set
    experiments: tuple[Experiment, ...]
    targets: tuple[float, ...] = (0.90, 0.95)
    at: tuple[int, ...] = ()
    reductions: tuple[str, ...] = ()
    synthetic: bool = False  # synthetic 8x8 images instead of MNIST (quick mode, tests)


GAL = ("random", "bald", "variation_ratios", "max_entropy", "mean_std", "epig")  # EPIG is not in the paper
KIRSCH = ("random", "bald", "batchbald")
# The fitters are the models' recipes (aljax.recipes), written out here so a report names what ran.
GAL_FITTER = recipes.GAL2017_FITTER
KIRSCH_FITTER = recipes.BATCHBALD2019_FITTER
# The protocol aljax's gal2017 ran before these recipes (constant decay 0.0035 on every parameter, ½·λ·Σθ²,
# epochs of 1024 points with patience on the dev split, best weights, 20 samples on the whole pool).
GAL_FITTER_OLD = "minibatch(batch_size=128,epoch_points=1024,max_epochs=50,reinit=true,weight_decay=0.0035)"
PAPER_NET = "cnn_gal2017"  # the paper's text: conv 4x4, pool 2, dense 128 (flax's LeCun-normal init)
SCRIPT_NET = "cnn_gal2017(kernel=3,pool=5,hidden=256,init=glorot)"  # the released scripts (BALD's: 256)
# standardised inputs, test accuracy from the MC-averaged predictive (K = 100, 256 test rows per pass)
KIRSCH_NET = "mc_averaged(standardized(cnn_batchbald2019),samples=100,chunk=256)"


def gal(name, title, model=PAPER_NET, fitter=GAL_FITTER, strategies=GAL, sizes=(10,), budget=300, mc=100,
        subset=2000, chunk=256, headline=False, **kw) -> Experiment:
    """A Gal 2017 experiment: by default the headline protocol (released-code training, paper-text network,
    ``subsample(...(samples=100),2000)``, 10 per round to 300 labels)."""
    return Experiment(name, title, model, fitter, strategies, sizes, budget, mc_samples=mc, subset=subset,
                      chunk=chunk, headline=headline, **kw)


def kirsch(name: str, sizes: tuple[int, ...]) -> Experiment:
    """BatchBALD's MNIST protocol at the published sizes, 20 -> 200 labels, at acquisition ``sizes``."""
    return Experiment(name, "Kirsch et al. 2019 (BatchBALD): 20 balanced labels to 200, standardised inputs, "
                      "MC-averaged test accuracy (K = 100)", KIRSCH_NET, KIRSCH_FITTER, KIRSCH, sizes, 200,
                      mc_samples=100, configs=10000, chunk=256, forward_rows=4096, dev_size=1024)


MODES = {
    # One H200: 16 paired seeds; units in the order they matter (headlines first), each saved when done.
    "gpu": Mode(
        seeds=16, chunk=16, pool_size=None, test_size=None,
        experiments=(
            gal("gal2017", "Gal et al. 2017, released-code protocol, paper-text network: 20 balanced labels, "
                "10 per round to 300", headline=True, forward_rows=4096),
            kirsch("batchbald2019", (10, 5, 40)),
            gal("gal2017_script_net", "sensitivity: Gal 2017 with the released scripts' network (3x3, pool 5, "
                "256 hidden, Glorot uniform)", model=SCRIPT_NET, strategies=("random", "bald"), forward_rows=4096),
            gal("gal2017_aljax_old", "sensitivity: Gal 2017 as aljax ran it before (constant decay on all "
                "parameters, patience on the dev split, 20 samples, whole pool)", fitter=GAL_FITTER_OLD,
                strategies=("random", "bald"), mc=20, subset=None, chunk=512, forward_rows=4096, patience=5),
            kirsch("batchbald2019_b1", (1,)),  # 180 rounds: the longest units, last
        ),
        at=(50, 100, 150, 200, 300),
    ),
    # The 2-core CPU: a dropout MLP on the first 4000 training images (the CNNs cannot give 16 seeds
    # an hour here), trained by its own recipe, acquiring as Gal's scripts do (a fresh 2000-row subset).
    "cpu": Mode(
        seeds=16, chunk=16, pool_size=4000, test_size=None,
        experiments=(
            gal("gal2017_mlp", "Gal 2017's acquisition on a dropout MLP (784-128-10, dropout 0.5), 4000-image "
                "pool: 20 balanced labels, 10 per round to 500", model="mlp(hidden=128,dropout=0.5)",
                fitter=recipes.RECIPES["mlp"]["fitter"], strategies=("random", "bald", "variation_ratios",
                "max_entropy", "mean_std"), budget=500, mc=20, subset=2000, chunk=None, headline=True),
        ),
        targets=(0.80, 0.85, 0.90),
        at=(50, 100, 200, 300, 500),
        reductions=(
            "a dropout MLP (784-128-10, dropout 0.5 on the hidden layer) trained by the mlp recipe (epochs of "
            "512 points in batches of 64, at most 30, patience 3 on the dev split, best weights, re-initialised "
            "every round; no weight decay) instead of the CNN and Gal's Keras fit: 16 seeds of the CNN do not "
            "fit in an hour on 2 shared cores",
            "pool = the first 4000 training images; dev = the last 1000; test = all 10 000 test images",
            "20 MC dropout samples per acquisition (Gal's scripts: 100), on a fresh 2000-row subset each round",
            "budget 500 labels (Gal: 1000); EPIG left out for time",
        ),
    ),
    "quick": Mode(
        seeds=2, chunk=2, pool_size=None, test_size=None,
        experiments=(
            gal("gal2017", "quick: synthetic 8x8 images, 3 classes", model="mlp(hidden=16,dropout=0.5)",
                fitter="minibatch(batch_size=16,epoch=passes,keep=last,max_epochs=3,reinit=true,weight_decay=3.5,"
                       "decay_per_label=true,decay_on=W1,decay_half=false)", strategies=GAL, sizes=(3,), budget=15,
                n_initial=6, mc=4, subset=40, chunk=None, headline=True, learning_rate=1e-2, dev_size=0),
            Experiment("batchbald2019", "quick: synthetic 8x8 images, 3 classes",
                       "mc_averaged(standardized(mlp(hidden=16,dropout=0.5),mean=0.0,std=2.0),samples=3)",
                       "minibatch(batch_size=16,epoch_points=32,max_epochs=3,reinit=true)", KIRSCH, (3,), 12,
                       n_initial=6, mc_samples=4, configs=20, learning_rate=1e-2, patience=2, dev_size=0),
        ),
        targets=(0.6, 0.8),
        at=(9, 12),
        synthetic=True,
        reductions=("synthetic data (3 Gaussian classes as 8x8 one-channel images), a dropout MLP instead of the "
                    "CNNs (they compile for ~25 s each here), 2 seeds: a smoke test",),
    ),
}

# ----------------------------------------------------------------------------- published numbers
#
# The counting rule of every table here: labels = ALL labels held when the model is fitted, the 20
# initial ones included; a seed's crossing is the first such count whose test accuracy is >= the
# target; we give the per-seed crossings' median, quartiles and mean (95 % CI), and the crossing of
# the mean curve (over seeds). Published numbers are converted to that rule where their own rule is
# known, and each says its rule, its source and its repeats.

# Gal et al. 2017 (arXiv:1703.02910), Table 1: "number of acquired images to get to model error of 10 %
# and 5 %" (90 % / 95 % accuracy) on MNIST, 3 repeats, read off the MEAN curve (per-seed crossings are
# not published). "Acquired" leaves out the 20 initial labels, so our rule adds 20. Values ending in 5
# (145, 255) are not on the 10-label grid: read off an interpolated or smoothed curve.
GAL_TABLE = {"random": (255, 835), "bald": (145, 335), "variation_ratios": (120, 295), "max_entropy": (165, 355),
             "mean_std": (230, 695)}
# BatchBALD (Kirsch et al. 2019), MNIST, 6 trials: 25/50/75 % quartiles of the per-trial points needed for
# 90 % / 95 % accuracy as the authors' notebook prints them (BlackHC/BatchBALD, notebooks/paper/
# visualizations.ipynb); it counts acquired + 20 − b points, so our rule adds b.
KIRSCH_TABLE = {("batchbald", 10): ((70, 90, 110), (190, 200, 230)), ("bald", 1): ((85, 96, 101), (197, 206, 226)),
                ("bald", 10): ((120, 120, 170), (250, 250, None)), ("batchbald", 5): ((85, 85, 100), (170, 185, 215)),
                ("batchbald", 40): ((100, 100, 140), (220, 260, 260))}

PUBLISHED_NOTES = [
    "Counting rule of every number in these tables: labels = all labels held at the fit, the 20 initial "
    "ones included; per seed, the first such count whose test accuracy reaches the target; reported as "
    "median (quartiles), mean [95 % CI] over the seeds that reach it (and how many never do), and the "
    "crossing of the mean curve.",
    "Gal et al. 2017 (arXiv:1703.02910), Table 1, 3 repeats, images ACQUIRED to reach 10 % / 5 % test error, "
    "read off the mean curve: " + "; ".join(f"{NAMES[s]} {a} / {b}" for s, (a, b) in GAL_TABLE.items())
    + ". Converted to our rule: + 20 initial labels, and compared with OUR MEAN CURVE's crossing (the only "
    "one it can be compared with); its per-seed spread is not published. Quoted from a re-implementation's "
    "README (the PDF is not searchable here); the Mean STD row is unverified.",
    "BatchBALD (Kirsch et al. 2019, arXiv:1906.08158), MNIST, 6 trials, 25/50/75 % quartiles of the per-trial "
    "points to reach 90 % / 95 % accuracy as the authors' notebook (BlackHC/BatchBALD, notebooks/paper/"
    "visualizations.ipynb) prints them, counted as acquired + 20 − b; converted to our rule by + b: "
    + "; ".join(f"{NAMES[s]} b={b}: {'/'.join(str(v + b) for v in r90)} / "
                f"{'/'.join('∞' if v is None else str(v + b) for v in r95)}"
                for (s, b), (r90, r95) in KIRSCH_TABLE.items())
    + " (∞: some trials never reached it). Random acquisition on MNIST is not among its stored runs.",
]
PROTOCOL_NOTES = [
    "Initial labels: 20, balanced (2 per class), random per seed and shared by every strategy for a seed "
    "(Config.initial='balanced'), as both papers.",
    "Gal 2017, training (the headline follows the released scripts, Riashat/Deep-Bayesian-Active-Learning, "
    "MC_Dropout_Keras/*_Q10_N1000*.py, because the paper's text does not state the schedule): the network "
    "re-initialised every round and trained by Keras' `fit` for a fixed number of epochs, each one pass over "
    "the labeled set in batches of 128 (⌈N/128⌉ steps), no early stopping, the last weights kept: "
    "`minibatch(epoch=passes,keep=last,max_epochs=50,batch_size=128)`. The BALD script runs 5 epochs where "
    "the others run 50; we run 50 for every function.",
    "Gal 2017, weight decay: `Dense(…, W_regularizer=l2(c / N))` with c = 3.5 and N the labeled count, rebuilt "
    "every round, on the first dense layer's kernel only; Keras' l2(λ) adds λ·Σw² (no ½): "
    "`weight_decay=3.5,decay_per_label=true,decay_on=Dense_0/kernel,decay_half=false`. The paper's text "
    "instead says the decay was optimised on a validation set; we follow the scripts.",
    "Gal 2017, acquisition: each round the scripts draw a fresh random subset of 2000 pool points and score "
    "it with 100 dropout passes, then take the top 10: `subsample(bald(samples=100),2000)`. The paper's text "
    "says 20 samples and does not mention the subset. (Our subsample scores the whole pool and masks all but "
    "the subset: the same choice, not the saving.)",
    "Gal 2017, network: the paper's text (conv 32 4x4, conv 32 4x4, max-pool 2, dropout 0.25, dense 128, "
    "dropout 0.5) is `cnn_gal2017`, the headline; the released scripts use 3x3 kernels, 5x5 pooling, 256 "
    "hidden units in the BALD script (128 in others) and Keras' Glorot-uniform init: "
    "`cnn_gal2017(kernel=3,pool=5,hidden=256,init=glorot)`, a sensitivity row. The headline keeps the paper's "
    "network because the paper is the statement of the experiment its Table 1 reports, and its training "
    "protocol from the scripts because the paper does not give one.",
    "Gal's scripts also differ from the paper in ways we do not copy: acquired points are not removed from "
    "the pool (duplicates can be acquired), and the Mean STD script's std is taken over a single value.",
    "BatchBALD (its stored run arguments, BlackHC/BatchBALD laaos_results/paper/mnist_*_k100_b10_*.py; "
    "src/train_model.py): batch 64, epochs of 5056 samples, at most 30, early stopping with patience 3 on "
    "validation accuracy over 1024 images (evaluated without dropout), the best weights restored; Adam; "
    "100 inference samples for acquisition; TEST accuracy from the MC-averaged predictive with "
    "min(100, K) samples (`SamplerModel`): here `mc_averaged(…,samples=100)`. Inputs standardised with "
    "MNIST's mean and std (0.1307, 0.3081): `standardized(…)`.",
    "`mc_averaged` sets only the model's test-time predictive (`Model.predict`, which test accuracy reads); "
    "its `apply` is the inner network's, so the dev split (early stopping) is scored with dropout off, as "
    "BatchBALD's code does, and non-Bayesian strategies read the plain eval-mode logits.",
    "EPIG (Bickford Smith et al. 2023) is in neither paper; it runs beside Gal's functions.",
]


# ----------------------------------------------------------------------------- data


def synthetic_images(seed: int = 0, n_pool: int = 96, n_eval: int = 96, c: int = 3, side: int = 8) -> Data:
    """3 Gaussian classes drawn as side×side one-channel images (quick mode)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.5, (c, side, side, 1)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, c, n)
        return (means[y] + rng.normal(0, 1, (n, side, side, 1))).astype(np.float32), y

    x, y = draw(n_pool)
    ex, ey = draw(n_eval)
    split = make_split(ex, ey)
    return Data(pool=make_pool(x, y), eval=split, test=Split(split.x, split.y))


def load(mode_cfg: Mode, dev_size: int) -> tuple[Data, int]:
    """The mode's data for an experiment's dev split size."""
    if mode_cfg.synthetic:
        return synthetic_images(), 3
    raw = load_dataset("mnist", *find_data_dir())
    data = dev_data(raw, pool_size=mode_cfg.pool_size, dev_size=dev_size)
    if mode_cfg.test_size is not None:
        data = dataclasses.replace(data, test=Split(data.test.x[: mode_cfg.test_size], data.test.y[: mode_cfg.test_size]))
    return data, raw.n_classes


# ----------------------------------------------------------------------------- runs


def stepped_at_once(schedule: str, chunk: int, plan_lanes: int) -> int:
    """Seeds a chunk of ``chunk`` seeds steps at once: continuous lanes (the plan's, capped at the chunk),
    a lockstep vmap of the whole chunk, or one seed at a time (sequential)."""
    return {"continuous": min(plan_lanes, chunk), "lockstep": chunk}.get(schedule, 1)


def run_config(data: Data, config: Config, hyper: Hyper, n_seeds: int, chunk: int) -> dict:
    """Per-seed curves of one config: ONE compiled program for all chunks of seeds, with the backend's
    schedule for the model (:func:`aljax.seeds.plan`: on a CPU, a CNN's seeds run one after another)."""
    config.check_pool(int(np.asarray(data.pool.valid).sum()))
    schedule = seeds.plan(convolutional=bool(components(config).model.convolutional)).schedule
    run = seeds.make_program(config, schedule=schedule)
    outputs = lambda state, info: {"acc": info.test_accuracy, "labels": info.n_labeled,  # noqa: E731
                                   "initial": state.order[:, : config.n_initial]}
    chunk = min(chunk, n_seeds)
    lanes = stepped_at_once(schedule, chunk, seeds.plan().lanes)
    t0 = time.perf_counter()
    compiled = seeds.compile_chunks(run, data, hyper, chunk, outputs)
    compile_s = time.perf_counter() - t0
    result = seeds.run_seeds(run, data, hyper, n_seeds, chunk_size=chunk, outputs=outputs, compiled=compiled)
    return {
        "labels": np.asarray(result["labels"][0]).tolist(),
        "acc": np.round(np.asarray(result["acc"], np.float64), 5).tolist(),
        "initial": np.asarray(result["initial"]).tolist(),
        "schedule": schedule,
        "chunk": chunk,
        "lanes": lanes,
        "compile_s": round(compile_s, 2),
        "run_s": round(time.perf_counter() - t0 - compile_s, 2),
    }


def unit_path(out: Path, exp: Experiment, q: int, strategy: str) -> Path:
    return out / "units" / f"{exp.name}_q{q}_{strategy}.json"


def unit_key(exp: Experiment, q: int, strategy: str, mode_cfg: Mode, n_classes: int) -> dict:
    """What a saved unit must match to be reused: everything that changes its numbers."""
    config = exp.config(strategy, q, n_classes)
    return {"config": repr(config), "seeds": mode_cfg.seeds, "pool_size": mode_cfg.pool_size,
            "test_size": mode_cfg.test_size, "dev_size": exp.dev_size, "learning_rate": exp.learning_rate,
            "patience": exp.patience}


def load_unit(path: Path, key: dict) -> dict | None:
    """A finished unit whose key matches, or None (absent, unreadable or from other settings)."""
    try:
        unit = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return unit if unit.get("key") == key else None


def crossings(labels: np.ndarray, acc: np.ndarray, target: float) -> dict:
    """The counting rule: per-seed first crossings (median, quartiles; mean, 95 % CI over the seeds that
    reach ``target``; how many never do) and the mean curve's first crossing (NaN if it never does)."""
    values = labels_to_reach(labels, acc, target)
    ok = values[~np.isnan(values)]
    q = np.percentile(ok, [25, 50, 75]).tolist() if ok.size else [float("nan")] * 3
    mean_curve = labels_to_reach(labels, np.mean(acc, axis=0)[None], target)[0]
    return {"q1": q[0], "median": q[1], "q3": q[2], **summary(ok), "never": int(np.isnan(values).sum()),
            "mean_curve": float(mean_curve)}


def summarise(runs: dict[str, dict], mode_cfg: Mode, budget: int) -> dict:
    out, ref = {}, runs.get("random")
    for name, r in runs.items():
        labels, acc = np.asarray(r["labels"]), np.asarray(r["acc"])
        entry = {
            "reach": {f"{t:.2f}": crossings(labels, acc, t) for t in mode_cfg.targets},
            "at": {str(n): summary(at_labels(labels, acc, n)) for n in mode_cfg.at if n in labels and n <= budget},
            "auc": summary(auc(labels, acc)),
            "final": summary(acc[:, -1]),
            "compile_s": r["compile_s"], "run_s": r["run_s"],
        }
        if ref is not None and name != "random":
            entry["auc_vs_random"] = paired(auc(labels, acc), auc(ref["labels"], ref["acc"]))
            entry["final_vs_random"] = paired(acc[:, -1], np.asarray(ref["acc"])[:, -1])
        out[name] = entry
    return out


def units(mode_cfg: Mode, only: str | None):
    """Every (experiment, query size, strategy) of the mode, in run order: each experiment's sizes in
    the order listed (the headline size first), each size's strategies."""
    for exp in mode_cfg.experiments:
        if only and exp.name != only:
            continue
        for q in exp.query_sizes:
            for strategy in exp.strategies:
                yield exp, q, strategy


def run_units(mode_cfg: Mode, out: Path, only: str | None, deadline: float, log, head: str) -> tuple[dict, int]:
    """Run every unit not already saved in ``out/units/`` (each saved as soon as it finishes, with
    ``head``, the commit this invocation started from), until ``deadline`` (time.perf_counter seconds)
    has passed; return (the finished units by (experiment, q, strategy), the number left)."""
    done, left, cache = {}, 0, {}
    for exp, q, strategy in units(mode_cfg, only):
        if exp.dev_size not in cache:
            cache[exp.dev_size] = load(mode_cfg, exp.dev_size)
        data, n_classes = cache[exp.dev_size]
        key = unit_key(exp, q, strategy, mode_cfg, n_classes)
        path = unit_path(out, exp, q, strategy)
        unit = load_unit(path, key)
        if unit is None and time.perf_counter() > deadline:
            left += 1
            continue
        if unit is None:
            t = time.perf_counter()
            unit = {"key": key, "commit": head, "device": jax.devices()[0].device_kind, "machine": machine(),
                    **run_config(data, exp.config(strategy, q, n_classes), exp.hyper(), mode_cfg.seeds, mode_cfg.chunk)}
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, unit)
            log(f"{exp.name} q={q} {strategy}: final acc {np.mean(unit['acc'], axis=0)[-1]:.4f} "
                f"({time.perf_counter() - t:.0f}s, compile {unit['compile_s']}s)")
        done[exp.name, q, strategy] = unit
    return done, left


def assemble(done: dict, mode_cfg: Mode, only: str | None) -> dict:
    """The results of the finished units: per experiment and size, the curves and their summaries."""
    experiments = {}
    for exp in mode_cfg.experiments:
        sizes = {}
        for q in exp.query_sizes:
            runs = {s: done[exp.name, q, s] for s in exp.strategies if (exp.name, q, s) in done}
            if not runs:
                continue
            initial = [tuple(map(tuple, r["initial"])) for r in runs.values()]
            sizes[str(q)] = {
                "strategies": {s: exp.strategy_spec(s) for s in runs},
                "paired_initial_labels": all(i == initial[0] for i in initial),
                "runs": {s: {k: r[k] for k in ("labels", "acc")} for s, r in runs.items()},
                "summary": summarise(runs, mode_cfg, exp.budget),
                "seconds": round(sum(r["compile_s"] + r["run_s"] for r in runs.values()), 1),
                # how each unit's seeds ran and where (units saved before these were recorded: None)
                "seeds_ran": {s: {"schedule": r.get("schedule"), "chunk": r.get("chunk"), "lanes": r.get("lanes"),
                                  "machine": r.get("machine")} for s, r in runs.items()},
            }
        if sizes:
            experiments[exp.name] = {"name": exp.name, "title": exp.title, "model": exp.model, "fitter": exp.fitter,
                                     "budget": exp.budget, "mc_samples": exp.mc_samples, "subset": exp.subset,
                                     "learning_rate": exp.learning_rate, "patience": exp.patience,
                                     "dev_size": exp.dev_size, "headline": exp.headline, "sizes": sizes}
    return experiments


# ----------------------------------------------------------------------------- report


def fmt_reach(r: dict) -> str:
    curve = "never" if np.isnan(r["mean_curve"]) else f"{r['mean_curve']:.0f}"
    if r["n"] == 0:
        return f"never ({r['never']}/{r['never']}); curve {curve}"
    never = f", {r['never']} never" if r["never"] else ""
    ci = "" if np.isnan(r["low"]) else f" [{r['low']:.0f}, {r['high']:.0f}]"
    return f"{r['median']:.0f} ({r['q1']:.0f}–{r['q3']:.0f}); mean {r['mean']:.0f}{ci}{never}; curve {curve}"


def fmt_acc(s: dict) -> str:
    ci = "" if np.isnan(s["low"]) else f" [{100 * s['low']:.1f}, {100 * s['high']:.1f}]"
    return f"{100 * s['mean']:.1f}{ci}"


def fmt_diff(d: dict | None) -> str:
    if d is None:
        return ""
    ci = "" if np.isnan(d["low"]) else f" [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    return f"{100 * d['mean']:+.1f}{ci}"


# ----------------------------------------------------------------------------- provenance of a table

# Flags that change where units are saved and when an invocation stops starting units, not a number.
NOT_RESULTS = ("--out", "--max-minutes")
ELSEWHERE = (f"{DIGITS_MAY_DIFFER}; a CPU and a GPU differ more: on a GPU float32 products use TF32 and XLA sums "
             "in another order (aljax.precision), and the schedule follows the machine (aljax.seeds.plan: on a CPU "
             "a CNN's seeds run one after another), so a seed's curve moves while the distributions over seeds agree")
SCHEDULE_WORDS = {
    "continuous": "continuous lanes, {lanes} seeds stepped at once (a seed whose fit stopped goes on to its next "
                  "round while the others fit)",
    "lockstep": "lockstep, one vmap of the chunk's {chunk} seeds (every fit waits for the chunk's slowest seed)",
    "sequential": "sequential, the chunk's seeds one after another in one program",
}


def rerun_command(results: dict, mode: str) -> str:
    """The command that reproduces the report's tables: the invocation's own (``results["command"]``)
    without ``--out`` and ``--max-minutes``, which change where units are saved and when an invocation
    stops, not the numbers (a rerun resumes the saved units, or computes them again elsewhere). A JSON
    from before the command was recorded: the mode's command, with ``--seeds`` when it was changed."""
    if "command" not in results:
        default = MODES.get(mode)
        seeds_flag = [] if default is not None and results["seeds"] == default.seeds else ["--seeds", str(results["seeds"])]
        return script("deep.py", ["--mode", mode, *seeds_flag])
    words, kept, skip = shlex.split(results["command"])[2:], [], False
    for word in words:
        if skip or word in NOT_RESULTS or word.startswith(tuple(f"{flag}=" for flag in NOT_RESULTS)):
            skip = not skip and word in NOT_RESULTS
            continue
        kept.append(word)
    return script("deep.py", kept)


def machine_kind(results: dict) -> str:
    """The kind of machine (``CPU``, ``GPU``) in words: ``results["machine"]``, or for a JSON from before
    it was recorded, the kind read off the ``device`` string (``"cpu (cpu, 1 device; 2 CPU cores)"``)."""
    if "machine" in results:
        return machine_words(results["machine"])
    platform = re.search(r"\((\w+)", results["device"])
    return f"{platform.group(1).upper() if platform else '?'} ({results['device']})"


def seeds_how(size: dict, exp: dict, n_seeds: int, mode_cfg: Mode, kind: str) -> str:
    """How a table's units ran their seeds: chunk size and schedule, per group of strategies that ran
    alike. Units saved before these were recorded: derived from the mode's chunk size and
    :func:`aljax.seeds.plan` for the machine kind and model (and said so)."""
    from aljax.models import make_model

    groups, derived = {}, False
    for strategy in size["strategies"]:
        ran = (size.get("seeds_ran") or {}).get(strategy) or {}
        schedule, chunk, lanes = ran.get("schedule"), ran.get("chunk"), ran.get("lanes")
        if schedule is None or chunk is None or lanes is None:
            derived = True
            chunk = min(mode_cfg.chunk, n_seeds)
            plan = seeds.plan(kind.lower(), convolutional=bool(make_model(exp["model"], 10).convolutional))
            schedule = schedule or plan.schedule
            lanes = stepped_at_once(schedule, chunk, plan.lanes)
        chunks = -(-n_seeds // chunk)
        words = f"{chunks} chunk{'s' if chunks > 1 else ''} of {chunk} seeds, " + SCHEDULE_WORDS.get(
            schedule, schedule).format(lanes=lanes, chunk=chunk)
        groups.setdefault(words, []).append(size["strategies"][strategy])
    ran = "; ".join(words if len(groups) == 1 else f"{', '.join(f'`{s}`' for s in names)}: {words}"
                    for words, names in groups.items())
    return (f"each strategy is a unit, one compiled program over its {n_seeds} seeds (seed i's key is "
            f"fold_in(key(0), i) in every unit): {ran}"
            + (" (not recorded in this JSON: derived from the mode's chunk size and aljax.seeds.plan for the "
               "machine kind and model)" if derived else "")
            + "; `--out` and `--max-minutes` change where units are saved and when a run stops, not the numbers")


def table_provenance(results: dict, exp: dict, q: str, mode: str, mode_cfg: Mode) -> list[str]:
    """The lines under one table: the command, how its seeds ran, the machine kind(s) its units ran on
    (recorded per unit; else the report's), what may differ elsewhere."""
    size = results["experiments"][exp["name"]]["sizes"][q]
    machines = [ran.get("machine") for ran in (size.get("seeds_ran") or {}).values()]
    ran_on = ("; ".join(sorted({machine_words(m) for m in machines})) if machines and all(machines)
              else machine_kind(results))
    kind = ran_on.split(" ", 1)[0]
    return reproduce_lines(f"this table ({exp['name']}, acquisition size {q})", [rerun_command(results, mode)],
                           ran_on, how=seeds_how(size, exp, results["seeds"], mode_cfg, kind), elsewhere=ELSEWHERE)


def ordered(summary: dict, experiment: str, mode_cfg: Mode) -> dict:
    """A size's per-strategy summaries in the order of the experiment's strategies (the JSON stores keys
    sorted), so a report renders the same from the results in memory and from the JSON written."""
    order = next((e.strategies for e in mode_cfg.experiments if e.name == experiment), ())
    rank = {name: i for i, name in enumerate(order)}
    return dict(sorted(summary.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def report(results: dict, mode: str, mode_cfg: Mode, out: Path) -> str:
    lines = [f"# Deep Bayesian active learning on MNIST — `--mode {mode}`", "",
             f"{mode_cfg.seeds} paired seeds per strategy (seed i: the same balanced initial labels and initial "
             "weights for every strategy); accuracies as mean [Student-t 95 % CI] over seeds. Labels to reach a "
             "target: median (quartiles) of the per-seed first crossings; their mean [95 % CI] over the seeds "
             "that reach it; and the mean curve's first crossing. Differences to random are paired per seed. "
             f"Generated by `{results.get('command', script('deep.py', ['--mode', mode]))}` "
             f"({results['seconds'] / 60:.1f} min in "
             f"this invocation, {results['unit_seconds'] / 60:.1f} min of units in all) on {results['device']}, "
             f"commit {results['commit']} (units computed at {', '.join(results['unit_commits'])}), report written "
             f"{results['finished']}.", ""]
    if results["left"]:
        lines += [f"**Incomplete: {results['left']} units not yet run; rerun the same command to resume.**", ""]
    if mode_cfg.reductions:
        lines += ["## Reductions from the published protocols (this mode)", ""]
        lines += [f"- {r}" for r in mode_cfg.reductions] + [""]
    for exp in results["experiments"].values():
        kind = "" if exp["headline"] else " (sensitivity row)"
        subset = "the whole pool" if exp["subset"] is None else f"a fresh random {exp['subset']}-row subset each round"
        lines += [f"## {exp['title']}{kind}", "", f"Model `{exp['model']}`, fitter `{exp['fitter']}`, Adam "
                  f"{exp['learning_rate']:g}, patience {exp['patience']}, dev split {exp['dev_size']}, "
                  f"{exp['mc_samples']} MC dropout samples on {subset}.", ""]
        for q, size in sorted(exp["sizes"].items(), key=lambda item: int(item[0])):
            summ = ordered(size["summary"], exp["name"], mode_cfg)
            targets = sorted(next(iter(summ.values()))["reach"], key=float)
            ats = sorted(next(iter(summ.values()))["at"], key=int)
            lines += [f"### Acquisition size {q}", "",
                      f"![curves]({exp_figure(exp, q, out).name})", "",
                      f"paired initial labels across strategies: {size['paired_initial_labels']}; "
                      f"{size['seconds']:.0f} s (compile included)", "",
                      "| strategy | " + " | ".join(f"labels to {100 * float(t):.0f} %" for t in targets)
                      + " | " + " | ".join(f"acc @ {n}" for n in ats) + " | AUC (mean acc) | AUC − random | "
                      "final − random | published, labels to 90 % / 95 % (our rule) |",
                      "|---|" + "---|" * (len(targets) + len(ats) + 4)]
            for name, s in summ.items():
                lines.append(f"| {size['strategies'][name]} | " + " | ".join(fmt_reach(s["reach"][t]) for t in targets)
                             + " | " + " | ".join(fmt_acc(s["at"][n]) for n in ats)
                             + f" | {fmt_acc(s['auc'])} | {fmt_diff(s.get('auc_vs_random'))} | "
                             f"{fmt_diff(s.get('final_vs_random'))} | {published(exp['name'], name, int(q), exp['model'])} |")
            lines += table_provenance(results, exp, q, mode, mode_cfg) + [""]
    lines += ["## Published numbers and the counting rule", ""] + [f"- {n}" for n in PUBLISHED_NOTES] + [""]
    lines += ["## Protocol: what we follow and where it differs", ""] + [f"- {n}" for n in PROTOCOL_NOTES] + [""]
    return "\n".join(lines)


def published(experiment: str, strategy: str, q: int, model: str = "cnn") -> str:
    """The published labels-to-90 % / 95 % of a strategy in our counting rule (Gal: Table 1 + 20, a mean
    curve's crossing over 3 repeats; BatchBALD: the notebook's per-trial quartiles + b over 6 trials), or
    '—' (see the Published numbers section for sources and rules); none beside a model that is not a
    published CNN (the cpu mode's MLP)."""
    if "cnn_" not in model and model != "cnn":
        return "— (published for the CNNs only)"
    if experiment.startswith("gal2017") and q == 10 and strategy in GAL_TABLE:
        a, b = GAL_TABLE[strategy]
        return f"{a + 20} / {b + 20} (mean curve, 3 repeats)"
    if experiment.startswith("batchbald2019") and (strategy, q) in KIRSCH_TABLE:
        r90, r95 = KIRSCH_TABLE[strategy, q]
        fmt = lambda lo, m, hi: f"{m + q} ({lo + q}–{'∞' if hi is None else hi + q})"  # noqa: E731
        return f"{fmt(*r90)} / {fmt(*r95)} (per trial, 6 trials)"
    return "—"


def exp_figure(exp: dict, q: str, out: Path) -> Path:
    return out / f"{exp['name']}_q{q}.png"


def figures(results: dict, out: Path) -> None:
    for exp in results["experiments"].values():
        for q, size in exp["sizes"].items():
            curves = {size["strategies"][s]: (np.asarray(r["labels"]), 100 * np.asarray(r["acc"]))
                      for s, r in size["runs"].items()}
            plot_curves(curves, exp_figure(exp, q, out), title=f"{exp['title']} (acquisition size {q})",
                        ylabel="test accuracy (%)", bounds=(0, 100))


def compact(results: dict) -> dict:
    """The JSON committed under docs/: summaries and mean curves, not per-seed curves."""
    slim = json.loads(json.dumps(results))
    for exp in slim["experiments"].values():
        for size in exp["sizes"].values():
            size["mean_curves"] = {s: {"labels": r["labels"], "acc": np.round(np.mean(r["acc"], axis=0), 4).tolist()}
                                   for s, r in size.pop("runs").items()}
    return slim


def commit() -> str:
    """The checkout's commit (short), with ``+dirty`` for uncommitted changes; ``unknown`` outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", choices=sorted({e.name for m in MODES.values() for e in m.experiments}),
                        default=None, help="run one experiment")
    parser.add_argument("--seeds", type=int, default=None, help="override the mode's seed count")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new unit after this many minutes; rerun the same command to resume")
    args = parser.parse_args(argv)
    mode_cfg = MODES[args.mode]
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error(f"--seeds must be at least 1, got {args.seeds}")
        mode_cfg = dataclasses.replace(mode_cfg, seeds=args.seeds, chunk=min(mode_cfg.chunk, args.seeds))
    out = args.out or Path("results") / f"deep-{args.mode}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    deadline = t0 + 60 * args.max_minutes if args.max_minutes is not None else float("inf")
    log = lambda msg: print(f"[{time.perf_counter() - t0:7.0f}s] {msg}", flush=True)  # noqa: E731
    head = commit()
    done, left = run_units(mode_cfg, out, args.only, deadline, log, head)
    results = {"mode": args.mode, "device": f"{jax.devices()[0].device_kind} ({jax.devices()[0].platform}, "
               f"{jax.device_count()} device; {os.cpu_count()} CPU cores)", "machine": machine(),
               "command": script("deep.py", sys.argv[1:] if argv is None else argv), "commit": head,
               "unit_commits": sorted({u.get("commit", "unrecorded") for u in done.values()}),
               "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": mode_cfg.seeds, "left": left,
               "seconds": time.perf_counter() - t0,
               "unit_seconds": sum(u["compile_s"] + u["run_s"] for u in done.values()),
               "experiments": assemble(done, mode_cfg, args.only)}
    write_json(out / "deep_runs.json", results)
    write_json(out / "deep.json", compact(results))
    figures(results, out)
    write_text(out / "report.md", report(results, args.mode, mode_cfg, out))
    log(f"wrote {out}/report.md" + (f"; {left} units left: rerun the same command to resume" if left else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
