"""The researcher's command line: ``aljax run | list | plot | fetch | reproduce | label`` (also ``python -m aljax``).

Every subcommand is added by a *registrar* ``register(subparsers) -> None`` in :data:`REGISTRARS`;
each parser it adds sets ``func=handler`` with ``handler(args) -> exit status``. Bad input is a
:class:`CliError` (or a ``DataError`` / ``StoreError``): one line on stderr, exit status 2, and
every check runs before any compilation and before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import math
import os
import re
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np

import aljax
from aljax import atomic, fetch, interrupt, manifest, recipes, seeds, store, tracking
from aljax.data import DATASET_FORMS, DATASETS, PROTOCOLS, DataError, Raw, find_data_dir, load_dataset
from aljax.labeling import cli as label_cli
from aljax.config import INITIAL, ORACLES, Config, components
from aljax.fit import FITTERS, Hyper
from aljax.optim import check_optimizer
from aljax.round import columns
from aljax.round_metrics import RESERVED, MetricError
from aljax.spec import SpecError, check as check_spec, domains, settings_of, unknown
from aljax.store import StoreError
from aljax.models import check_model, output_shape
from aljax.strategies import is_stochastic, resolve as resolve_strategy, traits as strategy_traits
from aljax.strategies.registry import trial as trial_strategy

REPO_ROOT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    """Bad command-line input. The message is one line and says how to fix it."""


# ----------------------------------------------------------------------------- run settings

# Settings that are not Config / Hyper fields: key -> (default, type, help).
RUN_SETTINGS = {
    "dataset": ("mnist", str, "dataset name (`aljax list`)"),
    "protocol": ("dev", str, "seed: the article's (stop and report on 400 test images); dev: honest"),
    "pool_size": (4000, int, "pool = the first POOL_SIZE training images"),
    "dev_size": (1000, int, "dev protocol: early stopping on the last DEV_SIZE training images"),
    "test_size": (400, int, "seed protocol: stop and report on the first TEST_SIZE test images"),
    "budget": (400, int, "labels after the last round; rounds = (budget - init) / query_size"),
    "seeds": (10, int, "number of seeds (a vmap axis); more seeds on a finished run extend it"),
    "seed": (0, int, "base seed; seed i uses fold_in(key(seed), i)"),
    "chunk_size": (None, int, "seeds per compiled call; each finished chunk is checkpointed; default by "
                   f"backend, {seeds.describe_plans()}; a run keeps the chunk size it started with"),
    "schedule": (None, str, "continuous (a seed whose fit stopped goes on to its next round while the others "
                 "fit), lockstep (a chunk's fits wait for its slowest seed) or sequential (a chunk's seeds one "
                 "after another); default by backend and model (see --chunk-size); a run keeps the schedule "
                 "it started with"),
}
FLAG_ALIASES = {"n_initial": ["--init"]}
DERIVED = {"rounds"}  # Config fields computed from other settings
# The command line's own defaults where they differ from Config's: Config keeps the article's
# initial="first" (its reproduction uses it); many seeds need random initial sets to differ.
CLI_DEFAULTS = {"initial": None, "metrics": None}  # initial None: resolved by default_initial(); metrics None:
# none, left out of config.toml, so folders written before metrics existed still match


def default_initial(protocol: str) -> str:
    """``first`` (pool order) under the article's ``seed`` protocol, else ``random``."""
    return "first" if protocol == "seed" else "random"


# Strategies and combinators that draw random numbers (the others are deterministic given the labels).
def field_help(field: dataclasses.Field) -> str:
    """A Config / Hyper field's help text (its ``metadata["help"]``), or its name."""
    return field.metadata.get("help") or field.name.replace("_", " ")


def config_fields() -> dict[str, tuple[object, type]]:
    """Config fields settable from the command line: name -> (default, type)."""
    hints = typing.get_type_hints(Config)
    out = {}
    for f in dataclasses.fields(Config):
        if f.name in DERIVED:
            continue
        hint = hints[f.name]
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
        base = base if isinstance(base, type) else str  # metrics: a comma-separated string here
        default = None if f.name == "n_classes" else CLI_DEFAULTS.get(f.name, f.default)
        out[f.name] = (default, base)
    return out


def hyper_fields() -> dict[str, tuple[object, type]]:
    """Hyper fields: name -> (default as a Python number, type)."""
    defaults = Hyper()
    values = {f.name: np.asarray(getattr(defaults, f.name)) for f in dataclasses.fields(Hyper)}
    return {k: (float(str(v)), float) if v.dtype.kind == "f" else (int(v), int) for k, v in values.items()}


def all_settings() -> dict[str, tuple[object, type]]:
    """Every run setting (the keys of a run's config.toml): name -> (default, type)."""
    run = {k: (d, t) for k, (d, t, _) in RUN_SETTINGS.items()}
    return run | config_fields() | hyper_fields()




def resolve(args: argparse.Namespace) -> tuple[dict, dict[str, str]]:
    """(settings, sources): defaults, then the model's recipe (:mod:`aljax.recipes`, for the backend),
    then the --config file, then flags given on the command line; ``sources[key]`` says which gave
    each setting (``default``, ``recipe <model>``, ``config <file>``, ``flag``)."""
    defaults = {k: d for k, (d, _) in all_settings().items()}
    given = {}
    if args.config is not None:
        given = {k: (v, f"config {args.config}") for k, v in read_config_file(Path(args.config)).items()}
    given |= {k: (v, "flag") for k, v in vars(args).items() if k in defaults and v is not None}
    model = given.get("model", (defaults["model"],))[0]
    try:
        owner, values = recipes.recipe(model)
    except ValueError as err:
        raise CliError(str(err)) from None
    import jax

    values = recipes.for_backend(values, jax.default_backend())
    check_types(values, f"model {owner!r}'s recipe")
    settings, sources = dict(defaults), dict.fromkeys(defaults, "default")
    settings |= values
    sources |= dict.fromkeys(values, f"recipe {owner}")
    settings |= {k: v for k, (v, _) in given.items()}
    sources |= {k: source for k, (_, source) in given.items()}
    if settings["initial"] is None:
        settings["initial"] = default_initial(settings["protocol"])
    return settings, sources


def read_config_file(path: Path) -> dict:
    try:
        table = store.read_toml(path)
    except FileNotFoundError:
        raise CliError(f"config file {path} not found") from None
    except (OSError, ValueError) as err:
        raise CliError(f"config file {path} is not valid TOML ({err})") from None
    check_types(table, f"config file {path}")
    return table


def check_types(table: dict, where: str) -> None:
    """One-line :class:`CliError` for a key of ``table`` that is no run setting or a value of the wrong
    type (an int is a valid float); ``where`` names the source (a config file, a model's recipe)."""
    types = all_settings()
    for key, value in table.items():
        if key not in types:
            raise CliError(f"{where}: {unknown('key', key, types)}")
        expected = types[key][1]
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            if not (expected is float and isinstance(value, int) and not isinstance(value, bool)):
                raise CliError(f"{where}: {key} must be {expected.__name__}, got {value!r}")


def resolve_plan(settings: dict, out: Path, force: bool = False, convolutional: bool = False) -> None:
    """Fill ``chunk_size`` and ``schedule`` when neither a flag nor --config gave them: from the run
    already in ``out`` (a run keeps its plan; a run from before schedules existed stays lockstep),
    else from the backend's plan for the model (:func:`aljax.seeds.plan`)."""
    old = {}
    if not force and (out / store.CONFIG).is_file():
        try:
            old = store.read_toml(out / store.CONFIG)
        except (OSError, ValueError):
            old = {}
    default = seeds.plan(convolutional=convolutional)
    if settings["chunk_size"] is None:
        settings["chunk_size"] = old.get("chunk_size", default.chunk_size)
    if settings["schedule"] is None and not old:
        settings["schedule"] = default.schedule
    elif settings["schedule"] is None:
        settings["schedule"] = old.get("schedule")  # None (left out of config.toml): lockstep


# Run settings that count something: each must be at least 1 (None: its default, where it has one).
COUNTS = ("seeds", "chunk_size", "query_size", "n_initial", "pool_size", "dev_size", "test_size", "budget",
          "phases", "forward_rows", "capacity", "n_classes", "patience", "max_steps")
SEED_LIMIT = 2**32  # jax.random.key(seed) keeps the low 32 bits: seed 2**32 is seed 0


def check(settings: dict) -> int:
    """Validate the settings that need no data (names and the settings inside specs, counts, budget,
    capacity, hyper-parameters, whether the seeds can differ); return the number of rounds."""
    try:
        resolve_strategy(settings["strategy"])  # a registry name with settings, a combinator or module:function
        check_model(settings["model"])
        check_spec(FITTERS, settings["fitter"], "fitter")
        check_optimizer(settings["optimizer"])
    except ValueError as err:
        raise CliError(str(err)) from None
    if settings["schedule"] not in (None, *seeds.SCHEDULES):
        raise CliError(unknown("schedule", settings["schedule"], seeds.SCHEDULES))
    if settings["protocol"] not in PROTOCOLS:
        raise CliError(unknown("protocol", settings["protocol"], PROTOCOLS))
    for key, valid in (("initial", INITIAL), ("oracle", ORACLES)):
        if settings[key] not in valid:
            raise CliError(unknown(key, settings[key], valid))
    if settings["dataset"] not in DATASETS and not settings["dataset"].startswith(("idx:", "tfds:")) \
            and ":" not in settings["dataset"]:  # package.module:function, checked when loaded
        raise CliError(unknown("dataset", settings["dataset"], DATASET_FORMS))
    for key in COUNTS:
        if settings[key] is not None and settings[key] < 1:
            raise CliError(f"--{key.replace('_', '-')} must be at least 1, got {settings[key]}")
    if not 0 <= settings["seed"] < SEED_LIMIT:
        raise CliError(f"--seed must be in [0, {SEED_LIMIT}) (a PRNG key keeps 32 bits), got {settings['seed']}")
    lr = settings["learning_rate"]
    if not (math.isfinite(lr) and 0 < lr <= float(np.finfo(np.float32).max)):
        raise CliError(f"--learning-rate must be a positive number (a float32), got {lr}")
    if settings["seeds"] > 1 and settings["initial"] == "first" and not is_stochastic(settings["strategy"]):
        raise CliError(f"the {settings['seeds']} seeds would be identical (initial labels = the first rows, and "
                       f"{settings['strategy']!r} is declared deterministic); pass --initial random (or kmeans), or "
                       "--seeds 1 (or declare a strategy that draws from its key with stochastic=True)")
    n_init, query, budget = settings["n_initial"], settings["query_size"], settings["budget"]
    if n_init > budget:
        raise CliError(f"initial labels ({n_init}) exceed the budget ({budget}); lower --init or raise --budget")
    rounds, rest = divmod(budget - n_init, query)
    if rest:
        lo, hi = n_init + rounds * query, n_init + (rounds + 1) * query
        raise CliError(f"budget {budget} is not {n_init} initial + whole rounds of {query}; use --budget {lo} or {hi}")
    if settings["capacity"] is not None and settings["capacity"] < budget:
        raise CliError(f"--capacity {settings['capacity']} is below the budget ({budget} labels): the label buffer "
                       "must hold every label; raise --capacity or leave it out")
    if not 1 <= settings["phases"] <= max(rounds, 1):
        raise CliError(f"--phases must be between 1 and the number of rounds ({rounds}), got {settings['phases']}")
    return rounds


def build(settings: dict, rounds: int) -> tuple[Config, Hyper]:
    """The static Config and traced Hyper of fully resolved settings."""
    try:
        config = Config(**{k: settings[k] for k in config_fields()}, rounds=rounds)
        hyper = Hyper(**{k: np.asarray(settings[k], getattr(Hyper(), k).dtype) for k in hyper_fields()})
    except (ValueError, TypeError) as err:
        raise CliError(str(err)) from None
    return config, hyper


def make_data(settings: dict, raw: Raw):
    """The protocol's :class:`aljax.data.Data`, given the settings its function accepts."""
    protocol = PROTOCOLS[settings["protocol"]]
    kwargs = {k: settings[k] for k in inspect.signature(protocol).parameters if k in settings}
    for key, rows, split in (("pool_size", len(raw.train_x), "training"), ("test_size", len(raw.test_x), "test")):
        if key in kwargs and kwargs[key] > rows:
            raise CliError(f"--{key.replace('_', '-')} {kwargs[key]} exceeds the dataset's {rows} {split} images; "
                           f"use at most {rows}")
    try:
        return protocol(raw, **kwargs)
    except ValueError as err:
        raise CliError(str(err)) from None


def check_pool(config: Config, n_pool: int) -> None:
    if config.query_size > n_pool:
        raise CliError(f"query size {config.query_size} exceeds the pool of {n_pool}; lower --query-size")
    if config.budget > n_pool:
        raise CliError(f"budget of {config.budget} labels exceeds the pool of {n_pool}; lower --budget or raise --pool-size")


# ----------------------------------------------------------------------------- aljax run

INT32_MAX = 2**31 - 1  # the program counts (steps, rows, labels) in int32
MAX_SEEDS_ENV = "ALJAX_MAX_SEEDS"
MAX_SEEDS = 1_000_000  # seeds of one run, unless $ALJAX_MAX_SEEDS says otherwise


def check_caps(settings: dict) -> None:
    """Every integer setting but ``seed`` (a PRNG seed, checked by :func:`check`) within int32 (the
    program's counters: steps, patience, rows, labels) and ``seeds`` within the cap (:data:`MAX_SEEDS`,
    overridden by ``$ALJAX_MAX_SEEDS``): a number beyond them is one line, not a hang or an overflow."""
    for key, (_, kind) in all_settings().items():
        value = settings.get(key)
        if key != "seed" and kind is int and isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT32_MAX:
            shown = value if len(str(value)) <= 20 else f"a {len(str(abs(value)))}-digit number"
            raise CliError(f"{key.replace('_', '-')} = {shown} is beyond {INT32_MAX}, the largest count the program "
                           f"holds (int32)")
    try:
        cap = int(os.environ.get(MAX_SEEDS_ENV) or MAX_SEEDS)
    except ValueError:
        raise CliError(f"{MAX_SEEDS_ENV} must be a whole number, got {os.environ[MAX_SEEDS_ENV]!r}") from None
    if settings["seeds"] > cap:
        raise CliError(f"{settings['seeds']} seeds is more than the cap of {cap}; run fewer (a run can be extended "
                       f"later), or raise the cap with {MAX_SEEDS_ENV}={settings['seeds']}")


def chunk_outputs(state, info) -> dict:
    """What a chunk brings back to the host: every per-round metric (built-ins and plug-ins,
    :func:`aljax.round.columns`), the acquisition order and labels."""
    return {**columns(info), "order": state.order, "targets": state.targets}


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def cmd_run(args: argparse.Namespace) -> int:
    settings, sources = resolve(args)
    check_caps(settings)
    rounds = check(settings)
    data_dir, how = find_data_dir(args.data_dir)
    raw = load_dataset(settings["dataset"], data_dir, how)
    if settings["n_classes"] is None:
        settings["n_classes"] = raw.n_classes
    elif settings["n_classes"] < raw.n_classes:
        raise CliError(f"--n-classes {settings['n_classes']} is smaller than the dataset's {raw.n_classes} classes "
                       f"(labels 0..{raw.n_classes - 1}); drop --n-classes or pass {raw.n_classes}")
    config, hyper = build(settings, rounds)
    data = make_data(settings, raw)
    check_pool(config, int(np.asarray(data.pool.valid).sum()))
    open_tracker = None
    if getattr(args, "tracker", None):
        try:
            open_tracker = tracking.tracker_opener(args.tracker)
        except tracking.TrackerError as err:
            raise CliError(str(err)) from None
    model, sample_shape = components(config).model, data.pool.x.shape[1:]
    try:
        output_shape(model, sample_shape)  # traces the model once (computes nothing)
    except Exception as err:  # e.g. a kernel larger than the image: a shape error from inside the model
        text = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise CliError(f"model {settings['model']!r} cannot run on samples of shape {tuple(sample_shape)} ({text}); "
                       "check its settings against the data (e.g. kernel and pool sizes)") from None
    rows = min(16, int(np.asarray(data.pool.valid).sum()))
    try:  # out-of-tree strategies: one eager call on a few pool rows, before anything compiles
        trial_strategy(settings["strategy"], model, data.pool.x[:rows], data.pool.y[:rows], config.query_size)
    except ValueError as err:
        raise CliError(str(err)) from None
    if strategy_traits(resolve_strategy(settings["strategy"]))["needs_samples"] and not model.dropout:
        raise CliError(f"strategy {settings['strategy']!r} reduces MC dropout samples or ensemble members, but model "
                       f"{settings['model']!r} has neither, so its scores are 0 everywhere (it is not declared dropout=True); "
                       "pass a model with dropout (e.g. --model 'mlp(dropout=0.5)' or cnn_gal2017) or an ensemble(...)")
    resolve_plan(settings, Path(args.out), args.force, bool(model.convolutional))

    out = Path(args.out)
    store.check_run(out, settings, force=args.force)  # writes nothing
    say = (lambda *a, **k: None) if args.quiet else print
    if not args.force and store.is_finished(out) and store.read_toml(out / store.CONFIG) == store_view(settings):
        say(f"{out} already holds this finished run (every file verified); pass --force to recompute it")
        return 0
    # Chunk c always holds seeds c*chunk .. (c+1)*chunk-1: a run keeps the chunk size of its first chunk,
    # so resuming or extending it (more --seeds) computes exactly the seeds an uninterrupted run would.
    # Only verified chunks count (store.chunk_sizes): a damaged or missing one is computed again.
    sizes = {} if args.force or not out.is_dir() else store.chunk_sizes(out)
    chunk = sizes.get(0) or min(settings["chunk_size"], settings["seeds"])
    n_chunks = seeds.n_chunks(settings["seeds"], chunk)
    kept = lambda c: int((seeds.chunk_seeds(c, chunk) < settings["seeds"]).sum())  # noqa: E731
    done = [c for c, n in sizes.items() if c < n_chunks and n == kept(c)]
    pending = [c for c in range(n_chunks) if c not in done]

    if pending:
        import jax

        from aljax.progress import Progress

        progress = Progress(config.rounds, quiet=args.quiet, chunk_size=chunk, total_chunks=n_chunks)
        run = seeds.make_program(config, progress.hook, schedule=settings["schedule"] or "lockstep")
        t0 = time.perf_counter()
        try:
            compiled = seeds.compile_chunks(run, data, hyper, chunk, chunk_outputs)
        except MetricError as err:  # raised while tracing: nothing has run or been written
            raise CliError(str(err)) from None
        compile_s = time.perf_counter() - t0
        fits = seeds.fitting_chunk(compiled, chunk)
        if fits is not None:
            shared, per_seed = seeds.memory_needed(compiled, chunk)
            device = jax.devices()[0].platform
            deep = not config.forward_rows and not config.model.startswith("softmax_regression")
            rows = " or --forward-rows 500 (eval passes in chunks of rows)" if deep else ""
            advice = f"use --chunk-size {fits}{rows}" if fits else f"use a smaller pool or budget{rows}"
            raise CliError(f"a chunk of {chunk} seeds needs about {gigabytes(shared + per_seed * chunk)}, more than "
                           f"{seeds.SAFETY:.0%} of the {gigabytes(seeds.memory_available())} free on the {device}; "
                           f"{advice}")
    try:
        store.open_run(out, settings, force=args.force)
        store.write(out, store.SOURCES, atomic.write_text, store.to_toml({k: sources[k] for k in store_view(settings)}))
        say(f"# resolved config ({out / store.CONFIG}, where each came from: {out / store.SOURCES}); "
            f"rounds = {config.rounds}")
        say(store.to_toml(settings), end="")
        from_recipe = [k for k in store_view(settings) if sources[k].startswith("recipe")]
        if from_recipe:
            say(f"# from the {sources[from_recipe[0]]}: {', '.join(from_recipe)}")
        if done:
            say(f"resuming: {len(done)}/{n_chunks} chunks already in {out / store.CHUNKS}")
        if pending:
            store.write(out, store.ENVIRONMENT, atomic.write_json, store.environment())
            store.add_timing(out, "compile_s", compile_s)
            on_chunk = refuse_degenerate(store.chunk_saver(out), settings["strategy"])
            tracker = open_tracker() if open_tracker is not None else None
            try:
                seeds.run_seeds(run, data, hyper, settings["seeds"], seed=settings["seed"], chunk_size=chunk,
                                outputs=chunk_outputs, progress=progress, skip=done, compiled=compiled,
                                on_chunk=on_chunk if tracker is None else tracking.on_chunk(tracker, then=on_chunk))
            finally:
                getattr(tracker, "close", lambda: None)()
        elif damaged := store.damaged_finals(out):
            say(f"rebuilding {', '.join(damaged)} from the verified chunks")
        finish(out, settings, n_chunks, say)
    except OSError as err:  # a write failed (full disk, quota, read-only): what is on disk is whole
        why = err.strerror or type(err).__name__
        raise StoreError(f"cannot write to {out} ({why}); finished chunks are kept: free some space (or make it "
                         f"writable) and rerun the same command to resume") from None
    return 0


def refuse_degenerate(on_chunk, strategy: str):
    """``on_chunk`` (a :func:`aljax.seeds.run_seeds` hook), called only for a chunk in which no round took
    a row its strategy scored NaN or ±inf (``RoundInfo.nonfinite_picks``): such rows were taken in pool
    order, not by the strategy, so the run stops with a one-line :class:`CliError` naming the strategy,
    the round and the seed, and the chunk is not saved (a rerun recomputes it)."""

    def checked(index: int, seed_ids: np.ndarray, result: dict, seconds: float) -> None:
        picks = np.asarray(result["nonfinite_picks"])  # (seeds, rounds + 1)
        if picks.any():
            s, r = np.argwhere(picks)[0]
            raise CliError(f"strategy {strategy!r} scored {picks[s, r]} of the rows it picked in round {r} (seed "
                           f"{seed_ids[s]}) NaN or infinite, so they were taken in pool order, not by the strategy; "
                           "fix its scores or its settings (e.g. a subsample smaller than --query-size)")
        on_chunk(index, seed_ids, result, seconds)

    return checked


def store_view(settings: dict) -> dict:
    """The settings as they read back from config.toml (None values left out)."""
    return {k: v for k, v in settings.items() if v is not None}


def finish(out: Path, settings: dict, n_chunks: int, say) -> None:
    """Assemble the checkpoints into the final files; ``metrics.csv`` goes last."""
    chunks = store.load_chunks(out, n_chunks)
    seed_ids = chunks["seed"]
    metrics = {k: v for k, v in chunks.items() if k not in RESERVED}  # built-ins, then the plug-ins' columns
    store.write(out, store.ORDERS, atomic.write_npz, order=chunks["order"], targets=chunks["targets"], seed=seed_ids)
    seconds = [float(s) for s in chunks["seconds"]]
    store.add_timing(out, "chunk_s", seconds, append=False)
    store.add_timing(out, "run_s", sum(seconds), append=False)
    table = report({out.name: metrics}, out / store.FIGURE, title=f"{settings['strategy']} on {settings['dataset']}")
    manifest.add(out, out / store.FIGURE)
    store.write(out, store.SUMMARY, atomic.write_text, table)
    store.write(out, store.METRICS, atomic.write_text, store.metrics_csv(seed_ids, metrics))
    say(table, end="")
    say(f"results in {out}")


def report(runs: dict[str, dict[str, np.ndarray]], png: Path, title: str = "",
           metric: str = "test_accuracy", heading: str = "", pairs: dict[str, dict] | None = None,
           baseline: str = "") -> str:
    """Plot the runs' curves on one figure (``png``) and return a markdown table of their final values
    (under ``heading`` if given). ``pairs``: each other run's :func:`aljax.compare.paired_runs` against
    the run named ``baseline``, drawn as a second panel and tabled below."""
    from aljax.metrics import BOUNDS, mean_ci
    from aljax.plots import plot_curves

    curves = {name: (m["n_labeled"][0], m[metric]) for name, m in runs.items()}
    differences = {name: (curves[name][0], p["difference"]) for name, p in (pairs or {}).items()}
    plot_curves(curves, png, title=title, ylabel=metric.replace("_", " "), bounds=BOUNDS.get(metric),
                differences=differences, baseline=baseline)
    lines = [heading, ""] if heading else []
    lines += [f"| run | seeds | labels | final {metric} (mean [95 % CI]) | mean over the curve |",
              "|---|---|---|---|---|"]
    for name, (labels, values) in curves.items():
        mean, low, high = mean_ci(values[:, -1], bounds=BOUNDS.get(metric))
        area = values.mean(axis=1).mean()
        lines.append(f"| {name} | {values.shape[0]} | {int(labels[-1])} | {mean:.4f} [{low:.4f}, {high:.4f}] | {area:.4f} |")
    if pairs:
        lines += ["", f"Paired difference against {baseline} (seed by seed, on the seeds both runs hold; 95 % CI; "
                  "wins: the share of seeds on which the run is higher):", "",
                  f"| run | paired seeds | final {metric} − baseline | wins | mean over the curve − baseline | wins |",
                  "|---|---|---|---|---|---|"]
        for name, p in pairs.items():
            final, curve = p["final"], p["curve"]
            lines.append(f"| {name} | {final['n']} | {final['mean']:+.4f} [{final['low']:+.4f}, {final['high']:+.4f}] | "
                         f"{final['wins']:.0%} | {curve['mean']:+.4f} [{curve['low']:+.4f}, {curve['high']:+.4f}] | "
                         f"{curve['wins']:.0%} |")
    return "\n".join(lines) + "\n"


def register_run(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run an active-learning experiment over many seeds",
        formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=argparse.SUPPRESS,
        description="Run one AL experiment (one compiled program for all chunks of seeds) and store it in --out.\n"
                    "Settings: defaults < --config FILE.toml < flags. The resolved config is printed and saved\n"
                    "as OUT/config.toml. Rerunning the same command resumes an interrupted run; the same\n"
                    "command with more --seeds extends a finished one (only the new seeds are computed).\n"
                    "--initial defaults to random (first under --protocol seed). Bad input: one line on\n"
                    "stderr, exit status 2, nothing written. Ctrl-C: exit status 130, finished chunks kept.",
        epilog="examples:\n"
               "  aljax run --dataset mnist --strategy margin --init 10 --query-size 10 --budget 400 \\\n"
               "            --seeds 100 --protocol dev --out results/margin\n"
               "  aljax run --config results/margin/config.toml --strategy entropy --out results/entropy\n"
               "  aljax run --strategy 'subsample(least_confidence,500)' --seeds 20 --out results/sub\n"
               "  aljax run --protocol seed --strategy least_confidence --seeds 1 --out results/article\n"
               "  aljax run --dataset idx:/data/my_idx --data-dir /big/disk/data --out results/mine\n")
    p.add_argument("--config", default=None, metavar="FILE.toml", help="load settings (keys as in OUT/config.toml)")
    p.add_argument("--out", required=True, help="results folder (created; resumed if it holds this run)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the named datasets (default: $ALJAX_DATA, else the checkout's data/ "
                        "inside the repository, else $XDG_DATA_HOME/aljax or ~/.local/share/aljax)")
    p.add_argument("--force", action="store_true", default=False, help="overwrite a different run in --out")
    p.add_argument("--quiet", action="store_true", default=False, help="no progress, config or table output")
    p.add_argument("--tracker", default=None, metavar="NAME:ARG",
                   help="also send each finished chunk's per-round metrics to an experiment tracker: "
                        "tensorboard:DIR writes TensorBoard event files into DIR (needs tensorboardX: pip install "
                        "'aljax[tracking]'); rows of chunks computed earlier are not sent again")
    types = all_settings()
    for name, (default, _, text) in RUN_SETTINGS.items():
        shown = "" if default is None else f" (default: {default})"
        p.add_argument(f"--{name.replace('_', '-')}", type=types[name][1], help=f"{text}{shown}")
    fields = {f.name: f for cls in (Config, Hyper) for f in dataclasses.fields(cls)}
    for name, (default, kind) in (config_fields() | hyper_fields()).items():
        flags = FLAG_ALIASES.get(name, []) + [f"--{name.replace('_', '-')}"]
        if name == "initial":
            default = "random; first under --protocol seed"
        text = field_help(fields[name]) + ("" if default is None else f" (default: {default})")
        p.add_argument(*flags, dest=name, type=kind, metavar=name.upper(), help=text.replace("%", "%%"))
    p.set_defaults(func=cmd_run)


# ----------------------------------------------------------------------------- aljax list


def first_sentence(obj) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = re.sub(r"-\n\s*", "-", (inspect.getdoc(obj) or "").split("\n\n")[0])  # "relu-\ndropout"
    text = " ".join(paragraph.split()).replace("``", "")
    # "et al. 2020", "e.g. x" and "i.e. y" do not end a sentence
    return re.split(r"(?<!\bal)(?<!e\.g)(?<!i\.e)\. ", text)[0].rstrip(".") + "."


# Where the code keeps its registries: (heading, module, attribute, how a name is written).
REGISTRIES = [
    ("strategies", "aljax.strategies", "STRATEGIES", "{}"),
    ("combinators (wrap any strategy: e.g. subsample(margin,500))", "aljax.strategies", "COMBINATORS", "{}(...)"),
    ("models", "aljax.models", "MODELS", "{}"),
    ("fitters", "aljax.fit", "FITTERS", "{}"),
    ("optimizers", "aljax.optim", "OPTIMIZERS", "{}"),
    ("protocols", "aljax.data", "PROTOCOLS", "{}"),
    ("metrics (--metrics a,b; per round, in metrics.csv)", "aljax.round_metrics", "METRICS", "{}"),
    ("learning-rate schedules by round (--lr-schedule)", "aljax.round_metrics", "LR_SCHEDULES", "{}"),
]


def registries() -> list[tuple[str, dict[str, str]]]:
    """Every registry the code has, as (heading, {name: one-line description})."""
    out = []
    for heading, module, attr, form in REGISTRIES:
        registry = getattr(importlib.import_module(module), attr)
        out.append((heading, {form.format(name): first_sentence(fn) + settings_text(fn)
                              + (recipe_text(name) if attr == "MODELS" else "") for name, fn in registry.items()}))
    return out


def recipe_text(model: str) -> str:
    """`` Recipe: k=v, ...`` of a registered model (:mod:`aljax.recipes`): the run settings ``aljax run``
    uses for it where neither a flag nor --config gives them."""
    if model in recipes.WRAPPERS:
        return " Recipe: its inner model's."
    _, values = recipes.recipe(model)
    return f" Recipe: {recipes.describe(values)}." if values else ""


def settings_text(entry) -> str:
    """`` Settings: k=v (domain), ...`` of a registry entry's keyword settings (a model, fitter or
    strategy), each with its declared domain (:func:`aljax.spec.domains`)."""
    score = getattr(entry, "score", entry)  # a StatefulStrategy's settings are its score's
    accepted = settings_of(score)
    if not accepted or not callable(score):
        return ""
    declared = domains(score)
    shown = [f"{k}={v}" + (f" ({declared[k].describe()})" if declared[k].domains else "") for k, v in accepted.items()]
    return " Settings: " + ", ".join(shown) + "."


def cmd_list(args: argparse.Namespace) -> int:
    data_dir, _ = find_data_dir(args.data_dir)
    sections = registries()
    datasets = {}
    for name, text in DATASET_FORMS.items():
        where = data_dir / name
        mark = "" if name not in DATASETS else (" [present]" if where.is_dir() else f" [not in {where}]")
        datasets[name] = text + mark
    sections.insert(2, ("datasets", datasets))
    width = max(len(name) for _, section in sections for name in section) + 2
    for heading, section in sections:
        print(f"{heading}:")
        for name, text in section.items():
            print(f"  {name:{width}} {text}")
    return 0


def register_list(subparsers) -> None:
    p = subparsers.add_parser("list", help="list strategies, combinators, datasets, models, protocols",
                              description="List every registry by name: query strategies, strategy combinators,\n"
                                          "datasets (and whether their files are present), models, optimizers, protocols.",
                              epilog="examples:\n  aljax list\n  aljax list --data-dir /big/disk/data\n"
                                     "  aljax list | grep -A20 combinators",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder holding the datasets (default: as for `aljax run`)")
    p.set_defaults(func=cmd_list)


# ----------------------------------------------------------------------------- aljax plot

# Settings whose differences are not reported: the chunk size and schedule do not change what a curve
# means, and the strategy is what a comparison varies (every run is named by it).
NOT_COMPARED = {"chunk_size", "schedule", "strategy"}


def read_run(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(settings from config.toml, metrics) of a finished run folder."""
    metrics = store.read_metrics(folder)
    try:
        settings = store.read_toml(folder / store.CONFIG)
    except (OSError, ValueError):
        settings = {}
    return settings, metrics


def find_baseline(wanted: str, dirs: list[Path], names: list[str]) -> int:
    """The index of the run that ``--baseline`` names: its folder, its folder's name, or its legend name."""
    path = Path(wanted)
    found = [i for i, d in enumerate(dirs) if path.exists() and d.resolve() == path.resolve()]
    found = found or [i for i, (d, name) in enumerate(zip(dirs, names)) if wanted in (name, d.name)]
    if len(found) != 1:
        listed = ", ".join(repr(n) for n in names)
        what = "names several runs" if found else "is no run folder and names none of the runs"
        raise CliError(f"--baseline {wanted!r} {what} ({listed}); pass a run's folder")
    return found[0]


def pair_with_baseline(runs: dict[str, tuple[dict, dict]], baseline: str, metric: str) -> dict[str, dict]:
    """Each other run's :func:`aljax.compare.paired_runs` against ``baseline`` on the seeds both hold;
    a one-line CliError for a run that is not paired with it (another base seed, fewer than 2 shared
    seeds, other label counts)."""
    from aljax import compare

    base_settings, base = runs[baseline]
    pairs = {}
    for name, (settings, metrics) in runs.items():
        if name == baseline:
            continue
        unpaired = f"{name!r} is not paired with the baseline {baseline!r}"
        if settings.get("seed", 0) != base_settings.get("seed", 0):
            raise CliError(f"{unpaired}: their base seeds differ (--seed {settings.get('seed', 0)} and "
                           f"{base_settings.get('seed', 0)}), so seed i starts from other labels; rerun one with "
                           "the other's --seed")
        rows, base_rows = compare.common_seeds(metrics["seed"][:, 0], base["seed"][:, 0])
        if len(rows) < 2:
            raise CliError(f"{unpaired}: they share {len(rows)} seed(s) and a paired interval needs 2; run both "
                           "with the same --seed and --seeds")
        try:
            pairs[name] = compare.paired_runs(metrics["n_labeled"][0], metrics[metric][rows],
                                              base["n_labeled"][0], base[metric][base_rows])
        except ValueError as err:
            raise CliError(f"{unpaired}: {err}; pair runs with the same --init, --query-size and --budget") from None
    return pairs


def check_replaceable(*paths: Path) -> None:
    """A one-line CliError unless each of ``paths`` is new or a file aljax wrote and nobody changed
    since (as the manifest of its folder records it): ``aljax plot`` never replaces a user's file."""
    for path in paths:
        try:
            listed = manifest.read(path.parent) if path.parent.is_dir() else None  # read even for a new file
        except manifest.ManifestError as err:
            raise CliError(str(err)) from None
        if not path.exists():
            continue
        if path.is_dir() or listed is None or manifest.status(path.parent, path.name, listed) != "ok":
            raise CliError(f"{path} exists and is not a file aljax wrote (or it changed since); choose another --out "
                           f"or move it away")


def cmd_plot(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.runs]
    if args.baseline and Path(args.baseline).is_dir() and not any(
            d.resolve() == Path(args.baseline).resolve() for d in dirs):
        dirs.insert(0, Path(args.baseline))  # a baseline folder not among the runs is drawn first
    runs = [read_run(d) for d in dirs]
    if args.metric not in runs[0][1]:
        raise CliError(unknown("metric", args.metric, [k for k in runs[0][1] if k not in RESERVED]))
    for d, (_, metrics) in zip(dirs, runs):
        if metrics["n_labeled"].shape[1] < 2:
            raise CliError(f"{d} has 0 query rounds (budget = initial labels), so it has no learning curve; "
                           f"its accuracy is in {d / store.SUMMARY}")
    keys = sorted({k for settings, _ in runs for k in settings} - NOT_COMPARED)
    differ = [k for k in keys if len({repr(settings.get(k)) for settings, _ in runs}) > 1]
    for k in differ:
        values = ", ".join(dict.fromkeys(str(settings.get(k)) for settings, _ in runs))
        print(f"aljax: warning: the runs differ in {k} ({values})", file=sys.stderr)
    names = []
    for d, (settings, _) in zip(dirs, runs):
        parts = [str(settings.get("strategy", d.name))] + [f"{k}={settings.get(k)}" for k in differ]
        names.append(", ".join(parts))
    if len(set(names)) < len(names):  # the same settings twice: tell them apart by folder
        names = [f"{n} ({d})" for n, d in zip(names, dirs)]
    baseline, pairs = "", None
    if args.baseline:
        baseline = names[find_baseline(args.baseline, dirs, names)]
        pairs = pair_with_baseline(dict(zip(names, runs)), baseline, args.metric)
    common = {k: runs[0][0].get(k) for k in ("dataset", "protocol", "budget") if k in keys and k not in differ}
    title = args.title or ", ".join(f"{k} {v}" for k, v in common.items())
    if differ and not args.title:
        title += f"; runs differ in {', '.join(differ)}"
    heading = f"**{title}**" if title else ""
    png = Path(args.out)
    check_replaceable(png, png.with_suffix(".md"))
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        table = report({n: m for n, (_, m) in zip(names, runs)}, png, title=title, metric=args.metric, heading=heading,
                       pairs=pairs, baseline=baseline)
        manifest.add(png.parent, png)  # marks both files as aljax's: a later plot may replace them
        manifest.write(png.parent, png.with_suffix(".md").name, atomic.write_text, png.with_suffix(".md"), table)
    except OSError as err:
        raise CliError(f"cannot write {png} ({err.strerror}); choose another --out") from None
    print(table, end="")
    print(f"figure: {png}  table: {png.with_suffix('.md')}")
    return 0


def register_plot(subparsers) -> None:
    p = subparsers.add_parser(
        "plot", help="learning curves of one or more runs on one figure, and a table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw the mean learning curves of finished runs, with 95 % CI bands, on one figure (PNG)\n"
                    "and write a markdown table of their final accuracy beside it (same name, .md). The legend\n"
                    "names each run by its strategy and the settings in which the runs differ; differences\n"
                    "(protocol, dataset, budget, ...) are also warned about and put in the title. With --baseline,\n"
                    "each other run is also compared with the baseline seed by seed (runs with the same --seed\n"
                    "start seed i from the same labels): the paired difference with its 95 % CI and the share of\n"
                    "seeds it wins, at the last fit and over the curve, in the table and in a second panel.",
        epilog="examples:\n"
               "  aljax plot results/margin results/entropy results/random --out results/compare.png\n"
               "  aljax plot results/margin results/entropy --baseline results/random --out results/vs-random.png\n"
               "  aljax plot results/margin --metric eval_correct --out results/margin-eval.png\n")
    p.add_argument("runs", nargs="+", metavar="RESULT_DIR", help="folders written by `aljax run`")
    p.add_argument("--out", default="results/compare.png", help="figure path (default: results/compare.png)")
    p.add_argument("--metric", default="test_accuracy", help="per-round metric to plot (default: test_accuracy)")
    p.add_argument("--title", default="", help="figure title (default: what the runs share and where they differ)")
    p.add_argument("--baseline", default="", metavar="NAME_OR_DIR",
                   help="compare every other run with this one, seed by seed: a run folder (added if not among the "
                        "runs), a folder name or a legend name")
    p.set_defaults(func=cmd_plot)


# ----------------------------------------------------------------------------- aljax fetch


def register_fetch(subparsers) -> None:
    p = subparsers.add_parser(
        "fetch", help="download and verify a dataset into the data folder (the same as `python -m aljax.fetch`)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download a dataset's IDX files, check their SHA-256 and put them in the data folder that\n"
                    "`aljax run` reads: $ALJAX_DATA if set, the checkout's data/ inside a checkout, else the\n"
                    "user's data folder ($XDG_DATA_HOME/aljax or ~/.local/share/aljax). Idempotent.",
        epilog="examples:\n  aljax fetch\n  aljax fetch --dataset fashion_mnist\n"
               "  aljax fetch --dest /data/aljax/mnist      (then: aljax run --data-dir /data/aljax)\n")
    fetch.add_arguments(p)
    p.set_defaults(func=fetch.fetch_dataset)


# ----------------------------------------------------------------------------- aljax reproduce


def cmd_reproduce(args: argparse.Namespace) -> int:
    script = REPO_ROOT / "experiments" / "reproduce.py"
    if not script.exists():
        raise CliError("`aljax reproduce` runs experiments/reproduce.py, which only a checkout of the repository "
                       "has (this aljax is installed without it): clone the repository and run `make reproduce` "
                       "there")
    return subprocess.run([sys.executable, str(script), *args.script_args], cwd=REPO_ROOT).returncode


def register_reproduce(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="reproduce the article's table (the same as `make reproduce`)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run experiments/reproduce.py from the repository root; other arguments are passed to it.",
        epilog="examples:\n  aljax reproduce\n  aljax reproduce --table-only\n"
               "  aljax reproduce -- --help      (the script's own options)\n")
    p.set_defaults(func=cmd_reproduce, passthrough=True)


# ----------------------------------------------------------------------------- entry point

# Subcommand registrars, in `aljax --help` order.
REGISTRARS = [register_run, register_list, register_plot, register_fetch, register_reproduce, label_cli.register]


class Parser(argparse.ArgumentParser):
    """Argument errors as every other bad input: one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"aljax: error: {interrupt.one_line(message)} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="aljax", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pool-based active learning in JAX: one compiled, seed-vmapped program per experiment.",
        epilog="examples:\n"
               "  aljax list\n"
               "  aljax run --strategy margin --budget 400 --seeds 100 --out results/margin\n"
               "  aljax plot results/margin results/random --out results/compare.png\n"
               "  aljax fetch\n"
               "  aljax reproduce\n"
               "  aljax label init --data photos/ --classes cat,dog --project pets\n"
               "run `aljax COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"aljax {aljax.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "passthrough", False):
        args.script_args = [a for a in extra if a != "--"] if extra[:1] != ["--"] else extra[1:]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except (CliError, DataError, StoreError, SpecError) as err:
        print(f"aljax: error: {interrupt.one_line(str(err))}", file=sys.stderr)  # one line, of bounded length
        return 2
    except BrokenPipeError:  # `aljax list | head -3`: the reader has gone; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:  # only where interrupt.install() could not run (not the main thread)
        print(("\n" if sys.stderr.isatty() else "") + interrupt.MESSAGE, file=sys.stderr)  # end a progress bar's line
        return interrupt.STATUS
