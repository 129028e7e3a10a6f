"""The researcher's command line: ``aljax run | list | plot | reproduce`` (also ``python -m aljax``).

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

from aljax import atomic, interrupt, recipes, seeds, store
from aljax.data import DATASET_FORMS, DATASETS, PROTOCOLS, DataError, Raw, find_data_dir, load_dataset
from aljax.labeling import cli as label_cli
from aljax.loop import Config, Hyper, RoundInfo, components
from aljax.spec import settings_of, unknown
from aljax.store import StoreError
from aljax.models import convolves, samples_differ
from aljax.strategies import SAMPLED, is_stochastic, resolve as resolve_strategy

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
CLI_DEFAULTS = {"initial": None}  # None: resolved by default_initial()


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


SOURCES = "sources.toml"  # beside config.toml: where each resolved setting came from


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


def check(settings: dict) -> int:
    """Validate the settings that need no data (names, counts, budget, hyper-parameters, whether the
    seeds can differ); return the number of rounds."""
    try:
        resolve_strategy(settings["strategy"])  # a registry name with settings, a combinator or module:function
    except ValueError as err:
        raise CliError(str(err)) from None
    if settings["schedule"] not in (None, *seeds.SCHEDULES):
        raise CliError(unknown("schedule", settings["schedule"], seeds.SCHEDULES))
    if settings["protocol"] not in PROTOCOLS:
        raise CliError(unknown("protocol", settings["protocol"], PROTOCOLS))
    if settings["dataset"] not in DATASETS and not settings["dataset"].startswith(("idx:", "tfds:")):
        raise CliError(unknown("dataset", settings["dataset"], DATASET_FORMS))
    for key in ("seeds", "chunk_size", "query_size", "n_initial", "pool_size", "budget"):
        if settings[key] is not None and settings[key] <= 0:
            raise CliError(f"--{key.replace('_', '-')} must be positive, got {settings[key]}")
    lr = settings["learning_rate"]
    if not (math.isfinite(lr) and lr > 0):
        raise CliError(f"--learning-rate must be a positive number, got {lr}")
    for key in ("patience", "max_steps"):
        if settings[key] < 1:
            raise CliError(f"--{key.replace('_', '-')} must be at least 1, got {settings[key]}")
    if settings["seeds"] > 1 and settings["initial"] == "first" and not is_stochastic(settings["strategy"]):
        raise CliError(f"the {settings['seeds']} seeds would be identical (initial labels = the first rows, and "
                       f"{settings['strategy']!r} is deterministic); pass --initial random (or kmeans), or --seeds 1")
    n_init, query, budget = settings["n_initial"], settings["query_size"], settings["budget"]
    if n_init > budget:
        raise CliError(f"initial labels ({n_init}) exceed the budget ({budget}); lower --init or raise --budget")
    rounds, rest = divmod(budget - n_init, query)
    if rest:
        lo, hi = n_init + rounds * query, n_init + (rounds + 1) * query
        raise CliError(f"budget {budget} is not {n_init} initial + whole rounds of {query}; use --budget {lo} or {hi}")
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


def chunk_outputs(state, info) -> dict:
    """What a chunk brings back to the host: every per-round metric, the acquisition order and labels."""
    return {**dataclasses.asdict(info), "order": state.order, "targets": state.targets}


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def cmd_run(args: argparse.Namespace) -> int:
    settings, sources = resolve(args)
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
    model, sample_shape = components(config).model, data.pool.x.shape[1:]
    sampled = sorted(set(re.findall(r"[A-Za-z_]\w*", settings["strategy"])) & SAMPLED)
    if sampled and not samples_differ(model, sample_shape):
        raise CliError(f"strategy {sampled[0]!r} reduces MC dropout samples or ensemble members, but model "
                       f"{settings['model']!r} has neither, so its scores are 0 everywhere; pass a model with "
                       "dropout (e.g. --model 'mlp(dropout=0.5)' or cnn_gal2017) or an ensemble(...)")
    resolve_plan(settings, Path(args.out), args.force, convolves(model, sample_shape))

    out = Path(args.out)
    store.check_run(out, settings, force=args.force)  # writes nothing
    say = (lambda *a, **k: None) if args.quiet else print
    if not args.force and store.is_finished(out) and store.read_toml(out / store.CONFIG) == store_view(settings):
        say(f"{out} already holds this finished run; pass --force to recompute it")
        return 0
    # Chunk c always holds seeds c*chunk .. (c+1)*chunk-1: a run keeps the chunk size of its first chunk,
    # so resuming or extending it (more --seeds) computes exactly the seeds an uninterrupted run would.
    sizes = {} if args.force else store.chunk_sizes(out) if out.is_dir() else {}
    chunk = sizes.get(0) or min(settings["chunk_size"], settings["seeds"])
    n_chunks = seeds.n_chunks(settings["seeds"], chunk)
    kept = lambda c: int((seeds.chunk_seeds(c, chunk) < settings["seeds"]).sum())  # noqa: E731
    done = [c for c, n in sizes.items() if c < n_chunks and n == kept(c)]
    pending = [c for c in range(n_chunks) if c not in done]

    if pending:
        import jax

        from aljax.progress import Progress

        progress = Progress(config.rounds, quiet=args.quiet)
        run = seeds.make_program(config, progress.hook, schedule=settings["schedule"] or "lockstep")
        t0 = time.perf_counter()
        compiled = seeds.compile_chunks(run, data, hyper, chunk, chunk_outputs)
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
    store.open_run(out, settings, force=args.force)
    atomic.write_text(out / SOURCES, store.to_toml({k: sources[k] for k in store_view(settings)}))
    say(f"# resolved config ({out / store.CONFIG}, where each came from: {out / SOURCES}); rounds = {config.rounds}")
    say(store.to_toml(settings), end="")
    from_recipe = [k for k in store_view(settings) if sources[k].startswith("recipe")]
    if from_recipe:
        say(f"# from the {sources[from_recipe[0]]}: {', '.join(from_recipe)}")
    if done:
        say(f"resuming: {len(done)}/{n_chunks} chunks already in {out / store.CHUNKS}")
    if pending:
        atomic.write_json(out / store.ENVIRONMENT, store.environment())
        store.add_timing(out, "compile_s", compile_s)
        seeds.run_seeds(run, data, hyper, settings["seeds"], seed=settings["seed"], chunk_size=chunk,
                        outputs=chunk_outputs, progress=progress, skip=done, on_chunk=store.chunk_saver(out),
                        compiled=compiled)
    finish(out, settings, n_chunks, say)
    return 0


def store_view(settings: dict) -> dict:
    """The settings as they read back from config.toml (None values left out)."""
    return {k: v for k, v in settings.items() if v is not None}


def finish(out: Path, settings: dict, n_chunks: int, say) -> None:
    """Assemble the checkpoints into the final files; ``metrics.csv`` goes last."""
    chunks = store.load_chunks(out, n_chunks)
    seed_ids = chunks["seed"]
    metrics = {f.name: chunks[f.name] for f in dataclasses.fields(RoundInfo)}
    atomic.write_npz(out / store.ORDERS, order=chunks["order"], targets=chunks["targets"], seed=seed_ids)
    seconds = [float(s) for s in chunks["seconds"]]
    store.add_timing(out, "chunk_s", seconds, append=False)
    store.add_timing(out, "run_s", sum(seconds), append=False)
    table = report({out.name: metrics}, out / store.FIGURE, title=f"{settings['strategy']} on {settings['dataset']}")
    atomic.write_text(out / store.SUMMARY, table)
    atomic.write_text(out / store.METRICS, store.metrics_csv(seed_ids, metrics))
    say(table, end="")
    say(f"results in {out}")


def report(runs: dict[str, dict[str, np.ndarray]], png: Path, title: str = "",
           metric: str = "test_accuracy", heading: str = "") -> str:
    """Plot the runs' curves on one figure (``png``) and return a markdown table of their final values
    (under ``heading`` if given)."""
    from aljax.metrics import mean_ci
    from aljax.plots import plot_curves

    curves = {name: (m["n_labeled"][0], m[metric]) for name, m in runs.items()}
    plot_curves(curves, png, title=title, ylabel=metric.replace("_", " "))
    lines = [heading, ""] if heading else []
    lines += [f"| run | seeds | labels | final {metric} (mean [95 % CI]) | mean over the curve |",
              "|---|---|---|---|---|"]
    for name, (labels, values) in curves.items():
        mean, low, high = mean_ci(values[:, -1])
        area = values.mean(axis=1).mean()
        lines.append(f"| {name} | {values.shape[0]} | {int(labels[-1])} | {mean:.4f} [{low:.4f}, {high:.4f}] | {area:.4f} |")
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
    """`` Settings: k=v, ...`` of a registry entry's keyword settings (a model, fitter or strategy)."""
    score = getattr(entry, "score", entry)  # a StatefulStrategy's settings are its score's
    accepted = settings_of(score)
    if not accepted or not callable(score):
        return ""
    return " Settings: " + ", ".join(f"{k}={v}" for k, v in accepted.items()) + "."


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

# Settings that do not change what a curve means (differences in them are not reported).
NOT_COMPARED = {"chunk_size", "schedule"}


def read_run(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(settings from config.toml, metrics) of a finished run folder."""
    metrics = store.read_metrics(folder)
    try:
        settings = store.read_toml(folder / store.CONFIG)
    except (OSError, ValueError):
        settings = {}
    return settings, metrics


def cmd_plot(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.runs]
    runs = [read_run(d) for d in dirs]
    if args.metric not in runs[0][1]:
        raise CliError(unknown("metric", args.metric, [f.name for f in dataclasses.fields(RoundInfo)]))
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
        parts = [str(settings.get("strategy", d.name))] + [f"{k}={settings.get(k)}" for k in differ if k != "strategy"]
        names.append(", ".join(parts))
    if len(set(names)) < len(names):  # the same settings twice: tell them apart by folder
        names = [f"{n} ({d})" for n, d in zip(names, dirs)]
    common = {k: runs[0][0].get(k) for k in ("dataset", "protocol", "budget") if k in keys and k not in differ}
    title = args.title or ", ".join(f"{k} {v}" for k, v in common.items())
    if differ and not args.title:
        title += f"; runs differ in {', '.join(differ)}"
    heading = f"**{title}**" if title else ""
    png = Path(args.out)
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        table = report({n: m for n, (_, m) in zip(names, runs)}, png, title=title, metric=args.metric, heading=heading)
        atomic.write_text(png.with_suffix(".md"), table)
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
                    "(protocol, dataset, budget, ...) are also warned about and put in the title.",
        epilog="examples:\n"
               "  aljax plot results/margin results/entropy results/random --out results/compare.png\n"
               "  aljax plot results/margin --metric eval_correct --out results/margin-eval.png\n")
    p.add_argument("runs", nargs="+", metavar="RESULT_DIR", help="folders written by `aljax run`")
    p.add_argument("--out", default="results/compare.png", help="figure path (default: results/compare.png)")
    p.add_argument("--metric", default="test_accuracy", help="per-round metric to plot (default: test_accuracy)")
    p.add_argument("--title", default="", help="figure title (default: what the runs share and where they differ)")
    p.set_defaults(func=cmd_plot)


# ----------------------------------------------------------------------------- aljax reproduce


def cmd_reproduce(args: argparse.Namespace) -> int:
    script = REPO_ROOT / "experiments" / "reproduce.py"
    if not script.exists():
        raise CliError(f"{script} not found; `aljax reproduce` needs the repository checkout (git clone)")
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
REGISTRARS = [register_run, register_list, register_plot, register_reproduce, label_cli.register]


class Parser(argparse.ArgumentParser):
    """Argument errors as every other bad input: one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"aljax: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="aljax", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pool-based active learning in JAX: one compiled, seed-vmapped program per experiment.",
        epilog="examples:\n"
               "  aljax list\n"
               "  aljax run --strategy margin --budget 400 --seeds 100 --out results/margin\n"
               "  aljax plot results/margin results/random --out results/compare.png\n"
               "  aljax reproduce\n"
               "  aljax label init --data photos/ --classes cat,dog --project pets\n"
               "run `aljax COMMAND --help` for a command's options.")
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
    except (CliError, DataError, StoreError) as err:
        print(f"aljax: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `aljax list | head -3`: the reader has gone; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:  # only where interrupt.install() could not run (not the main thread)
        print(f"\n{interrupt.MESSAGE}", file=sys.stderr)
        return interrupt.STATUS
