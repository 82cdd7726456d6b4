r"""The fused LSTM and peephole LSTM, forward and backward (BPTT).

Forward, per step (Keras gate order i, f, c (= g), o; ``rm`` the recurrent
dropout mask, 1 without dropout; ``p_i = p_f = p_o = 0`` without peepholes)::

    z_t  = x_t W + b + (h_{t-1} * rm) U                  blocks z_i, z_f, z_g, z_o
    i_t  = sigmoid(z_i + p_i * c_{t-1})
    f_t  = sigmoid(z_f + p_f * c_{t-1})
    g_t  = tanh(z_g)
    c_t  = f_t * c_{t-1} + i_t * g_t
    o_t  = sigmoid(z_o + p_o * c_t)
    h_t  = o_t * tanh(c_t)

Backward, per step in reverse, given ``dh_t`` (the output's gradient at t
plus the carried one) and the carried ``dc_t``; ``dz`` is the gradient of
the pre-activations (with the peephole terms)::

    dz_o     = dh_t * tanh(c_t) * o_t (1 - o_t)
    dc_t'    = dc_t + dh_t * o_t (1 - tanh^2 c_t) + p_o * dz_o
    dz_i     = dc_t' * g_t * i_t (1 - i_t)
    dz_f     = dc_t' * c_{t-1} * f_t (1 - f_t)
    dz_g     = dc_t' * i_t (1 - g_t^2)
    dc_{t-1} = dc_t' * f_t + p_i * dz_i + p_f * dz_f
    dh_{t-1} = (dz_t U^T) * rm

and over all steps (sums over t and the batch)::

    dW = sum_t x_t^T dz_t      db = sum_t dz_t      dx_t = dz_t W^T
    dU = sum_t (h_{t-1} * rm)^T dz_t
    dp_i = sum dz_i * c_{t-1}  dp_f = sum dz_f * c_{t-1}  dp_o = sum dz_o * c_t

On a masked step ``h`` and ``c`` are carried unchanged: ``dh`` and ``dc``
pass to step t-1 untouched and the step's ``dz`` is 0.

The forward loop keeps ``[i f]``, ``g``, ``o`` per step (three activation
blocks: one sigmoid, one tanh, one sigmoid); the cell states ``c_t`` are
recomputed per chunk in the backward pass from them (``c_step``) instead of
being kept for all T steps.
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


class _Saved(NamedTuple):
    """What the forward loop emits per step."""

    h: tf.Tensor  #: h_t [B, H]
    sif: tf.Tensor  #: [i_t f_t] [B, 2H]
    g: tf.Tensor  #: g_t [B, H]
    o: tf.Tensor  #: o_t [B, H]


class _CellStepInput(NamedTuple):
    """What the recomputation of c_t reads per step."""

    sif: tf.Tensor
    g: tf.Tensor
    mask: tf.Tensor | None


class _BackwardInput(NamedTuple):
    """What a backward step reads."""

    dh_out: tf.Tensor  #: dL/dh_t from the outputs [B, H]
    c: tf.Tensor  #: c_t
    sif: tf.Tensor
    g: tf.Tensor
    o: tf.Tensor
    mask: tf.Tensor | None
    c_prev: tf.Tensor  #: c_{t-1}, read through ``time_loop(prev=...)``


def _lstm_recurrence(x, w, b, u, h0, c0, m, rm, peephole, chunks, compiled):
    """LSTM over time-major x [T,B,D]; w [D,4H], b [4H], u [H,4H].

    ``m`` [T,B,1] bool or None; ``rm`` [B,H] or None; ``peephole`` None or
    (p_if [2H], p_o [H]). Returns hs [B,T,H] (batch-major), h_T, c_T.
    """
    bounds = chunk_bounds(num_steps(x), chunks)
    H = u.shape[0]

    def f(x, w, b, u, h0, c0, *extra):
        p_if, p_o = extra if peephole is not None else (None, None)

        def step(reads, carry):
            s = StepInput(*reads)
            h, c = carry
            hd = h * rm if rm is not None else h
            z = s.xw + tf.matmul(hd, u)
            zif, zg, zo = tf.split(z, [2 * H, H, H], axis=1)
            if p_if is not None:
                zif = zif + tf.concat([c, c], axis=1) * p_if
            sif = tf.sigmoid(zif)
            g = tf.tanh(zg)
            i, f = tf.split(sif, 2, axis=1)
            c_new = f * c + i * g
            o = tf.sigmoid(zo + c_new * p_o if p_o is not None else zo)
            h_new = o * tf.tanh(c_new)
            if s.mask is not None:
                h_new = tf.where(s.mask, h_new, h)
                c_new = tf.where(s.mask, c_new, c)
            return (h_new, c_new), list(_Saved(h_new, sif, g, o))

        def c_step(reads, carry):
            # c_t again from the saved gates: the backward pass recomputes a
            # chunk's cell states instead of keeping all T of them
            s = _CellStepInput(*reads)
            (c,) = carry
            i, f = tf.split(s.sif, 2, axis=1)
            c_new = f * c + i * s.g
            if s.mask is not None:
                c_new = tf.where(s.mask, c_new, c)
            return (c_new,), [c_new]

        loop = time_loop(step, list(_Saved(h0, tf.concat([h0, h0], 1), h0, h0)), compiled)
        (h_t, c_t), outs, carries = forward_chunks(loop, bounds, x, w, b, m, (h0, c0))
        saved = [_Saved(*o) for o in outs]
        hs = batch_major([s.h for s in saved])
        c_ends = [c for _, c in carries]

        def grad(dhs, dh_t, dc_t):
            dhs = zeros_if_none(dhs, hs)
            dh_t = zeros_if_none(dh_t, h_t)
            dc_t = zeros_if_none(dc_t, c_t)

            def step(reads, carry):
                s = _BackwardInput(*reads)
                dh, dc = carry[:2]
                dh = dh + s.dh_out
                c, cp = s.c, s.c_prev
                if s.mask is not None:
                    zero = tf.zeros_like(dh)
                    dh_keep, dc_keep = tf.where(s.mask, zero, dh), tf.where(s.mask, zero, dc)
                    dh, dc = tf.where(s.mask, dh, zero), tf.where(s.mask, dc, zero)
                tc = tf.tanh(c)
                i, f = tf.split(s.sif, 2, axis=1)
                dzo = tf.raw_ops.SigmoidGrad(y=s.o, dy=dh * tc)
                dct = dc + tf.raw_ops.TanhGrad(y=tc, dy=dh * s.o)
                if peephole is not None:
                    dct = dct + dzo * p_o
                dzif = tf.raw_ops.SigmoidGrad(y=s.sif, dy=tf.concat([dct * s.g, dct * cp], 1))
                dzg = tf.raw_ops.TanhGrad(y=s.g, dy=dct * i)
                dz = tf.concat([dzif, dzg, dzo], axis=1)
                dc_prev = dct * f
                if peephole is not None:
                    dpi, dpf = tf.split(dzif * p_if, 2, axis=1)
                    dc_prev = dc_prev + dpi + dpf
                dh_prev = tf.matmul(dz, u, transpose_b=True)
                if rm is not None:
                    dh_prev = dh_prev * rm
                if s.mask is not None:
                    dh_prev = dh_prev + dh_keep
                    dc_prev = dc_prev + dc_keep
                new_carry = (dh_prev, dc_prev)
                if peephole is not None:
                    # the peephole gradients sum dz_{i,f} * c_{t-1} and dz_o * c_t
                    # over time in the carry: no [T, ...] temporaries after the loop
                    acc_if, acc_o = carry[2:]
                    new_carry += (acc_if + dzif * tf.concat([cp, cp], 1), acc_o + dzo * c)
                return new_carry, [dz]

            loop = time_loop(step, [tf.concat([h0] * 4, 1)], compiled, reverse=True,
                             prev=(_BackwardInput._fields.index("c"),))
            c_loop = time_loop(c_step, [c0], compiled)

            def run_chunk(j, t0, t1, carry, dh_c, deps):
                ms = mask_slice(m, t0, t1)
                c_before, h_before = (c_ends[j - 1], hs[:, t0 - 1]) if j else (c0, h0)
                with after(deps):
                    _, (cs_c,) = c_loop(list(_CellStepInput(saved[j].sif, saved[j].g, ms)),
                                        (c_before,))
                seqs = _BackwardInput(dh_c, cs_c, saved[j].sif, saved[j].g, saved[j].o, ms,
                                      c_prev=None)
                carry, (dz,) = loop(list(seqs[:-1]), carry, [c_before])
                with after([dz]):
                    hs_c = time_major(hs, t0, t1)
                return carry, dz, prev_weight_grad(prev_states(h_before, hs_c, rm), dz), ()

            carry = (dh_t, dc_t)
            if peephole is not None:
                carry += (tf.zeros_like(tf.concat([c0, c0], 1)), tf.zeros_like(c0))
            carry, dx, (dw, db, du) = backward_chunks(bounds, x, w, dhs, carry, run_chunk)
            grads = [dx, dw, db, du, carry[0], carry[1]]
            if peephole is not None:
                grads += [tf.reduce_sum(acc, 0) for acc in carry[2:]]
            return grads

        return (hs, h_t, c_t), grad

    args = [x, w, b, u, h0, c0] + (list(peephole) if peephole is not None else [])
    return tf.custom_gradient(f)(*args)


@no_autograph
def lstm(inputs, kernel, recurrent_kernel, bias=None, h0=None, c0=None, mask=None,
         input_dropout_mask=None, recurrent_dropout_mask=None, go_backwards=False,
         chunks=DEFAULT_CHUNKS, compile_loops=DEFAULT_COMPILE_LOOPS):
    """Fused LSTM (Keras gate order i, f, c, o) with a hand-written gradient.

    Args:
        inputs: ``[B, T, D]``.
        kernel: ``[D, 4H]``.
        recurrent_kernel: ``[H, 4H]``.
        bias: ``[4H]`` or None (no bias).
        h0: initial ``h`` ``[B, H]``, or None (zeros).
        c0: initial ``c`` ``[B, H]``, or None (zeros).
        mask: ``[B, T]`` bool or None; a masked step carries ``h`` and ``c``
            unchanged, its output is the previous output (0 before the
            first valid step, as in Keras).
        input_dropout_mask: ``[B, D]`` multiplying ``x`` at every step, or None.
        recurrent_dropout_mask: ``[B, H]`` multiplying ``h_{t-1}`` before
            ``h U``, or None. Dropout masks receive no gradient.
        go_backwards: process the sequence reversed; outputs come in
            processing order.
        chunks: run time in about this many chunks (see
            ``seqlab.layers.fused.chunks``); 1: no chunks.
        compile_loops: inside a graph, run the time loops as XLA-compiled
            functions.

    Returns:
        ``(outputs [B, T, H], h_T [B, H], c_T [B, H])``.

    Example:

    >>> import tensorflow as tf
    >>> from seqlab.layers import fused
    >>> x = tf.ones([2, 5, 3])
    >>> out, h, c = fused.lstm(x, tf.ones([3, 16]) * 0.1, tf.zeros([4, 16]))
    >>> out.shape, h.shape, c.shape
    (TensorShape([2, 5, 4]), TensorShape([2, 4]), TensorShape([2, 4]))
    """
    check_options("lstm", chunks, compile_loops)
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0, c0 = state(h0, x, units), state(c0, x, units)
    xs, m = prepare(x, mask, input_dropout_mask, go_backwards)
    hs, h_t, c_t = _lstm_recurrence(
        xs, cast(kernel, dt), input_bias(bias, kernel, dt), cast(recurrent_kernel, dt), h0, c0,
        m, cast(recurrent_dropout_mask, dt), None, chunks, compile_loops,
    )
    return masked_outputs(hs, m), h_t, c_t


@no_autograph
def peephole_lstm(inputs, kernel, recurrent_kernel, bias, peephole_i, peephole_f,
                  peephole_o, h0=None, c0=None, mask=None, input_dropout_mask=None,
                  recurrent_dropout_mask=None, go_backwards=False,
                  chunks=DEFAULT_CHUNKS, compile_loops=DEFAULT_COMPILE_LOOPS):
    """Fused peephole LSTM: i, f see c_{t-1}; o sees c_t (diagonal weights [H]).

    Args:
        inputs, kernel, recurrent_kernel, bias, h0, c0, mask,
        input_dropout_mask, recurrent_dropout_mask, go_backwards, chunks,
        compile_loops: as for ``lstm`` (``bias`` may be None).
        peephole_i: ``[H]``, the input gate's weight on ``c_{t-1}``.
        peephole_f: ``[H]``, the forget gate's weight on ``c_{t-1}``.
        peephole_o: ``[H]``, the output gate's weight on ``c_t``.

    Returns:
        ``(outputs [B, T, H], h_T [B, H], c_T [B, H])``.

    Example:

    >>> import tensorflow as tf
    >>> from seqlab.layers import fused
    >>> p = tf.fill([4], 0.5)
    >>> out, h, c = fused.peephole_lstm(tf.ones([2, 5, 3]), tf.ones([3, 16]) * 0.1,
    ...                                 tf.zeros([4, 16]), None, p, p, p)
    >>> out.shape
    TensorShape([2, 5, 4])
    """
    check_options("peephole_lstm", chunks, compile_loops)
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0, c0 = state(h0, x, units), state(c0, x, units)
    xs, m = prepare(x, mask, input_dropout_mask, go_backwards)
    p_if = tf.concat([cast(peephole_i, dt), cast(peephole_f, dt)], axis=0)
    hs, h_t, c_t = _lstm_recurrence(
        xs, cast(kernel, dt), input_bias(bias, kernel, dt), cast(recurrent_kernel, dt), h0, c0,
        m, cast(recurrent_dropout_mask, dt), (p_if, cast(peephole_o, dt)), chunks, compile_loops,
    )
    return masked_outputs(hs, m), h_t, c_t
