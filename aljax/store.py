"""The results store: one self-describing folder per run, written atomically, resumable.

Layout of a run folder (``aljax run --out DIR``)::

    DIR/config.toml       resolved run config (loadable again with ``aljax run --config``)
    DIR/environment.json  versions (python, jax, jaxlib, optax, numpy), git commit, device
    DIR/chunks/chunk-00000.npz ...   checkpoint of each finished chunk of seeds
    DIR/orders.npz        acquisition order and given labels, (S, L) int32 each, and seed indices (S,)
    DIR/timings.json      wall-clock seconds: compile_s (one per invocation), chunk_s, run_s
    DIR/curve.png         learning curve with a 95 % CI band
    DIR/summary.md        markdown table of the final accuracy
    DIR/metrics.csv       per-round metrics per seed; written LAST: its presence marks a finished run

Every file is written to a temporary name in the same folder and renamed into place, so an
interrupted run never leaves a half-written file under a final name. Seed ``i`` always uses the key
``fold_in(key(base_seed), i)`` and chunks always have the same shape, so a resumed run computes the
same numbers as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

from aljax.atomic import write_json, write_npz, write_text

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIG = "config.toml"
ENVIRONMENT = "environment.json"
CHUNKS = "chunks"
ORDERS = "orders.npz"
TIMINGS = "timings.json"
FIGURE = "curve.png"
SUMMARY = "summary.md"
METRICS = "metrics.csv"  # the completion marker: written last
FINAL_FILES = (ORDERS, TIMINGS, FIGURE, SUMMARY, METRICS)
ALL_FILES = (CONFIG, ENVIRONMENT) + FINAL_FILES




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


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / METRICS).exists()


def check_run(run_dir: str | Path, config: dict, force: bool = False) -> None:
    """Raise :class:`StoreError` if ``run_dir`` cannot hold a run of ``config``; writes nothing.

    Usable: a new or empty folder, one holding the same config (resumed), or the same config with
    more ``seeds`` (extended: the finished seeds are kept). A different config, or files that are not
    an aljax run, need ``force``.
    """
    run_dir = Path(run_dir)
    config = {k: v for k, v in config.items() if v is not None}  # as it reads back from TOML
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "not a folder" if not existing.is_dir() else "permission denied"
        raise StoreError(f"cannot write to output folder {run_dir} ({existing}: {why}); choose another --out")
    if force or not run_dir.exists():
        return
    if (run_dir / CONFIG).exists():
        old = read_toml(run_dir / CONFIG)
        if old != config and not is_extension(old, config):
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in sorted(old.keys() | config.keys())
                             if old.get(k) != config.get(k))
            raise StoreError(f"{run_dir} holds a different run ({diff}); pass --force to overwrite or choose another --out")
    elif any(run_dir.iterdir()):
        raise StoreError(f"{run_dir} is not empty and holds no aljax run; pass --force or choose another --out")


def is_extension(old: dict, new: dict) -> bool:
    """``new`` is ``old`` with more seeds (seed i's key does not depend on the number of seeds)."""
    rest = lambda c: {k: v for k, v in c.items() if k != "seeds"}  # noqa: E731
    return rest(old) == rest(new) and new.get("seeds", 0) > old.get("seeds", 0)


def open_run(run_dir: str | Path, config: dict, force: bool = False) -> list[int]:
    """Prepare ``run_dir`` for a run of ``config`` (see :func:`check_run`); return the indices of the
    chunks already finished. ``force`` deletes only the files this module writes. An extended run
    loses its completion marker (``metrics.csv``) first, then gets the new config."""
    check_run(run_dir, config, force)
    run_dir = Path(run_dir)
    config = {k: v for k, v in config.items() if v is not None}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / ".write-test", "")
        (run_dir / ".write-test").unlink()
    except OSError as err:
        raise StoreError(f"cannot write to output folder {run_dir} ({err.strerror}); choose another --out") from None
    if force:
        clear(run_dir)
    elif (run_dir / CONFIG).exists() and read_toml(run_dir / CONFIG) != config:  # an extension
        (run_dir / METRICS).unlink(missing_ok=True)
        write_text(run_dir / CONFIG, to_toml(config))
    (run_dir / CHUNKS).mkdir(exist_ok=True)
    for tmp in [*run_dir.glob(".*.tmp"), *(run_dir / CHUNKS).glob(".*.tmp")]:  # left by a killed run
        tmp.unlink()
    if not (run_dir / CONFIG).exists():
        write_text(run_dir / CONFIG, to_toml(config))
    return finished_chunks(run_dir)


def clear(run_dir: Path) -> None:
    """Delete the files a run writes (and only those) from ``run_dir``."""
    for name in ALL_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for chunk in (run_dir / CHUNKS).glob("chunk-*.npz"):  # nothing if the folder does not exist
        chunk.unlink()


def chunk_path(run_dir: str | Path, index: int) -> Path:
    return Path(run_dir) / CHUNKS / f"chunk-{index:05d}.npz"


def finished_chunks(run_dir: str | Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (Path(run_dir) / CHUNKS).glob("chunk-*.npz"))


def chunk_sizes(run_dir: str | Path) -> dict[int, int]:
    """Finished chunk index -> the number of seeds it holds (its ``seed`` array)."""
    sizes = {}
    for index in finished_chunks(run_dir):
        with np.load(chunk_path(run_dir, index)) as z:
            sizes[index] = len(z["seed"])
    return sizes


def add_timing(run_dir: str | Path, key: str, seconds, append: bool = True) -> None:
    """Record ``seconds`` under ``key`` in ``timings.json`` (appended to a list, one per invocation)."""
    path = Path(run_dir) / TIMINGS
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[key] = timings.get(key, []) + [seconds] if append else seconds
    write_json(path, timings)


def save_chunk(run_dir: str | Path, index: int, arrays: dict[str, np.ndarray]) -> Path:
    """Checkpoint one finished chunk: arrays with a leading seed axis (and ``seed`` indices)."""
    return write_npz(chunk_path(run_dir, index), **arrays)


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
    """``metrics.csv`` of a finished run as ``{column: (S, R) array}`` (``seed`` and ``round`` included)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        what = "an unfinished run (rerun its command to resume)" if (Path(run_dir) / CONFIG).exists() else "no aljax run"
        raise StoreError(f"{run_dir}: {what}; no {METRICS}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    n_rounds = max(int(r["round"]) for r in rows) + 1
    return {k: np.array([float(r[k]) for r in rows]).reshape(-1, n_rounds) for k in rows[0]}


def environment() -> dict:
    """What produced a result: package versions, git commit (and whether the tree was dirty), device, command."""
    from importlib import metadata

    import jax

    try:
        if not (REPO_ROOT / ".git").exists():  # installed, not a checkout: no commit to name
            raise OSError
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    device = jax.devices()[0]
    versions = {name: metadata.version(name) for name in ("jax", "jaxlib", "optax", "numpy", "scipy", "matplotlib")}
    return {
        "python": platform.python_version(), **versions, "git_commit": commit, "git_dirty": dirty,
        "platform": device.platform, "device": device.device_kind, "device_count": jax.device_count(),
        "cpus": os.cpu_count(), "host": platform.node(), "command": sys.argv,
    }
