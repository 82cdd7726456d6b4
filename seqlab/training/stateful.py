"""Stateful truncated BPTT: when recurrent states are reset, and exact scores.

With ``data.batching=streams`` the model is stateful: each recurrent layer
keeps its last states in variables and starts the next batch from them, so
consecutive windows of a stream are one long sequence. States are reset to
zero at the start of every training epoch and before every evaluation pass
(the validation pass inside ``fit`` and the final test pass), which then
carries state across the whole split.

Evaluation streams end in padded, weight-0 targets, and Keras averages the
``loss`` of an evaluation per batch (weighted by the batch size), so the
padded last batch would count as a full one. The text bundle therefore
compiles :class:`seqlab.metrics.ExactLoss` (``exact_loss``) and reports it
as ``loss``: :class:`ExactValidationLoss` in ``fit``, :func:`evaluate_streams`
for test.
"""

from __future__ import annotations

import copy

import keras

from seqlab.walk import walk_layers


def stateful_layers(model: keras.Model) -> list:
    """Every layer of ``model`` (also nested) that carries state across batches."""
    return [layer for layer in walk_layers(model) if getattr(layer, "stateful", False)]


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


EXACT_LOSS = "exact_loss"


def use_exact_loss(logs: dict) -> dict:
    """``logs`` with ``exact_loss`` (if present) reported as ``loss``, in place."""
    for prefix in ("", "val_"):
        if prefix + EXACT_LOSS in logs:
            logs[prefix + "loss"] = logs.pop(prefix + EXACT_LOSS)
    return logs


class ExactValidationLoss(keras.callbacks.Callback):
    """Makes an epoch's ``val_loss`` the exact token-weighted mean
    (``val_exact_loss``, :class:`seqlab.metrics.ExactLoss`) and drops the
    training-side copy (training windows have no padding).

    It edits the epoch's logs in place, so it must run before the callbacks
    that read them (loggers, checkpoints, Keras' History and progress bar,
    which Keras appends last).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.pop(EXACT_LOSS, None)
            use_exact_loss(logs)


def with_batch_size(model: keras.Model, batch_size: int) -> keras.Model:
    """A copy of the functional stateful ``model`` with a fixed batch of
    ``batch_size`` and the same weights (states start at zero).

    A stateful model's batch is part of its graph (its state variables are
    ``[batch, units]``), so scoring with another number of streams needs a
    twin. Recurrent states are not among ``model.weights`` (Keras and seqlab
    layers keep them out of tracking), so the weights transfer one to one.
    """
    # A deep copy: parts of get_config() can be the model's own live objects.
    config = copy.deepcopy(model.get_config())
    inputs = [layer for layer in config.get("layers", []) if layer["class_name"] == "InputLayer"]
    if not inputs:
        raise ValueError(f"with_batch_size needs a functional model with Input layers, got {type(model).__name__}")
    old = {tuple(layer["config"]["batch_shape"])[0] for layer in inputs}
    if None in old or len(old) != 1:
        raise ValueError(f"with_batch_size needs one fixed input batch size, got {sorted(old, key=str)}")
    _replace_batch(config, old.pop(), batch_size)
    twin = model.__class__.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


# Keys under which a functional config spells a full (batch-first) shape:
# Input layers, each layer's build config and the symbolic tensors between layers.
_SHAPE_KEYS = ("batch_shape", "input_shape", "shape")


def _replace_batch(node, old: int, new: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _SHAPE_KEYS and isinstance(value, (list, tuple)) and value and value[0] == old:
                node[key] = [new, *value[1:]]
            else:
                _replace_batch(value, old, new)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _replace_batch(item, old, new)


def evaluate_streams(
    model: keras.Model, ids, *, streams: int, seq_len: int, loss, metrics: list
) -> dict[str, float]:
    """Score token ids ``ids`` with a stateful ``model`` run as ``streams``
    parallel streams carrying state across the whole split.

    ``streams=1`` is one pass over the split in order, the way the TensorFlow
    PTB tutorial scores test perplexity (batch 1): every token but the first
    is predicted with the full history since the start of the split. More
    streams start ``streams`` cold states and are correspondingly pessimistic.
    Returns Keras' evaluation dict (token-weighted; padding has weight 0;
    ``loss`` is the exact token-weighted mean when ``metrics`` hold an
    :class:`seqlab.metrics.ExactLoss`).
    """
    from seqlab.data.streams import stream_dataset

    twin = with_batch_size(model, streams)
    twin.compile(loss=loss, weighted_metrics=metrics)  # weighted: the padding has weight 0
    dataset = stream_dataset(ids, streams, seq_len, pad=True, split="evaluation")
    scores = twin.evaluate(dataset, verbose=0, return_dict=True, callbacks=[ResetStatesCallback()])
    return use_exact_loss(scores)
