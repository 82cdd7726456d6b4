r"""The fused simple (Elman) RNN, forward and backward (BPTT).

Forward, per step (``rm`` the recurrent dropout mask, 1 without dropout;
``act`` one of tanh, sigmoid, relu, linear)::

    h_t = act(x_t W + b + (h_{t-1} * rm) U)

Backward, per step in reverse, given ``dh_t`` (the output's gradient at t
plus the carried one); ``act'`` is written through the output (tanh:
``1 - h^2``, sigmoid: ``h (1 - h)``, relu: ``h > 0``, linear: 1)::

    dz_t     = dh_t * act'(h_t)
    dh_{t-1} = (dz_t U^T) * rm

and over all steps ``dW = sum_t x_t^T dz_t``, ``db = sum_t dz_t``,
``dU = sum_t (h_{t-1} * rm)^T dz_t``, ``dx_t = dz_t W^T``. On a masked step
``h`` is carried unchanged: ``dh`` passes to step t-1 untouched and
``dz_t = 0``.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from seqlab.layers.fused.chunks import (
    DEFAULT_CHUNKS,
    StepInput,
    after,
    backward_chunks,
    chunk_bounds,
    forward_chunks,
    prev_states,
    prev_weight_grad,
)
from seqlab.layers.fused.layout import (
    batch_major,
    cast,
    check_options,
    input_bias,
    mask_slice,
    masked_outputs,
    prepare,
    state,
    time_major,
    zeros_if_none,
)
from seqlab.layers.fused.loops import DEFAULT_COMPILE_LOOPS, no_autograph, num_steps, time_loop

#: The activations with a fused kernel, by name.
ACTIVATIONS = {
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "relu": tf.nn.relu,
    "linear": lambda x: x,
}


def _act_grad(activation):
    """Derivative of an elementwise activation expressed through its output."""
    if activation == "tanh":
        return lambda y, dy: tf.raw_ops.TanhGrad(y=y, dy=dy)
    if activation == "sigmoid":
        return lambda y, dy: tf.raw_ops.SigmoidGrad(y=y, dy=dy)
    if activation == "relu":
        return lambda y, dy: tf.where(y > 0, dy, tf.zeros_like(dy))
    if activation == "linear":
        return lambda y, dy: dy
    raise ValueError(f"unsupported activation {activation!r}")


class _BackwardInput(NamedTuple):
    """What a backward step reads."""

    dh_out: tf.Tensor  #: dL/dh_t from the outputs [B, H]
    h: tf.Tensor  #: h_t
    mask: tf.Tensor | None


def _simple_recurrence(x, w, b, u, h0, m, rm, activation, chunks, compiled):
    """h_t = act(x_t W + b + h_{t-1} U) over time-major x [T,B,D]. Returns
    hs [B,T,H], h_T."""
    bounds = chunk_bounds(num_steps(x), chunks)
    act = ACTIVATIONS[activation]
    dact = _act_grad(activation)

    def f(x, w, b, u, h0):
        def step(reads, carry):
            s = StepInput(*reads)
            (h,) = carry
            hd = h * rm if rm is not None else h
            h_new = act(s.xw + tf.matmul(hd, u))
            if s.mask is not None:
                h_new = tf.where(s.mask, h_new, h)
            return (h_new,), [h_new]

        loop = time_loop(step, [h0], compiled)
        (h_t,), outs, _ = forward_chunks(loop, bounds, x, w, b, m, (h0,))
        hs = batch_major([h_c for (h_c,) in outs])

        def grad(dhs, dh_t):
            dhs = zeros_if_none(dhs, hs)
            dh_t = zeros_if_none(dh_t, h_t)

            def step(reads, carry):
                s = _BackwardInput(*reads)
                (dh,) = carry
                dh = dh + s.dh_out
                if s.mask is not None:
                    zero = tf.zeros_like(dh)
                    dh_keep = tf.where(s.mask, zero, dh)
                    dh = tf.where(s.mask, dh, zero)
                dz = dact(s.h, dh)
                dh_prev = tf.matmul(dz, u, transpose_b=True)
                if rm is not None:
                    dh_prev = dh_prev * rm
                if s.mask is not None:
                    dh_prev = dh_prev + dh_keep
                return (dh_prev,), [dz]

            loop = time_loop(step, [h0], compiled, reverse=True)

            def run_chunk(j, t0, t1, carry, dh_c, deps):
                with after(deps):
                    hs_c = time_major(hs, t0, t1)
                h_before = hs[:, t0 - 1] if j else h0
                carry, (dz,) = loop(list(_BackwardInput(dh_c, hs_c, mask_slice(m, t0, t1))),
                                    carry)
                return carry, dz, prev_weight_grad(prev_states(h_before, hs_c, rm), dz), ()

            carry, dx, (dw, db, du) = backward_chunks(bounds, x, w, dhs, (dh_t,), run_chunk)
            return [dx, dw, db, du, carry[0]]

        return (hs, h_t), grad

    return tf.custom_gradient(f)(x, w, b, u, h0)


@no_autograph
def simple_rnn(inputs, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
               input_dropout_mask=None, recurrent_dropout_mask=None, go_backwards=False,
               activation="tanh", chunks=DEFAULT_CHUNKS, compile_loops=DEFAULT_COMPILE_LOOPS):
    """Fused simple RNN ``h_t = act(x W + h U + b)``.

    Args:
        inputs: ``[B, T, D]``.
        kernel: ``[D, H]``.
        recurrent_kernel: ``[H, H]``.
        bias: ``[H]`` or None.
        h0: initial state ``[B, H]``, or None (zeros).
        mask, input_dropout_mask, recurrent_dropout_mask, go_backwards,
        chunks, compile_loops: as for ``seqlab.layers.fused.lstm``.
        activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"linear"``.

    Returns:
        ``(outputs [B, T, H], h_T [B, H])``.

    Example:

    >>> import tensorflow as tf
    >>> from seqlab.layers import fused
    >>> out, h = fused.simple_rnn(tf.ones([2, 5, 3]), tf.ones([3, 4]), tf.eye(4),
    ...                           activation="linear", chunks=1)
    >>> out[0, :, 0].numpy()
    array([ 3.,  6.,  9., 12., 15.], dtype=float32)
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"simple_rnn activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    check_options("simple_rnn", chunks, compile_loops)
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0 = state(h0, x, units)
    xs, m = prepare(x, mask, input_dropout_mask, go_backwards)
    hs, h_t = _simple_recurrence(
        xs, cast(kernel, dt), input_bias(bias, kernel, dt), cast(recurrent_kernel, dt), h0, m,
        cast(recurrent_dropout_mask, dt), activation, chunks, compile_loops,
    )
    return masked_outputs(hs, m), h_t
