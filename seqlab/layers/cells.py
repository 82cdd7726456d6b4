"""Recurrent cells written from their equations.

Every cell is a ``keras.layers.Layer`` with the standard Keras cell API
(``state_size``, ``output_size``, ``call(x_t, states, training)``,
``get_initial_state``), so it runs inside ``keras.layers.RNN``; and a split
API that lets :class:`seqlab.layers.Recurrent` hoist the input projection out
of the time loop:

``cell.input_projection(x)``
    ``x @ kernel (+ input bias)`` for any leading shape: ``[B, T, D] -> [B, T, G*H]``
    in one batched matmul for all time steps.
``cell.recurrent_step(p_t, states, recurrent_dropout_mask=None)``
    the rest of one step given the projected input ``p_t`` ``[B, G*H]``:
    returns ``(output, new_states)``.

``call`` is ``recurrent_step(input_projection(x_t * input_mask), states)``.

Weights are laid out as Keras lays out its cells (``kernel [D, G*H]``,
``recurrent_kernel [H, G*H]``, ``bias``; gate order i, f, c, o for the LSTMs,
z, r, h for the GRU), so weights copied from ``keras.layers.LSTMCell`` /
``GRUCell`` / ``SimpleRNNCell`` give identical results.

Dropout is variational (Gal & Ghahramani 2016), as in Keras: one input mask
and one recurrent mask per sequence, reused at every step. One input mask is
shared by all gates (so the input projection stays one matmul), and the
recurrent mask multiplies ``h_{t-1}`` before ``recurrent_kernel``.

Only ``keras.ops`` is used here, so the cells run on any Keras backend.
"""

from __future__ import annotations

import keras
from keras import activations, constraints, initializers, ops, regularizers

# The mixin that caches one dropout mask per sequence. keras.layers.RNN looks
# for it (isinstance) to create the masks before its loop and to reset them
# after it, so a seqlab cell inside keras.layers.RNN draws one mask per
# sequence; no public alias exists in Keras 3 (the lead bounds the version).
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

__all__ = [
    "RecurrentCell",
    "SimpleRNNCell",
    "LSTMCell",
    "GRUCell",
    "PeepholeLSTMCell",
    "LayerNormLSTMCell",
]


def _check_units(cls_name, units):
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(
            f"{cls_name}: units must be a positive integer, got {units!r}; "
            "pass e.g. units=128."
        )


def _check_rate(cls_name, key, value):
    try:
        ok = 0.0 <= float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"{cls_name}: {key} must be a float in [0, 1), got {value!r}; "
            f"use 0.0 to disable it."
        )
    return float(value)


def _get_activation(cls_name, key, identifier):
    try:
        return activations.get(identifier)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{cls_name}: unknown {key} {identifier!r}; use a Keras activation "
            "name ('tanh', 'sigmoid', 'relu', ...), a callable or None (linear)."
        ) from err


class RecurrentCell(keras.layers.Layer, DropoutRNNCell):
    """Common base: argument checking, weights, dropout masks, config.

    Subclasses set ``gates`` (number of ``H``-wide blocks in the kernels),
    ``num_states`` and ``fused_kind``, and implement ``recurrent_step``; most
    override ``_bias_shape`` / ``build_extra``.

    Args:
        units: ``H``, the width of the state(s) and of the output.
        activation: the candidate / output activation (default ``tanh``;
            None is linear).
        recurrent_activation: the gate activation (default ``sigmoid``).
        use_bias: whether the cell has a ``bias``.
        kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: as in
            ``keras.layers.LSTMCell``.
        dropout: input dropout rate in ``[0, 1)``, one mask per sequence.
        recurrent_dropout: dropout rate on ``h_{t-1}`` in ``[0, 1)``, one
            mask per sequence.
        seed: seed of the dropout masks.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: ``x_t`` ``[B, D]``.
        states: list of ``[B, H]`` tensors (``[h]``, or ``[h, c]`` for the
            LSTMs), or one tensor for single-state cells.
        training: whether dropout applies.

    Returns:
        ``(output [B, H], new_states)``, ``new_states`` shaped like ``states``.
    """

    gates = 1
    #: state tensors per step, each [B, units]
    num_states = 1
    #: the fused kernel (``seqlab.layers.fused``) that computes this cell:
    #: "lstm", "peephole_lstm", "gru", "simple_rnn", or None (no kernel; the
    #: ``Recurrent`` layer then runs the generic loop). A subclass that
    #: changes the step must declare its own (``fused.supports`` refuses an
    #: inherited kind whose step was overridden).
    fused_kind = None

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        name = type(self).__name__
        _check_units(name, units)
        super().__init__(**kwargs)
        self.units = units
        self.activation = _get_activation(name, "activation", activation)
        self.recurrent_activation = _get_activation(
            name, "recurrent_activation", recurrent_activation
        )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = _check_rate(name, "dropout", dropout)
        self.recurrent_dropout = _check_rate(name, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.bias = None

    # ----------------------------------------------------------------- sizes
    @property
    def state_size(self):
        if self.num_states == 1:
            return self.units
        return [self.units] * self.num_states

    @property
    def output_size(self):
        return self.units

    # ----------------------------------------------------------------- weights
    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_init(self, shape, dtype=None):
        return self.bias_initializer(shape, dtype=dtype)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        gh = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, gh),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, gh),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._bias_init,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.build_extra()
        self.built = True

    def build_extra(self):
        """Weights beyond kernel / recurrent_kernel / bias (peepholes, norms)."""

    # ----------------------------------------------------------------- split API
    def _input_bias(self):
        return self.bias

    def input_projection(self, inputs):
        """``inputs @ kernel (+ input bias)``; any leading shape, last axis D -> G*H."""
        z = ops.matmul(inputs, self.kernel)
        bias = self._input_bias() if self.use_bias else None
        if bias is not None:
            z = z + bias
        return z

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        """One step from the projected input: returns ``(output, new_states)``."""
        raise NotImplementedError

    def _recurrent_input(self, h, recurrent_dropout_mask):
        return h if recurrent_dropout_mask is None else h * recurrent_dropout_mask

    # ----------------------------------------------------------------- Keras API
    def call(self, inputs, states, training=False):
        single = not isinstance(states, (list, tuple))
        states = [states] if single else list(states)
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        rec_mask = None
        if training and self.recurrent_dropout > 0:
            rec_mask = self.get_recurrent_dropout_mask(states[0])
        output, new_states = self.recurrent_step(
            self.input_projection(inputs), states, rec_mask
        )
        return output, (new_states[0] if single else new_states)

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
            for _ in range(self.num_states)
        ]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="seqlab")
class SimpleRNNCell(RecurrentCell):
    r"""Vanilla (Elman) recurrent cell.

    .. math::

        h_t = \phi(x_t W_{xh} + h_{t-1} W_{hh} + b)

    with ``phi = activation`` (default ``tanh``). Weights: ``kernel`` =
    W_xh ``[D, H]``, ``recurrent_kernel`` = W_hh ``[H, H]``, ``bias`` ``[H]``,
    as in ``keras.layers.SimpleRNNCell``. One state, ``h``; the output is ``h``.
    ``recurrent_activation`` is not used (accepted for a uniform interface).
    Arguments, call arguments and return value: see :class:`RecurrentCell`.

    Example:

    >>> import numpy as np
    >>> from seqlab.layers import SimpleRNNCell
    >>> cell = SimpleRNNCell(4)
    >>> out, states = cell(np.ones((2, 3), "float32"), [np.zeros((2, 4), "float32")])
    >>> out.shape, len(states)
    (TensorShape([2, 4]), 1)
    """

    gates = 1
    num_states = 1
    fused_kind = "simple_rnn"

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev = states[0]
        z = projected + ops.matmul(
            self._recurrent_input(h_prev, recurrent_dropout_mask), self.recurrent_kernel
        )
        h = self.activation(z) if self.activation is not None else z
        return h, [h]


@keras.saving.register_keras_serializable(package="seqlab")
class LSTMCell(RecurrentCell):
    r"""Long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate).

    .. math::

        i_t &= \sigma(x_t W_i + h_{t-1} U_i + b_i) \\
        f_t &= \sigma(x_t W_f + h_{t-1} U_f + b_f) \\
        g_t &= \tanh(x_t W_c + h_{t-1} U_c + b_c) \\
        o_t &= \sigma(x_t W_o + h_{t-1} U_o + b_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)

    ``sigma = recurrent_activation`` (default sigmoid), ``tanh = activation``.
    Weights as ``keras.layers.LSTMCell``: ``kernel [D, 4H]``,
    ``recurrent_kernel [H, 4H]``, ``bias [4H]``, gate blocks in order
    i, f, c (=g), o. States ``[h, c]``; output ``h``.

    Args:
        units: ``H``.
        forget_bias: added to the forget-gate block of the bias at
            initialisation (default 1.0, Jozefowicz et al. 2015; Keras'
            ``unit_forget_bias=True``). 0 disables it.
        **kwargs: as :class:`RecurrentCell` (and ``keras.layers.LSTMCell``).

    Call arguments and return value: see :class:`RecurrentCell` (states
    ``[h, c]``).

    Example:

    >>> import numpy as np
    >>> from seqlab.layers import LSTMCell, Recurrent
    >>> layer = Recurrent(LSTMCell(8), return_sequences=True)
    >>> layer(np.ones((2, 5, 3), "float32")).shape
    TensorShape([2, 5, 8])
    """

    gates = 4
    num_states = 2
    fused_kind = "lstm"

    def __init__(self, units, forget_bias=1.0, **kwargs):
        # Keras' boolean spelling, accepted so Keras cell configs load.
        unit_forget_bias = kwargs.pop("unit_forget_bias", None)
        if unit_forget_bias is not None:
            forget_bias = 1.0 if unit_forget_bias else 0.0
        self.forget_bias = float(forget_bias)
        super().__init__(units, **kwargs)

    def _bias_init(self, shape, dtype=None):
        bias = self.bias_initializer(shape, dtype=dtype)
        if self.forget_bias:
            h = self.units
            bias = ops.concatenate(
                [bias[:h], bias[h : 2 * h] + self.forget_bias, bias[2 * h :]]
            )
        return bias

    def _gates(self, projected, h_prev, recurrent_dropout_mask):
        z = projected + ops.matmul(
            self._recurrent_input(h_prev, recurrent_dropout_mask), self.recurrent_kernel
        )
        return ops.split(z, 4, axis=-1)

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev, c_prev = states[0], states[1]
        zi, zf, zc, zo = self._gates(projected, h_prev, recurrent_dropout_mask)
        i = self.recurrent_activation(zi)
        f = self.recurrent_activation(zf)
        c = f * c_prev + i * self.activation(zc)
        o = self.recurrent_activation(zo)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "forget_bias": self.forget_bias}


@keras.saving.register_keras_serializable(package="seqlab")
class GRUCell(RecurrentCell):
    r"""Gated recurrent unit (Cho et al. 2014), both placements of the reset gate.

    .. math::

        z_t &= \sigma(x_t W_z + h_{t-1} U_z + b_z) \\
        r_t &= \sigma(x_t W_r + h_{t-1} U_r + b_r) \\
        \tilde h_t &= \tanh(x_t W_h + r_t \odot (h_{t-1} U_h + b^{rec}_h) + b_h)
            \quad \text{reset\_after=True (cuDNN, Keras default)} \\
        \tilde h_t &= \tanh(x_t W_h + (r_t \odot h_{t-1}) U_h + b_h)
            \quad \text{reset\_after=False (Cho et al. 2014)} \\
        h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t

    The update convention is the Keras/Cho one, so Keras weights carry over
    directly. The other common form, ``h_t = (1 - z_t) h_{t-1} + z_t h~_t``
    (e.g. PyTorch docs, some textbooks), is the same cell with ``z -> 1 - z``
    (negate the z-block of the weights and biases).

    Weights as ``keras.layers.GRUCell``: ``kernel [D, 3H]``,
    ``recurrent_kernel [H, 3H]`` in gate order z, r, h; ``bias`` is ``[3H]``
    for ``reset_after=False`` and ``[2, 3H]`` (input bias, recurrent bias) for
    ``reset_after=True``. One state ``h``; output ``h``.

    Args:
        units: ``H``.
        reset_after: where the reset gate acts (see above; default True).
        **kwargs: as :class:`RecurrentCell`.

    Call arguments and return value: see :class:`RecurrentCell`.

    Example:

    >>> from seqlab.layers import GRUCell
    >>> for reset_after in (True, False):
    ...     cell = GRUCell(4, reset_after=reset_after)
    ...     cell.build((None, 3))
    ...     print(reset_after, cell.bias.shape)
    True (2, 12)
    False (12,)
    """

    gates = 3
    num_states = 1
    fused_kind = "gru"

    def __init__(self, units, reset_after=True, **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(units, **kwargs)

    def _bias_shape(self):
        h3 = 3 * self.units
        return (2, h3) if self.reset_after else (h3,)

    def _input_bias(self):
        return self.bias[0] if self.reset_after else self.bias

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev = states[0]
        hu = self.units
        h_in = self._recurrent_input(h_prev, recurrent_dropout_mask)
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        if self.reset_after:
            inner = ops.matmul(h_in, self.recurrent_kernel)
            if self.use_bias:
                inner = inner + self.bias[1]
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            pre_h = x_h + r * r_h
        else:
            inner = ops.matmul(h_in, self.recurrent_kernel[:, : 2 * hu])
            r_z, r_r = ops.split(inner, 2, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            pre_h = x_h + ops.matmul(r * h_in, self.recurrent_kernel[:, 2 * hu :])
        hh = self.activation(pre_h) if self.activation is not None else pre_h
        h = z * h_prev + (1.0 - z) * hh
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


@keras.saving.register_keras_serializable(package="seqlab")
class PeepholeLSTMCell(LSTMCell):
    r"""LSTM with peephole connections (Gers & Schmidhuber 2000).

    The input and forget gates look at the previous cell ``c_{t-1}``, the output
    gate at the new cell ``c_t``, through diagonal (element-wise) weights:

    .. math::

        i_t &= \sigma(x_t W_i + h_{t-1} U_i + p_i \odot c_{t-1} + b_i) \\
        f_t &= \sigma(x_t W_f + h_{t-1} U_f + p_f \odot c_{t-1} + b_f) \\
        g_t &= \tanh(x_t W_c + h_{t-1} U_c + b_c) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(x_t W_o + h_{t-1} U_o + p_o \odot c_t + b_o) \\
        h_t &= o_t \odot \tanh(c_t)

    Weights: those of :class:`LSTMCell` plus ``input_gate_peephole_weights``,
    ``forget_gate_peephole_weights``, ``output_gate_peephole_weights`` (each
    ``[H]``, the names of TF's former ``PeepholeLSTMCell``), initialised with
    ``peephole_initializer``.

    Args:
        units: ``H``.
        peephole_initializer: initializer of the three peephole vectors.
        **kwargs: as :class:`LSTMCell`.

    Call arguments and return value: see :class:`RecurrentCell` (states
    ``[h, c]``).

    Example:

    >>> from seqlab.layers import PeepholeLSTMCell
    >>> cell = PeepholeLSTMCell(4)
    >>> cell.build((None, 3))
    >>> [w.name for w in cell.weights][3:]
    ['input_gate_peephole_weights', 'forget_gate_peephole_weights', 'output_gate_peephole_weights']
    """

    fused_kind = "peephole_lstm"

    def __init__(self, units, peephole_initializer="glorot_uniform", **kwargs):
        self.peephole_initializer = initializers.get(peephole_initializer)
        super().__init__(units, **kwargs)

    def build_extra(self):
        for gate in ("input", "forget", "output"):
            w = self.add_weight(
                shape=(self.units,),
                name=f"{gate}_gate_peephole_weights",
                initializer=self.peephole_initializer,
            )
            setattr(self, f"{gate}_gate_peephole_weights", w)

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev, c_prev = states[0], states[1]
        zi, zf, zc, zo = self._gates(projected, h_prev, recurrent_dropout_mask)
        i = self.recurrent_activation(zi + self.input_gate_peephole_weights * c_prev)
        f = self.recurrent_activation(zf + self.forget_gate_peephole_weights * c_prev)
        c = f * c_prev + i * self.activation(zc)
        o = self.recurrent_activation(zo + self.output_gate_peephole_weights * c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "peephole_initializer": initializers.serialize(self.peephole_initializer),
        }


@keras.saving.register_keras_serializable(package="seqlab")
class LayerNormLSTMCell(LSTMCell):
    r"""LSTM with layer normalisation of the gate pre-activations and the cell
    (Ba, Kiros & Hinton 2016, in the per-gate form of TF-Addons' cell).

    .. math::

        a_t &= x_t W + h_{t-1} U \qquad \text{(4 blocks i, f, c, o)} \\
        [\hat a_i, \hat a_f, \hat a_c, \hat a_o] &=
            \gamma \odot \mathrm{LN}_{\text{per block}}(a_t) + b \\
        i_t, f_t, o_t &= \sigma(\hat a_i), \sigma(\hat a_f), \sigma(\hat a_o); \quad
            g_t = \tanh(\hat a_c) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(\gamma_c \odot \mathrm{LN}(c_t) + \beta_c)

    with ``LN(v) = (v - mean(v)) / sqrt(var(v) + epsilon)`` over the ``H``
    units of each block. The state carries the un-normalised ``c_t``.

    Why: the gate pre-activations of a plain LSTM drift in scale as the
    weights grow or the sequence gets long, pushing the sigmoids and tanh
    into saturation (vanishing gradients) or making the cell blow up.
    Normalising every block per step keeps them in the responsive range
    whatever the scale of ``W``, ``U`` and the inputs, which makes training
    stabler and tolerant of larger learning rates, and usually faster to
    converge (Ba et al. 2016). The bias ``b`` plays the role of LayerNorm's
    beta (so ``forget_bias`` still applies); ``gate_gamma [4H]`` (ones),
    ``cell_gamma [H]`` (ones), ``cell_beta [H]`` (zeros) are the extra
    weights. The input projection ``x W`` is still hoisted out of the loop;
    the bias is added after the normalisation, inside the step. There is no
    fused kernel for this cell: ``Recurrent`` runs it on the generic path.

    Args:
        units: ``H``.
        epsilon: the LayerNorm variance epsilon (> 0).
        **kwargs: as :class:`LSTMCell` (``forget_bias`` applies to ``b``).

    Call arguments and return value: see :class:`RecurrentCell` (states
    ``[h, c]``, ``c`` un-normalised).

    Example:

    >>> import numpy as np
    >>> from seqlab.layers import LayerNormLSTMCell, Recurrent
    >>> layer = Recurrent(LayerNormLSTMCell(4))
    >>> layer(np.ones((2, 5, 3), "float32")).shape, layer.execution_path
    (TensorShape([2, 4]), 'generic')
    """

    fused_kind = None  # the normalisations have no fused kernel

    def __init__(self, units, epsilon=1e-3, **kwargs):
        self.epsilon = float(epsilon)
        if not self.epsilon > 0:
            raise ValueError(
                f"LayerNormLSTMCell: epsilon must be > 0, got {epsilon!r}; use e.g. 1e-3."
            )
        super().__init__(units, **kwargs)

    def build_extra(self):
        self.gate_gamma = self.add_weight(
            shape=(4 * self.units,), name="gate_gamma", initializer="ones"
        )
        self.cell_gamma = self.add_weight(
            shape=(self.units,), name="cell_gamma", initializer="ones"
        )
        self.cell_beta = self.add_weight(
            shape=(self.units,), name="cell_beta", initializer="zeros"
        )

    def _input_bias(self):
        return None  # the bias is LayerNorm's beta, added after normalising

    def _norm(self, v):
        mean = ops.mean(v, axis=-1, keepdims=True)
        centred = v - mean
        var = ops.mean(ops.square(centred), axis=-1, keepdims=True)
        return centred * ops.rsqrt(var + self.epsilon)

    def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
        h_prev, c_prev = states[0], states[1]
        hu = self.units
        a = projected + ops.matmul(
            self._recurrent_input(h_prev, recurrent_dropout_mask), self.recurrent_kernel
        )
        a = ops.reshape(self._norm(ops.reshape(a, (-1, 4, hu))), (-1, 4 * hu))
        a = a * self.gate_gamma
        if self.use_bias:
            a = a + self.bias
        zi, zf, zc, zo = ops.split(a, 4, axis=-1)
        i = self.recurrent_activation(zi)
        f = self.recurrent_activation(zf)
        c = f * c_prev + i * self.activation(zc)
        o = self.recurrent_activation(zo)
        h = o * self.activation(self._norm(c) * self.cell_gamma + self.cell_beta)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
