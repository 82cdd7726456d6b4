"""From a cell to its kernel: ``supports(cell)`` and ``run(cell, ...)``.

A cell declares the kernel that computes it in its class attribute
``fused_kind`` (``"lstm"``, ``"peephole_lstm"``, ``"gru"``,
``"simple_rnn"``; None: no fused kernel, e.g. ``LayerNormLSTMCell``). The
kernel reads the cell's weights by the Keras names (``kernel``,
``recurrent_kernel``, ``bias``; the peephole cell's
``*_gate_peephole_weights``) and its options (``use_bias``,
``reset_after``, ``activation``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqlab.layers.fused.chunks import DEFAULT_CHUNKS
from seqlab.layers.fused.gru import gru
from seqlab.layers.fused.loops import DEFAULT_COMPILE_LOOPS, no_autograph
from seqlab.layers.fused.lstm import lstm, peephole_lstm
from seqlab.layers.fused.simple_rnn import simple_rnn

#: The kernels a cell can declare as its ``fused_kind``.
KINDS = ("gru", "lstm", "peephole_lstm", "simple_rnn")

# Methods that define a cell's computation: a subclass that overrides one of
# them below the class declaring ``fused_kind`` computes something else, so
# the inherited kind does not apply to it.
_MATH_METHODS = ("input_projection", "recurrent_step", "_input_bias", "_gates")

_PEEPHOLES = ("input_gate_peephole_weights", "forget_gate_peephole_weights",
              "output_gate_peephole_weights")


def fused_kind(cell):
    """The kernel a cell declares.

    Args:
        cell: any object; its class (or a base class) may set ``fused_kind``.

    Returns:
        ``(kind, "")``, or ``(None, reason)`` when the cell declares none, an
        unknown one, or inherits one from a class whose computation a
        subclass overrides.

    Example:

    >>> from seqlab.layers import GRUCell, LSTMCell
    >>> from seqlab.layers.fused.dispatch import fused_kind
    >>> fused_kind(GRUCell(4))
    ('gru', '')
    >>> class Scaled(LSTMCell):
    ...     def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
    ...         return super().recurrent_step(2 * projected, states, recurrent_dropout_mask)
    >>> fused_kind(Scaled(4))[1]
    "Scaled inherits fused_kind 'lstm' from LSTMCell but Scaled overrides recurrent_step; declare fused_kind on it (None: no fused kernel)"
    """
    cls = type(cell)
    mro = cls.__mro__
    declaring = next((klass for klass in mro if "fused_kind" in vars(klass)), None)
    if declaring is None:
        return None, f"{cls.__module__}.{cls.__name__} declares no fused kernel (no fused_kind)"
    kind = vars(declaring)["fused_kind"]
    if kind is None:
        return None, f"{cls.__name__} declares no fused kernel (fused_kind = None)"
    if kind not in KINDS:
        return None, f"{cls.__name__}.fused_kind {kind!r} is not one of {KINDS}"
    for sub in mro[: mro.index(declaring)]:
        for method in _MATH_METHODS:
            if method in vars(sub):
                return None, (
                    f"{cls.__name__} inherits fused_kind {kind!r} from {declaring.__name__} "
                    f"but {sub.__name__} overrides {method}; declare fused_kind on it "
                    "(None: no fused kernel)"
                )
    return kind, ""


def _activation_name(fn):
    """'tanh' / 'sigmoid' / 'relu' / 'linear' for the known implementations, else None."""
    if fn is None:
        return "linear"
    known = {
        "tanh": (keras.activations.tanh, keras.ops.tanh, tf.tanh, tf.math.tanh, tf.nn.tanh),
        "sigmoid": (keras.activations.sigmoid, keras.ops.sigmoid, tf.sigmoid,
                    tf.math.sigmoid, tf.nn.sigmoid),
        "relu": (keras.activations.relu, keras.ops.relu, tf.nn.relu),
        "linear": (keras.activations.linear,),
    }
    for name, fns in known.items():
        if any(fn is f for f in fns):
            return name
    return None


def _peepholes(cell):
    """The three peephole vectors of a peephole cell, or None."""
    weights = tuple(getattr(cell, n, None) for n in _PEEPHOLES)
    return None if any(w is None for w in weights) else weights


def supports(cell) -> tuple[bool, str]:
    """Whether ``run`` can execute ``cell`` fused.

    Args:
        cell: a built cell.

    Returns:
        ``(True, "")``, or ``(False, reason)`` naming what is missing: the
        TensorFlow backend, a declared ``fused_kind``, built weights, the
        activations the kernel computes (tanh and sigmoid gates; simple RNN:
        tanh, sigmoid, relu or linear), the peephole weights.

    Example:

    >>> from seqlab.layers import LayerNormLSTMCell, LSTMCell, fused
    >>> cell = LSTMCell(4)
    >>> cell.build((None, 3))
    >>> fused.supports(cell)
    (True, '')
    >>> cell = LayerNormLSTMCell(4)
    >>> cell.build((None, 3))
    >>> fused.supports(cell)
    (False, 'LayerNormLSTMCell declares no fused kernel (fused_kind = None)')
    """
    if keras.backend.backend() != "tensorflow":
        return False, f"the fused path needs the TensorFlow backend, not {keras.backend.backend()!r}"
    kind, why = fused_kind(cell)
    if kind is None:
        return False, why
    name = type(cell).__name__
    for attr in ("kernel", "recurrent_kernel"):
        if getattr(cell, attr, None) is None:
            return False, f"{name} has no built `{attr}` (build the cell first)"
    act = _activation_name(getattr(cell, "activation", None))
    if kind == "simple_rnn":
        if act is None:
            return False, f"{name} activation {cell.activation!r} has no fused kernel"
    else:
        if act != "tanh":
            return False, f"{name} activation {cell.activation!r} is not tanh"
        if _activation_name(getattr(cell, "recurrent_activation", None)) != "sigmoid":
            return False, f"{name} recurrent_activation {cell.recurrent_activation!r} is not sigmoid"
    if kind == "peephole_lstm" and _peepholes(cell) is None:
        return False, f"{name} peephole weights {', '.join(_PEEPHOLES)} not found"
    return True, ""


@no_autograph
def run(cell, inputs, initial_state, mask=None, input_dropout_mask=None,
        recurrent_dropout_mask=None, go_backwards=False, chunks=DEFAULT_CHUNKS,
        compile_loops=DEFAULT_COMPILE_LOOPS):
    """Run a supported cell fused over ``inputs``.

    Args:
        cell: a built cell that ``supports`` accepts.
        inputs: ``[B, T, D]``.
        initial_state: list of ``[B, H]`` tensors (``h``, and ``c`` for
            LSTMs), or None (zeros).
        mask, input_dropout_mask, recurrent_dropout_mask, go_backwards,
        chunks, compile_loops: as for ``seqlab.layers.fused.lstm``.

    Returns:
        ``(sequence_outputs [B, T, H], final_states)``, ``final_states`` a
        list like ``initial_state``.

    Example:

    >>> import tensorflow as tf
    >>> from seqlab.layers import GRUCell, fused
    >>> cell = GRUCell(4)
    >>> cell.build((None, 3))
    >>> out, states = fused.run(cell, tf.ones([2, 5, 3]), None, chunks=1)
    >>> out.shape, [s.shape for s in states]
    (TensorShape([2, 5, 4]), [TensorShape([2, 4])])
    """
    ok, reason = supports(cell)
    if not ok:
        raise ValueError(f"fused.run cannot run this cell: {reason}")
    kind, _ = fused_kind(cell)
    if initial_state is None:
        initial_state = []
    elif not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    state = list(initial_state) + [None] * (2 - len(initial_state))
    bias = cell.bias if getattr(cell, "use_bias", True) else None
    common = dict(mask=mask, input_dropout_mask=input_dropout_mask,
                  recurrent_dropout_mask=recurrent_dropout_mask, go_backwards=go_backwards,
                  chunks=chunks, compile_loops=compile_loops)
    if kind == "lstm":
        out, h, c = lstm(inputs, cell.kernel, cell.recurrent_kernel, bias, state[0], state[1],
                         **common)
        return out, [h, c]
    if kind == "peephole_lstm":
        p_i, p_f, p_o = _peepholes(cell)
        out, h, c = peephole_lstm(inputs, cell.kernel, cell.recurrent_kernel, bias, p_i, p_f,
                                  p_o, state[0], state[1], **common)
        return out, [h, c]
    if kind == "gru":
        out, h = gru(inputs, cell.kernel, cell.recurrent_kernel, bias, state[0],
                     reset_after=bool(getattr(cell, "reset_after", True)), **common)
        return out, [h]
    out, h = simple_rnn(inputs, cell.kernel, cell.recurrent_kernel, bias, state[0],
                        activation=_activation_name(getattr(cell, "activation", None)), **common)
    return out, [h]
