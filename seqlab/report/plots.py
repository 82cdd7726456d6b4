"""The sweep's figures (matplotlib, Agg backend, no display needed).

- ``learning_curves.png``: the validation and training loss (and the primary
  metric, when it is another one) of every child against the step, overlaid;
  the seeds of one setting share its colour, each seed its own line style.
- ``curves.png`` (``seqlab-report --curve METRIC``, repeatable): any logged
  metrics (``accuracy``, ``grad_norm/stem``, ...), one panel each, children
  overlaid;
- ``grad_time.png``: for runs that logged ``grad_time/<layer>`` (the norm of
  dL/dh_t with step = t, from ``callbacks=diagnostics``), one panel per
  setting (its seeds overlaid), side by side on a shared log axis.
"""

from __future__ import annotations

import re
from pathlib import Path

from seqlab.report.collect import SEED_KEY, Child, Sweep
from seqlab.report.table import fmt_value

MAX_LEGEND = 20
LINE_STYLES = ("-", "--", ":", "-.")
# The training loss: per epoch (``loss``) or, with more points, the mean over
# the last steps (``step/loss``, every ``tracking.log_every_n_steps``).
TRAIN_LOSS = ("loss", "step/loss")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _short(key: str) -> str:
    """``model.cell.name`` -> ``name``, ``model/cell`` -> ``cell``."""
    return re.split(r"[./]", key)[-1]


def label_of(sweep: Sweep, child: Child, keys: list[str] | None = None) -> str:
    keys = sweep.keys if keys is None else keys
    if not keys:
        return child.name
    return ", ".join(f"{_short(k)}={fmt_value(child.values[k])}" for k in keys)


def _natural(value: str):
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def groups(sweep: Sweep) -> tuple[list[str], list[list[Child]]]:
    """The settings (swept keys but the seed) and their children, in the
    order of their values; without a seed sweep each child is its own group."""
    keys = [k for k in sweep.keys if k != SEED_KEY] if sweep.seed_grouped else list(sweep.keys)
    out: dict[tuple, list[Child]] = {}
    for c in sweep.children:
        g = tuple(c.values[k] for k in keys) if sweep.seed_grouped else (c.run_id,)
        out.setdefault(g, []).append(c)
    members = list(out.values())
    order = lambda c: tuple(_natural(c.values[k]) for k in sweep.keys)  # noqa: E731
    for m in members:
        m.sort(key=order)
    members.sort(key=lambda m: order(m[0]))
    return keys, members


def _x(points: list[tuple[int, float]], global_step: list[tuple[int, float]] | None):
    """The steps of a history and whether they are optimizer steps (None: the
    run does not say, e.g. it failed before its first epoch ended). Per-epoch
    points logged at step = epoch (older runs) move to the optimizer step the
    run logged for that epoch (``global_step``)."""
    steps = [s for s, _ in points]
    if not global_step:
        return steps, None
    gs = dict(global_step)
    if set(steps) <= set(gs) and len(steps) == len(gs) and any(gs[s] != s for s in steps):
        return [gs[s] for s in steps], True
    return steps, all(v == s for s, v in gs.items())


def _points(hist: dict, run_id: str, metric: str) -> list[tuple[int, float]] | None:
    runs = hist.get(run_id, {})
    if metric != "loss":
        return runs.get(metric)
    candidates = [runs[k] for k in TRAIN_LOSS if runs.get(k)]
    return max(candidates, key=len) if candidates else None


def _styles(sweep: Sweep):
    """``(label, colour, line style)`` per child, children in a stable order."""
    plt = _pyplot()
    _, members = groups(sweep)
    cmap = plt.get_cmap("tab10" if len(members) <= 10 else "tab20")
    for i, group in enumerate(members):
        for j, c in enumerate(group):
            yield c, label_of(sweep, c), cmap(i % cmap.N), LINE_STYLES[j % len(LINE_STYLES)]


def learning_curves(sweep: Sweep, hist: dict, path: Path) -> Path | None:
    """The primary metric, validation and training loss of every child, overlaid."""
    panels = list(dict.fromkeys([sweep.primary, "val_loss", "loss"]))
    return _overlaid(sweep, hist, panels, path, f"Learning curves: {sweep.parent_name}")


def metric_curves(sweep: Sweep, hist: dict, metrics: list[str], path: Path) -> Path | None:
    """``seqlab-report --curve``: one panel per chosen metric, every child overlaid.

    A panel whose values span more than two decades (gradient norms) gets a
    log axis.
    """
    return _overlaid(sweep, hist, metrics, path, f"Curves: {sweep.parent_name}", log_span=100.0)


def _overlaid(
    sweep: Sweep, hist: dict, metrics: list[str], path: Path, title: str, log_span: float | None = None
) -> Path | None:
    panels = [m for m in metrics if any(_points(hist, c.run_id, m) for c in sweep.children)]
    if not panels:
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), squeeze=False)
    legend: dict[str, object] = {}  # label -> line, over every panel (a run may miss some)
    for ax, metric in zip(axes[0], panels):
        values = []
        said = []  # per run: are its steps optimizer steps (runs that say)
        for c, label, colour, style in _styles(sweep):
            points = _points(hist, c.run_id, metric)
            if not points:
                continue
            x, is_step = _x(points, hist[c.run_id].get("global_step"))
            if is_step is not None:
                said.append(is_step)
            marker = "o" if len(points) <= 12 else None
            y = [v for _, v in points]
            values += [v for v in y if v > 0]
            (line,) = ax.plot(x, y, ls=style, marker=marker, ms=3, lw=1.4, color=colour, label=label)
            legend.setdefault(label, line)
        if log_span and values and max(values) > log_span * min(values):
            ax.set_yscale("log")
        ax.set_title("loss (training)" if metric == "loss" else metric, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_xlabel("optimizer step" if said and all(said) else "step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if legend:
        labels = list(legend)[:MAX_LEGEND]
        fig.legend(
            [legend[label] for label in labels],
            labels,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            fontsize=9,
            frameon=False,
        )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def grad_time(sweep: Sweep, hist: dict, keys: list[str], path: Path) -> Path | None:
    group_keys, members = groups(sweep)
    members = [[c for c in m if any(k in hist.get(c.run_id, {}) for k in keys)] for m in members]
    members = [m for m in members if m]
    if not members:
        return None
    plt = _pyplot()
    cols = min(len(members), 4)
    rows = -(-len(members) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=True
    )
    cmap = plt.get_cmap("tab10")
    for ax, group in zip(axes.flat, members):
        for j, c in enumerate(group):
            for i, key in enumerate(keys):
                points = hist[c.run_id].get(key)
                if not points:
                    continue
                parts = [key.split("/", 1)[1]] if len(keys) > 1 else []
                if sweep.seed_grouped:
                    parts.append(f"seed={c.values[SEED_KEY]}")
                ax.plot(
                    [s for s, _ in points],
                    [max(v, 1e-30) for _, v in points],
                    ls=LINE_STYLES[j % len(LINE_STYLES)],
                    lw=1.3,
                    color=cmap(i % cmap.N),
                    label=", ".join(parts) or None,
                )
        ax.set_yscale("log")
        ax.set_title(label_of(sweep, group[0], group_keys), fontsize=9)
        ax.set_xlabel("time step t")
        ax.grid(alpha=0.3, which="both")
        if len(keys) > 1 or sweep.seed_grouped:
            ax.legend(fontsize=7)
    for ax in axes.flat[len(members) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(r"$\|\partial L / \partial h_t\|$")
    fig.suptitle("Gradient flow through time: norm of dL/dh_t at each time step t", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
