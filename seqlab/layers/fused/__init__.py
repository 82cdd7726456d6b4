"""Fused recurrent kernels with a hand-written backward pass (BPTT).

LSTM, peephole LSTM, GRU (both reset-gate placements) and simple RNN run as
one time loop forward and one time loop backward, with the gradient written
out (``tf.custom_gradient``) instead of obtained by differentiating the loop.
``seqlab.layers.Recurrent`` uses them (its ``"fast"`` path) for every cell
that declares a ``fused_kind``. The modules, in reading order:

``loops``
    the time loop: one step function over the steps of a chunk, a
    ``tf.while_loop``, XLA-compiled inside graphs (``compile_loops``).
``chunks``
    time cut into chunks of consecutive steps (``chunks``): a chunk's input
    projection ``x W + b`` is one matmul over its K*B rows made just before
    its loop; the backward pass runs the chunks in reverse and forms a
    chunk's ``dW``, ``db``, ``dU`` and ``dx`` right after its loop, so one
    chunk's gate gradients are alive at a time.
``lstm``, ``gru``, ``simple_rnn``
    the recurrences: the step's forward and backward equations (in each
    module's docstring), the forward loop keeping what the backward loop
    needs (gate activations), the backward loop carrying ``dL/dh`` (and
    ``dL/dc``) and storing the gate gradients ``dz``.
``dispatch``
    ``supports(cell)`` and ``run(cell, ...)``: from a cell to its kernel.
``layout``
    time-major / batch-major tensors, argument preparation, output masking.

**This package uses TensorFlow ops directly** (``tf.while_loop``,
``tf.TensorArray``, ``tf.custom_gradient``, ``tf.raw_ops.TanhGrad``), unlike
the rest of ``seqlab.layers`` which sticks to ``keras.ops``: its point is
TensorFlow training speed, and Keras 3 has no fused CPU recurrence. It needs
the TensorFlow backend (``supports`` says so otherwise). It works eagerly, in
``tf.function`` graphs and under ``jit_compile=True`` (XLA), in float32 and
float64 (float16/bfloat16 inputs work too, with weights cast to the input
dtype).

Weight layout is exactly the Keras cells': ``kernel`` [D, G*H],
``recurrent_kernel`` [H, G*H], ``bias`` [G*H]; gates i, f, c, o for LSTMs,
z, r, h for the GRU; the GRU with ``reset_after=True`` has ``bias`` [2, 3H]
(row 0 input bias, row 1 recurrent bias). The peephole LSTM adds three
diagonal weights [H]: i and f see ``c_{t-1}``, o sees ``c_t``.

Semantics shared by all kinds (those of ``keras.layers.RNN``):

* ``mask`` [B, T] (bool): on a masked step the state is carried through
  unchanged and the output equals the previous output, i.e. the carried
  ``h`` once a step has been valid and 0 before the first valid step (Keras
  starts the previous output at zero, also when ``h0`` is not zero);
* ``input_dropout_mask`` [B, D] multiplies ``x`` at every step before the
  projection; ``recurrent_dropout_mask`` [B, H] multiplies ``h_{t-1}`` before
  ``h U`` (the same mask for every gate). The GRU update ``z*h_{t-1}`` uses
  the undropped state. Dropout masks receive no gradient;
* ``go_backwards``: the sequence is processed reversed and the outputs are
  returned in processing order.

Speed and memory figures of the design choices (chunks, compiled loops, the
gate-block layout) are in ``experiments/throughput/README.md``.

Example:

>>> import tensorflow as tf
>>> from seqlab.layers import fused
>>> x = tf.ones([2, 16, 3])
>>> out, h, c = fused.lstm(x, tf.ones([3, 16]) * 0.1, tf.zeros([4, 16]), chunks=2)
>>> out.shape
TensorShape([2, 16, 4])
"""

from seqlab.layers.fused.chunks import DEFAULT_CHUNKS
from seqlab.layers.fused.dispatch import KINDS, run, supports
from seqlab.layers.fused.gru import gru
from seqlab.layers.fused.loops import DEFAULT_COMPILE_LOOPS
from seqlab.layers.fused.lstm import lstm, peephole_lstm
from seqlab.layers.fused.simple_rnn import simple_rnn

__all__ = [
    "DEFAULT_CHUNKS",
    "DEFAULT_COMPILE_LOOPS",
    "KINDS",
    "gru",
    "lstm",
    "peephole_lstm",
    "run",
    "simple_rnn",
    "supports",
]
