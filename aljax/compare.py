"""Paired statistics over seeds for comparing active-learning curves (host side, numpy).

A curve set is ``labels (R,)`` (label counts after each fit) and ``acc (S, R)`` (test accuracy of S
seeds). Seeds are paired across strategies: seed s of every strategy starts from the same initial
labels, so differences are taken per seed before any averaging. Intervals are Student-t 95 % CIs
over the seed distribution (:func:`aljax.metrics.mean_ci`). Any per-round column, a metric plug-in's
included, is a curve set: :func:`curve`.
"""

from __future__ import annotations

import numpy as np

from aljax.metrics import mean_ci


def curve(metrics: dict[str, np.ndarray], name: str = "test_accuracy") -> tuple[np.ndarray, np.ndarray]:
    """``(labels (R,), values (S, R))`` of the per-round column ``name`` of a run's metrics (as
    :func:`aljax.store.read_metrics` returns them: the built-ins and every metric plug-in's column,
    ``Config.metrics``); a one-line ValueError naming the columns there are."""
    if name not in metrics:
        columns = ", ".join(k for k in metrics if k not in ("seed", "round"))
        raise ValueError(f"no metric {name!r} in this run (columns: {columns}); was it run with --metrics?")
    return np.asarray(metrics["n_labeled"])[0], np.asarray(metrics[name])


def summary(values) -> dict:
    """{'mean', 'low', 'high', 'n'} of a 1-D sample (NaN bounds when n < 2; all NaN when n = 0)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    mean, low, high = mean_ci(values)
    return {"mean": float(mean), "low": float(low), "high": float(high), "n": int(values.size)}


def at_labels(labels, acc, count: int) -> np.ndarray:
    """Per-seed accuracy (S,) at exactly ``count`` labels; ValueError if the curve has no such point."""
    hits = np.flatnonzero(np.asarray(labels) == count)
    if hits.size == 0:
        raise ValueError(f"no fit at {count} labels on this curve (labels {labels[0]}..{labels[-1]})")
    return np.asarray(acc)[:, hits[0]]


def labels_to_reach(labels, acc, target: float) -> np.ndarray:
    """Per-seed first label count (S,) at which accuracy >= ``target``; NaN where never reached."""
    labels = np.asarray(labels, np.float64)
    reached = np.asarray(acc) >= target
    first = np.argmax(reached, axis=1)
    return np.where(reached.any(axis=1), labels[first], np.nan)


def reach_summary(labels, acc, target: float) -> dict:
    """Labels-to-reach over the seeds that reach ``target`` (mean, CI) and how many never do."""
    needed = labels_to_reach(labels, acc, target)
    reached = needed[~np.isnan(needed)]
    return {**summary(reached), "never": int(np.isnan(needed).sum()), "seeds": int(needed.size)}


def auc(labels, acc, upto: int | None = None) -> np.ndarray:
    """Per-seed normalised area under the budget curve (S,): the trapezoid integral of accuracy over
    labels from the first point to ``upto`` (default: the last), divided by that label range; i.e.
    the mean accuracy over the budget, in the accuracy's units."""
    labels = np.asarray(labels, np.float64)
    acc = np.asarray(acc, np.float64)
    keep = labels <= (labels[-1] if upto is None else upto)
    labels, acc = labels[keep], acc[:, keep]
    return np.trapezoid(acc, labels, axis=1) / (labels[-1] - labels[0])


def paired(a, b) -> dict:
    """Paired comparison of per-seed values a (S,) against b (S,) (higher is better).

    mean/low/high: the mean of a − b with its t 95 % CI; wins/ties/losses: fractions of seeds with
    a > b, a == b, a < b.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired comparison needs two equal-length 1-D samples, got {a.shape} and {b.shape}")
    diff = a - b
    return {
        **summary(diff),
        "wins": float(np.mean(diff > 0)),
        "ties": float(np.mean(diff == 0)),
        "losses": float(np.mean(diff < 0)),
    }



def common_seeds(seeds_a, seeds_b) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (P,) and (P,) of the seed ids that ``seeds_a`` (S_a,) and ``seeds_b`` (S_b,) share, in
    increasing seed order: row ``ia[p]`` of one run and row ``ib[p]`` of the other are the same seed."""
    seeds_a, seeds_b = np.asarray(seeds_a).astype(np.int64), np.asarray(seeds_b).astype(np.int64)
    _, ia, ib = np.intersect1d(seeds_a, seeds_b, assume_unique=True, return_indices=True)
    return ia, ib


def paired_runs(labels, values, baseline_labels, baseline_values) -> dict:
    """A run's per-seed values (P, R) against a baseline's (P, R), seed p of one paired with seed p of
    the other, at the same label counts ``labels`` (R,): ``difference`` (P, R), the per-seed
    difference at each round; ``final`` and ``curve``: :func:`paired` over the final values and over
    the per-seed means over the curve. ValueError if the label counts differ."""
    labels, baseline_labels = np.asarray(labels), np.asarray(baseline_labels)
    if labels.shape != baseline_labels.shape or not np.array_equal(labels, baseline_labels):
        raise ValueError(f"measured at other label counts ({_span(labels)} against {_span(baseline_labels)})")
    values, baseline_values = np.asarray(values, np.float64), np.asarray(baseline_values, np.float64)
    return {"difference": values - baseline_values,
            "final": paired(values[:, -1], baseline_values[:, -1]),
            "curve": paired(values.mean(axis=1), baseline_values.mean(axis=1))}


def _span(labels: np.ndarray) -> str:
    return f"{int(labels[0])}..{int(labels[-1])} in {len(labels)} fits"
