"""Gradient-flow diagnostics: Keras callbacks, enabled by ``callbacks=diagnostics``.

One concept per module, none imports MLflow (they log through the run
context, or keep ``history`` in a plain ``model.fit``):

- :mod:`~seqlab.diagnostics.grad_norms`: global / clipped / per-layer gradient
  norms of the real training step, clipped fraction, non-finite-gradient stop.
- :mod:`~seqlab.diagnostics.time_gradients`: ``||dL/dh_t||`` for every time
  step of a probe batch, with plots.
- :mod:`~seqlab.diagnostics.spectrum`: spectral radius and largest singular
  value of recurrent kernels.
- :mod:`~seqlab.diagnostics.plots`: PNG plots (matplotlib Agg).
"""

from seqlab.diagnostics.grad_norms import GradientNormMonitor, GradientNormRecorder, layer_group
from seqlab.diagnostics.plots import plot_time_gradients
from seqlab.diagnostics.spectrum import (
    RecurrentSpectrumMonitor,
    gate_blocks,
    max_singular_value,
    recurrent_layers,
    recurrent_spectrum,
    spectral_radius,
)
from seqlab.diagnostics.time_gradients import (
    TimeGradientMonitor,
    loop_gradients,
    per_example_loss,
    time_step_gradients,
)

__all__ = [
    "GradientNormMonitor",
    "GradientNormRecorder",
    "RecurrentSpectrumMonitor",
    "TimeGradientMonitor",
    "gate_blocks",
    "layer_group",
    "loop_gradients",
    "max_singular_value",
    "per_example_loss",
    "plot_time_gradients",
    "recurrent_layers",
    "recurrent_spectrum",
    "spectral_radius",
    "time_step_gradients",
]
