"""One-token steps of a language model: state-carrying and naive prefix re-run.

A recurrent LM is a chain ``Embedding -> [Dropout] -> RNN x L -> [Dropout] ->
Dense``. Generating ``n`` tokens by re-running the model on the growing prefix
costs ``O(n^2)`` cell steps; carrying the recurrent states costs ``O(n)``: the
prompt is consumed once, and each new token is one step of every cell.

:class:`StatefulStep` walks the model's layers and calls, per token,

* every per-position layer (Embedding, Dense, Dropout, LayerNormalization,
  Activation, TimeDistributed) on a length-1 sequence ``[B, 1, ...]``;
* every recurrent layer's **cell** directly: ``out, states = layer.cell(x_t, states)``.

The cell protocol is the one ``keras.layers.RNN`` uses (a ``cell`` with
``state_size`` whose ``call(inputs, states, training)`` returns
``(output, new_states)``), so it covers Keras' LSTM/GRU/SimpleRNN, any
``keras.layers.RNN(cell)`` and seqlab's ``Recurrent(cell)`` alike; the cell
shares the layer's weights, so nothing is copied and a model being trained is
always sampled with its current weights.

:class:`PrefixStep` is the reference: it runs the whole model on the prefix
``tokens[:, :t+1]`` at each step (what any causal model supports). Both expose
``step(tokens, t, states) -> (logits [B, V] float32, states)`` so one loop
drives either.
"""

from __future__ import annotations

import keras
from keras import ops, tree

from seqlab.errors import ConfigError

# Layers that act on each position independently: safe to apply to one step.
_PER_POSITION = (
    keras.layers.Embedding,
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Dropout,
    keras.layers.LayerNormalization,
    keras.layers.Activation,
    keras.layers.TimeDistributed,
    keras.layers.Softmax,
)


def _is_recurrent(layer) -> bool:
    return hasattr(layer, "cell") and hasattr(layer.cell, "state_size")


def _chain(model: keras.Model) -> list:
    """The model's layers (input excluded) if they form a single chain, else raise."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = None
    for layer in layers:
        try:
            inbound = layer.input
        except (AttributeError, ValueError) as err:
            raise ConfigError(f"layer {layer.name!r} is used more than once or not at all") from err
        if isinstance(inbound, (list, tuple, dict)):
            raise ConfigError(f"layer {layer.name!r} has several inputs; not a chain")
        source = getattr(inbound, "_keras_history", None)
        source = source.operation if source is not None else None
        if previous is not None and source is not previous:
            raise ConfigError(
                f"layer {layer.name!r} does not follow {previous.name!r}; not a chain"
            )
        if previous is None and not isinstance(source, (keras.layers.InputLayer, type(None))):
            raise ConfigError(f"layer {layer.name!r} is not fed by the model input; not a chain")
        previous = layer
    if previous is None or model.outputs[0]._keras_history.operation is not previous:
        raise ConfigError("the model output is not its last layer; not a chain")
    return layers


def stateful_support(model: keras.Model) -> str | None:
    """``None`` if :class:`StatefulStep` can run ``model``, else the reason it cannot."""
    try:
        layers = _chain(model)
    except ConfigError as err:
        return str(err)
    # A chain without recurrent layers (a bigram model) is fine too: no state.
    for layer in layers:
        if _is_recurrent(layer):
            if getattr(layer, "go_backwards", False):
                return f"recurrent layer {layer.name!r} runs backwards"
            if getattr(layer, "return_sequences", True) is False:
                return f"recurrent layer {layer.name!r} does not return sequences"
        elif not isinstance(layer, _PER_POSITION):
            return (
                f"layer {layer.name!r} ({type(layer).__name__}) may mix time steps; "
                "only embeddings, dense, dropout, normalization and recurrent layers "
                "can be stepped one token at a time"
            )
    return None


def _as_list(states) -> list:
    return list(states) if isinstance(states, (list, tuple)) else [states]


class StatefulStep:
    """Advance a chain LM by one token, carrying every recurrent layer's state."""

    carries_state = True

    def __init__(self, model: keras.Model):
        reason = stateful_support(model)
        if reason is not None:
            raise ConfigError(
                f"model {model.name!r} cannot carry its state ({reason}); use method='naive'"
            )
        self.model = model
        self.layers = _chain(model)

    def initial_states(self, batch_size: int):
        """Zeros for every recurrent layer: a tuple (one entry per layer) of lists."""
        states = []
        for layer in self.layers:
            if not _is_recurrent(layer):
                continue
            cell = layer.cell
            dtype = getattr(cell, "compute_dtype", None) or "float32"
            sizes = cell.state_size
            init = tree.map_structure(lambda s, d=dtype: ops.zeros((batch_size, s), dtype=d), sizes)
            states.append(_as_list(init))
        return tuple(states)

    def __call__(self, tokens, t, states):
        """``tokens [B, L]`` int32, position ``t`` -> logits for position ``t + 1``."""
        x = ops.take(tokens, t, axis=1)
        return self.step(x, states)

    def step(self, token, states):
        """``token [B]`` -> ``(logits [B, V] float32, new states)``."""
        x = ops.expand_dims(ops.cast(token, "int32"), 1)
        new_states = []
        i = 0
        for layer in self.layers:
            if _is_recurrent(layer):
                previous = states[i]
                out, state = layer.cell(x[:, 0], previous, training=False)
                state = tree.pack_sequence_as(previous, tree.flatten(state))
                new_states.append(state)
                x = ops.expand_dims(out, 1)
                i += 1
            else:
                x = layer(x, training=False)
        return ops.cast(x[:, 0], "float32"), tuple(new_states)


class PrefixStep:
    """The naive reference: re-run the whole model on ``tokens[:, :t+1]``."""

    carries_state = False

    def __init__(self, model: keras.Model):
        self.model = model

    def initial_states(self, batch_size: int):
        return ()

    def __call__(self, tokens, t, states):
        logits = self.model(tokens[:, : t + 1], training=False)
        return ops.cast(logits[:, -1], "float32"), states


def make_step(model: keras.Model, method: str = "auto"):
    """``method``: ``stateful``, ``naive`` or ``auto`` (stateful when the model allows)."""
    if method == "stateful":
        return StatefulStep(model)
    if method == "naive":
        return PrefixStep(model)
    if method == "auto":
        return StatefulStep(model) if stateful_support(model) is None else PrefixStep(model)
    raise ConfigError(f"unknown method {method!r}; choose one of auto, stateful, naive")
