"""What comes in: the user's unlabeled data (an image folder or a .npy/.npz array) and the
expert's answers (a CSV of id,label[,holdout], e.g. a filled proposal)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from aljax.data import DataError, check_array_file, features as pixel_features
from aljax.labeling.project import (PROJECT_FILES, LabelingError, Label, Project, Settings, check_answers,
                                    create_project, read_csv)
from aljax.labeling.session import check_settings

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_SIZE = (28, 28)  # (W, H) every image is resized to (``label init --size``)
MAX_PIXELS = 50_000_000  # an image with more pixels is refused (a decompression bomb; ``--max-pixels``)
MAX_BYTES = 2 << 30  # a .npy/.npz array larger than this once loaded is refused (``--max-bytes``)


def load_images(folder: Path, size: tuple[int, int] = DEFAULT_SIZE,
                max_pixels: int = MAX_PIXELS) -> tuple[list[str], list[str], np.ndarray, tuple]:
    """PNG/JPEG files under ``folder`` (recursively, sorted) -> (ids, paths, x (N, D), image shape).

    ids are the paths relative to ``folder``. Every image is resized to ``size`` (W, H) and converted
    to grayscale if all are grayscale, else to RGB. An image of more than ``max_pixels`` pixels is
    refused before it is decoded.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise LabelingError(f"{folder}: no .png/.jpg/.jpeg images found; point --data at a folder of images")

    def opened(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(path)
        except (OSError, UnidentifiedImageError) as err:
            raise LabelingError(f"{path}: not a readable image ({type(err).__name__}); remove it from the folder") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise LabelingError(f"{path}: too large an image (over {Image.MAX_IMAGE_PIXELS} pixels, a decompression "
                                f"bomb?); remove it, or raise --max-pixels if it is real") from None
        if im.width * im.height > max_pixels:
            im.close()
            raise LabelingError(f"{path}: {im.width}x{im.height} is more than --max-pixels {max_pixels} pixels; "
                                f"remove it, or raise --max-pixels if it is real")
        return im

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:  # Pillow's own bomb check
        Image.MAX_IMAGE_PIXELS = max_pixels
    modes = set()
    for path in files:
        with opened(path) as im:
            modes.add(im.mode)
    mode = "L" if modes <= {"1", "L", "LA", "I", "I;16"} else "RGB"
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


def load_array(path: Path, max_bytes: int = MAX_BYTES) -> tuple[list[str], list[str], np.ndarray, tuple | None]:
    """A .npy/.npz array -> (ids = row numbers, empty paths, x (N, D) float32, image shape or None).

    (N, D) arrays are features as they are; (N, H, W) or (N, H, W, 3) arrays are images (uint8 is
    scaled by 1/255). A .npz must hold one array or one named ``x``. Arrays whose declared size is
    over ``max_bytes`` are refused before they are read.
    """
    try:
        check_array_file(path, max_bytes)
    except DataError as err:
        raise LabelingError(f"{err}; or raise --max-bytes") from None
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
                 holdout_fraction: float = 0.0, size: tuple[int, int] = DEFAULT_SIZE, max_pixels: int = MAX_PIXELS,
                 max_bytes: int = MAX_BYTES, **settings) -> Project:
    """Create a project in ``root`` from an image folder or a .npy/.npz file, with optional seed labels
    (a CSV with id,label[,holdout]); a fraction of the seed labels not marked can be held out too.
    Everything is checked before the first file is written; a folder holding any project file
    (:data:`aljax.labeling.project.PROJECT_FILES`) is refused."""
    root, data = Path(root), Path(data)
    present = [name for name in PROJECT_FILES if (root / name).exists()]
    if present:
        raise LabelingError(f"{root} already holds a labeling project's files ({', '.join(present)}); choose another "
                            f"--project, or move them away yourself")
    if size[0] < 1 or size[1] < 1 or size[0] * size[1] > max_pixels:
        raise LabelingError(f"--size {size[0]}x{size[1]} must be at least 1x1 and at most --max-pixels {max_pixels}")
    if not 0 <= holdout_fraction < 1:
        raise LabelingError(f"--holdout-fraction must be in [0, 1), got {holdout_fraction}")
    settings = check_settings(Settings(classes=tuple(c.strip() for c in classes), **settings))
    if not data.exists():
        raise LabelingError(f"{data}: no such file or folder")
    if data.is_dir():
        ids, paths, x, shape = load_images(data, size, max_pixels)
    elif data.suffix.lower() in (".npy", ".npz"):
        ids, paths, x, shape = load_array(data, max_bytes)
    else:
        raise LabelingError(f"{data}: give a folder of images or a .npy/.npz feature array")
    settings = dataclasses.replace(settings, image_shape=shape)
    labels = []
    if seed_labels is not None:
        labels = check_answers(Project(root, settings, tuple(ids), tuple(paths), x, ()), read_answers(Path(seed_labels)))
        n_hold = round(holdout_fraction * len(labels))
        held = set(np.random.default_rng(settings.seed).permutation(len(labels))[:n_hold].tolist())
        labels = [dataclasses.replace(l, holdout=l.holdout or k in held) for k, l in enumerate(labels)]
    return create_project(root, settings, ids, paths, x, labels)


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


@dataclasses.dataclass(frozen=True)
class CsvOracle:
    """The human round trip as an oracle (:class:`aljax.labeling.session.Oracle`): answers from the
    expert's filled proposal CSV (empty cells are None)."""

    path: Path

    def label(self, ids: Sequence[str]) -> list[str | None]:
        answers = {a.id: a.label for a in read_answers(Path(self.path))}
        return [answers.get(i) for i in ids]
