"""Figures: learning curves with 95 % confidence bands (matplotlib, headless), and, against a baseline,
the paired per-seed differences in a second panel."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aljax.atomic import write_figure  # noqa: E402
from aljax.metrics import mean_ci  # noqa: E402

Curves = dict[str, tuple[np.ndarray, np.ndarray]]


def _draw(ax, curves: Curves, bounds: tuple[float, float] | None, colors: dict[str, tuple]) -> None:
    """Mean curves (one colour per name) with their 95 % CI bands, clipped to ``bounds``."""
    for i, (name, (labels, values)) in enumerate(curves.items()):
        values = np.atleast_2d(values)
        mean, low, high = mean_ci(values)
        ax.plot(labels, mean, color=colors[name], linestyle=("-", "--", ":")[i // 10 % 3],
                label=f"{name} (n={values.shape[0]})" if values.shape[0] > 1 else name)
        if values.shape[0] > 1:
            if bounds is not None:
                low, high = np.clip(low, *bounds), np.clip(high, *bounds)
            ax.fill_between(labels, low, high, color=colors[name], alpha=0.2, linewidth=0)


def plot_curves(curves: Curves, path: str | Path, title: str = "", ylabel: str = "test accuracy",
                bounds: tuple[float, float] | None = None, differences: Curves | None = None,
                baseline: str = "") -> Path:
    """Draw mean curves with 95 % CI bands and save a PNG (atomically).

    curves: name -> (labels (R,), values (S, R) over S seeds, or (R,) for a single run); bounds: the
    values' range (e.g. (0, 1) for accuracies, :data:`aljax.metrics.BOUNDS`), to which the bands are clipped (a
    t-interval of a few seeds can reach past it). differences: name -> (labels (R,), per-seed paired
    differences (S, R) against ``baseline``), drawn with their CI bands in a second panel below, in
    the colour of the same name above (bands clipped to ± the width of ``bounds``). Long titles wrap.
    """
    many = len(curves) > 6  # legend beside the axes; past 10 curves the colours repeat dashed
    panels = 2 if differences else 1
    fig, axes = plt.subplots(panels, 1, figsize=(9.5 if many else 7, 4.5 * panels), sharex=True, squeeze=False)
    ax = axes[0, 0]
    palette = plt.get_cmap("tab10").colors
    colors = {name: palette[i % 10] for i, name in enumerate(curves)}
    _draw(ax, curves, bounds, colors)
    if any(np.atleast_2d(values).shape[0] > 1 for _, values in curves.values()):
        from matplotlib.patches import Patch

        ax.add_artist(ax.legend(handles=[Patch(color="gray", alpha=0.3, label="95 % CI")], loc="lower right",
                                fontsize="small"))
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize="medium")
    if many:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    else:
        ax.legend()
    if differences:
        below = axes[1, 0]
        width = None if bounds is None else (bounds[1] - bounds[0])
        _draw(below, differences, None if width is None else (-width, width), colors)
        below.axhline(0.0, color="black", linewidth=0.8)
        below.set_ylabel(f"paired difference to {baseline}" if baseline else "paired difference")
    for row in axes[:, 0]:
        row.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("labels")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(path, fig)
    plt.close(fig)
    return path
