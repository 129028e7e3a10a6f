"""The project store: one folder is a labeling project's whole state.

::

    config.json    settings: class names, seed, model, optimiser, fit hyper-parameters, budget
    items.csv      id, path of every pool row (row i of features.npy)
    features.npy   (N, D) float32 features
    labels.csv     id, label, holdout: the expert's labels in acquisition order
    history.json   what changed after init: label fixes, relinked image folders, dropped items (optional)
    fit.npz        the last fit (:mod:`aljax.labeling.session`)
    batches/       batch_<labels>.csv (+ .png contact sheet): the proposals
    manifest.json  the SHA-256 and size of every file above (:mod:`aljax.manifest`)

Every file is written through :mod:`aljax.atomic` (temp file + rename), and every command after
``init`` changes at most one of ``labels.csv`` (``add``) and ``history.json`` (``fix``, ``relink``,
``next --drop-missing``), so a crash, Ctrl-C or full disk leaves the old project or the new one,
never half of it. A write that fails is one :class:`LabelingError` naming the file and the fix.
A ``kill -9`` in the middle of a write can leave a hidden ``.NAME.XXXX.tmp`` file; it is never read.
Each file is recorded in ``manifest.json`` as it is written, and :func:`load_project` checks the
project's files against it: a damaged file is one line, never read as if whole. Projects written
before manifests load as they are (and get one with their next write). ``label init`` refuses a
folder that holds any project file (:data:`PROJECT_FILES`).

:func:`load_project` applies ``history.json`` to what the other files hold: a fix replaces the
label of its id, a relink points the image paths at another folder (paths = folder / id), a drop
takes items out of the proposals. Projects written before ``history.json`` existed load as they are.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import errno
import functools
import hashlib
import json
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from aljax import manifest
from aljax.atomic import unescape_cell, write_csv, write_json, write_npy

CONFIG, ITEMS, FEATURES, LABELS, HISTORY, FIT, BATCHES = (
    "config.json", "items.csv", "features.npy", "labels.csv", "history.json", "fit.npz", "batches")
EXPORT = "export.csv"
PROJECT_FILES = (CONFIG, ITEMS, FEATURES, LABELS, HISTORY, FIT, BATCHES, EXPORT, manifest.MANIFEST)


class LabelingError(Exception):
    """Bad input or project state. The message is one line and says how to fix it."""


# ----------------------------------------------------------------------------- reading and writing files


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file; header names are stripped and lower-cased."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = [[unescape_cell(cell) for cell in row] for row in csv.reader(f)]
    except FileNotFoundError:
        raise LabelingError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LabelingError(f"{path}: unreadable CSV ({err})") from None
    if not table:
        raise LabelingError(f"{path}: empty file; it needs a header line with id,label")
    return [h.strip().lower() for h in table[0]], table[1:]


_WRITE_FIXES = {
    errno.EROFS: "the file system is read-only; copy the project (or --out) to a writable place and rerun there",
    errno.ENOSPC: "the disk is full; free some space and rerun",
    errno.EDQUOT: "the disk quota is exceeded; free some space and rerun",
    errno.EACCES: "permission denied; make the folder writable (chmod u+w) or run as its owner",
    errno.EPERM: "permission denied; make the folder writable (chmod u+w) or run as its owner",
    errno.ENOENT: "its folder does not exist; create it first",
}


def write(save: Callable, path: Path, *args, record_in: Path | None = None, **kwargs) -> Path:
    """``save(path, *args)`` with one of :mod:`aljax.atomic`'s writers; an OSError (read-only or
    full file system, no permission) becomes a one-line LabelingError, and ``path`` is unchanged.
    With ``record_in`` (a project folder that holds ``path``), the file is recorded in that
    project's manifest (:func:`aljax.manifest.write`)."""
    if record_in is not None and Path(path).resolve().is_relative_to(Path(record_in).resolve()):
        name = Path(path).resolve().relative_to(Path(record_in).resolve()).as_posix()
        return _guarded(lambda: manifest.write(record_in, name, save, path, *args, **kwargs), path)
    return _guarded(lambda: save(path, *args, **kwargs), path)


def _guarded(action: Callable, path: Path):
    """``action()``, an OSError turned into a one-line LabelingError about ``path``."""
    try:
        return action()
    except OSError as err:
        fix = _WRITE_FIXES.get(err.errno, "check the path and rerun")
        raise LabelingError(f"could not write {path}: {err.strerror or err}; {fix} (nothing was changed)") from None


def verify(root: Path, names: Iterable[str]) -> None:
    """Raise a one-line LabelingError if a file of ``names`` differs from its record in the project's
    manifest (a project without a manifest, written before manifests, is taken as it is)."""
    try:
        listed = manifest.read(root)
    except manifest.ManifestError as err:
        raise LabelingError(str(err)) from None
    if listed is None:
        return
    for name in names:
        if name in listed["files"] and manifest.status(root, name, listed) != "ok":
            fix = ("delete it to refit from scratch (labels are kept)" if name == FIT else
                   "restore it from a backup (or recreate the project with `aljax label init`)")
            raise LabelingError(f"{root / name} is damaged (it differs from its record in {manifest.MANIFEST}); {fix}")


def make_dir(path: Path) -> bool:
    """Create the folder ``path`` if needed; True if it was created."""
    if path.is_dir():
        return False
    return _guarded(lambda: path.mkdir(parents=True) or True, path)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- settings, labels, project


@dataclasses.dataclass(frozen=True)
class Settings:
    """A project's static choices (config.json). ``image_shape`` (H, W) or (H, W, 3) lets contact
    sheets be drawn from features when the items have no image files. Model and optimiser names are
    checked by :func:`aljax.labeling.session.check_settings`."""

    classes: tuple[str, ...]
    seed: int = 0
    model: str = "softmax_regression"
    optimizer: str = "tf1_adam"
    init_scale: float = 0.0
    learning_rate: float = 0.1
    patience: int = 10
    max_steps: int = 10_000
    budget: int | None = None
    image_shape: tuple[int, ...] | None = None

    def __post_init__(self):
        for name in ("seed", "patience", "max_steps", "budget"):
            value = getattr(self, name)
            if value is not None and not -2**31 < value < 2**31:
                raise LabelingError(f"--{name.replace('_', '-')} {value if len(str(value)) <= 20 else '(huge)'} is "
                                    f"beyond {2**31 - 1}, the largest count the program holds (int32)")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes) or "" in self.classes:
            raise LabelingError(f"classes must be at least two distinct non-empty names, got {','.join(self.classes)!r}")


@dataclasses.dataclass(frozen=True)
class Label:
    """One answer of the expert: item id, class name, and whether it is held out (never trained on)."""

    id: str
    label: str
    holdout: bool = False


def labels_digest(labels: Sequence[Label]) -> str:
    return hashlib.sha256(json.dumps([dataclasses.astuple(l) for l in labels]).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Project:
    """A loaded project: settings, the pool (ids, paths, x (N, D)), the labels so far (fixes
    applied) and the history of changes after init (dicts with ``event`` and ``time``)."""

    root: Path
    settings: Settings
    ids: tuple[str, ...]
    paths: tuple[str, ...]
    x: np.ndarray
    labels: tuple[Label, ...]
    history: tuple[dict, ...] = ()

    @functools.cached_property
    def row(self) -> dict[str, int]:
        return {i: r for r, i in enumerate(self.ids)}

    def rows(self, labels: Iterable[Label]) -> np.ndarray:
        return np.array([self.row[l.id] for l in labels], np.int32)

    def targets(self, labels: Iterable[Label]) -> np.ndarray:
        index = {c: k for k, c in enumerate(self.settings.classes)}
        return np.array([index[l.label] for l in labels], np.int32)

    @property
    def train(self) -> tuple[Label, ...]:
        return tuple(l for l in self.labels if not l.holdout)

    @property
    def holdout(self) -> tuple[Label, ...]:
        return tuple(l for l in self.labels if l.holdout)

    @functools.cached_property
    def dropped(self) -> frozenset[str]:
        """Ids taken out of the proposals (their image files were missing)."""
        return frozenset(i for e in self.history if e["event"] == "drop" for i in e["ids"])

    @property
    def unlabeled(self) -> np.ndarray:
        """(N,) bool: items without a label and not dropped (the ones a proposal may pick)."""
        mask = np.ones(len(self.ids), bool)
        mask[self.rows(self.labels)] = False
        mask[[self.row[i] for i in self.dropped]] = False
        return mask

    def missing_files(self) -> list[int]:
        """Rows a proposal may pick whose image file does not exist."""
        return [r for r in np.flatnonzero(self.unlabeled) if self.paths[r] and not Path(self.paths[r]).is_file()]


def load_project(root: str | Path) -> Project:
    root = Path(root)
    if not (root / CONFIG).exists():
        raise LabelingError(f"{root} is not a labeling project (no {CONFIG}); create one with `aljax label init`")
    verify(root, (CONFIG, ITEMS, FEATURES, LABELS, HISTORY))
    raw = _load_json(root / CONFIG)
    try:
        raw["classes"] = tuple(raw["classes"])
        raw["image_shape"] = None if raw.get("image_shape") is None else tuple(raw["image_shape"])
        settings = Settings(**raw)
    except (KeyError, TypeError) as err:
        raise LabelingError(f"{root / CONFIG}: not a settings file this aljax understands ({err}); "
                            f"recreate the project with `aljax label init`") from None
    _, items = read_csv(root / ITEMS)
    _, label_rows = read_csv(root / LABELS)
    try:
        x = np.load(root / FEATURES, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise LabelingError(f"{root / FEATURES}: unreadable ({err}); recreate the project with `aljax label init`") from None
    if len(items) != len(x) or any(len(r) != 2 for r in items) or any(len(r) != 3 for r in label_rows):
        raise LabelingError(f"{root}: {ITEMS}, {FEATURES} and {LABELS} do not match; the project is damaged")
    history = tuple(_load_json(root / HISTORY)) if (root / HISTORY).exists() else ()
    ids, paths = tuple(r[0] for r in items), tuple(r[1] for r in items)
    fixes = {e["id"]: e["new"] for e in history if e["event"] == "fix"}
    labels = tuple(Label(i, fixes.get(i, c), h == "1") for i, c, h in label_rows)
    relinks = [e["data"] for e in history if e["event"] == "relink"]
    if relinks:
        paths = tuple(str(Path(relinks[-1]) / i) if p else p for i, p in zip(ids, paths))
    return Project(root, settings, ids, paths, x, labels, history)


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LabelingError(f"{path}: unreadable JSON ({err}); restore it from a backup") from None


def create_project(root: Path, settings: Settings, ids: Sequence[str], paths: Sequence[str], x: np.ndarray,
                   labels: Sequence[Label]) -> Project:
    """Write a new project into ``root`` (config.json last: it marks the project done). On any
    failure the files written so far, and the folder if this made it, are removed."""
    created = make_dir(root)
    written = []
    try:
        _guarded(lambda: manifest.update(root), root)  # every file below is recorded as it is written
        written.append(root / manifest.MANIFEST)
        for name, save, args in ((FEATURES, write_npy, (x,)),
                                 (ITEMS, write_csv, (("id", "path"), zip(ids, paths))),
                                 (LABELS, write_csv, (("id", "label", "holdout"), _label_rows(labels))),
                                 (CONFIG, write_json, (dataclasses.asdict(settings),))):
            written.append(write(save, root / name, *args, record_in=root))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            root.rmdir()
        raise
    return load_project(root)


def _label_rows(labels: Iterable[Label]):
    return ((l.id, l.label, int(l.holdout)) for l in labels)


def record(project: Project, *events: dict) -> Project:
    """Append ``events`` (each gets the current time) to history.json; returns the reloaded project."""
    write(write_json, project.root / HISTORY, list(project.history) + [{"time": now(), **e} for e in events],
          record_in=project.root)
    return load_project(project.root)


# ----------------------------------------------------------------------------- changing a project


def check_answers(project: Project, answers: Sequence[Label]) -> list[Label]:
    """The answers that are new to ``project``; raises LabelingError on an unknown id or class, or
    on an item already labeled differently. Answers equal to a stored label are dropped (rerun-safe)."""
    known = {l.id: l for l in project.labels}
    new = []
    for a in answers:
        _check_class(project, _check_id(project, a.id), a.label)
        if a.id in project.dropped:
            raise LabelingError(f"id {a.id!r} was dropped from the project (its image file was missing); restore the "
                                f"file and relink (`aljax label relink`), or remove the row")
        if a.id in known and known[a.id] != a:
            raise LabelingError(f"id {a.id!r} is already labeled {known[a.id].label!r}; to correct it run "
                                f"`aljax label fix --project {project.root} {a.id} {a.label}`, else remove the row")
        if a.id not in known:
            new.append(a)
    return new


def _check_id(project: Project, id: str) -> str:
    if id not in project.row:
        raise LabelingError(f"unknown id {id!r}; use the ids of a proposal CSV ({project.root / ITEMS} lists them all)")
    return id


def _check_class(project: Project, id: str, label: str) -> None:
    if label not in project.settings.classes:
        raise LabelingError(f"id {id!r}: unknown class {label!r}; the classes are {','.join(project.settings.classes)}")


def add_labels(root: str | Path, answers: Sequence[Label]) -> list[Label]:
    """Validate ``answers`` against the project and append the new ones to labels.csv (atomically).

    All or nothing: on any bad answer nothing is written. Returns the labels added.
    """
    project = load_project(root)
    new = check_answers(project, answers)
    if new:
        write(write_csv, project.root / LABELS, ("id", "label", "holdout"), _label_rows(list(project.labels) + new),
              record_in=project.root)
    return new


def fix_label(root: str | Path, id: str, label: str) -> str | None:
    """Correct the label of ``id`` to ``label``, recorded in history.json (old, new, time); the next
    fit uses it. Returns the old label, or None when it already was ``label`` (nothing written)."""
    project = load_project(root)
    _check_class(project, _check_id(project, id), label)
    old = {l.id: l.label for l in project.labels}.get(id)
    if old is None:
        raise LabelingError(f"id {id!r} has no label yet; label it through a proposal and `aljax label add`")
    if old == label:
        return None
    record(project, dict(event="fix", id=id, old=old, new=label))
    return old


def relink(root: str | Path, data: str | Path, drop_missing: bool = False) -> tuple[int, int]:
    """Point the project's image paths at the folder ``data`` (path = data / id), after checking
    that it holds every image a proposal may need; with ``drop_missing`` the ones it lacks are
    dropped instead. Recorded in history.json. Returns (items relinked, items dropped)."""
    project = load_project(root)
    data = Path(data).resolve()
    if not any(project.paths):
        raise LabelingError(f"{project.root} was made from a feature array; it has no image files to relink")
    if not data.is_dir():
        raise LabelingError(f"{data}: no such folder; give the folder that now holds the project's images")
    moved = dataclasses.replace(project, paths=tuple(str(data / i) if p else p for i, p in zip(project.ids, project.paths)))
    missing = moved.missing_files()
    if missing and not drop_missing:
        raise LabelingError(f"{data} lacks {len(missing)} of the images still to label, e.g. {project.ids[missing[0]]}; "
                            f"give the folder that holds them (or add --drop-missing to drop those items)")
    events = [dict(event="relink", data=str(data))]
    if missing:
        events.append(_drop_event(moved, missing))
    record(project, *events)
    return sum(map(bool, project.paths)), len(missing)


def _drop_event(project: Project, rows: Sequence[int]) -> dict:
    return dict(event="drop", ids=[project.ids[r] for r in rows], count=len(rows), reason="image file missing")


def require_files(project: Project, drop_missing: bool = False) -> tuple[Project, int]:
    """The project with every image a proposal may pick present: raises a one-line LabelingError
    naming a missing file, or, with ``drop_missing``, drops the missing items (recorded in
    history.json). Returns (project, number of items dropped)."""
    missing = project.missing_files()
    if not missing:
        return project, 0
    if drop_missing:
        return record(project, _drop_event(project, missing)), len(missing)
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    raise LabelingError(
        f"image file {project.paths[missing[0]]} of item {project.ids[missing[0]]!r} is missing{more}; if the images "
        f"moved: aljax label relink --project {project.root} --data NEWDIR; to go on without them: "
        f"aljax label next --project {project.root} --drop-missing")
