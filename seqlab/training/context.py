"""What a callback may know about the run it is part of.

A callback that needs more than the model (the data, an output folder, a way
to log a metric or an artifact) subclasses :class:`RunCallback`; the
experiment calls :meth:`RunCallback.bind` before ``fit`` and
:meth:`RunCallback.on_run_end` after the test evaluation, and prints what the
latter returns. This keeps callbacks free of MLflow: the experiment decides
where ``log_metrics`` and ``log_artifact`` go (MLflow, or nowhere when
tracking is off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from seqlab.data.bundle import DataBundle


def _ignore(*args, **kwargs) -> None:
    return None


@dataclasses.dataclass
class RunContext:
    bundle: DataBundle
    # The run's local folder (checkpoints/, plots/, samples.txt live here).
    output_dir: Path
    # The resolved config as a plain dict.
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    # log_metrics({"key": value}, step)
    log_metrics: Callable[[dict[str, float], int], None] = _ignore
    # log_artifact(local_path, artifact_subdir_or_None)
    log_artifact: Callable[[Path, str | None], None] = _ignore
    set_tag: Callable[[str, str], None] = _ignore


class RunCallback(keras.callbacks.Callback):
    """A Keras callback that takes part in a seqlab run.

    Outside a run (a plain ``model.fit``) it works as an ordinary callback
    with ``self.context`` None; subclasses must allow for that.
    """

    def __init__(self):
        super().__init__()
        self.context: RunContext | None = None

    def bind(self, context: RunContext) -> None:
        """Called once before ``fit`` with the run's context."""
        self.context = context

    def on_run_end(self) -> str | None:
        """Called once after training and the test evaluation; a returned
        string is printed at the end of the run (e.g. a generated sample)."""
        return None
