"""``AttentionDecoder``: a recurrent decoder that attends to the source at every step (Bahdanau et al. 2015).

At target step ``i``, with ``y_{i-1}`` the embedded previous token, ``H`` the
encoder outputs ``[S, d_v]`` and ``s^l_{i-1}`` the states of decoder layer ``l``::

    c_i   = Attention(s^L_{i-1}, H)                    context from the TOP layer's previous h
    s^1_i = cell_1([y_{i-1}; c_i], s^1_{i-1})          the context enters the first layer's input
    s^l_i = cell_l(h^{l-1}_i, s^l_{i-1})               l = 2 .. L
    o_i   = [h^L_i; c_i]                               returned (the model adds y_{i-1} and projects)

The attention is :class:`seqlab.layers.additive_attention.BahdanauAttention`;
the cells are seqlab cells (``seqlab.layers.CELLS``). Because ``c_i`` depends
on ``s_{i-1}``, the steps are sequential; what does not depend on the
previous step is hoisted out of the loop, as in :class:`seqlab.layers.Recurrent`:

* the token part of the first layer's input projection, ``y W_y + b`` for all
  steps at once (the first cell's kernel is ``[W_y; W_c]`` over ``[y; c]``);
* the attention keys ``W_k H + b``, once per source sentence.

Inside the loop remain ``s W_q``, the ``[S, A]`` scoring, the context, ``c W_c``
and ``h U`` per layer. The same :meth:`AttentionDecoder.step` serves teacher
forcing (:meth:`~AttentionDecoder.call`, a compiled while-loop over the
target) and cached decoding (one token at a time, states carried by the
generation loop), so the two cannot drift apart.

Dropout is the model's business (on the embeddings and on ``o_i``); cell
options ``dropout`` / ``recurrent_dropout`` are refused here.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

# Keras' backend loop, the one seqlab.layers.Recurrent's generic path runs.
from keras.src.backend import rnn as _backend_rnn

from seqlab.layers.additive_attention import BahdanauAttention
from seqlab.layers.registry import CELLS
from seqlab.layers.stacks import BUILTIN_LAYERS, LAYER_OPTIONS, split_cell_spec


@keras.saving.register_keras_serializable(package="seqlab")
class AttentionDecoder(keras.layers.Layer):
    """A stack of ``num_layers`` recurrent cells with additive attention over a memory.

    Args:
        cell: a seqlab cell name (``lstm``, ``gru``, ... of
            ``seqlab.layers.CELLS``) or ``{"name": ..., **cell options}``.
        units: ``H``, the width of every layer.
        num_layers: stacked cells; the first takes ``[y; c]``.
        attention_units: ``A`` of the attention's scoring network (None: ``units``).
        cell_options: more cell options (merged over those of ``cell``).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: the embedded target ``[B, T, E]`` (``<bos>`` + target, teacher forcing).
        memory: the encoder outputs ``[B, S, d_v]``.
        initial_state: the flat list of every layer's states (layer 0's
            first: ``[h, c]`` for an LSTM), each ``[B, H]``; None: zeros.
        memory_mask: ``[B, S]`` bool, True on real source positions.
        return_attention_scores: also return the weights ``[B, T, S]``.

    Returns:
        ``o = [h^L; c]`` ``[B, T, H + d_v]``, and with
        ``return_attention_scores`` the attention weights ``[B, T, S]``.

    Example:

    >>> import numpy as np
    >>> decoder = AttentionDecoder("gru", units=8, num_layers=2)
    >>> memory = np.ones((2, 5, 6), "float32")
    >>> out, weights = decoder(np.ones((2, 3, 4), "float32"), memory,
    ...                        memory_mask=np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool),
    ...                        return_attention_scores=True)
    >>> tuple(out.shape), tuple(weights.shape), decoder.state_size
    ((2, 3, 14), (2, 3, 5), [8, 8])
    >>> np.asarray(weights)[0, :, 3:].tolist()
    [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    """

    def __init__(self, cell="lstm", units: int = 256, num_layers: int = 1, attention_units: int | None = None,
                 cell_options: Mapping | None = None, **kwargs):
        super().__init__(**kwargs)
        cell_name, spec_options = split_cell_spec(cell, "cell")
        if cell_name in BUILTIN_LAYERS:
            raise ValueError(
                f"AttentionDecoder steps seqlab cells; {cell_name!r} is a Keras built-in layer: use "
                f"{cell_name.removeprefix('keras_')!r}"
            )
        for key, value in (("units", units), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"AttentionDecoder: {key} must be a positive integer, got {value!r}")
        options = {**spec_options, **dict(cell_options or {})}
        for key in LAYER_OPTIONS:  # options of a sequence layer; this layer runs its own loop
            options.pop(key, None)
        for key in ("dropout", "recurrent_dropout"):
            if options.get(key):
                raise ValueError(
                    f"AttentionDecoder: cell option {key}={options[key]!r} is not applied inside the "
                    "attention loop; drop it and use the model's dropout (embeddings and outputs)"
                )
        self.cell_spec = cell if isinstance(cell, str) else dict(cell)
        self.cell_options = dict(cell_options or {})
        self.units = units
        self.num_layers = num_layers
        self.attention_units = attention_units
        cell_class, defaults = CELLS[cell_name]
        # Named per layer: gru_cell_0, gru_cell_1, ... (weight paths say which layer).
        self.cells = [cell_class(units, **{**defaults, **options, "name": f"{cell_name}_cell_{i}"})
                      for i in range(num_layers)]
        self.attention = BahdanauAttention(attention_units or units, name="attention")
        self.state_counts = [len(_sizes(c.state_size)) for c in self.cells]
        self.state_size = [s for c in self.cells for s in _sizes(c.state_size)]
        self.embedding_dim = None

    # ----------------------------------------------------------------- build
    def build(self, inputs_shape, memory_shape=None, *args, **kwargs):
        if memory_shape is None:
            raise ValueError("AttentionDecoder is called as layer(inputs, memory, ...)")
        self.embedding_dim = int(inputs_shape[-1])
        for i, cell in enumerate(self.cells):
            width = self.embedding_dim + int(memory_shape[-1]) if i == 0 else self.units
            if not cell.built:
                cell.build((None, width))
                cell.built = True
        if not self.attention.built:
            self.attention.build((None, self.units), tuple(memory_shape))
        self.built = True

    # ----------------------------------------------------------------- the step
    def group_states(self, flat):
        """The flat state list as one list per layer."""
        flat, out, i = list(flat), [], 0
        for n in self.state_counts:
            out.append(flat[i : i + n])
            i += n
        return out

    def get_initial_state(self, batch_size):
        """Zeros for every state of every layer (the flat list)."""
        return [s for c in self.cells for s in c.get_initial_state(batch_size=batch_size)]

    def project_memory(self, memory):
        """The attention keys ``W_k H + b`` ``[B, S, A]``, once per source."""
        return self.attention.project_keys(memory)

    def input_projection(self, inputs):
        """The token part of the first layer's input projection, ``y W_y + b`` (any leading shape)."""
        cell = self.cells[0]
        z = ops.matmul(inputs, cell.kernel[: self.embedding_dim])
        # The cell's own input bias (GRU reset_after: the first row of its [2, 3H] bias).
        bias = cell._input_bias() if cell.use_bias else None
        return z if bias is None else z + bias

    def step(self, projected, states, memory, keys, memory_mask=None):
        """One target position: ``(o [B, H + d_v], weights [B, S] float32, new flat states)``.

        ``projected`` is ``input_projection(y_{i-1})`` ``[B, G H]``; ``states``
        the flat list of the previous states; ``keys`` ``project_memory(memory)``.
        """
        grouped = self.group_states(states)
        query = grouped[-1][0]  # h of the top layer at i - 1
        context, weights = self.attention(query, memory, value_mask=memory_mask, keys=keys,
                                          return_attention_scores=True)
        first = self.cells[0]
        z = projected + ops.matmul(ops.cast(context, projected.dtype), first.kernel[self.embedding_dim :])
        out, new = first.recurrent_step(z, grouped[0])
        new_states = list(new)
        for cell, layer_states in zip(self.cells[1:], grouped[1:], strict=True):
            out, new = cell.recurrent_step(cell.input_projection(out), layer_states)
            new_states += list(new)
        return ops.concatenate([out, ops.cast(context, out.dtype)], axis=-1), weights, new_states

    # ----------------------------------------------------------------- the loop
    def call(self, inputs, memory, initial_state=None, memory_mask=None, return_attention_scores=False,
             training=None):
        if initial_state is None:
            initial_state = self.get_initial_state(ops.shape(inputs)[0])
        initial_state = [ops.cast(s, self.compute_dtype) for s in initial_state]
        if len(initial_state) != len(self.state_size):
            raise ValueError(
                f"AttentionDecoder {self.name}: {self.num_layers} layer(s) of "
                f"{type(self.cells[0]).__name__} have {len(self.state_size)} states, got "
                f"initial_state with {len(initial_state)}"
            )
        if memory_mask is not None:
            memory_mask = ops.cast(memory_mask, "bool")
        keys = self.project_memory(memory)
        projected = ops.transpose(self.input_projection(inputs), (1, 0, 2))  # [T, B, G H], one matmul
        width = self.units + memory.shape[-1]

        def step(p_t, states):
            out, weights, new_states = self.step(p_t, list(states), memory, keys, memory_mask)
            # One output tensor per step for the backend loop: [o; alpha].
            return ops.concatenate([out, ops.cast(weights, out.dtype)], axis=-1), new_states

        _, outputs, _ = _backend_rnn(step, projected, initial_state, time_major=True,
                                     input_length=inputs.shape[1], return_all_outputs=True)
        outputs = ops.transpose(outputs, (1, 0, 2))
        features = outputs[..., :width]
        if return_attention_scores:
            return features, ops.cast(outputs[..., width:], "float32")
        return features

    def compute_output_spec(self, inputs, memory, initial_state=None, memory_mask=None,
                            return_attention_scores=False, training=None):
        # Static widths for the functional graph (the traced loop's [o; alpha] split loses them).
        batch, length = inputs.shape[0], inputs.shape[1]
        features = keras.KerasTensor((batch, length, self.units + memory.shape[-1]), dtype=self.compute_dtype)
        if return_attention_scores:
            return features, keras.KerasTensor((batch, length, memory.shape[1]), dtype="float32")
        return features

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell_spec,
            "units": self.units,
            "num_layers": self.num_layers,
            "attention_units": self.attention_units,
            "cell_options": self.cell_options,
        }


def _sizes(state_size) -> list:
    return [state_size] if isinstance(state_size, int) else list(state_size)


__all__ = ["AttentionDecoder"]
