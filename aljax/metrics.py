"""Statistics over seeds: means with Student-t 95 % confidence intervals."""

from __future__ import annotations

import numpy as np
from scipy import stats

# Per-round metrics (RoundInfo fields) whose values lie in a known range: a CI printed for one of them
# is clipped to it (with 2 seeds, t_0.975 = 12.7 stretches an interval far past 100 % accuracy).
BOUNDS: dict[str, tuple[float, float]] = {
    "test_accuracy": (0.0, 1.0),
    "min_confidence": (0.0, 1.0),
    "agreement": (-1.0, 1.0),
}


def mean_ci(values, axis: int = 0, level: float = 0.95,
            bounds: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over ``axis``: mean ± t_{(1+level)/2, n−1} · s / √n (NaN bounds for n = 1),
    the bounds clipped to ``bounds`` (low, high) when given: the range the values cannot leave."""
    values = np.asarray(values, np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = stats.t.ppf((1 + level) / 2, n - 1) * values.std(axis=axis, ddof=1) / np.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    return mean, low, high
