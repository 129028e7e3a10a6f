"""Shared fixtures: a tiny synthetic dataset, and real MNIST when `make data` has run."""

from __future__ import annotations

import numpy as np
import pytest

from aljax.data import DEFAULT_DATA_DIR, Data, Split, load_mnist, make_pool, make_split

MNIST_DIR = DEFAULT_DATA_DIR / "mnist"


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
    if not all((MNIST_DIR / f).exists() for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")):
        pytest.skip("MNIST not fetched; run `make data`")
    return load_mnist(MNIST_DIR)
