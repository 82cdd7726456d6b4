"""Console scripts: thin Hydra wrappers around seqlab.experiment."""

from __future__ import annotations

import logging
import os
from pathlib import Path

# The config tree ships inside the package (seqlab/conf, Hydra search path
# pkg://seqlab.conf), so a wheel install works as well as an editable one.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
CONFIG_MODULE = "seqlab.conf"


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("NO_GCE_CHECK", "true")
    # absl (TFDS) logs every prepared file, and warns about our own builder
    # config, once Hydra configures logging.
    logging.getLogger("absl").setLevel(logging.ERROR)
