"""Shared fixtures: a tiny synthetic dataset, and real MNIST when `make data` has run (or $ALJAX_DATA
holds mnist/, plain or gzipped); the ``gpu`` marker: such tests are skipped, with the reason, where
JAX computes on another backend. ``experiments/`` is on the path, so tests import its scripts (and the
scripts each other) by name."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from aljax.data import Data, IDX_STEMS, Split, find_data_dir, find_idx, load_mnist, make_pool, make_split
from aljax.precision import backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs JAX on a GPU (skipped on other backends, with the reason)")


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("gpu")]
    if marked and backend() != "gpu":
        skip = pytest.mark.skip(reason=f"needs a GPU: JAX computes on {backend()!r} here")
        for item in marked:
            item.add_marker(skip)


def synthetic(n_pool: int = 64, n_eval: int = 32, d: int = 6, c: int = 3, pad: int = 0, seed: int = 0) -> Data:
    """Gaussian blobs: one mean per class, so a linear model learns quickly."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 2, (c, d)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, c, n)
        return (means[y] + rng.normal(0, 1, (n, d))).astype(np.float32), y

    x, y = draw(n_pool)
    ex, ey = draw(n_eval)
    split = make_split(ex, ey)
    return Data(pool=make_pool(x, y, n_pool + pad), eval=split, test=Split(split.x, split.y))


@pytest.fixture(scope="session")
def tiny() -> Data:
    return synthetic(pad=8)


@pytest.fixture(scope="session")
def mnist():
    folder = find_data_dir()[0] / "mnist"
    if not all(find_idx(folder, stem).exists() for stem in IDX_STEMS):
        pytest.skip(f"MNIST not in {folder}; run `make data` (or set ALJAX_DATA to a folder holding mnist/)")
    return load_mnist(folder)
