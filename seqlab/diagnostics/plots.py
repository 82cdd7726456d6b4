"""Diagnostic plots as PNG files, drawn with matplotlib's Agg canvas.

The object-oriented API (``Figure`` + ``FigureCanvasAgg``) is used so that
drawing never touches pyplot's global backend or needs a display.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


def plot_time_gradients(
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    title: str,
    ylabel: str = "mean_b ||dL_b/dh_t||",
) -> Path:
    """One line per curve (x = time step t, log-scale y); writes ``path`` (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        # log axis: non-positive values (exact zeros) are not drawable
        values = np.where(values > 0, values, np.nan)
        ax.plot(np.arange(values.size), values, label=str(label), linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    # fixed margins: tight_layout and mathtext cost more than the probe itself
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    fig.savefig(path, format="png")
    return path
