"""What a callback may know about the run it is part of.

Callbacks that need more than the model (the data, an output folder, a way to
log a metric or an artifact) define ``bind(context: RunContext)``; the
experiment calls it before ``fit``. This keeps callbacks free of MLflow: the
experiment decides where ``log_metrics`` and ``log_artifact`` go (MLflow, or
nowhere when tracking is off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
