"""Learning curves of a run, drawn from what the store holds.

Read back from MLflow rather than from the callback's memory, so a resumed
run's plot shows the whole run, not just its last part.
"""

from __future__ import annotations

from pathlib import Path

#: Drawn when present: the per-step training loss and the per-epoch curves.
STEP_LOSS = "step/loss"


def metric_series(client, run_id: str, key: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of one metric, by step (the last value per step)."""
    by_step = {m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)}
    return sorted(by_step.items())


def plot_learning_curves(series: dict[str, list[tuple[int, float]]], out_path: Path, primary: str = "val_loss",
                         title: str | None = None) -> Path | None:
    """Loss (per step and per epoch) and val_loss against the optimizer step,
    and the primary metric in a second panel when it is not a loss already
    drawn. ``series`` maps metric names to ``[(step, value)]``. Returns the
    PNG's path, or None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    loss_keys = [k for k in (STEP_LOSS, "loss", "val_loss") if series.get(k)]
    extra = primary if primary not in loss_keys and series.get(primary) else None
    if not loss_keys and not extra:
        return None
    panels = 2 if extra and loss_keys else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6), squeeze=False)
    styles = {
        STEP_LOSS: {"color": "tab:blue", "alpha": 0.45, "linewidth": 1, "label": "loss (per step)"},
        "loss": {"color": "tab:blue", "marker": "o", "label": "loss (epoch)"},
        "val_loss": {"color": "tab:orange", "marker": "o", "label": "val_loss"},
    }
    ax = axes[0][0]
    for key in loss_keys:
        steps, values = zip(*series[key])
        ax.plot(steps, values, **styles[key])
    if extra:
        ax = axes[0][-1]
        steps, values = zip(*series[extra])
        ax.plot(steps, values, marker="o", color="tab:green", label=extra)
    for ax in axes[0]:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss" if loss_keys else extra)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def learning_curves_from_run(tracking_uri: str, run_id: str, out_path: Path, primary: str = "val_loss",
                             title: str | None = None) -> Path | None:
    """:func:`plot_learning_curves` of a logged run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    keys = {STEP_LOSS, "loss", "val_loss", primary}
    series = {key: metric_series(client, run_id, key) for key in keys}
    return plot_learning_curves(series, out_path, primary=primary, title=title)
