"""Stateful truncated BPTT: when recurrent states are reset.

With ``data.batching=streams`` the model is stateful: each recurrent layer
keeps its last states in variables and starts the next batch from them, so
consecutive windows of a stream are one long sequence. States are reset to
zero at the start of every training epoch and before every evaluation pass
(the validation pass inside ``fit`` and the final test pass), which then
carries state across the whole split.
"""

from __future__ import annotations

import keras


def stateful_layers(model: keras.Model) -> list:
    """Every layer of ``model`` (also nested) that carries state across batches."""
    return [layer for layer in model._flatten_layers() if getattr(layer, "stateful", False)]


def reset_recurrent_states(model: keras.Model) -> int:
    """Zero the states of every stateful layer of ``model``; returns how many."""
    layers = stateful_layers(model)
    for layer in layers:
        reset = getattr(layer, "reset_state", None) or layer.reset_states
        reset()
    return len(layers)


class ResetStatesCallback(keras.callbacks.Callback):
    """Resets a stateful model's recurrent states at each epoch start and
    before each evaluation (validation inside ``fit``, ``evaluate``)."""

    def __init__(self):
        super().__init__()
        self.resets = 0

    def _reset(self):
        if self.model is not None:
            reset_recurrent_states(self.model)
            self.resets += 1

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()

    def on_predict_begin(self, logs=None):
        self._reset()
