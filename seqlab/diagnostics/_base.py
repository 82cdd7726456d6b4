"""The shared skeleton of the diagnostics callbacks: a step counter, a schedule,
and logging through the run context (or into ``self.history`` without one)."""

from __future__ import annotations

from pathlib import Path

from seqlab.errors import ConfigError
from seqlab.training.context import RunCallback


def check_every(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"callbacks.{name}.every_n_steps must be a positive integer or null, got {value!r}")
    return value


class DiagnosticCallback(RunCallback):
    """Counts optimizer steps (1-based, continuing the optimizer's count, so a
    resumed run keeps its step axis) and logs metrics.

    Without :meth:`bind` (plain ``model.fit``) nothing is sent anywhere; every
    logged dict is still appended to ``self.history`` as ``(step, metrics)``.
    """

    def __init__(self):
        super().__init__()
        self.global_step = 0
        self.history: list[tuple[int, dict[str, float]]] = []

    @property
    def output_dir(self) -> Path | None:
        return self.context.output_dir if self.context is not None else None

    def log(self, metrics: dict[str, float], step: int) -> None:
        metrics = {k: float(v) for k, v in metrics.items()}
        self.history.append((step, metrics))
        if self.context is not None:
            self.context.log_metrics(metrics, step)

    def log_artifact(self, path: Path, subdir: str | None) -> None:
        if self.context is not None:
            self.context.log_artifact(path, subdir)

    def on_train_begin(self, logs=None):
        # The optimizer's step, not 0: a resumed run continues its step axis.
        optimizer = getattr(self.model, "optimizer", None)
        self.global_step = int(optimizer.iterations.numpy()) if optimizer is not None else 0
