"""A task-agnostic Keras callback that reports a validation metric to an
Optuna trial after every epoch and stops a hopeless trial.

The search driver puts it into a trial's config as ``callbacks.optuna_pruning``
(``_target_: seqlab.search.pruning.OptunaPruningCallback``), so ``run()``
builds it like any other configured callback; the trial it reports to is the
one the driver made current with :func:`active_trial`. In a plain Keras
script pass the trial yourself::

    model.fit(..., callbacks=[OptunaPruningCallback(trial, monitor="val_loss")])

When the pruner says so, the callback tags the run ``seqlab.search.pruned=true``
(with the epoch), stops training after that epoch (so the callbacks after it,
the metrics logger among them, still see the epoch) and raises
:class:`optuna.TrialPruned` from ``on_train_end``, out of ``fit``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from seqlab.errors import ConfigError
from seqlab.training.context import RunCallback

PRUNED_TAG = "seqlab.search.pruned"

_active: list[Any] = []


@contextlib.contextmanager
def active_trial(trial: Any) -> Iterator[Any]:
    """Make ``trial`` the one :class:`OptunaPruningCallback` reports to."""
    _active.append(trial)
    try:
        yield trial
    finally:
        _active.remove(trial)


class OptunaPruningCallback(RunCallback):
    """Report ``logs[monitor]`` to the trial at each epoch end (step = epoch,
    counted from 1) and raise ``optuna.TrialPruned`` when it should be pruned."""

    def __init__(self, monitor: str = "val_loss", trial: Any = None):
        super().__init__()
        self.monitor = monitor
        self._trial = trial
        self.pruned_at: int | None = None
        self._message = ""

    @property
    def trial(self) -> Any:
        if self._trial is not None:
            return self._trial
        if not _active:
            raise ConfigError(
                "callbacks.optuna_pruning has no Optuna trial to report to: it is added by "
                "seqlab-search; outside a search, drop it (callbacks.optuna_pruning=null)"
            )
        return _active[-1]

    def on_train_begin(self, logs=None):
        self.pruned_at = None
        self.trial  # fail before the first epoch, not after it  # noqa: B018

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ConfigError(
                f"the search objective {self.monitor!r} is not among this run's epoch metrics "
                f"({', '.join(sorted(logs)) or 'none'}); set hparams_search.objective to one of them"
            )
        value = float(logs[self.monitor])
        step = epoch + 1
        trial = self.trial
        if math.isfinite(value):
            trial.report(value, step)
        if not trial.should_prune():
            return
        # Stop here, but raise only in on_train_end: the callbacks after this
        # one (the metrics logger) still record the epoch that decided it.
        self.pruned_at = step
        self._message = f"trial {trial.number} pruned at epoch {step}: {self.monitor}={value:.4f}"
        self.model.stop_training = True
        if self.context is not None:
            self.context.set_tag(PRUNED_TAG, "true")
            self.context.set_tag("seqlab.search.pruned_at_epoch", str(step))

    def on_train_end(self, logs=None):
        if self.pruned_at is not None:
            import optuna

            raise optuna.TrialPruned(self._message)
