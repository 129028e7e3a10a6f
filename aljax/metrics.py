"""Statistics over seeds: means with Student-t 95 % confidence intervals."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values, axis: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over ``axis``: mean ± t_{(1+level)/2, n−1} · s / √n (NaN bounds for n = 1)."""
    values = np.asarray(values, np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = stats.t.ppf((1 + level) / 2, n - 1) * values.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half
