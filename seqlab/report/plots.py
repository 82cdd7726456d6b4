"""The sweep's figures (matplotlib, Agg backend, no display needed).

- ``learning_curves.png``: the validation and training loss (and the primary
  metric, when it is another one) of every child against the step, overlaid.
- ``grad_time.png``: for runs that logged ``grad_time/<layer>`` (the norm of
  dL/dh_t with step = t, from ``callbacks=diagnostics``), one panel per child,
  side by side on a shared log axis.
"""

from __future__ import annotations

from pathlib import Path

from seqlab.report.collect import SEED_KEY, Sweep

MAX_LEGEND = 16


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def label_of(sweep: Sweep, child) -> str:
    if not sweep.keys:
        return child.name
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={child.values[k]}" for k in sweep.keys)


def _colours(sweep: Sweep) -> dict[str, tuple]:
    """One colour per child, or per seed group (seeds of one setting share it)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(sweep.children) <= 10 else "tab20")
    keys = [k for k in sweep.keys if k != SEED_KEY] if sweep.seed_grouped else None
    groups: dict = {}
    out = {}
    for c in sweep.children:
        g = tuple(c.values[k] for k in keys) if keys is not None else c.run_id
        groups.setdefault(g, len(groups))
        out[c.run_id] = cmap(groups[g] % cmap.N)
    return out


def _x(
    points: list[tuple[int, float]], global_step: list[tuple[int, float]] | None
) -> tuple[list[float], bool]:
    """The steps of a history; per-epoch points logged at step = epoch move to
    the global optimizer step the run logged for that epoch (``global_step``)."""
    steps = [s for s, _ in points]
    if global_step:
        gs = dict(global_step)
        if set(steps) <= set(gs) and len(steps) == len(gs) and any(gs[s] != s for s in steps):
            return [gs[s] for s in steps], True
    return steps, False


# The training loss: per epoch (``loss``) or, with more points, the mean over
# the last steps (``step/loss``, every ``tracking.log_every_n_steps``).
TRAIN_LOSS = ("loss", "step/loss")


def _points(hist: dict, run_id: str, metric: str) -> list[tuple[int, float]] | None:
    runs = hist.get(run_id, {})
    if metric != "loss":
        return runs.get(metric)
    candidates = [runs[k] for k in TRAIN_LOSS if runs.get(k)]
    return max(candidates, key=len) if candidates else None


def learning_curves(sweep: Sweep, hist: dict, path: Path) -> Path | None:
    panels = [
        m
        for m in dict.fromkeys([sweep.primary, "val_loss", "loss"])
        if any(_points(hist, c.run_id, m) for c in sweep.children)
    ]
    if not panels:
        return None
    plt = _pyplot()
    colours = _colours(sweep)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 1.8, 3.8), squeeze=False)
    mapped = False
    for ax, metric in zip(axes[0], panels):
        for c in sweep.children:
            points = _points(hist, c.run_id, metric)
            if not points:
                continue
            x, moved = _x(points, hist[c.run_id].get("global_step"))
            mapped |= moved
            style = "-o" if len(points) <= 12 else "-"
            ax.plot(
                x,
                [v for _, v in points],
                style,
                ms=3,
                lw=1.4,
                color=colours[c.run_id],
                label=label_of(sweep, c),
            )
        ax.set_title("loss (training)" if metric == "loss" else metric)
        ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[0]:
        ax.set_xlabel("optimizer step" if mapped else "step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        shown = min(len(handles), MAX_LEGEND)
        fig.legend(
            handles[:shown],
            labels[:shown],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            fontsize=9,
            frameon=False,
        )
    fig.suptitle(f"Learning curves: {sweep.parent_name}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def grad_time(sweep: Sweep, hist: dict, keys: list[str], path: Path) -> Path | None:
    runs = [c for c in sweep.children if any(k in hist.get(c.run_id, {}) for k in keys)]
    if not runs:
        return None
    plt = _pyplot()
    cols = min(len(runs), 4)
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=True
    )
    for ax, c in zip(axes.flat, runs):
        for key in keys:
            points = hist[c.run_id].get(key)
            if points:
                ax.plot(
                    [s for s, _ in points],
                    [max(v, 1e-30) for _, v in points],
                    lw=1.3,
                    label=key.split("/", 1)[1],
                )
        ax.set_yscale("log")
        ax.set_title(label_of(sweep, c), fontsize=9)
        ax.set_xlabel("time step t")
        ax.grid(alpha=0.3, which="both")
    for ax in axes.flat[len(runs) :]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("‖∂L/∂h_t‖")
    if len(keys) > 1:
        axes[0][0].legend(fontsize=7)
    fig.suptitle("Gradient flow through time", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
