"""``Recurrent``: run a seqlab cell over a sequence, with the input projection hoisted.

    x [B, T, D] --(input dropout mask, one per sequence)--> x * m
               --ONE matmul for all steps: cell.input_projection--> P [B, T, G*H]
    loop over t (compiled while-loop):  out_t, s_t = cell.recurrent_step(P_t, s_{t-1})

Only ``h_{t-1} @ U`` and the element-wise gate maths run per step. The layer has
the call interface of ``keras.layers.RNN`` (``initial_state=``, ``mask=``,
``training=``; ``return_sequences``, ``return_state``, ``go_backwards``,
``stateful``), so it can replace it, sit inside ``keras.layers.Bidirectional``
and be stepped by a generation loop that feeds states back.

Two execution paths:

``generic``
    the hoisted projection + Keras' backend ``rnn`` while-loop (the loop Keras'
    own RNN layers use; XLA compiles it under ``jit_compile=True``).
``fast``
    ``seqlab.layers.fused.run``: a fused kernel with a hand-written BPTT
    gradient, for every cell that declares a ``fused_kind`` (LSTM, peephole
    LSTM, GRU, simple RNN) on the TensorFlow backend.

``implementation="auto"`` picks ``fast`` when ``fused.supports(cell)``, else
``generic``; the choice and its reason are in ``layer.execution_path``
(``"fast"`` / ``"generic"``) and ``layer.execution_reason``, and logged once at
build time (logger ``seqlab.layers``). (Not ``layer.path``: that is Keras' own
Layer property, the layer's name-scope path, used by dtype-policy maps and
quantization; overriding it would break them.)
"""

from __future__ import annotations

import logging

import keras
from keras import ops

# Keras' backend loop (TF: tf.while_loop over TensorArrays, masking and
# go_backwards built in). It is what keras.layers.RNN runs; Keras 3 has no
# public alias for it.
from keras.src.backend import rnn as _backend_rnn

logger = logging.getLogger("seqlab.layers")

_IMPLEMENTATIONS = ("auto", "fast", "generic")


def _as_list(states):
    if states is None:
        return None
    if isinstance(states, (list, tuple)):
        return list(states)
    return [states]


@keras.saving.register_keras_serializable(package="seqlab")
class Recurrent(keras.layers.Layer):
    """Run ``cell`` over the time axis of ``[B, T, D]`` inputs.

    Masking: a masked step carries the states through unchanged. In the
    returned sequence its output is the previous output, 0 before the first
    valid step (Keras' convention). The last output (``return_sequences=False``)
    is the final ``h`` state on both paths: the output of the last valid step,
    and for a row with no valid step at all its initial ``h`` carried through
    (where ``keras.layers.RNN`` returns 0).

    Args:
        cell: a seqlab cell (``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``,
            ``PeepholeLSTMCell``, ``LayerNormLSTMCell``, or any cell with
            ``input_projection`` / ``recurrent_step``).
        return_sequences: return ``[B, T, H]`` (True) or the last output ``[B, H]``.
        return_state: also return the final states (``output, *states``).
        go_backwards: process the sequence in reverse; as in Keras, the
            returned sequence is then in processing (reversed) order.
        stateful: keep the final states of a batch as the initial states of
            the next (needs a static batch size; ``reset_state()`` clears).
        implementation: ``"auto"`` | ``"fast"`` | ``"generic"`` (see module doc).
        chunks: on the fast path, cut time into about this many chunks of
            consecutive steps (at least 8 steps each; one chunk when the
            length is not static): less peak memory in training, a few
            percent slower; 1: no chunks. Default as
            ``conf/model/cell/*.yaml``.
        compile_loops: on the fast path inside a graph, run the time loops as
            XLA-compiled functions (``True``, ~1.2x faster on CPU) or as plain
            graph loops (``False``: no XLA compilation, e.g. when every batch
            has another sequence length, for which the loops would be
            compiled again; ~25 % more peak memory). ``None`` (configs saved
            before it was a plain flag) means ``True``.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        sequences: ``[B, T, D]``.
        initial_state: list of ``[B, H]`` tensors, one per cell state, or
            None (zeros, or the carried states when ``stateful``).
        mask: ``[B, T]`` bool, or None.
        training: whether dropout applies.

    Returns:
        ``[B, T, H]`` or ``[B, H]`` (``return_sequences``), followed by the
        final states when ``return_state``.

    Example:

    >>> import numpy as np
    >>> from seqlab.layers import LSTMCell, Recurrent
    >>> layer = Recurrent(LSTMCell(4), return_sequences=True, return_state=True)
    >>> out, h, c = layer(np.ones((2, 16, 3), "float32"))
    >>> out.shape, h.shape, layer.execution_path
    (TensorShape([2, 16, 4]), TensorShape([2, 4]), 'fast')
    """

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        implementation="auto",
        chunks=8,
        compile_loops=True,
        **kwargs,
    ):
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        for attr in ("input_projection", "recurrent_step", "state_size"):
            if not hasattr(cell, attr):
                raise ValueError(
                    f"Recurrent: cell {cell!r} has no {attr!r}; use a seqlab cell "
                    "(seqlab.layers.get_cell(name, units)) or wrap a Keras cell in "
                    "keras.layers.RNN instead."
                )
        if implementation not in _IMPLEMENTATIONS:
            raise ValueError(
                f"Recurrent: implementation must be one of {_IMPLEMENTATIONS}, "
                f"got {implementation!r}."
            )
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise ValueError(
                f"Recurrent: chunks must be a positive integer (1: no time chunks), "
                f"got {chunks!r}."
            )
        if compile_loops is None:
            compile_loops = True
        if not isinstance(compile_loops, bool):
            raise ValueError(
                f"Recurrent: compile_loops must be true or false, got {compile_loops!r}."
            )
        super().__init__(**kwargs)
        self.chunks = chunks
        self.compile_loops = compile_loops
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.implementation = implementation
        self.supports_masking = True
        self.states = None
        self.execution_path = None
        self.execution_reason = ""
        self._fused = None
        state_size = cell.state_size
        self.state_size = [state_size] if isinstance(state_size, int) else list(state_size)

    # ----------------------------------------------------------------- shapes
    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, length = sequences_shape[0], sequences_shape[1]
        out = self.cell.output_size
        output_shape = (batch, length, out) if self.return_sequences else (batch, out)
        if self.return_state:
            return output_shape, *[(batch, s) for s in self.state_size]
        return output_shape

    def compute_mask(self, _, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    # ----------------------------------------------------------------- build
    def _choose_path(self):
        if self.implementation == "generic":
            return "generic", "implementation='generic' requested"
        backend = keras.backend.backend()
        if backend != "tensorflow":
            ok, why = False, f"the fused path needs the TensorFlow backend, not {backend!r}"
        else:
            # TensorFlow ops: imported on the TensorFlow backend only
            from seqlab.layers import fused

            ok, why = fused.supports(self.cell)
        if ok:
            self._fused = fused
            loops = ("time loops XLA-compiled inside graphs" if self.compile_loops
                     else "plain time loops")
            return "fast", (f"fused {self.cell.fused_kind} kernel, {self.chunks} time "
                            f"chunk(s), {loops}")
        if self.implementation == "fast":
            raise ValueError(
                f"Recurrent: implementation='fast' but the fused kernels do not support "
                f"{type(self.cell).__name__}: {why}; use implementation='auto' or 'generic'."
            )
        return "generic", f"no fused kernel: {why}"

    def build(self, sequences_shape, initial_state_shape=None):
        step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        if not self.cell.built:
            self.cell.build(step_shape)
            self.cell.built = True
        self.execution_path, self.execution_reason = self._choose_path()
        logger.info(
            "%s: %s with %s path (%s)",
            self.name,
            type(self.cell).__name__,
            self.execution_path,
            self.execution_reason,
        )
        if self.stateful:
            if self.states is not None:
                self.reset_state()
            else:
                if sequences_shape[0] is None:
                    raise ValueError(
                        "Recurrent: stateful=True needs a static batch size; give the "
                        "Input a batch_shape=(batch, time, features). Got shape "
                        f"{tuple(sequences_shape)}."
                    )
                self._create_state_variables(sequences_shape[0])
        self.built = True

    def _create_state_variables(self, batch_size):
        states = [
            keras.Variable(
                ops.zeros((batch_size, s)),
                trainable=False,
                dtype=self.variable_dtype,
                name=f"rnn_state_{i}",
            )
            for i, s in enumerate(self.state_size)
        ]
        # Stateful state variables are not weights (not saved, not in
        # get_weights), as in keras.layers.RNN: set past the layer's
        # attribute tracking, which would add them to its variables.
        object.__setattr__(self, "states", states)

    def reset_state(self):
        """Zeros the carried states of a ``stateful`` layer."""
        if self.states is not None:
            for v in self.states:
                v.assign(ops.zeros_like(v.value))

    reset_states = reset_state

    def get_initial_state(self, batch_size):
        """The cell's initial states (zeros) for ``batch_size`` rows."""
        return list(self.cell.get_initial_state(batch_size=batch_size))

    # ----------------------------------------------------------------- call
    def _dropout_masks(self, sequences, training):
        cell = self.cell
        batch = ops.shape(sequences)[0]
        in_mask = rec_mask = None
        if training and getattr(cell, "dropout", 0) > 0:
            ones = ops.ones((batch, sequences.shape[-1]), dtype=sequences.dtype)
            in_mask = keras.random.dropout(ones, cell.dropout, seed=cell.seed_generator)
        if training and getattr(cell, "recurrent_dropout", 0) > 0:
            ones = ops.ones((batch, cell.units), dtype=sequences.dtype)
            rec_mask = keras.random.dropout(
                ones, cell.recurrent_dropout, seed=cell.seed_generator
            )
        return in_mask, rec_mask

    def _run_generic(self, sequences, initial_state, mask, in_mask, rec_mask):
        cell = self.cell
        if in_mask is not None:
            sequences = sequences * ops.expand_dims(in_mask, 1)
        # Go time-major on the narrow input, not on the G*H-wide projection.
        time_major = ops.transpose(sequences, (1, 0, 2))  # [T, B, D]
        projected = cell.input_projection(time_major)  # [T, B, G*H], ONE matmul
        if mask is not None:
            mask = ops.transpose(mask, (1, 0))

        def step(p_t, states):
            return cell.recurrent_step(p_t, list(states), rec_mask)

        last_output, outputs, states = _backend_rnn(
            step,
            projected,
            initial_state,
            go_backwards=self.go_backwards,
            mask=mask,
            input_length=sequences.shape[1],
            time_major=True,
            zero_output_for_mask=False,
            return_all_outputs=self.return_sequences,
        )
        states = list(states)
        if mask is not None:
            # Keras' last output of a row with no valid step is 0; here it is
            # the final h state, as on the fast path (see the class docstring)
            valid = ops.expand_dims(ops.any(mask, axis=0), 1)
            last_output = ops.where(valid, last_output, states[0])
        if self.return_sequences:
            outputs = ops.transpose(outputs, (1, 0, 2))
        return last_output, outputs, states

    def _run_fast(self, sequences, initial_state, mask, in_mask, rec_mask):
        outputs, states = self._fused.run(
            self.cell,
            sequences,
            initial_state,
            mask=mask,
            input_dropout_mask=in_mask,
            recurrent_dropout_mask=rec_mask,
            go_backwards=self.go_backwards,
            chunks=self.chunks,
            compile_loops=self.compile_loops,
        )
        states = list(states)
        return states[0], outputs, states

    def call(self, sequences, initial_state=None, mask=None, training=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        initial_state = _as_list(initial_state)
        if initial_state is None:
            if self.stateful:
                initial_state = [ops.convert_to_tensor(v) for v in self.states]
            else:
                initial_state = self.get_initial_state(ops.shape(sequences)[0])
        if len(initial_state) != len(self.state_size):
            raise ValueError(
                f"Recurrent {self.name}: {type(self.cell).__name__} has "
                f"{len(self.state_size)} state(s) of sizes {self.state_size}, "
                f"got initial_state with {len(initial_state)} tensor(s)."
            )
        initial_state = [ops.cast(s, self.cell.compute_dtype) for s in initial_state]
        in_mask, rec_mask = self._dropout_masks(sequences, training)
        if mask is not None:
            mask = ops.cast(mask, "bool")

        run = self._run_fast if self.execution_path == "fast" else self._run_generic
        last_output, outputs, states = run(sequences, initial_state, mask, in_mask, rec_mask)

        states = [ops.cast(s, self.compute_dtype) for s in states]
        if self.stateful:
            for var, value in zip(self.states, states):
                var.assign(value)
        output = outputs if self.return_sequences else last_output
        output = ops.cast(output, self.compute_dtype)
        if self.return_state:
            return output, *states
        return output

    # ----------------------------------------------------------------- config
    def get_config(self):
        config = {
            "cell": keras.saving.serialize_keras_object(self.cell),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "implementation": self.implementation,
            "chunks": self.chunks,
            "compile_loops": self.compile_loops,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cell = keras.saving.deserialize_keras_object(
            config.pop("cell"), custom_objects=custom_objects
        )
        return cls(cell, **config)
