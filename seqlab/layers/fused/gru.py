r"""The fused GRU, both reset-gate placements, forward and backward (BPTT).

Forward, per step (Keras gate order z, r, h; ``rm`` the recurrent dropout
mask, 1 without dropout; ``hd = h_{t-1} * rm``)::

    [a_z, a_r, a_h] = x_t W + b_x
    reset_after=True (Keras/cuDNN):
        [u_z, u_r, u_h] = hd U + b_h
        z_t = sigmoid(a_z + u_z)      r_t = sigmoid(a_r + u_r)
        h~_t = tanh(a_h + r_t * u_h)
    reset_after=False (Cho et al. 2014):
        z_t = sigmoid(a_z + hd U_z)   r_t = sigmoid(a_r + hd U_r)
        h~_t = tanh(a_h + (r_t * hd) U_h)
    h_t = z_t * h_{t-1} + (1 - z_t) * h~_t      (computed as h~ + z (h_{t-1} - h~))

The update ``z * h_{t-1}`` uses the undropped state. Backward, per step in
reverse, given ``dh_t`` (the output's gradient at t plus the carried one);
``da`` is the gradient of the projection ``x_t W + b_x``::

    da_h = dh_t * (1 - z_t) * (1 - h~_t^2)
    da_z = dh_t * (h_{t-1} - h~_t) * z_t (1 - z_t)
    reset_after=True:
        da_r = da_h * u_h * r_t (1 - r_t)
        du   = [da_z, da_r, da_h * r_t]             (gradient of hd U + b_h)
        dh_{t-1} = (du U^T) * rm + dh_t * z_t
        dU = sum_t hd^T du      db_h = sum_t du
    reset_after=False:
        d(r hd) = da_h U_h^T
        da_r = d(r hd) * hd * r_t (1 - r_t)
        dh_{t-1} = (d(r hd) * r_t + [da_z, da_r] U_zr^T) * rm + dh_t * z_t
        dU = [sum_t hd^T [da_z, da_r] | sum_t (r_t * hd)^T da_h]

and in both forms ``dW = sum_t x_t^T da_t``, ``db_x = sum_t da_t``,
``dx_t = da_t W^T``. On a masked step ``h`` is carried unchanged: ``dh``
passes to step t-1 untouched and the step's gradients are 0.

The forward loop keeps ``[z r]``, ``h~`` (and ``u_h`` for reset_after=True)
per step; the backward loop reads ``h_{t-1}`` from the layer's output.
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
    sum_rows,
    time_major,
    zeros_if_none,
)
from seqlab.layers.fused.loops import DEFAULT_COMPILE_LOOPS, no_autograph, num_steps, time_loop


class _Saved(NamedTuple):
    """What the forward loop emits per step."""

    h: tf.Tensor  #: h_t [B, H]
    zr: tf.Tensor  #: [z_t r_t] [B, 2H]
    hh: tf.Tensor  #: h~_t [B, H]
    hrec: tf.Tensor | None = None  #: u_h = (hd U + b_h)_h [B, H], reset_after=True only


class _BackwardInput(NamedTuple):
    """What a backward step reads."""

    dh_out: tf.Tensor  #: dL/dh_t from the outputs [B, H]
    h: tf.Tensor  #: h_t (read only to give ``h_prev`` below)
    zr: tf.Tensor
    hh: tf.Tensor
    hrec: tf.Tensor | None
    mask: tf.Tensor | None
    h_prev: tf.Tensor  #: h_{t-1}, read through ``time_loop(prev=...)``


def _gru_recurrence(x, w, bx, u, bh, h0, m, rm, reset_after, chunks, compiled):
    """GRU over time-major x [T,B,D]; w [D,3H], input bias bx [3H], u [H,3H];
    gates z, r, h (Keras). ``bh`` [3H]: the recurrent bias (reset_after=True)
    or None. Returns hs [B,T,H], h_T."""
    bounds = chunk_bounds(num_steps(x), chunks)
    H = u.shape[0]

    def f(x, w, bx, u, h0, *maybe_bh):
        bh = maybe_bh[0] if maybe_bh else None

        def split_u():
            return tf.split(u, [2 * H, H], axis=1)

        # Blocks of U and their transposes (the matmuls use transpose_b)
        # are formed inside the compiled loops, where XLA hoists them out of
        # the loop as temporaries of one call; made outside, they would be
        # computed at the start of the training step and held to its end.
        if not reset_after and not compiled:
            u_zr, u_h = split_u()

        def step(reads, carry):
            s = StepInput(*reads)
            (h,) = carry
            hd = h * rm if rm is not None else h
            xzr, xh = tf.split(s.xw, [2 * H, H], axis=1)
            if reset_after:
                hz = tf.matmul(hd, u)
                if bh is not None:
                    hz = tf.nn.bias_add(hz, bh)
                hzr, hrec = tf.split(hz, [2 * H, H], axis=1)
                zr = tf.sigmoid(xzr + hzr)
                z, r = tf.split(zr, 2, axis=1)
                hh = tf.tanh(xh + r * hrec)
            else:
                uzr, uh = split_u() if compiled else (u_zr, u_h)
                zr = tf.sigmoid(xzr + tf.matmul(hd, uzr))
                z, r = tf.split(zr, 2, axis=1)
                hh = tf.tanh(xh + tf.matmul(r * hd, uh))
                hrec = None
            h_new = hh + z * (h - hh)
            if s.mask is not None:
                h_new = tf.where(s.mask, h_new, h)
            return (h_new,), [o for o in _Saved(h_new, zr, hh, hrec) if o is not None]

        like = _Saved(h0, tf.concat([h0, h0], 1), h0, h0 if reset_after else None)
        loop = time_loop(step, [o for o in like if o is not None], compiled)
        (h_t,), outs, _ = forward_chunks(loop, bounds, x, w, bx, m, (h0,))
        saved = [_Saved(*o) for o in outs]
        hs = batch_major([s.h for s in saved])

        def grad(dhs, dh_t):
            dhs = zeros_if_none(dhs, hs)
            dh_t = zeros_if_none(dh_t, h_t)

            def step(reads, carry):
                s = _BackwardInput(*reads)
                (dh,) = carry
                dh = dh + s.dh_out
                hp = s.h_prev
                if s.mask is not None:
                    zero = tf.zeros_like(dh)
                    dh_keep = tf.where(s.mask, zero, dh)
                    dh = tf.where(s.mask, dh, zero)
                z, r = tf.split(s.zr, 2, axis=1)
                dhz = dh * z
                dpre_h = tf.raw_ops.TanhGrad(y=s.hh, dy=dh - dhz)
                d_z = dh * (hp - s.hh)
                if reset_after:
                    dzr = tf.raw_ops.SigmoidGrad(y=s.zr, dy=tf.concat([d_z, dpre_h * s.hrec], 1))
                    dhd = tf.matmul(tf.concat([dzr, dpre_h * r], axis=1), u, transpose_b=True)
                else:
                    hd = hp * rm if rm is not None else hp
                    uzr, uh = split_u() if compiled else (u_zr, u_h)
                    d_rh = tf.matmul(dpre_h, uh, transpose_b=True)
                    dzr = tf.raw_ops.SigmoidGrad(y=s.zr, dy=tf.concat([d_z, d_rh * hd], 1))
                    dhd = d_rh * r + tf.matmul(dzr, uzr, transpose_b=True)
                if rm is not None:
                    dhd = dhd * rm
                dh_prev = dhd + dhz
                if s.mask is not None:
                    dh_prev = dh_prev + dh_keep
                # the loop stores the projection's gradient only ([K, B, 3H], in
                # two blocks); what dU needs beyond it is formed after the loop
                return (dh_prev,), [dzr, dpre_h]

            loop = time_loop(step, [tf.concat([h0, h0], 1), h0], compiled, reverse=True,
                             prev=(_BackwardInput._fields.index("h"),))

            def run_chunk(j, t0, t1, carry, dh_c, deps):
                with after(deps):
                    hs_c = time_major(hs, t0, t1)
                h_before = hs[:, t0 - 1] if j else h0
                sv = saved[j]
                seqs = _BackwardInput(dh_c, hs_c, sv.zr, sv.hh, sv.hrec, mask_slice(m, t0, t1),
                                      h_prev=None)
                carry, (dzr, dpre) = loop(list(seqs[:-1]), carry, [h_before])
                with after([dzr]):
                    # (a slice along the last axis is a copy: made any earlier,
                    # the executor would make every chunk's during the forward pass)
                    r = sv.zr[..., H:]
                prev = prev_states(h_before, hs_c, rm)
                if not reset_after:
                    # [h U_zr | (r * h) U_h]
                    du = tf.concat([prev_weight_grad(prev, dzr),
                                    prev_weight_grad(prev, dpre, scale=r)], axis=1)
                    return carry, [dzr, dpre], du, ()
                # h U + b_h = [h U_zr | h U_h] + b_h, the candidate block scaled
                # by r: its gradient is dpre * r
                dhr = dpre * r
                du = tf.concat([prev_weight_grad(prev, dzr), prev_weight_grad(prev, dhr)], 1)
                dbh = tf.concat([sum_rows(dzr), sum_rows(dhr)], axis=0)
                return carry, [dzr, dpre], du, (dbh,) if bh is not None else ()

            carry, dx, sums = backward_chunks(bounds, x, w, dhs, (dh_t,), run_chunk,
                                              n_extra=int(bh is not None))
            return [dx, sums[0], sums[1], sums[2], carry[0]] + sums[3:]

        return (hs, h_t), grad

    args = [x, w, bx, u, h0] + ([bh] if bh is not None else [])
    return tf.custom_gradient(f)(*args)


@no_autograph
def gru(inputs, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
        input_dropout_mask=None, recurrent_dropout_mask=None, go_backwards=False,
        reset_after=True, chunks=DEFAULT_CHUNKS, compile_loops=DEFAULT_COMPILE_LOOPS):
    """Fused GRU (Keras gate order z, r, h; h_t = z*h_{t-1} + (1-z)*h~).

    Args:
        inputs: ``[B, T, D]``.
        kernel: ``[D, 3H]``.
        recurrent_kernel: ``[H, 3H]``.
        bias: ``[2, 3H]`` (row 0 input bias, row 1 recurrent bias) for
            ``reset_after=True``, ``[3H]`` for ``reset_after=False``, or None.
        h0: initial state ``[B, H]``, or None (zeros).
        mask, input_dropout_mask, recurrent_dropout_mask, go_backwards,
        chunks, compile_loops: as for ``seqlab.layers.fused.lstm``.
        reset_after: ``True`` (Keras/cuDNN): h~ = tanh(x W_h + b_xh + r*(h U_h + b_hh));
            ``False`` (Cho et al. 2014): h~ = tanh(x W_h + (r*h) U_h + b).

    Returns:
        ``(outputs [B, T, H], h_T [B, H])``.

    Example:

    >>> import tensorflow as tf
    >>> from seqlab.layers import fused
    >>> out, h = fused.gru(tf.ones([2, 5, 3]), tf.ones([3, 12]) * 0.1, tf.zeros([4, 12]),
    ...                    reset_after=False)
    >>> out.shape, h.shape
    (TensorShape([2, 5, 4]), TensorShape([2, 4]))
    """
    check_options("gru", chunks, compile_loops)
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0 = state(h0, x, units)
    xs, m = prepare(x, mask, input_dropout_mask, go_backwards)
    b = cast(bias, dt)
    bx = bh = None
    if b is not None:
        if reset_after:
            if b.shape.rank != 2:
                raise ValueError(f"gru(reset_after=True) needs bias [2, 3H], got {b.shape}")
            bx, bh = b[0], b[1]
        else:
            if b.shape.rank != 1:
                raise ValueError(f"gru(reset_after=False) needs bias [3H], got {b.shape}")
            bx = b
    hs, h_t = _gru_recurrence(
        xs, cast(kernel, dt), input_bias(bx, kernel, dt), cast(recurrent_kernel, dt), bh, h0, m,
        cast(recurrent_dropout_mask, dt), reset_after, chunks, compile_loops,
    )
    return masked_outputs(hs, m), h_t
