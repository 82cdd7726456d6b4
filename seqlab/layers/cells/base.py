"""``RecurrentCell``: what every seqlab cell shares (see the package docstring).

Argument checks, the ``kernel`` / ``recurrent_kernel`` / ``bias`` weights,
the per-sequence dropout masks and the config; a cell adds its gates and its
``recurrent_step``.
"""

from __future__ import annotations

import keras
from keras import activations, constraints, initializers, ops, regularizers

# The mixin that caches one dropout mask per sequence. keras.layers.RNN looks
# for it (isinstance) to create the masks before its loop and to reset them
# after it, so a seqlab cell inside keras.layers.RNN draws one mask per
# sequence; no public alias exists in Keras 3 (pyproject.toml bounds Keras).
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell


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
