"""MLflow at the edge: run lifecycle, config -> params, Keras and Hydra callbacks."""

from seqlab.tracking.run import TrackedRun

__all__ = ["TrackedRun"]
