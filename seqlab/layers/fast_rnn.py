"""Fused recurrent kernels with a hand-written backward pass (BPTT).

LSTM, GRU (both reset-gate placements), simple RNN and peephole LSTM run as
one time loop forward and one time loop backward, with the gradient written
out instead of obtained by differentiating the loop:

* the input projection ``x W + b`` for all time steps is one matmul before the
  forward loop (its gradient, one matmul after the backward loop, is left to
  ordinary autodiff since it lies outside the loop);
* the forward loop does one ``h U`` matmul and one block of elementwise gate
  math per step, and keeps what the backward loop needs (gate activations,
  the cell state ``c``);
* the backward loop carries only ``dL/dh`` (and ``dL/dc``) and does one
  ``dz U^T`` matmul per step, storing ``dz``;
* ``dL/dU`` (and recurrent bias / peephole gradients) is one large matmul
  (reduction) over all ``T*B`` rows after the backward loop;
* inside a graph, each of the two loops is an XLA-compiled function
  (``COMPILE_LOOPS``): XLA fuses a step's gate math into a few loops and
  removes the executor's per-op dispatch, which at B 64 x H 512 costs as much
  as the step's matmul, while the large matmuls outside the loops keep TF's
  oneDNN kernels. A training step can therefore stay in graph mode and still
  get compiled recurrences.

**This module uses TensorFlow ops directly** (``tf.while_loop``,
``tf.TensorArray``, ``tf.custom_gradient``, ``tf.raw_ops.TanhGrad``), unlike
the rest of ``seqlab.layers`` which sticks to ``keras.ops``: the point of the
module is TensorFlow training speed, and Keras 3 has no fused CPU recurrence.
It therefore requires the TensorFlow backend; ``supports`` says so otherwise.
It works in eager mode, in ``tf.function`` graphs and under
``jit_compile=True`` (XLA), in float32 and float64 (float16/bfloat16 inputs
work too, with weights cast to the input dtype).

Weight layout is exactly the Keras cells': ``kernel`` [D, G*H],
``recurrent_kernel`` [H, G*H], ``bias`` [G*H]; gates i, f, c, o for LSTMs,
z, r, h for GRU; GRU with ``reset_after=True`` has ``bias`` [2, 3H] (row 0
input bias, row 1 recurrent bias). The GRU update is
``h_t = z*h_{t-1} + (1-z)*h~``. Peephole LSTM adds three diagonal weights
[H]: i and f see ``c_{t-1}``, o sees ``c_t``.

Semantics shared by all kinds (those of ``keras.layers.RNN``):

* ``mask`` [B, T] (bool): on a masked step the state is carried through
  unchanged and the output equals the previous output, i.e. the carried
  ``h`` once a step has been valid and 0 before the first valid step (Keras
  starts the previous output at zero, also when ``h0`` is not zero);
* ``input_dropout_mask`` [B, D] multiplies ``x`` at every step before the
  projection; ``recurrent_dropout_mask`` [B, H] multiplies ``h_{t-1}`` before
  ``h U`` (the same mask for every gate). The GRU update
  ``z*h_{t-1}`` uses the undropped state. Dropout masks receive no gradient;
* ``go_backwards``: the sequence is processed reversed and the outputs are
  returned in processing order.

Public functions: ``lstm``, ``gru``, ``simple_rnn``, ``peephole_lstm`` (no
cell object needed), and ``supports(cell)`` / ``run(cell, ...)`` for the
recurrent layer, which dispatch on seqlab cells by class name.
"""

from __future__ import annotations

import contextlib
import contextvars

import keras
import tensorflow as tf

__all__ = [
    "lstm", "gru", "simple_rnn", "peephole_lstm", "supports", "run", "LOOP", "LAYOUT", "COMPILE_LOOPS",
    "compiled_loops",
]

# Which loop construct the kernels use: "while" (tf.while_loop over
# TensorArrays, the default) or "scan" (tf.scan). Both were measured for the
# LSTM layer (B 64, T 128, H 512, forward + backward, graph and XLA): equal
# within the noise of the shared 2-core machine (1.45 vs 1.48 CPU-s graph,
# 1.39 vs 1.51 CPU-s XLA), so the while loop stays (it does not stack the
# carried state at every step as tf.scan does). Module-level so the benchmark
# (--loop) can compare them.
LOOP = "while"

# The layout of the LSTM loops: "batch" (states [B, H], per-step matmuls
# ``h U`` [B,H]x[H,4H] and ``dz U^T``) or "feature" (feature-major: states
# [H, B], ``U^T h`` [4H,H]x[H,B] and ``U dz``, with one transpose of the
# sequence in and out). Alone, oneDNN runs the feature-major per-step matmul
# faster on this CPU (B=64, H=512: 72-85 % vs 58-62 % of the 2048^2 peak),
# but the whole training step was 8 % slower (the transposes of the [T,B,4H]
# projections and gradients cost more than the matmuls gain), so "batch"
# stays the default. See experiments/throughput/README.md (rows *_fm).
LAYOUT = "batch"

# Whether each time loop (forward and backward) runs as its own XLA-compiled
# function when the kernels are traced into a graph (``tf.function``). XLA
# fuses a step's gate math into a few loops and drops the per-op dispatch of
# the TF executor; the large matmuls outside the loops (input projection,
# weight gradients) stay with TF's oneDNN kernels. Measured on the benchmark
# LSTM (B 64, T 128, H 512, idle 2-core machine): the forward loop 1.35x and
# forward + backward ~1.2-1.45x faster than plain graph loops, the whole
# training step 1.24x (experiments/throughput/README.md, session 3, runs 7
# and 9; benchmark rows *_plain). Eagerly executed kernels keep
# plain loops (an XLA function per eager call would recompile every time);
# under an outer ``jit_compile=True`` the loop functions are simply inlined.
COMPILE_LOOPS = True

# A per-call override of COMPILE_LOOPS (``compiled_loops``), read when the
# kernels are traced. A context variable, so that concurrent tracing in
# other threads keeps its own setting.
_COMPILE_OVERRIDE = contextvars.ContextVar("fast_rnn_compile_loops", default=None)


@contextlib.contextmanager
def compiled_loops(enabled):
    """Within the block, kernels traced into a graph use XLA-compiled loops
    (``True``) or plain loops (``False``); ``None`` keeps ``COMPILE_LOOPS``.

    Compiled loops are ~1.2x faster on CPU and need about the same peak
    memory as plain ones (B 64 x T 128 x H 512 LSTM training step: 199 vs
    191 MiB; experiments/throughput/README.md, run 12). Plain loops avoid
    XLA compilation, which happens again for every new batch or sequence
    length.
    """
    if enabled is not None and not isinstance(enabled, bool):
        raise ValueError(f"compiled_loops: enabled must be True, False or None, got {enabled!r}")
    token = _COMPILE_OVERRIDE.set(enabled)
    try:
        yield
    finally:
        _COMPILE_OVERRIDE.reset(token)


def loops_compiled():
    """Whether kernels traced now get XLA-compiled loops."""
    override = _COMPILE_OVERRIDE.get()
    return COMPILE_LOOPS if override is None else override


# Plain Python control flow only: keep AutoGraph from rewriting the kernels
# when they are called inside a tf.function.
_no_autograph = tf.autograph.experimental.do_not_convert

# --------------------------------------------------------------------------
# loop helper
# --------------------------------------------------------------------------


def _num_steps(x):
    """Static T if known, else the dynamic one."""
    t = x.shape[0]
    return t if t is not None else tf.shape(x)[0]


def _loop(step, n, seqs, carry, out_like, reverse=False, compiled=None, prev=()):
    """Run ``step`` over ``n`` time steps.

    ``seqs``: tensors [T, ...] read at each step; ``carry``: tuple of state
    tensors; ``out_like``: one example tensor (dtype, shape) per per-step
    output. ``step(t_inputs, carry) -> (new_carry, outputs)``. Returns the
    final carry and the outputs stacked to [T, ...] (indexed by time, also
    when ``reverse``).

    ``prev``: pairs ``(k, initial)``; for each, ``t_inputs`` gets one more
    element after the reads of ``seqs``: ``seqs[k][t - 1]``, or ``initial``
    at ``t == 0``. The backward loops read ``c_{t-1}`` (LSTM) and ``h_{t-1}``
    (GRU) this way from the stacked states instead of from a shifted copy,
    which would be one more [T, B, H] tensor alive during the loop, where a
    training step's memory peaks.

    With ``compiled`` (default: ``loops_compiled()``) and inside a graph, the
    loop is one XLA-compiled function; ``step``'s closure (weights, masks) is
    captured as its inputs. The recurrences read the setting once when their
    forward pass is traced and pass it to both loops: the backward loop is
    traced later, by ``tape.gradient``, outside any ``compiled_loops`` block.
    """
    carry = tuple(carry)
    keys = [k for k, _ in prev]
    if compiled is None:
        compiled = loops_compiled()
    if compiled and not tf.executing_eagerly():

        @tf.function(jit_compile=True, autograph=False)
        def xla_loop(seqs, carry, initials):
            # the length is re-read inside: XLA needs it as a compile-time
            # constant, which a captured dynamic `n` of the outer graph is not
            return _plain_loop(step, _num_steps(seqs[0]), seqs, carry, out_like, reverse,
                               list(zip(keys, initials)))

        new_carry, outs = xla_loop(list(seqs), carry, [x0 for _, x0 in prev])
        return tuple(new_carry), list(outs)
    return _plain_loop(step, n, seqs, carry, out_like, reverse, prev)


def _plain_loop(step, n, seqs, carry, out_like, reverse, prev=()):
    carry = tuple(carry)
    if LOOP == "scan":
        # tf.scan hands over slices, not an index: shifted copies it is
        seqs = list(seqs) + [_shift(x0, seqs[k]) for k, x0 in prev]
        init = (carry, tuple(tf.zeros_like(o) for o in out_like))

        def fn(acc, xs):
            new_carry, outs = step(list(xs), acc[0])
            return tuple(new_carry), tuple(outs)

        new_carry, outs = tf.scan(fn, tuple(seqs), initializer=init, reverse=reverse)
        last = 0 if reverse else -1
        return tuple(c[last] for c in new_carry), list(outs)

    read_twice = {k for k, _ in prev}
    in_tas = [
        tf.TensorArray(s.dtype, size=n, element_shape=s.shape[1:],
                       clear_after_read=k not in read_twice).unstack(s)
        for k, s in enumerate(seqs)
    ]
    out_tas = [
        tf.TensorArray(o.dtype, size=n, element_shape=o.shape) for o in out_like
    ]

    def body(i, carry, tas):
        t = n - 1 - i if reverse else i
        reads = [ta.read(t) for ta in in_tas]
        for k, x0 in prev:
            reads.append(tf.where(t > 0, in_tas[k].read(tf.maximum(t - 1, 0)), x0))
        new_carry, outs = step(reads, carry)
        tas = tuple(ta.write(t, o) for ta, o in zip(tas, outs))
        return i + 1, tuple(new_carry), tas

    _, carry, out_tas = tf.while_loop(
        lambda i, *_: i < n,
        body,
        (tf.constant(0, tf.int32), carry, tuple(out_tas)),
        maximum_iterations=n,
    )
    return carry, [ta.stack() for ta in out_tas]


def _rows(x):
    """[T, B, K] -> [T*B, K]."""
    return tf.reshape(x, [-1, x.shape[-1]])


def _shift(x0, xs):
    """[x0, xs[0], ..., xs[T-2]]: the previous-step values, stacked."""
    return tf.concat([x0[None], xs[:-1]], axis=0)


def _zeros_if_none(g, like):
    return tf.zeros_like(like) if g is None else g


def _sum_rows(x):
    return tf.reduce_sum(_rows(x), axis=0)


# --------------------------------------------------------------------------
# recurrences (time-major, projection already done): custom gradients
# --------------------------------------------------------------------------


def _lstm_recurrence(xw, u, h0, c0, m, rm, peephole=None):
    """LSTM loop. xw [T,B,4H] = x W + b.

    Gate order: Keras' i, f, c, o, with and without peepholes. The step
    keeps three activation blocks ([i f], g, o: one sigmoid, one tanh, one
    sigmoid). An earlier version permuted the weights to i, f, o, c so that
    one sigmoid covered [i f o]; with XLA-compiled loops the three-block form
    was 1.04-1.08x faster for forward + backward (and needs no permutation of
    the weights and their gradients), so the plain LSTM and the peephole LSTM
    now share one step and differ only by the peephole terms.

    ``m`` [T,B,1] bool or None; ``rm`` [B,H] or None; ``peephole`` None or
    (p_if [2H], p_o [H]). Returns hs [T,B,H], h_T, c_T.

    With ``LAYOUT == "feature"`` the loops run feature-major (states [H,B],
    gates [4H,B], per-step matmuls ``U^T h`` and ``U dz``): see ``LAYOUT``.
    """
    if LAYOUT != "feature":
        return _lstm_core(xw, u, h0, c0, m, rm, peephole, fm=False)
    hs, h_t, c_t = _lstm_core(
        _swap(xw), u, tf.transpose(h0), tf.transpose(c0),
        None if m is None else _swap(m), None if rm is None else tf.transpose(rm),
        None if peephole is None else tuple(p[:, None] for p in peephole), fm=True,
    )
    return _swap(hs), tf.transpose(h_t), tf.transpose(c_t)


def _swap(x):
    """[T, B, K] <-> [T, K, B]."""
    return tf.transpose(x, [0, 2, 1])


def _weight_grad(a, b, fm):
    """sum_t a_t^T b_t over all time steps as one matmul: a [T,B,K] and
    b [T,B,G] (or [T,K,B] and [T,G,B] feature-major) -> [K, G]."""
    if not fm:
        return tf.matmul(_rows(a), _rows(b), transpose_a=True)
    a2 = tf.reshape(tf.transpose(a, [1, 0, 2]), [a.shape[1], -1])  # [K, T*B]
    b2 = tf.reshape(tf.transpose(b, [1, 0, 2]), [b.shape[1], -1])  # [G, T*B]
    return tf.matmul(a2, b2, transpose_b=True)


def _prev_states(h0, hs, rm):
    """The states the recurrent matmul saw, h_{t-1} * rm, without stacking
    the shifted states: (steps 1..T-1 as ``hs[:-1]``, a view of ``hs`` when
    ``rm`` is None, and step 0's ``h0``)."""
    if rm is None:
        return hs[:-1], h0
    return hs[:-1] * rm, h0 * rm


def _prev_weight_grad(prev, dzs, fm, scale=None):
    """sum_t (h_{t-1} * rm * scale_t)^T dz_t for ``prev = _prev_states(...)``:
    one large matmul over steps 1..T-1 plus the step-0 term. ``scale``
    [T, ...] is optional."""
    a, a0 = prev
    if scale is not None:
        a, a0 = a * scale[1:], a0 * scale[0]
    first = tf.matmul(a0, dzs[0], transpose_b=True) if fm else tf.matmul(a0, dzs[0], transpose_a=True)
    return _weight_grad(a, dzs[1:], fm) + first


def _lstm_core(xw, u, h0, c0, m, rm, peephole, fm):
    """``_lstm_recurrence`` in either layout: batch-major steps (``fm`` False:
    xw [T,B,4H], h [B,H]) or feature-major (xw [T,4H,B], h [H,B], m [T,1,B],
    rm [H,B], peepholes [.., 1]). ``u`` is [H,4H] in both."""
    n = _num_steps(xw)
    compiled = loops_compiled()
    H = u.shape[0]
    A = 0 if fm else 1  # the feature axis of a per-step tensor

    def fwd(xw, u, h0, c0, *extra):
        p_if, p_o = extra if peephole is not None else (None, None)
        seqs = [xw] + ([m] if m is not None else [])
        ut = tf.transpose(u) if fm else None

        def step(el, carry):
            h, c = carry
            hd = h * rm if rm is not None else h
            z = el[0] + (tf.matmul(ut, hd) if fm else tf.matmul(hd, u))
            zif, zg, zo = tf.split(z, [2 * H, H, H], axis=A)
            if p_if is not None:
                zif = zif + tf.concat([c, c], axis=A) * p_if
            sif = tf.sigmoid(zif)
            g = tf.tanh(zg)
            i, f = tf.split(sif, 2, axis=A)
            c_new = f * c + i * g
            o = tf.sigmoid(zo + c_new * p_o if p_o is not None else zo)
            h_new = o * tf.tanh(c_new)
            acts = [sif, g, o]
            if m is not None:
                h_new = tf.where(el[1], h_new, h)
                c_new = tf.where(el[1], c_new, c)
            return (h_new, c_new), [h_new, c_new] + acts

        stacked = [tf.concat([h0, h0], A), h0, h0]
        (h_t, c_t), outs = _loop(step, n, seqs, (h0, c0), [h0, c0] + stacked, compiled=compiled)
        return outs, h_t, c_t

    def f(xw, u, h0, c0, *extra):
        outs, h_t, c_t = fwd(xw, u, h0, c0, *extra)
        hs, cs, acts = outs[0], outs[1], outs[2:]

        def grad(dhs, dh_t, dc_t):
            dhs = _zeros_if_none(dhs, hs)
            dh_t = _zeros_if_none(dh_t, h_t)
            dc_t = _zeros_if_none(dc_t, c_t)
            ut = None if fm else tf.transpose(u)
            if peephole is not None:
                p_if, p_o = extra
            seqs = [dhs, cs] + acts + ([m] if m is not None else [])

            def step(el, carry):
                dh, dc = carry[:2]
                dh = dh + el[0]
                c, cp = el[1], el[-1]  # c_t, and c_{t-1} read through `prev`
                if m is not None:
                    mk = el[5]
                    zero = tf.zeros_like(dh)
                    dh_keep, dc_keep = tf.where(mk, zero, dh), tf.where(mk, zero, dc)
                    dh, dc = tf.where(mk, dh, zero), tf.where(mk, dc, zero)
                tc = tf.tanh(c)
                sif, g, o = el[2], el[3], el[4]
                i, f = tf.split(sif, 2, axis=A)
                dzo = tf.raw_ops.SigmoidGrad(y=o, dy=dh * tc)
                dct = dc + tf.raw_ops.TanhGrad(y=tc, dy=dh * o)
                if peephole is not None:
                    dct = dct + dzo * p_o
                dzif = tf.raw_ops.SigmoidGrad(y=sif, dy=tf.concat([dct * g, dct * cp], A))
                dzg = tf.raw_ops.TanhGrad(y=g, dy=dct * i)
                dz = tf.concat([dzif, dzg, dzo], axis=A)
                dc_prev = dct * f
                if peephole is not None:
                    dpi, dpf = tf.split(dzif * p_if, 2, axis=A)
                    dc_prev = dc_prev + dpi + dpf
                dh_prev = tf.matmul(u, dz) if fm else tf.matmul(dz, ut)
                if rm is not None:
                    dh_prev = dh_prev * rm
                if m is not None:
                    dh_prev = dh_prev + dh_keep
                    dc_prev = dc_prev + dc_keep
                new_carry = (dh_prev, dc_prev)
                if peephole is not None:
                    # the peephole gradients sum dz_{i,f} * c_{t-1} and dz_o * c_t
                    # over time in the carry: no [T, ...] temporaries after the loop
                    acc_if, acc_o = carry[2:]
                    new_carry += (acc_if + dzif * tf.concat([cp, cp], A), acc_o + dzo * c)
                return new_carry, [dz]

            carry = (dh_t, dc_t)
            if peephole is not None:
                carry += (tf.zeros_like(tf.concat([c0, c0], A)), tf.zeros_like(c0))
            carry, (dzs,) = _loop(
                step, n, seqs, carry, [tf.concat([h0] * 4, A)], reverse=True,
                compiled=compiled, prev=[(1, c0)],
            )
            grads = [dzs, _prev_weight_grad(_prev_states(h0, hs, rm), dzs, fm), carry[0], carry[1]]
            if peephole is not None:
                batch_axis = 1 - A
                dp_if, dp_o = (tf.reduce_sum(acc, batch_axis) for acc in carry[2:])
                grads += [tf.reshape(dp_if, p_if.shape), tf.reshape(dp_o, p_o.shape)]
            return grads

        return (hs, h_t, c_t), grad

    args = [xw, u, h0, c0] + (list(peephole) if peephole is not None else [])
    return tf.custom_gradient(f)(*args)


def _gru_recurrence(xw, u, bh, h0, m, rm, reset_after):
    """GRU loop. xw [T,B,3H] = x W + b_x, gates z, r, h (Keras).

    ``bh`` [3H] recurrent bias (reset_after=True) or None.
    """
    n = _num_steps(xw)
    compiled = loops_compiled()
    H = u.shape[0]

    def f(xw, u, h0, *maybe_bh):
        bh = maybe_bh[0] if maybe_bh else None
        seqs = [xw] + ([m] if m is not None else [])
        if not reset_after:
            u_zr, u_h = tf.split(u, [2 * H, H], axis=1)

        def step(el, carry):
            (h,) = carry
            hd = h * rm if rm is not None else h
            xzr, xh = tf.split(el[0], [2 * H, H], axis=1)
            if reset_after:
                hz = tf.matmul(hd, u)
                if bh is not None:
                    hz = tf.nn.bias_add(hz, bh)
                hzr, hrec = tf.split(hz, [2 * H, H], axis=1)
                zr = tf.sigmoid(xzr + hzr)
                z, r = tf.split(zr, 2, axis=1)
                hh = tf.tanh(xh + r * hrec)
                saved = [zr, hh, hrec]
            else:
                zr = tf.sigmoid(xzr + tf.matmul(hd, u_zr))
                z, r = tf.split(zr, 2, axis=1)
                hh = tf.tanh(xh + tf.matmul(r * hd, u_h))
                saved = [zr, hh]
            h_new = hh + z * (h - hh)
            if m is not None:
                h_new = tf.where(el[1], h_new, h)
            return (h_new,), [h_new] + saved

        like = [h0, tf.concat([h0, h0], 1), h0] + ([h0] if reset_after else [])
        (h_t,), outs = _loop(step, n, seqs, (h0,), like, compiled=compiled)
        hs, saved = outs[0], outs[1:]

        def grad(dhs, dh_t):
            dhs = _zeros_if_none(dhs, hs)
            dh_t = _zeros_if_none(dh_t, h_t)
            seqs = [dhs, hs] + saved + ([m] if m is not None else [])
            if reset_after:
                ut = tf.transpose(u)
            else:
                u_zr_t, u_h_t = tf.transpose(u_zr), tf.transpose(u_h)

            def step(el, carry):
                (dh,) = carry
                dh = dh + el[0]
                hp, zr, hh = el[-1], el[2], el[3]  # h_{t-1} read through `prev`
                if m is not None:
                    mk = el[2 + len(saved)]
                    zero = tf.zeros_like(dh)
                    dh_keep = tf.where(mk, zero, dh)
                    dh = tf.where(mk, dh, zero)
                z, r = tf.split(zr, 2, axis=1)
                dhz = dh * z
                dpre_h = tf.raw_ops.TanhGrad(y=hh, dy=dh - dhz)
                d_z = dh * (hp - hh)
                if reset_after:
                    hrec = el[4]
                    dzr = tf.raw_ops.SigmoidGrad(y=zr, dy=tf.concat([d_z, dpre_h * hrec], 1))
                    dzh = tf.concat([dzr, dpre_h * r], axis=1)
                    dhd = tf.matmul(dzh, ut)
                else:
                    hd = hp * rm if rm is not None else hp
                    d_rh = tf.matmul(dpre_h, u_h_t)
                    dzr = tf.raw_ops.SigmoidGrad(y=zr, dy=tf.concat([d_z, d_rh * hd], 1))
                    dhd = d_rh * r + tf.matmul(dzr, u_zr_t)
                if rm is not None:
                    dhd = dhd * rm
                dh_prev = dhd + dhz
                if m is not None:
                    dh_prev = dh_prev + dh_keep
                # the loop stores the projection's gradient only ([T, B, 3H],
                # in two blocks); what dU needs beyond it is formed after the loop
                return (dh_prev,), [dzr, dpre_h]

            (dh0,), (dzr, dpre) = _loop(step, n, seqs, (dh_t,), [tf.concat([h0, h0], 1), h0],
                                        reverse=True, compiled=compiled, prev=[(1, h0)])
            dxw = tf.concat([dzr, dpre], axis=-1)
            r_all = saved[0][..., H:]
            prev = _prev_states(h0, hs, rm)
            if reset_after:
                # h U + b_h = [h U_zr | h U_h] + b_h, the candidate block scaled by r:
                # its gradient is dpre * r
                dhr = dpre * r_all
                du = tf.concat([_prev_weight_grad(prev, dzr, False),
                                _prev_weight_grad(prev, dhr, False)], axis=1)
                grads = [dxw, du, dh0]
                if bh is not None:
                    grads.append(tf.concat([_sum_rows(dzr), _sum_rows(dhr)], axis=0))
            else:
                # [h U_zr | (r * h) U_h]
                du_zr = _prev_weight_grad(prev, dzr, False)
                du_h = _prev_weight_grad(prev, dpre, False, scale=r_all)
                grads = [dxw, tf.concat([du_zr, du_h], axis=1), dh0]
            return grads

        return (hs, h_t), grad

    args = [xw, u, h0] + ([bh] if bh is not None else [])
    return tf.custom_gradient(f)(*args)


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


_ACT_FN = {
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "relu": tf.nn.relu,
    "linear": lambda x: x,
}


def _simple_recurrence(xw, u, h0, m, rm, activation):
    n = _num_steps(xw)
    compiled = loops_compiled()
    act = _ACT_FN[activation]
    dact = _act_grad(activation)

    def f(xw, u, h0):
        seqs = [xw] + ([m] if m is not None else [])

        def step(el, carry):
            (h,) = carry
            hd = h * rm if rm is not None else h
            h_new = act(el[0] + tf.matmul(hd, u))
            if m is not None:
                h_new = tf.where(el[1], h_new, h)
            return (h_new,), [h_new]

        (h_t,), (hs,) = _loop(step, n, seqs, (h0,), [h0], compiled=compiled)

        def grad(dhs, dh_t):
            dhs = _zeros_if_none(dhs, hs)
            dh_t = _zeros_if_none(dh_t, h_t)
            ut = tf.transpose(u)
            seqs = [dhs, hs] + ([m] if m is not None else [])

            def step(el, carry):
                (dh,) = carry
                dh = dh + el[0]
                if m is not None:
                    zero = tf.zeros_like(dh)
                    dh_keep = tf.where(el[2], zero, dh)
                    dh = tf.where(el[2], dh, zero)
                dz = dact(el[1], dh)
                dh_prev = tf.matmul(dz, ut)
                if rm is not None:
                    dh_prev = dh_prev * rm
                if m is not None:
                    dh_prev = dh_prev + dh_keep
                return (dh_prev,), [dz]

            (dh0,), (dzs,) = _loop(step, n, seqs, (dh_t,), [h0], reverse=True, compiled=compiled)
            return [dzs, _prev_weight_grad(_prev_states(h0, hs, rm), dzs, False), dh0]

        return (hs, h_t), grad

    return tf.custom_gradient(f)(xw, u, h0)


# --------------------------------------------------------------------------
# public low-level functions (batch-major)
# --------------------------------------------------------------------------


def _prepare(inputs, mask, input_dropout_mask, go_backwards):
    """-> time-major inputs [T,B,D] (dropout applied, reversed if asked) and mask [T,B,1]."""
    x = tf.convert_to_tensor(inputs)
    if input_dropout_mask is not None:
        x = x * tf.cast(input_dropout_mask, x.dtype)[:, None, :]
    x = tf.transpose(x, [1, 0, 2])
    m = None
    if mask is not None:
        m = tf.transpose(tf.cast(mask, tf.bool), [1, 0])[..., None]
    if go_backwards:
        x = tf.reverse(x, [0])
        if m is not None:
            m = tf.reverse(m, [0])
    return x, m


def _project(x, kernel, bias):
    """[T,B,D] @ [D,K] (+ bias) as one matmul -> [T,B,K]."""
    shape = tf.shape(x)
    xw = tf.matmul(_rows(x), kernel)
    if bias is not None:
        xw = tf.nn.bias_add(xw, bias)
    return tf.reshape(xw, tf.concat([shape[:2], [kernel.shape[-1]]], 0))


def _cast(w, dtype):
    return None if w is None else tf.cast(tf.convert_to_tensor(w), dtype)


def _state(s, x, units):
    if s is None:
        return tf.zeros(tf.stack([tf.shape(x)[0], units]), x.dtype)
    return tf.cast(tf.convert_to_tensor(s), x.dtype)


def _rmask(rm, dtype):
    return None if rm is None else tf.cast(tf.convert_to_tensor(rm), dtype)


def _batch_major(hs, m=None):
    """Time-major states [T,B,H] -> batch-major outputs [B,T,H].

    With a mask, Keras' RNN emits at a masked step the previous *output*,
    which starts at zero: before the first unmasked step (in processing
    order) the output is 0, after it the carried h. So outputs are the states
    zeroed where no step has been valid yet.
    """
    if m is not None:
        seen = tf.cumsum(tf.cast(m, hs.dtype), axis=0) > 0
        hs = tf.where(seen, hs, tf.zeros_like(hs))
    return tf.transpose(hs, [1, 0, 2])


@_no_autograph
def lstm(inputs, kernel, recurrent_kernel, bias=None, h0=None, c0=None, mask=None,
         input_dropout_mask=None, recurrent_dropout_mask=None, go_backwards=False):
    """Fused LSTM (Keras gate order i, f, c, o).

    inputs [B,T,D], kernel [D,4H], recurrent_kernel [H,4H], bias [4H] or None,
    h0/c0 [B,H] or None (zeros). Returns (outputs [B,T,H], h_T, c_T).
    """
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0, c0 = _state(h0, x, units), _state(c0, x, units)
    xs, m = _prepare(x, mask, input_dropout_mask, go_backwards)
    xw = _project(xs, _cast(kernel, dt), _cast(bias, dt))
    hs, h_t, c_t = _lstm_recurrence(
        xw, _cast(recurrent_kernel, dt), h0, c0, m,
        _rmask(recurrent_dropout_mask, dt),
    )
    return _batch_major(hs, m), h_t, c_t


@_no_autograph
def peephole_lstm(inputs, kernel, recurrent_kernel, bias, peephole_i, peephole_f,
                  peephole_o, h0=None, c0=None, mask=None, input_dropout_mask=None,
                  recurrent_dropout_mask=None, go_backwards=False):
    """Fused peephole LSTM: i, f see c_{t-1}; o sees c_t (diagonal weights [H]).

    Same layout and return value as ``lstm``; ``bias`` may be None.
    """
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0, c0 = _state(h0, x, units), _state(c0, x, units)
    xs, m = _prepare(x, mask, input_dropout_mask, go_backwards)
    xw = _project(xs, _cast(kernel, dt), _cast(bias, dt))
    p_if = tf.concat([_cast(peephole_i, dt), _cast(peephole_f, dt)], axis=0)
    hs, h_t, c_t = _lstm_recurrence(
        xw, _cast(recurrent_kernel, dt), h0, c0, m, _rmask(recurrent_dropout_mask, dt),
        peephole=(p_if, _cast(peephole_o, dt)),
    )
    return _batch_major(hs, m), h_t, c_t


@_no_autograph
def gru(inputs, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
        input_dropout_mask=None, recurrent_dropout_mask=None, go_backwards=False,
        reset_after=True):
    """Fused GRU (Keras gate order z, r, h; h_t = z*h_{t-1} + (1-z)*h~).

    ``reset_after=True`` (Keras/cuDNN): h~ = tanh(x W_h + b_xh + r*(h U_h + b_hh)),
    ``bias`` [2, 3H] (row 0 input, row 1 recurrent) or None.
    ``reset_after=False`` (Cho et al. 2014): h~ = tanh(x W_h + (r*h) U_h + b),
    ``bias`` [3H] or None. Returns (outputs [B,T,H], h_T).
    """
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0 = _state(h0, x, units)
    xs, m = _prepare(x, mask, input_dropout_mask, go_backwards)
    b = _cast(bias, dt)
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
    xw = _project(xs, _cast(kernel, dt), bx)
    hs, h_t = _gru_recurrence(
        xw, _cast(recurrent_kernel, dt), bh, h0, m, _rmask(recurrent_dropout_mask, dt),
        reset_after,
    )
    return _batch_major(hs, m), h_t


@_no_autograph
def simple_rnn(inputs, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
               input_dropout_mask=None, recurrent_dropout_mask=None, go_backwards=False,
               activation="tanh"):
    """Fused simple RNN h_t = act(x W + h U + b); act in tanh, sigmoid, relu, linear.

    Returns (outputs [B,T,H], h_T).
    """
    if activation not in _ACT_FN:
        raise ValueError(
            f"simple_rnn activation must be one of {sorted(_ACT_FN)}, got {activation!r}"
        )
    x = tf.convert_to_tensor(inputs)
    dt = x.dtype
    units = recurrent_kernel.shape[0]
    h0 = _state(h0, x, units)
    xs, m = _prepare(x, mask, input_dropout_mask, go_backwards)
    xw = _project(xs, _cast(kernel, dt), _cast(bias, dt))
    hs, h_t = _simple_recurrence(
        xw, _cast(recurrent_kernel, dt), h0, m, _rmask(recurrent_dropout_mask, dt), activation
    )
    return _batch_major(hs, m), h_t


# --------------------------------------------------------------------------
# cell dispatch
# --------------------------------------------------------------------------

# seqlab cell class name -> kind
_CELL_KINDS = {
    "LSTMCell": "lstm",
    "GRUCell": "gru",
    "SimpleRNNCell": "simple_rnn",
    "PeepholeLSTMCell": "peephole_lstm",
}


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
    """The three peephole vectors of a peephole cell, by the names it may use."""
    for names in (("peephole_i", "peephole_f", "peephole_o"),
                  ("input_gate_peephole_weights", "forget_gate_peephole_weights",
                   "output_gate_peephole_weights"),
                  ("w_ci", "w_cf", "w_co"),
                  ("p_i", "p_f", "p_o")):
        if all(getattr(cell, n, None) is not None for n in names):
            return tuple(getattr(cell, n) for n in names)
    for name in ("peephole_kernel", "peephole_weights", "peepholes"):
        w = getattr(cell, name, None)
        if w is not None and len(w.shape) == 2 and w.shape[0] == 3:
            return w[0], w[1], w[2]
    return None


def supports(cell) -> tuple[bool, str]:
    """(True, "") if ``run`` can execute ``cell`` fused, else (False, reason)."""
    if keras.backend.backend() != "tensorflow":
        return False, f"the fused path needs the TensorFlow backend, not {keras.backend.backend()!r}"
    cls = type(cell)
    kind = _CELL_KINDS.get(cls.__name__)
    if kind is None or not cls.__module__.startswith("seqlab."):
        return False, (
            f"{cls.__module__}.{cls.__name__} is not a seqlab cell with a fused kernel "
            f"(known: {', '.join(sorted(_CELL_KINDS))})"
        )
    for attr in ("kernel", "recurrent_kernel"):
        if getattr(cell, attr, None) is None:
            return False, f"{cls.__name__} has no built `{attr}` (build the cell first)"
    act = _activation_name(getattr(cell, "activation", None))
    if kind == "simple_rnn":
        if act is None:
            return False, f"SimpleRNNCell activation {cell.activation!r} has no fused kernel"
    else:
        if act != "tanh":
            return False, f"{cls.__name__} activation {cell.activation!r} is not tanh"
        if _activation_name(getattr(cell, "recurrent_activation", None)) != "sigmoid":
            return False, (
                f"{cls.__name__} recurrent_activation {cell.recurrent_activation!r} is not sigmoid"
            )
    if kind == "peephole_lstm" and _peepholes(cell) is None:
        return False, "PeepholeLSTMCell peephole weights not found"
    return True, ""


@_no_autograph
def run(cell, inputs, initial_state, mask=None, input_dropout_mask=None,
        recurrent_dropout_mask=None, go_backwards=False):
    """Run a supported seqlab cell fused over ``inputs`` [B,T,D].

    ``initial_state``: list of [B,H] tensors (h, and c for LSTMs) or None.
    Returns (sequence_outputs [B,T,H], final_states list).
    """
    ok, reason = supports(cell)
    if not ok:
        raise ValueError(f"fast_rnn.run cannot run this cell: {reason}")
    kind = _CELL_KINDS[type(cell).__name__]
    if initial_state is None:
        initial_state = []
    elif not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    state = list(initial_state) + [None] * (2 - len(initial_state))
    bias = cell.bias if getattr(cell, "use_bias", True) else None
    common = dict(mask=mask, input_dropout_mask=input_dropout_mask,
                  recurrent_dropout_mask=recurrent_dropout_mask, go_backwards=go_backwards)
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
