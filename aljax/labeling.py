"""Human-in-the-loop labeling: active learning on the user's own unlabeled data.

A labeling project is one folder, and that folder is the whole state::

    config.json    Settings: class names, seed, model, optimiser, fit hyper-parameters, budget
    items.csv      id, path of every pool row (row i of features.npy)
    features.npy   (N, D) float32 features
    labels.csv     id, label, holdout: the expert's labels in acquisition order (only `add` writes it)
    fit.npz        the last fit: params, optimiser state, pool predictions, history of every fit
    batches/       batch_<labels>.csv (+ .png contact sheet): the proposals

Every file is written atomically (temp file + ``os.replace``), so a crash or Ctrl-C leaves either
the old or the new version, and never loses a label already added. ``labels.csv`` is the
authority: ``fit.npz`` records the digest of the labels it was fitted on, and a stale fit is
simply refitted (deleting fit.npz refits from scratch, which may differ from the carried fit).
A ``kill -9`` in the middle of a write can leave a hidden ``.NAME.PID.tmp`` file; it is never read.

One round is the simulated loop's round split in two at the oracle (:func:`propose`, then the
oracle answers, then :func:`add_labels`). The fit continues from the previous fit's params AND
optimiser state, as in :func:`aljax.loop.make_rounds`; scores and selection are
:data:`aljax.strategies.STRATEGIES` and :func:`aljax.strategies.select`. Differences from
:func:`aljax.loop.make_run`, by design:

* early stopping uses the labels marked ``holdout`` (never trained on, never proposed); a project
  without any uses its training labels ("fit until the labels are fitted");
* the PRNG key of a proposal is ``fold_in(key(seed), number of labels)``, so rerunning ``next``
  on the same state proposes the same batch (the loop splits one carried key instead): strategies
  that use the key (``random``) pick differently from the loop, deterministic ones identically;
* with no training label yet, the batch is a k-means cold start (``cold_start``: the loop's
  :func:`aljax.strategies.kmeans_representatives`), not the
  first rows.

The training buffer has one row per pool item (padding rows weigh 0), i.e. the loop's
``Config(capacity=N)``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from aljax.atomic import atomic_write, write_csv, write_json, write_npy, write_npz
from aljax.data import Split, features as pixel_features
from aljax.loop import Config, Hyper, components
from aljax.models import MODELS
from aljax.optim import OPTIMIZERS
from aljax.stopping import cohen_kappa
from aljax.strategies import kmeans_representatives, make_context, resolve, select
from aljax.fit import mean_weights

CONFIG, ITEMS, FEATURES, LABELS, FIT, BATCHES = (
    "config.json", "items.csv", "features.npy", "labels.csv", "fit.npz", "batches")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PROPOSAL_COLUMNS = ("id", "path", "predicted", "confidence", "label")


class LabelingError(Exception):
    """Bad input or project state. The message is one line and says how to fix it."""


# ----------------------------------------------------------------------------- files


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file; header names are stripped and lower-cased."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = list(csv.reader(f))
    except FileNotFoundError:
        raise LabelingError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LabelingError(f"{path}: unreadable CSV ({err})") from None
    if not table:
        raise LabelingError(f"{path}: empty file; it needs a header line with id,label")
    return [h.strip().lower() for h in table[0]], table[1:]


# ----------------------------------------------------------------------------- settings, labels


@dataclasses.dataclass(frozen=True)
class Settings:
    """A project's static choices (config.json). ``image_shape`` (H, W) or (H, W, 3) lets contact
    sheets be drawn from features when the items have no image files."""

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
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes) or "" in self.classes:
            raise LabelingError(f"classes must be at least two distinct non-empty names, got {','.join(self.classes)!r}")
        for name, value, valid in (("model", self.model, MODELS), ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in valid:
                raise LabelingError(f"unknown {name} {value!r}; choose one of: {', '.join(valid)}")

    def config(self, strategy: str = "least_confidence", query_size: int = 1) -> Config:
        """The loop's static config for this project's model (fits ignore strategy and query_size)."""
        return Config(strategy=strategy, query_size=query_size, n_initial=1, rounds=0,
                      model=f"{self.model}(init_scale={self.init_scale})", n_classes=len(self.classes),
                      optimizer=self.optimizer)

    def hyper(self) -> Hyper:
        return Hyper(learning_rate=jnp.float32(self.learning_rate), patience=jnp.int32(self.patience),
                     max_steps=jnp.int32(self.max_steps))


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
    """A loaded project: settings, the pool (ids, paths, x (N, D)) and the labels so far."""

    root: Path
    settings: Settings
    ids: tuple[str, ...]
    paths: tuple[str, ...]
    x: np.ndarray
    labels: tuple[Label, ...]

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

    @property
    def unlabeled(self) -> np.ndarray:
        """(N,) bool: items without any label (the ones a proposal may pick)."""
        mask = np.ones(len(self.ids), bool)
        mask[self.rows(self.labels)] = False
        return mask


def load_project(root: str | Path) -> Project:
    root = Path(root)
    if not (root / CONFIG).exists():
        raise LabelingError(f"{root} is not a labeling project (no {CONFIG}); create one with `aljax label init`")
    raw = json.loads((root / CONFIG).read_text())
    raw["classes"] = tuple(raw["classes"])
    raw["image_shape"] = None if raw.get("image_shape") is None else tuple(raw["image_shape"])
    settings = Settings(**raw)
    _, items = read_csv(root / ITEMS)
    _, labels = read_csv(root / LABELS)
    return Project(
        root=root,
        settings=settings,
        ids=tuple(r[0] for r in items),
        paths=tuple(r[1] for r in items),
        x=np.load(root / FEATURES),
        labels=tuple(Label(i, c, h == "1") for i, c, h in labels),
    )


def write_labels(root: Path, labels: Sequence[Label]) -> None:
    write_csv(root / LABELS, ("id", "label", "holdout"), ((l.id, l.label, int(l.holdout)) for l in labels))


# ----------------------------------------------------------------------------- user data


def load_images(folder: Path, size: tuple[int, int] | None = None) -> tuple[list[str], list[str], np.ndarray, tuple]:
    """PNG/JPEG files under ``folder`` (recursively, sorted) -> (ids, paths, x (N, D), image shape).

    ids are the paths relative to ``folder``. Every image is resized to ``size`` (W, H) (default:
    the first image's size) and converted to grayscale if all are grayscale, else to RGB.
    """
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise LabelingError(f"{folder}: no .png/.jpg/.jpeg images found; point --data at a folder of images")

    def opened(path):
        try:
            return Image.open(path)
        except (OSError, UnidentifiedImageError) as err:
            raise LabelingError(f"{path}: not a readable image ({err}); remove it from the folder") from None

    modes, sizes = set(), []
    for path in files:
        with opened(path) as im:
            modes.add(im.mode)
            sizes.append(im.size)
    mode = "L" if modes <= {"1", "L", "LA", "I", "I;16"} else "RGB"
    size = size or sizes[0]
    pixels = []
    for path in files:
        with opened(path) as im:
            try:
                im = im.convert(mode)
                pixels.append(np.asarray(im if im.size == size else im.resize(size, Image.Resampling.BILINEAR)))
            except OSError as err:
                raise LabelingError(f"{path}: not a readable image ({err}); remove it from the folder") from None
    images = np.stack(pixels)
    return ([p.relative_to(folder).as_posix() for p in files], [str(p.resolve()) for p in files],
            pixel_features(images).reshape(len(images), -1), images.shape[1:])


def load_array(path: Path) -> tuple[list[str], list[str], np.ndarray, tuple | None]:
    """A .npy/.npz array -> (ids = row numbers, empty paths, x (N, D) float32, image shape or None).

    (N, D) arrays are features as they are; (N, H, W) or (N, H, W, 3) arrays are images (uint8 is
    scaled by 1/255). A .npz must hold one array or one named ``x``.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise LabelingError(f"{path}: unreadable array ({err}); give a .npy or .npz file") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        names = loaded.files
        if "x" not in names and len(names) != 1:
            raise LabelingError(f"{path}: holds arrays {', '.join(names)}; name the features array x")
        arr = loaded["x" if "x" in names else names[0]]
    else:
        arr = loaded
    if arr.ndim < 2 or len(arr) == 0 or not np.issubdtype(arr.dtype, np.number):
        raise LabelingError(f"{path}: need a numeric array of shape (N, D) or (N, H, W[, C]), got {arr.dtype} {arr.shape}")
    x = pixel_features(arr).reshape(len(arr), -1) if arr.dtype == np.uint8 else arr.reshape(len(arr), -1).astype(np.float32)
    if not np.isfinite(x).all():
        raise LabelingError(f"{path}: features contain NaN or infinite values; clean them first")
    shape = tuple(arr.shape[1:]) if arr.ndim >= 3 else None
    return [str(i) for i in range(len(arr))], [""] * len(arr), x, shape


def init_project(root: str | Path, data: str | Path, classes: Sequence[str], seed_labels: str | Path | None = None,
                 holdout_fraction: float = 0.0, size: tuple[int, int] | None = None, **settings) -> Project:
    """Create a project in ``root`` from an image folder or a .npy/.npz file, with optional seed labels
    (a CSV with id,label[,holdout]); a fraction of the seed labels not marked can be held out too."""
    root, data = Path(root), Path(data)
    if (root / CONFIG).exists():
        raise LabelingError(f"{root} already holds a labeling project; choose another --project or delete it")
    if not 0 <= holdout_fraction < 1:
        raise LabelingError(f"--holdout-fraction must be in [0, 1), got {holdout_fraction}")
    settings = Settings(classes=tuple(c.strip() for c in classes), **settings)
    if not data.exists():
        raise LabelingError(f"{data}: no such file or folder")
    if data.is_dir():
        ids, paths, x, shape = load_images(data, size)
    elif data.suffix.lower() in (".npy", ".npz"):
        ids, paths, x, shape = load_array(data)
    else:
        raise LabelingError(f"{data}: give a folder of images or a .npy/.npz feature array")
    settings = dataclasses.replace(settings, image_shape=shape)
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root, settings, tuple(ids), tuple(paths), x, ())
    labels = []
    if seed_labels is not None:
        labels = check_answers(project, read_answers(Path(seed_labels)))
        n_hold = round(holdout_fraction * len(labels))
        order = np.random.default_rng(settings.seed).permutation(len(labels))
        held = set(order[:n_hold].tolist())
        labels = [dataclasses.replace(l, holdout=l.holdout or k in held) for k, l in enumerate(labels)]
    write_npy(root / FEATURES, x)
    write_csv(root / ITEMS, ("id", "path"), zip(ids, paths))
    write_labels(root, labels)
    write_json(root / CONFIG, dataclasses.asdict(settings), indent=1)  # last: marks it done
    return load_project(root)


# ----------------------------------------------------------------------------- answers


def read_answers(path: Path) -> list[Label]:
    """The filled rows of an expert's CSV (columns id, label and optionally holdout; others ignored).

    Rows whose label is empty are skipped (those items stay unlabeled). Raises LabelingError on a
    missing column, a duplicate id or a holdout value that is not 0/1.
    """
    header, rows = read_csv(path)
    for column in ("id", "label"):
        if column not in header:
            raise LabelingError(f"{path}: no {column!r} column in the header line; it needs id,label")
    col = {name: header.index(name) for name in ("id", "label", "holdout") if name in header}
    seen, answers = set(), []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[k].strip() if k < len(row) else "") for name, k in col.items()}
        if cells["id"] in seen:
            raise LabelingError(f"{path} line {line}: id {cells['id']!r} appears twice; keep one row per id")
        seen.add(cells["id"])
        holdout = cells.get("holdout", "").lower()
        if holdout not in ("", "0", "1", "true", "false", "yes", "no"):
            raise LabelingError(f"{path} line {line}: holdout must be 0 or 1, got {holdout!r}")
        if cells["label"]:
            answers.append(Label(cells["id"], cells["label"], holdout in ("1", "true", "yes")))
    return answers


def check_answers(project: Project, answers: Sequence[Label]) -> list[Label]:
    """The answers that are new to ``project``; raises LabelingError on an unknown id or class, or
    on an item already labeled differently. Answers equal to a stored label are dropped (rerun-safe)."""
    known = {l.id: l for l in project.labels}
    classes = project.settings.classes
    new = []
    for a in answers:
        if a.id not in project.row:
            raise LabelingError(f"unknown id {a.id!r}; use the ids of a proposal CSV (items.csv lists them all)")
        if a.label not in classes:
            raise LabelingError(f"id {a.id!r}: unknown class {a.label!r}; the classes are {','.join(classes)}")
        if a.id in known and known[a.id] != a:
            raise LabelingError(f"id {a.id!r} is already labeled {known[a.id].label!r}; labels are final, remove the row")
        if a.id not in known:
            new.append(a)
    return new


def add_labels(root: str | Path, answers: Sequence[Label]) -> list[Label]:
    """Validate ``answers`` against the project and append the new ones to labels.csv (atomically).

    All or nothing: on any bad answer nothing is written. Returns the labels added.
    """
    project = load_project(root)
    new = check_answers(project, answers)
    if new:
        write_labels(project.root, list(project.labels) + new)
    return new


# ----------------------------------------------------------------------------- oracles


class Oracle(Protocol):
    """Whoever answers a proposal: class names for ``ids``, None where there is no answer."""

    def label(self, ids: Sequence[str]) -> list[str | None]: ...


@dataclasses.dataclass(frozen=True)
class SimulatedOracle:
    """The experiments' oracle: reveals the true class name of every id (``y_true``: id -> name)."""

    y_true: Mapping[str, str]

    def label(self, ids: Sequence[str]) -> list[str | None]:
        return [self.y_true.get(i) for i in ids]


@dataclasses.dataclass(frozen=True)
class CsvOracle:
    """The human round trip: answers from the expert's filled proposal CSV (empty cells are None)."""

    path: Path

    def label(self, ids: Sequence[str]) -> list[str | None]:
        answers = {a.id: a.label for a in read_answers(Path(self.path))}
        return [answers.get(i) for i in ids]


# ----------------------------------------------------------------------------- fitting


@functools.partial(jax.jit, static_argnums=0)
def _fit(config: Config, hyper: Hyper, params, opt_state, x, order, targets, n_train, eval_split: Split):
    """Fit on the first ``n_train`` rows of the buffer ``order`` (N,) and predict the pool."""
    parts = components(config)
    train_w = mean_weights(jnp.arange(order.shape[0]) < n_train)
    result = parts.fitter(parts.model, parts.optimizer(hyper.learning_rate), params, opt_state, jax.random.key(0),
                          x[order], targets, train_w, eval_split, hyper)
    probs = jax.nn.softmax(parts.model.apply(result.params, x))
    return result, jnp.argmax(probs, axis=-1).astype(jnp.int32), jnp.max(probs, axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def _select(config: Config, key, params, x, selectable, order, targets, n_train):
    """Pool rows (query_size,) chosen by ``config.strategy``: the loop's Context, scores and select."""
    parts = components(config)
    ctx = make_context(parts.model, params, x, parts.model.apply(params, x), selectable, order, targets, n_train,
                       config.query_size)
    return select(parts.strategy(key, ctx), selectable, config.query_size)


COLD_START_ITERS = 50  # Lloyd steps of the cold start's k-means
cold_start = jax.jit(functools.partial(kmeans_representatives, iters=COLD_START_ITERS), static_argnums=3)


@dataclasses.dataclass(frozen=True)
class FitState:
    """The last fit (fit.npz): labels digest, params and optimiser state (pytrees of numpy arrays),
    pool predictions pred (N,) int32 and confidence (N,) float32 (max softmax), one history entry
    per fit (dicts: n_labels, n_train, n_holdout, steps, holdout_correct, min_confidence,
    mean_confidence, agreement)."""

    digest: str
    params: object
    opt_state: object
    pred: np.ndarray
    confidence: np.ndarray
    history: tuple[dict, ...]


def _fresh(project: Project):
    """Initial params and optimiser state (the key is the project seed's)."""
    config = project.settings.config()
    parts = components(config)
    params = parts.model.init(jax.random.key(project.settings.seed), project.x.shape[1:])
    return params, parts.optimizer(project.settings.hyper().learning_rate).init(params)


def load_fit(project: Project) -> FitState | None:
    if not (project.root / FIT).exists():
        return None
    params, opt_state = _fresh(project)
    with np.load(project.root / FIT) as z:
        def restore(tree, prefix):
            leaves, treedef = jax.tree.flatten(tree)
            return jax.tree.unflatten(treedef, [z[f"{prefix}{k}"] for k in range(len(leaves))])

        return FitState(str(z["digest"]), restore(params, "params_"), restore(opt_state, "opt_"), z["pred"],
                        z["confidence"], tuple(json.loads(str(z["history"]))))


def save_fit(project: Project, state: FitState) -> None:
    arrays = {f"params_{k}": np.asarray(a) for k, a in enumerate(jax.tree.leaves(state.params))}
    arrays |= {f"opt_{k}": np.asarray(a) for k, a in enumerate(jax.tree.leaves(state.opt_state))}
    arrays |= dict(digest=np.array(state.digest), pred=state.pred, confidence=state.confidence,
                   history=np.array(json.dumps(list(state.history))))
    write_npz(project.root / FIT, **arrays)


def _buffer(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """The training buffer: order (N,) pool rows of the train labels then zeros, targets (N,)."""
    n = len(project.ids)
    order, targets = np.zeros(n, np.int32), np.zeros(n, np.int32)
    order[: len(project.train)] = project.rows(project.train)
    targets[: len(project.train)] = project.targets(project.train)
    return order, targets


def current_fit(project: Project) -> FitState:
    """The fit on the project's current labels: fit.npz if it is up to date, else a new fit that
    continues the previous one (params and optimiser state), saved atomically before returning."""
    if not project.train:
        raise LabelingError("no training labels yet; label a proposal (or add seed labels) first")
    digest = labels_digest(project.labels)
    previous = load_fit(project)
    if previous is not None and previous.digest == digest:
        return previous
    params, opt_state = _fresh(project) if previous is None else (previous.params, previous.opt_state)
    order, targets = _buffer(project)
    held = project.holdout or project.train
    eval_split = Split(jnp.asarray(project.x[project.rows(held)]), jnp.asarray(project.targets(held)))
    result, pred, confidence = _fit(project.settings.config(), project.settings.hyper(), params, opt_state,
                                    jnp.asarray(project.x), order, targets, jnp.int32(len(project.train)), eval_split)
    pred, confidence = np.asarray(pred), np.asarray(confidence)
    unlabeled = project.unlabeled
    entry = dict(
        n_labels=len(project.labels),
        n_train=len(project.train),
        n_holdout=len(project.holdout),
        steps=int(result.steps),
        holdout_correct=int(result.correct) if project.holdout else None,
        min_confidence=float(confidence[unlabeled].min()) if unlabeled.any() else None,
        mean_confidence=float(confidence[unlabeled].mean()) if unlabeled.any() else None,
        agreement=None if previous is None else float(cohen_kappa(
            previous.pred, pred, np.ones(len(pred), bool), len(project.settings.classes))),
    )
    history = (() if previous is None else previous.history) + (entry,)
    state = FitState(digest, jax.tree.map(np.asarray, result.params), jax.tree.map(np.asarray, result.opt_state),
                     pred, confidence, history)
    save_fit(project, state)
    return state


# ----------------------------------------------------------------------------- proposals


@dataclasses.dataclass(frozen=True)
class Proposal:
    """The next batch: pool rows (k,) in the strategy's order, and the model's predicted class index
    and confidence for each (None on a cold start, when there is no model yet)."""

    rows: np.ndarray
    predicted: np.ndarray | None
    confidence: np.ndarray | None


def proposal_key(project: Project) -> jax.Array:
    """The key of the next proposal: the project seed folded with the number of labels."""
    return jax.random.fold_in(jax.random.key(project.settings.seed), len(project.labels))


def propose(project: Project, n: int = 10, strategy: str = "margin") -> Proposal:
    """Fit on the labels so far (or reuse the up-to-date fit) and pick the next ``n`` unlabeled items."""
    try:
        resolve(strategy)  # a registry name, a combinator or an out-of-tree module:function
    except ValueError as err:
        raise LabelingError(str(err)) from None
    if n < 1:
        raise LabelingError(f"--n must be at least 1, got {n}")
    unlabeled = project.unlabeled
    k = min(n, int(unlabeled.sum()))
    if k == 0:
        raise LabelingError("every item is labeled; nothing to propose (run `aljax label export`)")
    k_score, k_cold = jax.random.split(proposal_key(project))
    if not project.train:
        rows = cold_start(k_cold, jnp.asarray(project.x), jnp.asarray(unlabeled), k)
        return Proposal(np.asarray(rows), None, None)
    state = current_fit(project)
    order, targets = _buffer(project)
    rows = np.asarray(_select(project.settings.config(strategy, k), k_score, state.params, jnp.asarray(project.x),
                              jnp.asarray(unlabeled), order, targets, jnp.int32(len(project.train))))
    return Proposal(rows, state.pred[rows], state.confidence[rows])


def batch_path(project: Project) -> Path:
    """batches/batch_<number of labels>.csv: the same state proposes into the same file."""
    return project.root / BATCHES / f"batch_{len(project.labels):05d}.csv"


def write_proposal(project: Project, proposal: Proposal) -> tuple[Path, Path | None]:
    """Write the proposal CSV (label column empty) and, for images, a contact sheet PNG beside it.

    Refuses to overwrite a CSV that holds answers not yet added (they would be lost).
    """
    path = batch_path(project)
    if path.exists():
        pending = [a for a in read_answers(path) if a not in project.labels]
        if pending:
            raise LabelingError(f"{path} holds {len(pending)} labels not added yet; run `aljax label add` on it first")
    path.parent.mkdir(exist_ok=True)
    classes = project.settings.classes
    rows = []
    for k, r in enumerate(proposal.rows):
        predicted = "" if proposal.predicted is None else classes[proposal.predicted[k]]
        confidence = "" if proposal.confidence is None else f"{proposal.confidence[k]:.4f}"
        rows.append((project.ids[r], project.paths[r], predicted, confidence, ""))
    sheet = contact_sheet(project, proposal)
    png = None
    if sheet is not None:
        png = atomic_write(path.with_suffix(".png"), lambda f: sheet.save(f, format="PNG"))
    write_csv(path, PROPOSAL_COLUMNS, rows)
    return path, png


def contact_sheet(project: Project, proposal: Proposal, cell: int = 96, columns: int = 5):
    """A Pillow image of the proposed items in a grid, each captioned with its CSV row number and
    the model's guess; None when the items are not images."""
    from PIL import Image, ImageDraw, ImageOps

    shape = project.settings.image_shape
    if not any(project.paths[r] for r in proposal.rows) and shape is None:
        return None
    caption = 14
    n_rows = -(-len(proposal.rows) // columns)
    sheet = Image.new("RGB", (columns * cell, n_rows * (cell + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, r in enumerate(proposal.rows):
        if project.paths[r]:
            with Image.open(project.paths[r]) as im:
                thumb = im.convert("RGB")
        else:
            pixels = project.x[r].reshape(shape)
            span = max(float(pixels.max() - pixels.min()), 1e-12)
            thumb = Image.fromarray(np.uint8(255 * (pixels - pixels.min()) / span)).convert("RGB")
        thumb = ImageOps.contain(thumb, (cell - 4, cell - 4))
        x0, y0 = (k % columns) * cell, (k // columns) * (cell + caption)
        sheet.paste(thumb, (x0 + (cell - thumb.width) // 2, y0 + 2))
        guess = "" if proposal.predicted is None else (
            f"  model: {project.settings.classes[proposal.predicted[k]]} ({proposal.confidence[k]:.2f})")
        draw.text((x0 + 3, y0 + cell), f"#{k + 1}{guess}", fill="black")
    return sheet


def label_round(root: str | Path, oracle: Oracle, n: int = 10, strategy: str = "margin") -> list[Label]:
    """One round with any oracle: propose ``n`` items, ask the oracle, add its answers."""
    project = load_project(root)
    proposal = propose(project, n, strategy)
    ids = [project.ids[r] for r in proposal.rows]
    return add_labels(root, [Label(i, a) for i, a in zip(ids, oracle.label(ids)) if a])


# ----------------------------------------------------------------------------- stopping, status, export


@dataclasses.dataclass(frozen=True)
class Criterion:
    """A stopping criterion's current value, its threshold, and whether it says stop."""

    value: float | None
    threshold: float | None
    met: bool


def stopping_criteria(entry: dict | None, spent: int, budget: int | None, confidence: float = 0.9,
                      kappa: float = 0.99) -> dict[str, Criterion]:
    """The stopping criteria after the fit ``entry`` (a history dict; None before any fit).

    * ``max_confidence``: every unlabeled item's max softmax is at least ``confidence`` (the pool
      holds nothing the model is unsure about);
    * ``stable_predictions``: Cohen's κ between the pool predictions of the last two fits is at
      least ``kappa`` (:func:`aljax.stopping.cohen_kappa`, the measure the simulated loop reports);
    * ``budget``: ``spent`` labels reached the optional ``budget``.
    """
    min_conf = None if entry is None else entry["min_confidence"]
    agreement = None if entry is None else entry["agreement"]
    return {
        "max_confidence": Criterion(min_conf, confidence, min_conf is not None and min_conf >= confidence),
        "stable_predictions": Criterion(agreement, kappa, agreement is not None and agreement >= kappa),
        "budget": Criterion(spent, budget, budget is not None and spent >= budget),
    }


@dataclasses.dataclass(frozen=True)
class Status:
    """What `label status` reports. ``fit`` is the last fit's history entry, ``stale`` whether
    labels were added after it; ``per_class`` counts all labels by class name."""

    n_items: int
    n_train: int
    n_holdout: int
    per_class: dict[str, int]
    fit: dict | None
    stale: bool
    criteria: dict[str, Criterion]


def status(project: Project, confidence: float = 0.9, kappa: float = 0.99) -> Status:
    """The project's state without fitting anything (so it is cheap and changes no file)."""
    state = load_fit(project)
    entry = None if state is None else state.history[-1]
    per_class = {c: sum(l.label == c for l in project.labels) for c in project.settings.classes}
    return Status(
        n_items=len(project.ids),
        n_train=len(project.train),
        n_holdout=len(project.holdout),
        per_class=per_class,
        fit=entry,
        stale=state is not None and state.digest != labels_digest(project.labels),
        criteria=stopping_criteria(entry, len(project.labels), project.settings.budget, confidence, kappa),
    )


def format_status(project: Project, s: Status) -> str:
    spent = s.n_train + s.n_holdout
    budget = project.settings.budget
    lines = [
        f"project {project.root}: {s.n_items} items, classes {','.join(project.settings.classes)}",
        f"labels spent: {spent}" + (f" of a budget of {budget}" if budget else "")
        + f" ({s.n_train} train, {s.n_holdout} holdout); per class: "
        + " ".join(f"{c}={n}" for c, n in s.per_class.items()),
    ]
    if s.fit is None:
        lines.append("no fit yet: run `aljax label next`")
    else:
        f = s.fit
        lines.append(f"last fit: {f['n_train']} train labels, {f['steps']} steps"
                     + (" (labels added since; `aljax label next` refits)" if s.stale else ""))
        if f["holdout_correct"] is None:
            lines.append("estimated accuracy: no holdout labels (mark some with a holdout column of 1)")
        else:
            lines.append(f"estimated accuracy on the holdout: {f['holdout_correct'] / f['n_holdout']:.1%} "
                         f"({f['holdout_correct']}/{f['n_holdout']}; also the early-stopping set, so optimistic)")
    c = s.criteria
    lines.append(_criterion_line("lowest max-confidence on the unlabeled pool", c["max_confidence"], ">="))
    lines.append(_criterion_line("agreement (Cohen's kappa) of the last two fits' predictions", c["stable_predictions"], ">="))
    if budget:
        lines.append(f"budget: {spent}/{budget} labels" + (" -> stop" if c["budget"].met else ""))
    return "\n".join(lines)


def _criterion_line(name: str, c: Criterion, op: str) -> str:
    value = "n/a" if c.value is None else f"{c.value:.3f}"
    return f"{name}: {value} (stop when {op} {c.threshold:g}{': met -> stop' if c.met else ''})"


def export(project: Project, out: str | Path, auto_threshold: float | None = None) -> tuple[int, int]:
    """Write the labeled set, plus unlabeled items whose predicted class has confidence at least
    ``auto_threshold`` (source ``auto``), to ``out``: a .csv (id, path, label, source, confidence,
    holdout) or a .npz (x (n, D), y (n,) class indices, ids, classes, source, confidence, holdout).
    Returns (expert labels, auto labels) written."""
    out = Path(out)
    if out.suffix not in (".csv", ".npz"):
        raise LabelingError(f"{out}: the export file must end in .csv or .npz")
    rows = list(project.rows(project.labels))
    y = list(project.targets(project.labels))
    source = ["expert"] * len(rows)
    confidence = [np.nan] * len(rows)
    holdout = [l.holdout for l in project.labels]
    n_auto = 0
    if auto_threshold is not None:
        if not 0 <= auto_threshold <= 1:
            raise LabelingError(f"--auto-threshold must be in [0, 1], got {auto_threshold}")
        state = current_fit(project)
        auto = np.flatnonzero(project.unlabeled & (state.confidence >= auto_threshold))
        n_auto = len(auto)
        rows += list(auto)
        y += list(state.pred[auto])
        source += ["auto"] * n_auto
        confidence += list(state.confidence[auto])
        holdout += [False] * n_auto
    classes = project.settings.classes
    if out.suffix == ".csv":
        write_csv(out, ("id", "path", "label", "source", "confidence", "holdout"), (
            (project.ids[r], project.paths[r], classes[t], s, "" if np.isnan(c) else f"{c:.4f}", int(h))
            for r, t, s, c, h in zip(rows, y, source, confidence, holdout)))
    else:
        arrays = dict(x=project.x[np.array(rows, np.int64)].reshape(len(rows), -1), y=np.array(y, np.int32),
                      ids=np.array([project.ids[r] for r in rows], str), classes=np.array(classes),
                      source=np.array(source), confidence=np.array(confidence, np.float32),
                      holdout=np.array(holdout, bool))
        write_npz(out, **arrays)
    return len(project.labels), n_auto
