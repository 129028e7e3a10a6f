"""The researcher's command line: ``aljax run | list | plot | reproduce`` (also ``python -m aljax``).

Every subcommand is added by a *registrar* ``register(subparsers) -> None`` in :data:`REGISTRARS`;
each parser it adds sets ``func=handler`` with ``handler(args) -> exit status``. Bad input is a
:class:`CliError` (or a ``DataError`` / ``StoreError``): one line on stderr, exit status 2, and
every check runs before any compilation and before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import math
import re
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np

from aljax import atomic, label_cli, store
from aljax.data import DATASET_FORMS, DATASETS, DEFAULT_DATA_DIR, PROTOCOLS, DataError, Raw, load_dataset
from aljax.loop import INITIAL, ORACLES, Config, Hyper, RoundInfo
from aljax.store import StoreError
from aljax.strategies import STRATEGIES, resolve as resolve_strategy

REPO_ROOT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    """Bad command-line input. The message is one line and says how to fix it."""


# ----------------------------------------------------------------------------- datasets

def unknown(kind: str, name: str, valid) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (choose one of: {', '.join(valid)})"


# ----------------------------------------------------------------------------- run settings

# Registries that name-valued settings must come from (checked with a closest-match hint).
CHOICES = {"protocol": PROTOCOLS, "initial": INITIAL, "oracle": ORACLES}  # strategies: resolve_strategy()
# Settings that are not Config / Hyper fields: key -> (default, type, help).
RUN_SETTINGS = {
    "dataset": ("mnist", str, "dataset name (`aljax list`)"),
    "protocol": ("dev", str, "seed: the article's (stop and report on 400 test images); dev: honest"),
    "pool_size": (4000, int, "pool = the first POOL_SIZE training images"),
    "dev_size": (1000, int, "dev protocol: early stopping on the last DEV_SIZE training images"),
    "test_size": (400, int, "seed protocol: stop and report on the first TEST_SIZE test images"),
    "budget": (400, int, "labels after the last round; rounds = (budget - init) / query_size"),
    "seeds": (10, int, "number of seeds (a vmap axis)"),
    "seed": (0, int, "base seed; seed i uses fold_in(key(seed), i)"),
    "chunk_size": (25, int, "seeds per compiled call; each finished chunk is checkpointed (on a CPU, "
                   "chunks of 4-8 run fastest per seed; on a GPU, as many seeds as fit)"),
}
FIELD_HELP = {
    "strategy": "query strategy (`aljax list`)",
    "n_initial": "initial labels",
    "query_size": "labels per round",
    "initial": "initial labels: first (in pool order) or random",
    "oracle": "true (reveal labels) or model (auto-label with argmax)",
    "n_classes": "number of classes (default: from the dataset)",
    "capacity": "label buffer length (default: the budget)",
    "learning_rate": "learning rate (Hyper)",
    "patience": "early-stopping patience in steps (Hyper)",
    "max_steps": "step bound of one fit (Hyper)",
}
FLAG_ALIASES = {"n_initial": ["--init"]}
DERIVED = {"rounds"}  # Config fields computed from other settings


def config_fields() -> dict[str, tuple[object, type]]:
    """Config fields settable from the command line: name -> (default, type)."""
    hints = typing.get_type_hints(Config)
    out = {}
    for f in dataclasses.fields(Config):
        if f.name in DERIVED:
            continue
        hint = hints[f.name]
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
        out[f.name] = (None if f.name == "n_classes" else f.default, base)
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


def resolve(args: argparse.Namespace) -> dict:
    """Defaults, then the --config file, then flags given on the command line."""
    settings = {k: d for k, (d, _) in all_settings().items()}
    if args.config is not None:
        settings |= read_config_file(Path(args.config))
    return settings | {k: v for k, v in vars(args).items() if k in settings}


def read_config_file(path: Path) -> dict:
    try:
        table = store.read_toml(path)
    except FileNotFoundError:
        raise CliError(f"config file {path} not found") from None
    except (OSError, ValueError) as err:
        raise CliError(f"config file {path} is not valid TOML ({err})") from None
    types = all_settings()
    for key, value in table.items():
        if key not in types:
            raise CliError(f"config file {path}: {unknown('key', key, types)}")
        expected = types[key][1]
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            if not (expected is float and isinstance(value, int) and not isinstance(value, bool)):
                raise CliError(f"config file {path}: {key} must be {expected.__name__}, got {value!r}")
    return table


def check(settings: dict) -> int:
    """Validate the settings that need no data (names, counts, budget); return the number of rounds."""
    for key, registry in CHOICES.items():
        if settings[key] not in registry:
            raise CliError(unknown(key.replace("_", " "), settings[key], registry))
    try:
        resolve_strategy(settings["strategy"])  # a registry name with settings, a combinator or module:function
    except ValueError as err:
        raise CliError(str(err)) from None
    if settings["dataset"] not in DATASETS and not settings["dataset"].startswith(("idx:", "tfds:")):
        raise CliError(unknown("dataset", settings["dataset"], DATASET_FORMS))
    for key in ("seeds", "chunk_size", "query_size", "n_initial", "pool_size", "budget"):
        if settings[key] <= 0:
            raise CliError(f"--{key.replace('_', '-')} must be positive, got {settings[key]}")
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


def make_chunk_runner(config: Config, on_round=None):
    """``run_chunk(data, hyper, key, seeds (C,)) -> dict of (C, ...) arrays`` for seeds ``fold_in(key, i)``."""
    import jax

    from aljax.loop import make_run

    run = jax.vmap(make_run(config, on_round), in_axes=(None, None, 0))

    def run_chunk(data, hyper, key, seeds):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, seeds)
        state, info = run(data, hyper, keys)
        return {**dataclasses.asdict(info), "order": state.order, "targets": state.targets}

    return jax.jit(run_chunk)


def cmd_run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    rounds = check(settings)
    raw = load_dataset(settings["dataset"], Path(args.data_dir))
    if settings["n_classes"] is None:
        settings["n_classes"] = raw.n_classes
    config, hyper = build(settings, rounds)
    data = make_data(settings, raw)
    check_pool(config, int(np.asarray(data.pool.valid).sum()))

    out = Path(args.out)
    done = store.open_run(out, settings, force=args.force)
    say = (lambda *a, **k: None) if args.quiet else print
    if store.is_finished(out):
        say(f"{out} already holds this finished run; pass --force to recompute it")
        return 0
    say(f"# resolved config ({out / store.CONFIG}); rounds = {config.rounds}")
    say(store.to_toml(settings), end="")
    chunk = min(settings["chunk_size"], settings["seeds"])
    n_chunks = math.ceil(settings["seeds"] / chunk)
    pending = [c for c in range(n_chunks) if c not in done]
    if done:
        say(f"resuming: {len(done)}/{n_chunks} chunks already in {out / store.CHUNKS}")
    if pending:
        run_chunks(out, config, hyper, data, settings, pending, chunk, args.quiet)
    finish(out, settings, n_chunks, say)
    return 0


def run_chunks(out: Path, config: Config, hyper: Hyper, data, settings: dict, pending: list[int], chunk: int,
               quiet: bool) -> None:
    """Compile once, then run and checkpoint each pending chunk of seeds, with a progress bar."""
    import jax

    from aljax.progress import Progress

    atomic.write_json(out / store.ENVIRONMENT, store.environment())
    key = jax.random.key(settings["seed"])
    progress = Progress(len(pending), config.rounds, quiet)
    t0 = time.perf_counter()
    compiled = make_chunk_runner(config, progress.hook).lower(data, hyper, key, np.arange(chunk)).compile()
    store.add_timing(out, "compile_s", time.perf_counter() - t0)
    try:
        for position, c in enumerate(pending):
            seeds = np.arange(c * chunk, (c + 1) * chunk)  # the last chunk is padded to keep one shape
            kept = seeds < settings["seeds"]
            progress.start_chunk(position, int(seeds[0]), int(seeds[kept][-1]), len(pending))
            t = time.perf_counter()
            result = jax.device_get(compiled(data, hyper, key, seeds))
            seconds = time.perf_counter() - t
            progress.end_chunk()
            arrays = {k: v[kept] for k, v in result.items()}
            store.save_chunk(out, c, arrays | {"seed": seeds[kept], "seconds": np.array([seconds])})
    finally:
        progress.close()


def finish(out: Path, settings: dict, n_chunks: int, say) -> None:
    """Assemble the checkpoints into the final files; ``metrics.csv`` goes last."""
    chunks = store.load_chunks(out, n_chunks)
    seeds = chunks["seed"]
    metrics = {f.name: chunks[f.name] for f in dataclasses.fields(RoundInfo)}
    atomic.write_npz(out / store.ORDERS, order=chunks["order"], targets=chunks["targets"], seed=seeds)
    seconds = [float(s) for s in chunks["seconds"]]
    store.add_timing(out, "chunk_s", seconds, append=False)
    store.add_timing(out, "run_s", sum(seconds), append=False)
    table = report({out.name: metrics}, out / store.FIGURE, title=f"{settings['strategy']} on {settings['dataset']}")
    atomic.write_text(out / store.SUMMARY, table)
    atomic.write_text(out / store.METRICS, store.metrics_csv(seeds, metrics))
    say(table, end="")
    say(f"results in {out}")


def report(runs: dict[str, dict[str, np.ndarray]], png: Path, title: str = "",
           metric: str = "test_accuracy") -> str:
    """Plot the runs' curves on one figure (``png``) and return a markdown table of their final values."""
    from aljax.metrics import mean_ci
    from aljax.plots import plot_curves

    curves = {name: (m["n_labeled"][0], m[metric]) for name, m in runs.items()}
    plot_curves(curves, png, title=title, ylabel=metric.replace("_", " "))
    lines = [f"| run | seeds | labels | final {metric} (mean [95% CI]) | mean over the curve |",
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
        description="Run one AL experiment (one compiled program per chunk of seeds) and store it in --out.\n"
                    "Settings: defaults < --config FILE.toml < flags. The resolved config is printed and saved\n"
                    "as OUT/config.toml. Rerunning the same command resumes an interrupted run.",
        epilog="examples:\n"
               "  aljax run --dataset mnist --strategy margin --init 10 --query-size 10 --budget 400 \\\n"
               "            --seeds 100 --protocol dev --out results/margin\n"
               "  aljax run --config results/margin/config.toml --strategy entropy --out results/entropy\n"
               "  aljax run --protocol seed --strategy least_confidence --seeds 1 --out results/article\n")
    p.add_argument("--config", default=None, metavar="FILE.toml", help="load settings (keys as in OUT/config.toml)")
    p.add_argument("--out", required=True, help="results folder (created; resumed if it holds this run)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="folder holding the datasets (default: data)")
    p.add_argument("--force", action="store_true", default=False, help="overwrite a different run in --out")
    p.add_argument("--quiet", action="store_true", default=False, help="no progress bar, config or table output")
    types = all_settings()
    for name, (default, _, text) in RUN_SETTINGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=types[name][1], help=f"{text} (default: {default})")
    for name, (default, kind) in (config_fields() | hyper_fields()).items():
        flags = FLAG_ALIASES.get(name, []) + [f"--{name.replace('_', '-')}"]
        text = FIELD_HELP.get(name, f"Config.{name}") + ("" if default is None else f" (default: {default})")
        p.add_argument(*flags, dest=name, type=kind, metavar=name.upper(), help=text)
    p.set_defaults(func=cmd_run)


# ----------------------------------------------------------------------------- aljax list


def first_sentence(obj) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    text = " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split()).replace("``", "")
    return re.split(r"(?<!\bal)\. ", text)[0].rstrip(".") + "."  # "et al. 2020" does not end a sentence


def cmd_list(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    width = max(map(len, [*STRATEGIES, *DATASET_FORMS, *PROTOCOLS])) + 2
    print("strategies:")
    for name, fn in STRATEGIES.items():
        print(f"  {name:{width}} {first_sentence(fn)}")
    print("datasets:")
    for name, text in DATASET_FORMS.items():
        where = data_dir / name
        mark = "" if name not in DATASETS else (" [present]" if where.is_dir() else " [not in " + str(where) + "]")
        print(f"  {name:{width}} {text}{mark}")
    print("protocols:")
    for name, fn in PROTOCOLS.items():
        print(f"  {name:{width}} {first_sentence(fn)}")
    return 0


def register_list(subparsers) -> None:
    p = subparsers.add_parser("list", help="list strategies, datasets and protocols",
                              description="List the query strategies, datasets and protocols by name.",
                              epilog="examples:\n  aljax list\n  aljax list --data-dir /big/disk/data", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="folder holding the datasets (default: data)")
    p.set_defaults(func=cmd_list)


# ----------------------------------------------------------------------------- aljax plot


def cmd_plot(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.runs]
    names = [d.name for d in dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in dirs]
    runs = {name: store.read_metrics(d) for name, d in zip(names, dirs)}
    if args.metric not in next(iter(runs.values())):
        raise CliError(unknown("metric", args.metric, [f.name for f in dataclasses.fields(RoundInfo)]))
    png = Path(args.out)
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        table = report(runs, png, title=args.title, metric=args.metric)
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
        description="Draw the mean learning curves with 95%% CI bands of finished runs on one figure (PNG)\n"
                    "and write a markdown table of their final accuracy beside it (same name, .md).",
        epilog="examples:\n"
               "  aljax plot results/margin results/entropy results/random --out results/compare.png\n"
               "  aljax plot results/margin --metric eval_correct --out results/margin-eval.png\n")
    p.add_argument("runs", nargs="+", metavar="RESULT_DIR", help="folders written by `aljax run`")
    p.add_argument("--out", default="results/compare.png", help="figure path (default: results/compare.png)")
    p.add_argument("--metric", default="test_accuracy", help="per-round metric to plot (default: test_accuracy)")
    p.add_argument("--title", default="", help="figure title")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        return args.func(args)
    except (CliError, DataError, StoreError) as err:
        print(f"aljax: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\naljax: interrupted; rerun the same command to resume from the last finished chunk", file=sys.stderr)
        return 130
