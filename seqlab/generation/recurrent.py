"""One-token steps of a language model: state-carrying and naive prefix re-run.

A recurrent LM is a graph ``Embedding -> [Dropout] -> RNN x L (+ residual
adds) -> [Dropout] -> Dense`` (or a tied output projection). Generating ``n``
tokens by re-running the model on the growing prefix costs ``O(n^2)`` cell
steps; carrying the recurrent states costs ``O(n)``: the prompt is consumed
once, and each new token is one step of every cell.

:class:`StatefulStep` runs the model's own functional graph on a length-1
sequence ``[B, 1]``, with two substitutions:

* every recurrent layer is replaced by one step of its **cell**:
  ``out, states = layer.cell(x_t, states)``;
* every other layer is called with ``training=False``; it must act on each
  position independently (embeddings, dense, dropout, normalization,
  activations, element-wise merges such as residual ``Add``, seqlab's
  ``LockedDropout`` and ``OutputBias``), since a layer that mixes time steps
  (a convolution, attention) would be wrong on one step.

The cell protocol is the one ``keras.layers.RNN`` uses (a ``cell`` with
``state_size`` whose ``call(inputs, states, training)`` returns
``(output, new_states)``), so it covers Keras' LSTM/GRU/SimpleRNN, any
``keras.layers.RNN(cell)`` and seqlab's ``Recurrent(cell)`` alike; the cell
shares the layer's weights, so nothing is copied and a model being trained is
always sampled with its current weights. Layers with ``stateful=True`` are
fine: the step carries its own states and leaves the layer's alone.

:class:`PrefixStep` is the reference: it runs the whole model on the prefix
``tokens[:, :t+1]`` at each step (what any causal model supports). Both expose
``step(tokens, t, states) -> (logits [B, V] float32, states)`` so one loop
drives either.
"""

from __future__ import annotations

import keras
from keras import ops, tree

from seqlab.errors import ConfigError
from seqlab.layers import LockedDropout, OutputBias

# Layers that act on each position independently: safe to apply to one step.
_PER_POSITION = (
    keras.layers.Embedding,  # includes ReversibleEmbedding (tied output projection)
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Dropout,  # includes SpatialDropout, GaussianDropout...
    keras.layers.GaussianNoise,
    keras.layers.LayerNormalization,
    keras.layers.Activation,
    keras.layers.TimeDistributed,
    keras.layers.Softmax,
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Identity,
    LockedDropout,
    OutputBias,
)


def _is_recurrent(layer) -> bool:
    return hasattr(layer, "cell") and hasattr(layer.cell, "state_size")


def _graph(model):
    """The functional model behind ``model`` (Sequential models hold one)."""
    graph = model
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
    if (
        graph is None
        or not hasattr(graph, "_run_through_graph")
        or not hasattr(graph, "_nodes_by_depth")
    ):
        raise ConfigError(f"model {model.name!r} is not a functional or built Sequential model")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ConfigError(f"model {model.name!r} must have one input and one output")
    return graph


def _nodes(graph):
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def _recurrent_layers(model) -> list:
    """The recurrent layers in graph order; raise ConfigError if the model
    cannot be stepped one token at a time."""
    graph = _graph(model)
    recurrent, seen = [], set()
    for node in _nodes(graph):
        op = node.operation
        name = getattr(op, "name", type(op).__name__)
        if _is_recurrent(op):
            if id(op) in seen:
                raise ConfigError(f"recurrent layer {name!r} is called more than once")
            if getattr(op, "go_backwards", False):
                raise ConfigError(f"recurrent layer {name!r} runs backwards")
            if getattr(op, "return_sequences", True) is False:
                raise ConfigError(f"recurrent layer {name!r} does not return sequences")
            seen.add(id(op))
            recurrent.append(op)
        elif isinstance(op, keras.layers.Concatenate) and op.axis not in (-1, 2):
            raise ConfigError(f"layer {name!r} concatenates along axis {op.axis}, not features")
        elif not isinstance(op, (*_PER_POSITION, keras.layers.Concatenate)):
            raise ConfigError(
                f"layer {name!r} ({type(op).__name__}) may mix time steps; only embeddings, "
                "dense, dropout, normalization, element-wise merges and recurrent layers "
                "can be stepped one token at a time"
            )
    return recurrent


def stateful_support(model: keras.Model) -> str | None:
    """Whether :class:`StatefulStep` can run ``model``.

    Args:
        model: a functional or built Sequential model, tokens in, logits out.

    Returns:
        None if it can, else the reason it cannot (the layer that mixes time
        steps, runs backwards, ...).

    Example:

    >>> import keras
    >>> from seqlab.generation.recurrent import stateful_support
    >>> conv = keras.Sequential([keras.Input((None,), dtype="int32"),
    ...                          keras.layers.Embedding(7, 4), keras.layers.Conv1D(4, 3)])
    >>> "may mix time steps" in stateful_support(conv)
    True
    """
    try:
        _recurrent_layers(model)
    except ConfigError as err:
        return str(err)
    return None


def _as_list(states) -> list:
    return list(states) if isinstance(states, (list, tuple)) else [states]


class StatefulStep:
    """Advance an LM by one token, carrying every recurrent layer's state.

    Args:
        model: a model :func:`stateful_support` accepts.

    Call arguments:
        tokens: ``[B, L]`` int32.
        t: the position whose token is fed.
        states: the previous call's states, or ``initial_states(B)``.

    Returns:
        ``(logits [B, V] float32 for position t + 1, new states)``.

    Raises:
        ConfigError: when the model cannot carry its state.

    Example:

    >>> import keras, numpy as np
    >>> from seqlab.generation.recurrent import StatefulStep
    >>> from seqlab.layers import LSTMCell, Recurrent
    >>> lm = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(7, 4),
    ...                        Recurrent(LSTMCell(5), return_sequences=True),
    ...                        keras.layers.Dense(7)])
    >>> step = StatefulStep(lm)
    >>> tokens = np.array([[1, 2, 3]], "int32")
    >>> states = step.initial_states(1)
    >>> for t in range(3):
    ...     logits, states = step(tokens, t, states)
    >>> bool(np.allclose(logits, lm(tokens)[:, -1], atol=1e-5))
    True
    """

    carries_state = True

    def __init__(self, model: keras.Model):
        try:
            self.recurrent = _recurrent_layers(model)
        except ConfigError as err:
            raise ConfigError(
                f"model {model.name!r} cannot carry its state ({err}); use method='naive'"
            ) from None
        self.model = model
        self.graph = _graph(model)
        self._index = {id(layer): i for i, layer in enumerate(self.recurrent)}

    def initial_states(self, batch_size: int):
        """Zeros for every recurrent layer: a tuple (one entry per layer) of lists."""
        states = []
        for layer in self.recurrent:
            cell = layer.cell
            dtype = getattr(cell, "compute_dtype", None) or "float32"
            init = tree.map_structure(
                lambda s, d=dtype: ops.zeros((batch_size, s), dtype=d), cell.state_size
            )
            states.append(_as_list(init))
        return tuple(states)

    def __call__(self, tokens, t, states):
        """``tokens [B, L]`` int32, position ``t`` -> logits for position ``t + 1``."""
        return self.step(ops.take(tokens, t, axis=1), states)

    def step(self, token, states):
        """``token [B]`` -> ``(logits [B, V] float32, new states)``."""
        new_states = list(states)

        def operation_fn(op):
            i = self._index.get(id(op))
            if i is not None:

                def cell_step(sequence, *args, **kwargs):
                    out, state = op.cell(sequence[:, 0], states[i], training=False)
                    new_states[i] = tree.pack_sequence_as(states[i], tree.flatten(state))
                    return ops.expand_dims(out, 1)

                return cell_step
            if getattr(op, "_call_has_training_arg", False):
                return lambda *args, **kwargs: op(*args, **{**kwargs, "training": False})
            return op

        x = ops.expand_dims(ops.cast(token, "int32"), 1)
        logits = self.graph._run_through_graph(x, operation_fn=operation_fn)
        logits = tree.flatten(logits)[0]
        return ops.cast(logits[:, 0], "float32"), tuple(new_states)


class PrefixStep:
    """The naive reference: re-run the whole model on ``tokens[:, :t+1]``.

    Any causal model works. Same interface as :class:`StatefulStep` (its
    states are an empty tuple). With ``context`` (a Transformer's context
    length), only the last ``context`` tokens ``tokens[:, t+1-context : t+1]``
    are fed (nanoGPT's crop), so generation may run past the length the
    model was built for.
    """

    carries_state = False

    def __init__(self, model: keras.Model, context: int | None = None):
        self.model = model
        self.context = context

    def initial_states(self, batch_size: int):
        return ()

    def __call__(self, tokens, t, states):
        prefix = tokens[:, : t + 1]
        if self.context is not None:
            prefix = prefix[:, -self.context :]  # a constant begin keeps the static batch size
        logits = self.model(prefix, training=False)
        return ops.cast(logits[:, -1], "float32"), states


def _is_transformer(model) -> bool:
    from seqlab.generation.transformer import transformer_support

    return transformer_support(model) is None


def carries_state(model: keras.Model, method: str) -> bool:
    """Whether ``make_step(model, method)`` carries a state (recurrent states
    or a Transformer's KV cache) rather than re-running the prefix."""
    if method == "naive":
        return False
    return _is_transformer(model) or stateful_support(model) is None


def make_step(model: keras.Model, method: str = "auto"):
    """The one-token step of ``model`` for a generation loop.

    Args:
        model: a language model, tokens ``[B, L]`` in, logits ``[B, L, V]`` out.
        method: ``"stateful"`` (carry the state: :class:`StatefulStep` for a
            recurrent model, the KV cache of
            :class:`seqlab.generation.transformer.TransformerStep` for a
            Transformer LM), ``"naive"`` (:class:`PrefixStep`, cropped to a
            Transformer's context length) or ``"auto"`` (stateful when the
            model allows).

    Returns:
        A :class:`StatefulStep`, ``TransformerStep`` or :class:`PrefixStep`.

    Example:

    >>> import keras
    >>> from seqlab.generation.recurrent import make_step
    >>> from seqlab.layers import GRUCell, Recurrent
    >>> lm = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(7, 4),
    ...                        Recurrent(GRUCell(5), return_sequences=True),
    ...                        keras.layers.Dense(7)])
    >>> type(make_step(lm)).__name__, type(make_step(lm, "naive")).__name__
    ('StatefulStep', 'PrefixStep')
    """
    if method in ("stateful", "naive", "auto") and _is_transformer(model):
        from seqlab.generation.transformer import TransformerStep, context_length

        if method == "naive":
            return PrefixStep(model, context=context_length(model))
        return TransformerStep(model)
    if method == "stateful":
        return StatefulStep(model)
    if method == "naive":
        return PrefixStep(model)
    if method == "auto":
        return StatefulStep(model) if stateful_support(model) is None else PrefixStep(model)
    raise ConfigError(f"unknown method {method!r}; choose one of auto, stateful, naive")
