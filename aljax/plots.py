"""Figures: learning curves with 95 % confidence bands (matplotlib, headless)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aljax.atomic import write_figure  # noqa: E402
from aljax.metrics import mean_ci  # noqa: E402


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "",
                ylabel: str = "test accuracy", bounds: tuple[float, float] | None = None) -> Path:
    """Draw mean curves with 95 % CI bands and save a PNG (atomically).

    curves: name -> (labels (R,), accuracy (S, R) over S seeds, or (R,) for a single run); bounds: the
    values' range (e.g. (0, 100) for accuracies in %), to which the bands are clipped (a t-interval of a
    few seeds can reach past it). Long titles wrap.
    """
    many = len(curves) > 6  # legend beside the axes; past 10 curves the colours repeat dashed
    fig, ax = plt.subplots(figsize=(9.5 if many else 7, 4.5))
    colors = plt.get_cmap("tab10").colors
    for i, (name, (labels, acc)) in enumerate(curves.items()):
        acc = np.atleast_2d(acc)
        mean, low, high = mean_ci(acc)
        (line,) = ax.plot(labels, mean, color=colors[i % 10], linestyle=("-", "--", ":")[i // 10 % 3],
                          label=f"{name} (n={acc.shape[0]})" if acc.shape[0] > 1 else name)
        if acc.shape[0] > 1:
            if bounds is not None:
                low, high = np.clip(low, *bounds), np.clip(high, *bounds)
            ax.fill_between(labels, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if any(np.atleast_2d(acc).shape[0] > 1 for _, acc in curves.values()):
        from matplotlib.patches import Patch

        ax.add_artist(ax.legend(handles=[Patch(color="gray", alpha=0.3, label="95 % CI")], loc="lower right",
                                fontsize="small"))
    ax.set_xlabel("labels")
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize="medium")
    ax.grid(alpha=0.3)
    if many:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    else:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(path, fig)
    plt.close(fig)
    return path
