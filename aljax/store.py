"""The results store: one self-describing folder per run, written atomically, resumable.

Layout of a run folder (``aljax run --out DIR``)::

    DIR/config.toml       resolved run config (loadable again with ``aljax run --config``)
    DIR/environment.json  versions (python, jax, jaxlib, optax, numpy), git commit, device
    DIR/chunks/chunk-00000.npz ...   checkpoint of each finished chunk of seeds
    DIR/orders.npz        acquisition order and given labels, (S, L) int32 each, and seed indices (S,)
    DIR/timings.json      wall-clock seconds: compile_s (one per invocation), chunk_s, run_s
    DIR/curve.png         learning curve with a 95 % CI band
    DIR/summary.md        markdown table of the final accuracy
    DIR/metrics.csv       per-round metrics per seed; written LAST: with every file verified, it marks a finished run
    DIR/manifest.json     layout version ("schema") and the SHA-256 and size of every file above (:mod:`aljax.manifest`)

Every file is written to a temporary name in the same folder and renamed into place, so an
interrupted run never leaves a half-written file under a final name, and is then recorded in the
manifest. A later command trusts only files that match their record: a damaged or missing chunk is
recomputed, damaged final files are rebuilt from the chunks, and ``--force`` deletes only listed
files. A folder without a manifest (written before manifests existed) is adopted on its next
resume or extension: the files that read back whole are recorded, the others recomputed. Seed ``i``
always uses the key ``fold_in(key(base_seed), i)`` and chunks always have the same shape, so a
resumed run computes the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Callable

import numpy as np

from aljax import manifest
from aljax.atomic import write_json, write_npz, write_text

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIG = "config.toml"
ENVIRONMENT = "environment.json"
SOURCES = "sources.toml"  # beside config.toml: where each resolved setting came from (recipe, flag, ...)
CHUNKS = "chunks"
ORDERS = "orders.npz"
TIMINGS = "timings.json"
FIGURE = "curve.png"
SUMMARY = "summary.md"
METRICS = "metrics.csv"  # the completion marker: written last
FINAL_FILES = (ORDERS, TIMINGS, FIGURE, SUMMARY, METRICS)
ALL_FILES = (CONFIG, SOURCES, ENVIRONMENT) + FINAL_FILES
LEGACY_MAX_BYTES = 2 << 30  # an array of a folder without a manifest is read only if it declares less
CHUNK_NAME = re.compile(r"chunks/chunk-\d{5}\.npz")  # the only other names a run writes


class StoreError(Exception):
    """A results folder cannot be used as asked. The message is one line and says what to do."""


def to_toml(table: dict) -> str:
    """A flat TOML document from ``{key: str | int | float | bool}`` (``None`` values are left out)."""
    lines = []
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str):
            text = json.dumps(value)  # a JSON string is a valid TOML basic string
        else:
            raise TypeError(f"cannot write {key} = {value!r} as flat TOML")
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def read_toml(path: str | Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


# ----------------------------------------------------------------------------- run folders


def write(run_dir: str | Path, name: str, save: Callable, /, *args, **kwargs) -> Path:
    """``save(run_dir / name, *args, **kwargs)`` with one of :mod:`aljax.atomic`'s writers, recorded
    in the run's manifest (:func:`aljax.manifest.write`: every file of a run is written through here,
    and a file under its final name always matches its entry)."""
    return manifest.write(run_dir, name, save, Path(run_dir) / name, *args, **kwargs)


def read_manifest(run_dir: str | Path) -> dict | None:
    """The run folder's manifest, or None (a folder written before manifests, or none at all)."""
    try:
        return manifest.read(run_dir)
    except manifest.ManifestError as err:
        raise StoreError(str(err)) from None


def readable(path: Path) -> bool:
    """Whether a file of a run folder without a manifest reads back whole (the rule by which such a
    folder is adopted): arrays load, CSV, TOML and JSON parse, a PNG ends with its IEND chunk."""
    from aljax.data import check_array_file

    try:
        if path.suffix == ".npz":
            check_array_file(path, LEGACY_MAX_BYTES)  # its declared sizes, before reading it
            with np.load(path, allow_pickle=False) as z:
                for key in z.files:
                    z[key]
        elif path.name == METRICS:
            _parse_metrics(path)
        elif path.suffix == ".toml":
            read_toml(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            return path.read_bytes().endswith(b"IEND\xaeB`\x82")
        else:
            path.read_text()
    except Exception:  # noqa: BLE001 - whatever a damaged file raises, it is not whole
        return False
    return True


def intact(run_dir: str | Path, name: str, listed: dict | None) -> bool:
    """Whether ``run_dir/name`` can be trusted: it matches its record in the manifest ``listed``, or,
    in a folder without a manifest (``listed`` None), it reads back whole (:func:`readable`)."""
    if listed is not None:
        return manifest.status(run_dir, name, listed) == "ok"
    return (Path(run_dir) / name).is_file() and readable(Path(run_dir) / name)


def damaged_finals(run_dir: str | Path) -> list[str]:
    """The final files (:data:`FINAL_FILES`) of ``run_dir`` that are missing or cannot be trusted."""
    listed = read_manifest(run_dir)
    return [name for name in FINAL_FILES if not intact(run_dir, name, listed)]


def is_finished(run_dir: str | Path) -> bool:
    """Every final file is there and verified (never a damaged file taken as finished)."""
    return Path(run_dir).is_dir() and not damaged_finals(run_dir)


def _is_temporary(name: str) -> bool:
    """A temporary file of :mod:`aljax.atomic` for one of the names a run writes."""
    finals = (*ALL_FILES, manifest.MANIFEST)
    return name.endswith(".tmp") and (any(name.startswith(f".{n}.") for n in finals)
                                      or re.fullmatch(r"\.chunk-\d{5}\.npz\.\w+\.tmp", name) is not None)


def holds_files(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything but its manifest, an empty ``chunks/`` folder and aljax's
    temporary files (what a run killed before its first file leaves)."""
    return any(not _is_temporary(p.name) and p.name != manifest.MANIFEST
               and not (p.name == CHUNKS and p.is_dir() and not any(p.iterdir())) for p in run_dir.iterdir())


def _force_hint(listed: dict | None) -> str:
    if listed is None:
        return (f"choose another --out (it has no {manifest.MANIFEST}, so --force cannot tell aljax's files "
                f"from yours: delete them yourself)")
    return "pass --force to start over (it deletes only the files aljax wrote there) or choose another --out"


def read_config(run_dir: Path, listed: dict | None) -> dict:
    """The run's ``config.toml``, or a one-line :class:`StoreError` if it is damaged or unreadable."""
    path = run_dir / CONFIG
    if listed is not None and manifest.status(run_dir, CONFIG, listed) == "damaged":
        raise StoreError(f"{path} is damaged (it differs from its record in {manifest.MANIFEST}), so the run it "
                         f"describes is unknown; {_force_hint(listed)}")
    try:
        return read_toml(path)
    except (OSError, ValueError) as err:
        raise StoreError(f"{path} is not valid TOML ({type(err).__name__}); {_force_hint(listed)}") from None


def check_run(run_dir: str | Path, config: dict, force: bool = False) -> None:
    """Raise :class:`StoreError` if ``run_dir`` cannot hold a run of ``config``; writes nothing.

    Usable: a new or empty folder, one holding the same config (resumed), or the same config with
    more ``seeds`` (extended: the finished seeds are kept). A different config needs ``force``, which
    is refused where no manifest records a run (files aljax did not write). A folder of an unknown layout
    (:data:`aljax.manifest.SCHEMA`), or with a damaged config, is refused.
    """
    run_dir = Path(run_dir)
    config = {k: v for k, v in config.items() if v is not None}  # as it reads back from TOML
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "not a folder" if not existing.is_dir() else "permission denied"
        raise StoreError(f"cannot write to output folder {run_dir} ({existing}: {why}); choose another --out")
    if not run_dir.exists():
        return
    listed = read_manifest(run_dir)
    if force:
        if holds_files(run_dir) and (listed is None or CONFIG not in listed["files"]):
            what = f"no {manifest.MANIFEST}" if listed is None else f"no run in its {manifest.MANIFEST}"
            raise StoreError(f"{run_dir} holds files but {what}, so aljax cannot tell which of them it wrote for a "
                             f"run and --force deletes nothing there; choose another --out")
        return
    if (run_dir / CONFIG).exists():
        old = read_config(run_dir, listed)
        if old != config and not is_extension(old, config):
            grown = lambda k: k == "seeds" and config.get(k, 0) > old.get(k, 0)  # noqa: E731 - allowed, not a difference
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in sorted(old.keys() | config.keys())
                             if old.get(k) != config.get(k) and not grown(k))
            raise StoreError(f"{run_dir} holds a different run ({diff}); {_force_hint(listed)}")
    elif holds_files(run_dir):
        raise StoreError(f"{run_dir} is not empty and holds no aljax run; choose another --out")


def is_extension(old: dict, new: dict) -> bool:
    """``new`` is ``old`` with more seeds (seed i's key does not depend on the number of seeds)."""
    rest = lambda c: {k: v for k, v in c.items() if k != "seeds"}  # noqa: E731
    return rest(old) == rest(new) and new.get("seeds", 0) > old.get("seeds", 0)


def open_run(run_dir: str | Path, config: dict, force: bool = False) -> list[int]:
    """Prepare ``run_dir`` for a run of ``config`` (see :func:`check_run`); return the indices of the
    verified chunks already finished. ``force`` deletes only the files the manifest lists. A folder
    without a manifest is adopted (:func:`adopt`). An extended run loses its completion marker
    (``metrics.csv``) first, then gets the new config."""
    check_run(run_dir, config, force)
    run_dir = Path(run_dir)
    config = {k: v for k, v in config.items() if v is not None}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / ".write-test", "")
        (run_dir / ".write-test").unlink()
    except OSError as err:
        raise StoreError(f"cannot write to output folder {run_dir} ({err.strerror}); choose another --out") from None
    listed = read_manifest(run_dir)
    if force:
        clear(run_dir, listed)
    elif listed is None and (run_dir / CONFIG).exists():
        adopt(run_dir)
    if (run_dir / CONFIG).exists() and read_toml(run_dir / CONFIG) != config:  # an extension
        (run_dir / METRICS).unlink(missing_ok=True)
        manifest.update(run_dir, forget=[METRICS])
        write(run_dir, CONFIG, write_text, to_toml(config))
    for tmp in [*run_dir.iterdir(), *((run_dir / CHUNKS).iterdir() if (run_dir / CHUNKS).is_dir() else ())]:
        if _is_temporary(tmp.name):  # left by a killed run
            tmp.unlink()
    if not (run_dir / CONFIG).exists():
        write(run_dir, CONFIG, write_text, to_toml(config))
    (run_dir / CHUNKS).mkdir(exist_ok=True)
    return sorted(chunk_sizes(run_dir))


def run_files(run_dir: Path) -> list[str]:
    """The names (relative to ``run_dir``) of the files present that a run writes."""
    chunks = sorted(f"{CHUNKS}/{p.name}" for p in (run_dir / CHUNKS).glob("chunk-*.npz"))
    return [n for n in ALL_FILES if (run_dir / n).is_file()] + [n for n in chunks if CHUNK_NAME.fullmatch(n)]


def adopt(run_dir: Path) -> None:
    """Give a run folder written before manifests its manifest: the run's files that read back
    whole (:func:`readable`) are recorded; the others are then recomputed (chunks) or rebuilt."""
    manifest.update(run_dir, {n: manifest.digest(run_dir / n) for n in run_files(run_dir) if readable(run_dir / n)})


def clear(run_dir: Path, listed: dict | None) -> None:
    """Delete the files the manifest ``listed`` records that have names a run writes (nothing else),
    and their records."""
    if listed is None:  # check_run let --force through only for a folder without files
        return
    names = [name for name in listed["files"] if name in ALL_FILES or CHUNK_NAME.fullmatch(name)]
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
    manifest.update(run_dir, forget=names)


def chunk_path(run_dir: str | Path, index: int) -> Path:
    return Path(run_dir) / CHUNKS / f"chunk-{index:05d}.npz"


def finished_chunks(run_dir: str | Path) -> list[int]:
    """Indices of the chunk files present (verified or not: see :func:`chunk_sizes`)."""
    return sorted(int(p.stem.split("-")[1]) for p in (Path(run_dir) / CHUNKS).glob("chunk-*.npz")
                  if CHUNK_NAME.fullmatch(f"{CHUNKS}/{p.name}"))


def chunk_sizes(run_dir: str | Path) -> dict[int, int]:
    """Verified finished chunk index -> the number of seeds it holds (its ``seed`` array). A chunk
    that is damaged or not in the manifest is left out: it is recomputed."""
    listed = read_manifest(run_dir)
    sizes = {}
    for index in finished_chunks(run_dir):
        if intact(run_dir, f"{CHUNKS}/{chunk_path(run_dir, index).name}", listed):
            with np.load(chunk_path(run_dir, index)) as z:
                sizes[index] = len(z["seed"])
    return sizes


def add_timing(run_dir: str | Path, key: str, seconds, append: bool = True) -> None:
    """Record ``seconds`` under ``key`` in ``timings.json`` (appended to a list, one per invocation;
    an unreadable file starts again)."""
    path = Path(run_dir) / TIMINGS
    try:
        timings = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        timings = {}
    timings[key] = timings.get(key, []) + [seconds] if append else seconds
    write(run_dir, TIMINGS, write_json, timings)


def save_chunk(run_dir: str | Path, index: int, arrays: dict[str, np.ndarray]) -> Path:
    """Checkpoint one finished chunk: arrays with a leading seed axis (and ``seed`` indices)."""
    return write(run_dir, f"{CHUNKS}/{chunk_path(run_dir, index).name}", write_npz, **arrays)


def chunk_saver(run_dir: str | Path):
    """The ``on_chunk`` hook of :func:`aljax.seeds.run_seeds` that checkpoints each finished chunk in
    ``run_dir`` (:func:`save_chunk`): its outputs (leading seed axis), its ``seed`` indices and its
    ``seconds``."""
    def save(index: int, seeds: np.ndarray, result: dict, seconds: float) -> None:
        arrays = {k: np.asarray(v) for k, v in result.items()}
        save_chunk(run_dir, index, arrays | {"seed": seeds, "seconds": np.array([seconds])})

    return save


def load_chunks(run_dir: str | Path, n_chunks: int) -> dict[str, np.ndarray]:
    """All chunks concatenated along the seed axis (chunk order)."""
    parts = []
    for i in range(n_chunks):
        with np.load(chunk_path(run_dir, i)) as z:
            parts.append({k: z[k] for k in z.files})
        if parts[-1].keys() != parts[0].keys():  # metric plug-ins that changed under the run
            raise StoreError(f"{chunk_path(run_dir, i)} holds columns {sorted(parts[-1])}, chunk 0 holds "
                             f"{sorted(parts[0])}; rerun with --force to recompute every chunk")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def metrics_csv(seeds: np.ndarray, metrics: dict[str, np.ndarray]) -> str:
    """CSV text, one row per (seed, round): ``seed, round, <metric>...``; metrics are (S, R) arrays."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = list(metrics)
    writer.writerow(["seed", "round", *names])
    n_rounds = next(iter(metrics.values())).shape[1]
    for s, seed in enumerate(seeds):
        for r in range(n_rounds):
            writer.writerow([int(seed), r, *(str(metrics[n][s, r]) for n in names)])  # shortest exact text
    return out.getvalue()


def read_metrics(run_dir: str | Path) -> dict[str, np.ndarray]:
    """``metrics.csv`` of a finished run as ``{column: (S, R) array}`` (``seed`` and ``round`` included),
    checked against the run's manifest first."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        what = "an unfinished run (rerun its command to resume)" if (Path(run_dir) / CONFIG).exists() else "no aljax run"
        raise StoreError(f"{run_dir}: {what}; no {METRICS}")
    rebuild = "rerun the run's `aljax run` command (same --out) to rebuild it from its chunks"
    listed = read_manifest(run_dir)
    if listed is not None and manifest.status(run_dir, METRICS, listed) != "ok":
        raise StoreError(f"{path} is damaged (it differs from its record in {manifest.MANIFEST}); {rebuild}")
    try:
        return _parse_metrics(path)
    except (OSError, ValueError, KeyError, csv.Error) as err:
        raise StoreError(f"{path} is unreadable ({type(err).__name__}); {rebuild}") from None


def _parse_metrics(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    n_rounds = max(int(r["round"]) for r in rows) + 1
    return {k: np.array([float(r[k]) for r in rows]).reshape(-1, n_rounds) for k in rows[0]}


def environment() -> dict:
    """What produced a result: package versions, git commit (and whether the tree was dirty), device, command."""
    from importlib import metadata

    import jax

    git_env = os.environ | {"GIT_OPTIONAL_LOCKS": "0"}  # read the checkout; never refresh its .git/index
    try:
        if not (REPO_ROOT / ".git").exists():  # installed, not a checkout: no commit to name
            raise OSError
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                check=True, env=git_env).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                    capture_output=True, text=True, env=git_env).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    device = jax.devices()[0]
    versions = {name: metadata.version(name) for name in ("jax", "jaxlib", "optax", "numpy", "scipy", "matplotlib")}
    return {
        "python": platform.python_version(), **versions, "git_commit": commit, "git_dirty": dirty,
        "platform": device.platform, "device": device.device_kind, "device_count": jax.device_count(),
        "cpus": os.cpu_count(), "host": platform.node(), "command": sys.argv,
    }
