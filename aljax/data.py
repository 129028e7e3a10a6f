"""Host-side data: checksummed MNIST IDX files, tfds image datasets, and fixed-shape splits.

Everything here is numpy until :func:`make_pool` / :func:`make_split` hand arrays to the device.
A dataset is a :class:`Raw` (uint8 images, int labels); a protocol turns it into :class:`Data`:

* ``seed`` (the article): pool = first 4000 training images, early stopping AND reporting on the
  first 400 test images.
* ``dev`` (honest): pool = the first ``pool_size`` training images, early stopping on the last
  ``dev_size`` training images (never in the pool), reporting on the full test set.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FASHION_MNIST_SHA256 = {  # the files of Debian's dataset-fashion-mnist (Zalando's release), uncompressed
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DEFAULT_DATA_DIR = Path("data")  # the library's default (relative: the checkout's data/ when run from it)
REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "ALJAX_DATA"
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MAKE_TARGETS = {"mnist": "data", "fashion_mnist": "data-fashion"}  # the Makefile's target of each named dataset
FETCH_HINT = f"run `make {MAKE_TARGETS['mnist']}`"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(Exception):
    """A data file is missing, truncated or corrupt. The message is one line and says what to do."""


@dataclasses.dataclass(frozen=True)
class Raw:
    """A labeled image dataset on the host: images (n, H, W) uint8, labels (n,) int."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    name: str = "mnist"

    @property
    def n_classes(self) -> int:
        return int(max(self.train_y.max(), self.test_y.max())) + 1


# ----------------------------------------------------------------------------- IDX files


def check_array_file(path: str | Path, max_bytes: int) -> None:
    """Raise a one-line DataError if the .npy file or any member of the .npz file ``path`` declares
    (in its header, read without reading the data) an array of more than ``max_bytes`` bytes, or
    is not a plain numeric array (object arrays would need pickle)."""
    import zipfile

    def check(f, what: str) -> None:
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{what}: not a readable .npy array ({type(err).__name__})") from None
        if dtype.hasobject:
            raise DataError(f"{what}: holds Python objects, not numbers; save a numeric array")
        size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if size > max_bytes:
            raise DataError(f"{what}: its array {shape} {dtype} would take {size} bytes, more than the cap of "
                            f"{max_bytes}")

    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.file_size > max_bytes:
                        raise DataError(f"{path}: member {info.filename} inflates to {info.file_size} bytes, more "
                                        f"than the cap of {max_bytes}")
                    with z.open(info) as f:
                        check(f, f"{path}: member {info.filename}")
        else:
            with open(path, "rb") as f:
                check(f, str(path))
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: unreadable ({type(err).__name__})") from None


def parse_idx(buf: bytes, name: str = "<bytes>", hint: str = FETCH_HINT) -> np.ndarray:
    """Decode one IDX file's bytes into an array, checking the magic number and the size.

    ``hint`` ends every error message: how to obtain the file again."""
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _IDX_DTYPES:
        raise DataError(f"{name}: not an IDX file (bad magic number); delete it and {hint}")
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{name}: truncated IDX header; delete it and {hint}")
    shape = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[buf[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(buf) != expected:
        raise DataError(
            f"{name}: {len(buf)} bytes where its header promises {expected} (truncated or padded);"
            f" delete it and {hint}"
        )
    return np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path, sha256: str | None = None, hint: str = FETCH_HINT) -> np.ndarray:
    """Read a plain or ``.gz`` IDX file; verify the SHA-256 of its uncompressed bytes if given."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        buf = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {hint}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: unreadable ({err}); delete it and {hint}") from None
    if sha256 is not None and hashlib.sha256(buf).hexdigest() != sha256:
        raise DataError(f"{path}: wrong SHA-256 checksum (corrupt download?); delete it and {hint}")
    return parse_idx(buf, str(path), hint)


def find_idx(data_dir: Path, stem: str) -> Path:
    """The path of ``stem`` in ``data_dir``, plain or gzipped (plain if neither exists)."""
    for candidate in (data_dir / stem, data_dir / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return data_dir / stem


def load_idx_dataset(data_dir: str | Path, checksums: dict[str, str] | None, name: str,
                     hint: str = FETCH_HINT) -> Raw:
    """A dataset stored as MNIST's four IDX files (``train-images-idx3-ubyte`` ...) in ``data_dir``.

    checksums: stem -> SHA-256 of the uncompressed bytes (None: do not verify); hint: how to fetch.
    """
    data_dir = Path(data_dir)
    arrays = {
        stem: read_idx(find_idx(data_dir, stem), None if checksums is None else checksums[stem], hint)
        for stem in IDX_STEMS
    }
    return Raw(
        train_x=arrays["train-images-idx3-ubyte"],
        train_y=arrays["train-labels-idx1-ubyte"].astype(np.int32),
        test_x=arrays["t10k-images-idx3-ubyte"],
        test_y=arrays["t10k-labels-idx1-ubyte"].astype(np.int32),
        name=name,
    )


def load_mnist(data_dir: str | Path | None = None, *, verify: bool = True) -> Raw:
    """MNIST from its four official IDX files (checksums of DESIGN §8 verified by default), in
    ``data_dir`` or else ``mnist/`` of the folder the command line uses (:func:`find_data_dir`)."""
    return _load_named("mnist", data_dir, verify)


def load_fashion_mnist(data_dir: str | Path | None = None, *, verify: bool = True) -> Raw:
    """Fashion-MNIST (same IDX layout and sizes as MNIST) from ``make data-fashion``'s files, in
    ``data_dir`` or else ``fashion_mnist/`` of the folder the command line uses (:func:`find_data_dir`)."""
    return _load_named("fashion_mnist", data_dir, verify)


def _load_named(name: str, data_dir: str | Path | None, verify: bool) -> Raw:
    """The named dataset (a key of :data:`CHECKSUMS`) from ``data_dir``, else from ``name/`` of the
    folder :func:`find_data_dir` finds, with the fetch hint that fits where it looked."""
    checksums = CHECKSUMS[name] if verify else None
    if data_dir is None:
        found, how = find_data_dir()
        return load_idx_dataset(found / name, checksums, name, fetch_hint(name, found, how))
    return load_idx_dataset(data_dir, checksums, name, f"run `make {MAKE_TARGETS[name]}`")


def load_tfds(name: str, data_dir: str | Path | None = None) -> Raw:
    """Any tfds image-classification dataset (mnist, fashion_mnist, kmnist, ...) as a :class:`Raw`.

    Uses ``tfds.data_source`` (random access, no TensorFlow needed once the dataset is prepared).
    Never downloads (tfds' own default would): a dataset that is not prepared is a one-line error.
    """
    import tensorflow_datasets as tfds

    try:
        sources = tfds.data_source(name, split=["train", "test"], data_dir=data_dir, download=False)
    except Exception as err:  # tfds raises many types; all mean "not available here"
        raise DataError(f"tfds dataset {name!r} unavailable ({type(err).__name__}); aljax never downloads: prepare "
                        f"it with tfds first (e.g. `tfds build {name}`)") from None

    def to_numpy(source) -> tuple[np.ndarray, np.ndarray]:
        items = [source[i] for i in range(len(source))]
        images = np.stack([np.asarray(item["image"]) for item in items])
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        return images.astype(np.uint8), np.array([int(item["label"]) for item in items], np.int32)

    (train_x, train_y), (test_x, test_y) = map(to_numpy, sources)
    return Raw(train_x, train_y, test_x, test_y, name=name)


DATASETS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist}
CHECKSUMS = {"mnist": MNIST_SHA256, "fashion_mnist": FASHION_MNIST_SHA256}
DATASET_FORMS = {
    **{name: (loader.__doc__ or "").split(" (")[0].split(" from ")[0] + f" (checksummed IDX files in DATA_DIR/{name})"
       for name, loader in DATASETS.items()},
    "idx:DIR": "any folder DIR with the four MNIST-layout IDX files (not checksummed)",
    "tfds:NAME": "any prepared tensorflow-datasets image-classification dataset (e.g. tfds:kmnist)",
    "package.module:function": "an out-of-tree function declared @aljax.declare.dataset that returns a Raw",
}


def in_checkout(cwd: Path | None = None) -> bool:
    """Whether ``cwd`` lies inside the repository checkout this package runs from."""
    cwd = Path.cwd() if cwd is None else cwd
    return (REPO_ROOT / "pyproject.toml").exists() and (REPO_ROOT / ".git").exists() and \
        cwd.resolve().is_relative_to(REPO_ROOT)


def user_data_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/aljax`` or ``~/.local/share/aljax``."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "aljax"


def find_data_dir(flag: str | Path | None = None) -> tuple[Path, str]:
    """The folder holding the named datasets, and how it was chosen: the ``--data-dir`` flag, then
    ``$ALJAX_DATA``, then the checkout's ``data/`` when run inside the repository, then
    :func:`user_data_dir`."""
    if flag is not None:
        return Path(flag), "flag"
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]), "env"
    if in_checkout():
        return REPO_ROOT / "data", "checkout"
    return user_data_dir(), "user"


def fetch_hint(name: str, data_dir: Path, how: str = "flag") -> str:
    """How to obtain dataset ``name`` into ``data_dir/name``, for an error message."""
    target = Path(data_dir) / name
    if how == "checkout" and target.resolve() == (REPO_ROOT / "data" / name).resolve() and name in MAKE_TARGETS:
        return f"run `make {MAKE_TARGETS[name]}`"
    fetch = f"run `python -m aljax.fetch --dataset {name} --dest {target}`"
    if how == "user":
        return f"{fetch}, or set {DATA_ENV} to a folder holding {name}/ (or pass --data-dir)"
    return fetch


def check_raw(raw, name: str) -> Raw:
    """``raw`` if it is a well-formed :class:`Raw`, else a one-line :class:`DataError` naming ``name``:
    uint8 inputs (n, *sample_shape) with the same sample shape in both splits, integer labels (n,)
    in 0..C-1 with at least 2 classes, and no empty split."""
    where = f"dataset {name!r}"
    if not isinstance(raw, Raw):
        raise DataError(f"{where} returned {type(raw).__name__}, not an aljax.data.Raw(train_x, train_y, test_x, test_y)")
    for split in ("train", "test"):
        x, y = getattr(raw, f"{split}_x"), getattr(raw, f"{split}_y")
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim < 2:
            what = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise DataError(f"{where}: {split}_x must be a uint8 numpy array (n, *sample_shape) of pixels 0..255, "
                            f"got a {what}")
        if not isinstance(y, np.ndarray) or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            what = f"{y.dtype} array of shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise DataError(f"{where}: {split}_y must be a 1-D integer numpy array of labels, got a {what}")
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"{where}: {split}_x has {len(x)} rows and {split}_y {len(y)} labels; give the same, "
                            "non-zero number")
        if y.min() < 0:
            raise DataError(f"{where}: {split}_y holds the label {int(y.min())}; labels must be 0..C-1")
    if raw.train_x.shape[1:] != raw.test_x.shape[1:]:
        raise DataError(f"{where}: train and test samples differ in shape ({raw.train_x.shape[1:]} and "
                        f"{raw.test_x.shape[1:]}); give both splits the same sample shape")
    if raw.n_classes < 2:
        raise DataError(f"{where}: its labels name {raw.n_classes} class; active learning needs at least 2 (0..C-1)")
    return raw


def load_plugin(name: str) -> Raw:
    """The :class:`Raw` an out-of-tree ``package.module:function`` (with settings:
    ``my_pkg.data:blobs(n=500)``) returns, checked (:func:`check_raw`); the function must be declared
    with ``@aljax.declare.dataset``. One-line DataError otherwise."""
    from aljax import declare
    from aljax import spec as specs

    try:
        spec = specs.parse(name)
        function = specs.lookup({}, spec.name, "dataset")
        if not declare.is_declared(function, "dataset"):
            raise DataError(f"dataset {spec.name!r} is not declared; decorate it with @aljax.declare.dataset")
        specs.check({spec.name: function}, spec, "dataset")
    except specs.SpecError as err:
        raise DataError(str(err)) from None
    return check_raw(function(*spec.args, **dict(spec.kwargs)), name)


def load_dataset(name: str, data_dir: str | Path = DEFAULT_DATA_DIR, how: str = "flag") -> Raw:
    """The one place a dataset name becomes a :class:`Raw`: a key of :data:`DATASETS` (its files in
    ``data_dir/name``), ``idx:DIR``, ``tfds:NAME`` or an out-of-tree ``package.module:function``
    (:func:`load_plugin`). Raises KeyError for any other name. ``how`` (see :func:`find_data_dir`)
    chooses the advice of a missing-file error."""
    if name.startswith("idx:"):
        folder = Path(name.removeprefix("idx:"))
        hint = f"provide it again ({folder} must hold the four MNIST-layout IDX files {', '.join(IDX_STEMS)})"
        return load_idx_dataset(folder, None, folder.name, hint)
    if name.startswith("tfds:"):
        return load_tfds(name.removeprefix("tfds:"))
    if ":" in name:
        return load_plugin(name)
    DATASETS[name]  # KeyError for an unknown name
    return load_idx_dataset(Path(data_dir) / name, CHECKSUMS[name], name, fetch_hint(name, Path(data_dir), how))


# ----------------------------------------------------------------------------- device splits


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Split:
    """A labeled evaluation set on the device: x (n, *sample_shape) float32, y (n,) int32."""

    x: jax.Array
    y: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Pool:
    """The unlabeled pool on the device, padded to a fixed size.

    x (N, *sample_shape) float32 inputs (MNIST: (N, 28, 28, 1); models flatten what they need), y (N,)
    int32 oracle labels (hidden from strategies), valid (N,) bool (False on padding rows, which are
    never selected).
    """

    x: jax.Array
    y: jax.Array
    valid: jax.Array

    @property
    def size(self) -> int:
        return self.x.shape[0]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Data:
    """Everything one experiment reads: the pool, the early-stopping set, the reporting set."""

    pool: Pool
    eval: Split
    test: Split


def features(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], rounded as float64 `x / 255` then cast, keeping the sample
    shape: grayscale (n, H, W) gains a channel axis, (n, H, W, 1); (n, H, W, C) and (n, D) stay."""
    x = images[..., None] if images.ndim == 3 else images
    return (x / 255.0).astype(np.float32)


def make_pool(x: np.ndarray, y: np.ndarray, size: int | None = None) -> Pool:
    """A device pool from inputs (n, *sample_shape) and labels (n,), zero-padded to ``size`` rows."""
    n = len(x)
    size = n if size is None else size
    if size < n:
        raise ValueError(f"pool padding size {size} is smaller than the pool ({n})")
    if not np.isfinite(x).all():
        raise DataError("pool features contain NaN or infinite values; clean the input features")
    pad = size - n
    return Pool(
        x=jnp.asarray(np.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1))),
        y=jnp.asarray(np.pad(y.astype(np.int32), (0, pad))),
        valid=jnp.asarray(np.arange(size) < n),
    )


def make_split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(x=jnp.asarray(x), y=jnp.asarray(y.astype(np.int32)))


def seed_data(raw: Raw, pool_size: int = 4000, test_size: int = 400) -> Data:
    """The article's split: early stopping and reporting both on the first ``test_size`` test images."""
    test = make_split(features(raw.test_x[:test_size]), raw.test_y[:test_size])
    return Data(pool=make_pool(features(raw.train_x[:pool_size]), raw.train_y[:pool_size]), eval=test, test=test)


def dev_data(raw: Raw, pool_size: int | None = 4000, dev_size: int = 1000, pad_to: int | None = None) -> Data:
    """The honest split: dev = the last ``dev_size`` training images, pool = the first ``pool_size``
    (all the others if None), test = the whole test set."""
    n_train = len(raw.train_x) - dev_size
    pool_size = n_train if pool_size is None else pool_size
    if pool_size > n_train:
        raise ValueError(f"pool_size {pool_size} + dev_size {dev_size} exceeds the {len(raw.train_x)} training images")
    return Data(
        pool=make_pool(features(raw.train_x[:pool_size]), raw.train_y[:pool_size], pad_to),
        eval=make_split(features(raw.train_x[n_train:]), raw.train_y[n_train:]),
        test=make_split(features(raw.test_x), raw.test_y),
    )


PROTOCOLS = {"seed": seed_data, "dev": dev_data}
