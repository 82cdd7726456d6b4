"""Fused recurrent kernels with a hand-written backward pass (BPTT).

LSTM, GRU (both reset-gate placements), simple RNN and peephole LSTM run as
one time loop forward and one time loop backward, with the gradient written
out instead of obtained by differentiating the loop:

* time is cut into a few chunks of consecutive steps (``CHUNKS``). A chunk's
  input projection ``x W + b`` is one matmul over its K*B rows, made just
  before its steps;
* the forward loop does one ``h U`` matmul and one block of elementwise gate
  math per step, and keeps what the backward loop needs (the gate
  activations; the LSTM's cell states are recomputed per chunk from them);
* the backward loop runs the chunks in reverse, carries only ``dL/dh`` (and
  ``dL/dc``) and does one ``dz U^T`` matmul per step, storing the chunk's
  ``dz``;
* after each chunk's backward loop, ``dL/dW``, ``dL/db``, ``dL/dU`` (and
  the recurrent bias gradient) and ``dL/dx`` are one matmul or reduction
  each over the chunk's K*B rows; so only one chunk's ``dz`` [K,B,G] is
  alive at a time, instead of [T,B,G] (``CHUNKS = 1`` gives that unchunked
  form: up to ~10 % faster, and ~2.5 [B,T,H] tensors larger at the
  benchmark's shape);
* inside a graph, each time loop is an XLA-compiled function shared by the
  chunks (``COMPILE_LOOPS``): XLA fuses a step's gate math into a few loops
  and removes the executor's per-op dispatch, which at B 64 x H 512 costs as
  much as the step's matmul, while the large matmuls outside the loops keep
  TF's oneDNN kernels. A training step can therefore stay in graph mode and
  still get compiled recurrences.

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
    "lstm", "gru", "simple_rnn", "peephole_lstm", "supports", "run", "CHUNKS", "COMPILE_LOOPS",
    "compiled_loops",
]

# How the time loops split the sequence: into CHUNKS runs of consecutive
# steps (the divisor of T nearest to CHUNKS, with at least MIN_CHUNK_STEPS
# steps per chunk; one chunk when there is none or T is not static). The
# forward pass projects a chunk's inputs (one matmul over its K*B rows) just
# before the chunk's steps; the backward pass forms the chunk's weight
# gradients and dx (one matmul each over K*B rows) right after them. So
# [K, B, G] of projection or gate gradient is alive at a time instead of
# [T, B, G]. Benchmark training step (B 64, T 128, H 512, live heap, runs
# 16 and 18 of experiments/throughput/README.md): fast LSTM 152-160 MiB with
# 8 chunks against 190-194 in one chunk and 172-185 for Keras' LSTM; fast
# GRU 142-145 against 157-160 and 155. The price is speed: 0.93-0.99x of one
# chunk for the LSTM and 0.88-0.89x for the GRU, paired per round.
# CHUNKS = 1 gives the unchunked form: projection and weight gradients over
# all T*B rows at once.
CHUNKS = 8
MIN_CHUNK_STEPS = 8

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

    Compiled loops are ~1.2x faster on CPU and, in time chunks, need less
    peak memory than plain ones (B 64 x T 128 x H 512 training step: LSTM
    152-160 vs 198 MiB, GRU 142-145 vs 180; plain loops unstack each
    chunk's saved tensors into TensorArrays, a copy; the figures are in
    experiments/throughput/README.md, session 5). Plain loops avoid XLA
    compilation, which happens again for every new batch or sequence
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
# time loops and chunks
# --------------------------------------------------------------------------


def _num_steps(x):
    """Static T if known, else the dynamic one."""
    t = x.shape[0]
    return t if t is not None else tf.shape(x)[0]


def _chunking(n):
    """(chunks, steps per chunk) for a static ``n``: the divisor of ``n``
    nearest to ``CHUNKS`` whose chunks have at least ``MIN_CHUNK_STEPS``
    steps, else one chunk."""
    if CHUNKS <= 1:
        return 1, n
    options = [d for d in range(2, n + 1) if n % d == 0 and n // d >= MIN_CHUNK_STEPS]
    if not options:
        return 1, n
    nc = min(options, key=lambda d: (abs(d - CHUNKS), d))
    return nc, n // nc


def _chunks(n):
    """The chunks of ``n`` time steps as slice bounds ``[(t0, t1), ...]``;
    ``[(0, None)]`` (the whole sequence) when ``n`` is not static."""
    if not isinstance(n, int):
        return [(0, None)]
    nc, k = _chunking(n)
    return [(j * k, (j + 1) * k) for j in range(nc)]


def _after(tensors):
    """Ops created in this block run only after ``tensors`` exist. A chunk's
    inputs (its projection, its slice of dL/dh) are prepared after the
    previous chunk's loop, so that the executor does not prepare every
    chunk's at once, which would hold them all."""
    if not tensors or tf.executing_eagerly():
        return contextlib.nullcontext()
    return tf.control_dependencies(list(tensors))


def _two_back(*results):
    """The results of the chunk before last among per-chunk result lists.
    A backward chunk starts only after them: the weight gradients of a
    chunk, which nothing else waits for, may overlap the next chunk's loop
    but not lag further, or the executor would keep several chunks' dz
    alive."""
    return [r[-2] for r in results if len(r) >= 2]


def _time_loop(step, out_like, reverse=False, compiled=None, prev=()):
    """A loop over the steps of one chunk, built once and called per chunk:
    ``loop(seqs, carry, initials=()) -> (carry, outs)``.

    ``seqs``: tensors [K, ...] read at each step; ``carry``: tuple of state
    tensors; ``out_like``: one example tensor (dtype, shape) per per-step
    output. ``step(t_inputs, carry) -> (new_carry, outputs)``; the outputs
    come back stacked to [K, ...] (indexed by time, also when ``reverse``).

    ``prev``: indices ``k`` into ``seqs``; for each, ``t_inputs`` gets one
    more element after the reads of ``seqs``: ``seqs[k][t - 1]``, or the
    matching entry of ``initials`` at ``t == 0`` (the value before the
    chunk). The backward loops read ``c_{t-1}`` (LSTM) and ``h_{t-1}`` (GRU)
    this way instead of from a shifted copy.

    With ``compiled`` (default: ``loops_compiled()``) and inside a graph, the
    loop is one XLA-compiled function, shared by the chunks (they have the
    same shapes, so it compiles once); ``step``'s closure (weights, masks)
    is captured as its inputs. The recurrences read the setting once when
    their forward pass is traced and pass it to both loops: the backward
    loop is traced later, by ``tape.gradient``, outside any
    ``compiled_loops`` block.
    """
    if compiled is None:
        compiled = loops_compiled()

    def run(seqs, carry, initials):
        # the length is read here: under XLA it must be a compile-time
        # constant, which a dynamic length of the outer graph is not
        return _plain_loop(step, _num_steps(seqs[0]), seqs, carry, out_like, reverse,
                           list(zip(prev, initials)))

    if compiled and not tf.executing_eagerly():
        run = tf.function(run, jit_compile=True, autograph=False)

    def loop(seqs, carry, initials=()):
        new_carry, outs = run(list(seqs), tuple(carry), list(initials))
        return tuple(new_carry), list(outs)

    return loop


def _plain_loop(step, n, seqs, carry, out_like, reverse, prev=()):
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
        (tf.constant(0, tf.int32), tuple(carry), tuple(out_tas)),
        maximum_iterations=n,
    )
    return carry, [ta.stack() for ta in out_tas]


def _rows(x):
    """[T, B, K] -> [T*B, K]."""
    return tf.reshape(x, [-1, x.shape[-1]])


def _zeros_if_none(g, like):
    return tf.zeros_like(like) if g is None else g


def _sum_rows(x):
    return tf.reduce_sum(_rows(x), axis=0)


def _project(x, kernel, bias):
    """[K,B,D] @ [D,G] + bias as one matmul -> [K,B,G]."""
    xw = tf.nn.bias_add(tf.matmul(_rows(x), kernel), bias)
    return tf.reshape(xw, tf.concat([tf.shape(x)[:2], [kernel.shape[-1]]], 0))


def _batch_major(chunks):
    """Time-major chunks [K,B,H] -> one batch-major [B,T,H]."""
    hs = chunks[0] if len(chunks) == 1 else tf.concat(chunks, axis=0)
    return tf.transpose(hs, [1, 0, 2])


def _time_major(x, t0, t1):
    """Steps t0..t1-1 of a batch-major [B,T,H] as time-major [K,B,H]."""
    return tf.transpose(x[:, t0:t1], [1, 0, 2])


def _mask_seq(m, t0, t1):
    return [] if m is None else [m[t0:t1]]


def _weight_grad(a, b):
    """sum_t a_t^T b_t over a chunk's steps as one matmul: a [K,B,M], b [K,B,G] -> [M, G]."""
    return tf.matmul(_rows(a), _rows(b), transpose_a=True)


def _input_grads(x, w, dxw):
    """The gradients (dW, db, dx [K,B,D]) of a chunk's input projection
    ``x W + b``, from its gradient ``dxw``: a [K,B,G] tensor, or a list of
    blocks of it in gate order (each block is multiplied with its columns of
    ``W``: no concatenated [K,B,G] copy is made)."""
    parts = dxw if isinstance(dxw, (list, tuple)) else [dxw]
    ws = tf.split(w, [p.shape[-1] for p in parts], axis=1) if len(parts) > 1 else [w]
    dx = _sum([tf.matmul(_rows(p), wp, transpose_b=True) for p, wp in zip(parts, ws)])
    dx = tf.reshape(dx, tf.concat([tf.shape(parts[0])[:2], [w.shape[0]]], 0))
    dw = _concat([_weight_grad(x, p) for p in parts], axis=1)
    db = _concat([_sum_rows(p) for p in parts])
    return dw, db, dx


def _prev_states(h_before, hs, rm):
    """The states the recurrent matmul saw at a chunk's steps, h_{t-1} * rm,
    without stacking shifted states: (steps 1..K-1 as ``hs[:-1]``, a view of
    the chunk's states ``hs`` [K,B,H] when ``rm`` is None, and step 0's
    ``h_before``, the state before the chunk)."""
    if rm is None:
        return hs[:-1], h_before
    return hs[:-1] * rm, h_before * rm


def _prev_weight_grad(prev, dzs, scale=None):
    """sum_t (h_{t-1} * rm * scale_t)^T dz_t over a chunk, for
    ``prev = _prev_states(...)``: one matmul over steps 1..K-1 plus the
    step-0 term. ``scale`` [K, ...] is optional."""
    a, a0 = prev
    if scale is not None:
        a, a0 = a * scale[1:], a0 * scale[0]
    return _weight_grad(a, dzs[1:]) + tf.matmul(a0, dzs[0], transpose_a=True)


def _sum(parts):
    return parts[0] if len(parts) == 1 else tf.add_n(parts)


def _running(sums, value):
    """Appends ``value`` plus the last running sum to ``sums``. The chunks'
    weight gradients are summed as they come, so no chunk's [H, G] partial
    waits for the end (at B 64 x T 64 x H 512, eight dU partials held to the
    end were 4 [B,T,H] units)."""
    sums.append(value if not sums else sums[-1] + value)


def _concat(parts, axis=0):
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=axis)


def _forward_chunks(loop, bounds, x, w, b, m, carry):
    """The forward pass, chunk by chunk: a chunk's input projection (made
    after the previous chunk's loop), then its loop. Returns the final
    carry, each chunk's stacked outputs and each chunk's final carry."""
    outs, carries = [], []
    for t0, t1 in bounds:
        with _after(carry if outs else ()):
            xw = _project(x[t0:t1], w, b)
        carry, o = loop([xw] + _mask_seq(m, t0, t1), carry)
        outs.append(o)
        carries.append(carry)
    return carry, outs, carries


def _backward_chunks(bounds, x, w, dhs, carry, run_chunk, n_extra=0):
    """The backward pass, chunks in reverse time order.

    ``run_chunk(j, t0, t1, carry, dh_c, deps) -> (carry, dxw, du, extras)``
    runs chunk ``j``'s backward loop on its slice ``dh_c`` [K,B,H] of dL/dh
    and returns the gradient of its input projection (a [K,B,G] tensor or
    blocks of it), of U, and ``n_extra`` more (the GRU's recurrent bias).
    Inputs it prepares itself go under ``_after(deps)``. dW, db and dx come
    from ``dxw`` here. Returns ``(carry, dx [T,B,D], [dW, db, dU, *extras])``,
    summed over the chunks as they come.
    """
    dxs, sums = [], [[] for _ in range(3 + n_extra)]
    for j in reversed(range(len(bounds))):
        t0, t1 = bounds[j]
        deps = list(carry) + _two_back(dxs, *sums) if dxs else []
        with _after(deps):
            dh_c = _time_major(dhs, t0, t1)
        carry, dxw, du, extras = run_chunk(j, t0, t1, carry, dh_c, deps)
        dw, db, dx = _input_grads(x[t0:t1], w, dxw)
        dxs.append(dx)
        for total, value in zip(sums, (dw, db, du) + tuple(extras)):
            _running(total, value)
    return carry, _concat(dxs[::-1]), [total[-1] for total in sums]


# --------------------------------------------------------------------------
# recurrences: time-major inputs in, batch-major states out; custom gradients
# --------------------------------------------------------------------------
#
# Each runs the chunks of ``_chunks(T)`` in order: the chunk's input
# projection (one matmul over its K*B rows), then its forward loop. The
# backward pass runs the chunks in reverse: the chunk's backward loop (which
# carries dL/dh and dL/dc across chunks and stores the gate gradients dz
# [K,B,G]), then the chunk's weight gradients dW, db, dU and dx, each one
# matmul or reduction over its K*B rows. The states come out batch-major
# [B,T,H], the layer's output layout: the backward pass reads h_{t-1} back
# from that output instead of keeping a time-major copy, and the incoming
# dL/dh is transposed one chunk at a time.


def _lstm_recurrence(x, w, b, u, h0, c0, m, rm, peephole=None):
    """LSTM over time-major x [T,B,D]; w [D,4H], b [4H], u [H,4H].

    Gate order: Keras' i, f, c, o, with and without peepholes. The step
    keeps three activation blocks ([i f], g, o: one sigmoid, one tanh, one
    sigmoid). An earlier version permuted the weights to i, f, o, c so that
    one sigmoid covered [i f o]; with XLA-compiled loops the three-block form
    was 1.04-1.08x faster for forward + backward (and needs no permutation of
    the weights and their gradients), so the plain LSTM and the peephole LSTM
    share one step and differ only by the peephole terms.

    ``m`` [T,B,1] bool or None; ``rm`` [B,H] or None; ``peephole`` None or
    (p_if [2H], p_o [H]). Returns hs [B,T,H] (batch-major), h_T, c_T.
    """
    bounds = _chunks(_num_steps(x))
    compiled = loops_compiled()
    H = u.shape[0]

    def f(x, w, b, u, h0, c0, *extra):
        p_if, p_o = extra if peephole is not None else (None, None)

        def step(el, carry):
            h, c = carry
            hd = h * rm if rm is not None else h
            z = el[0] + tf.matmul(hd, u)
            zif, zg, zo = tf.split(z, [2 * H, H, H], axis=1)
            if p_if is not None:
                zif = zif + tf.concat([c, c], axis=1) * p_if
            sif = tf.sigmoid(zif)
            g = tf.tanh(zg)
            i, f = tf.split(sif, 2, axis=1)
            c_new = f * c + i * g
            o = tf.sigmoid(zo + c_new * p_o if p_o is not None else zo)
            h_new = o * tf.tanh(c_new)
            if m is not None:
                h_new = tf.where(el[1], h_new, h)
                c_new = tf.where(el[1], c_new, c)
            return (h_new, c_new), [h_new, sif, g, o]

        def c_step(el, carry):
            # c_t again from the saved gates: the backward pass recomputes a
            # chunk's cell states instead of keeping all T of them
            (c,) = carry
            i, f = tf.split(el[0], 2, axis=1)
            c_new = f * c + i * el[1]
            if m is not None:
                c_new = tf.where(el[2], c_new, c)
            return (c_new,), [c_new]

        loop = _time_loop(step, [h0, tf.concat([h0, h0], 1), h0, h0], compiled=compiled)
        (h_t, c_t), outs, carries = _forward_chunks(loop, bounds, x, w, b, m, (h0, c0))
        hs = _batch_major([o[0] for o in outs])
        saved = [o[1:] for o in outs]  # [i f], g, o of each chunk
        c_ends = [c[1] for c in carries]

        def grad(dhs, dh_t, dc_t):
            dhs = _zeros_if_none(dhs, hs)
            dh_t = _zeros_if_none(dh_t, h_t)
            dc_t = _zeros_if_none(dc_t, c_t)

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
                i, f = tf.split(sif, 2, axis=1)
                dzo = tf.raw_ops.SigmoidGrad(y=o, dy=dh * tc)
                dct = dc + tf.raw_ops.TanhGrad(y=tc, dy=dh * o)
                if peephole is not None:
                    dct = dct + dzo * p_o
                dzif = tf.raw_ops.SigmoidGrad(y=sif, dy=tf.concat([dct * g, dct * cp], 1))
                dzg = tf.raw_ops.TanhGrad(y=g, dy=dct * i)
                dz = tf.concat([dzif, dzg, dzo], axis=1)
                dc_prev = dct * f
                if peephole is not None:
                    dpi, dpf = tf.split(dzif * p_if, 2, axis=1)
                    dc_prev = dc_prev + dpi + dpf
                dh_prev = tf.matmul(dz, u, transpose_b=True)
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
                    new_carry += (acc_if + dzif * tf.concat([cp, cp], 1), acc_o + dzo * c)
                return new_carry, [dz]

            loop = _time_loop(step, [tf.concat([h0] * 4, 1)], reverse=True, compiled=compiled,
                              prev=(1,))
            c_loop = _time_loop(c_step, [c0], compiled=compiled)
            def run_chunk(j, t0, t1, carry, dh_c, deps):
                sif_c, g_c, o_c = saved[j]
                ms = _mask_seq(m, t0, t1)
                c_before, h_before = (c_ends[j - 1], hs[:, t0 - 1]) if j else (c0, h0)
                with _after(deps):
                    _, (cs_c,) = c_loop([sif_c, g_c] + ms, (c_before,))
                carry, (dz,) = loop([dh_c, cs_c, sif_c, g_c, o_c] + ms, carry, [c_before])
                with _after([dz]):
                    hs_c = _time_major(hs, t0, t1)
                return carry, dz, _prev_weight_grad(_prev_states(h_before, hs_c, rm), dz), ()

            carry = (dh_t, dc_t)
            if peephole is not None:
                carry += (tf.zeros_like(tf.concat([c0, c0], 1)), tf.zeros_like(c0))
            carry, dx, (dw, db, du) = _backward_chunks(bounds, x, w, dhs, carry, run_chunk)
            grads = [dx, dw, db, du, carry[0], carry[1]]
            if peephole is not None:
                grads += [tf.reduce_sum(acc, 0) for acc in carry[2:]]
            return grads

        return (hs, h_t, c_t), grad

    args = [x, w, b, u, h0, c0] + (list(peephole) if peephole is not None else [])
    return tf.custom_gradient(f)(*args)


def _gru_recurrence(x, w, bx, u, bh, h0, m, rm, reset_after):
    """GRU over time-major x [T,B,D]; w [D,3H], input bias bx [3H], u [H,3H];
    gates z, r, h (Keras). ``bh`` [3H]: the recurrent bias (reset_after=True)
    or None. Returns hs [B,T,H], h_T."""
    bounds = _chunks(_num_steps(x))
    compiled = loops_compiled()
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
                uzr, uh = split_u() if compiled else (u_zr, u_h)
                zr = tf.sigmoid(xzr + tf.matmul(hd, uzr))
                z, r = tf.split(zr, 2, axis=1)
                hh = tf.tanh(xh + tf.matmul(r * hd, uh))
                saved = [zr, hh]
            h_new = hh + z * (h - hh)
            if m is not None:
                h_new = tf.where(el[1], h_new, h)
            return (h_new,), [h_new] + saved

        like = [h0, tf.concat([h0, h0], 1), h0] + ([h0] if reset_after else [])
        loop = _time_loop(step, like, compiled=compiled)
        (h_t,), outs, _ = _forward_chunks(loop, bounds, x, w, bx, m, (h0,))
        hs = _batch_major([o[0] for o in outs])
        saved = [o[1:] for o in outs]  # [z r], h~ (and h U_h + b_hh) of each chunk

        def grad(dhs, dh_t):
            dhs = _zeros_if_none(dhs, hs)
            dh_t = _zeros_if_none(dh_t, h_t)

            def step(el, carry):
                (dh,) = carry
                dh = dh + el[0]
                hp, zr, hh = el[-1], el[2], el[3]  # h_{t-1} read through `prev`
                if m is not None:
                    mk = el[1 + len(like)]  # after dL/dh, h and the saved tensors
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
                    dhd = tf.matmul(tf.concat([dzr, dpre_h * r], axis=1), u, transpose_b=True)
                else:
                    hd = hp * rm if rm is not None else hp
                    uzr, uh = split_u() if compiled else (u_zr, u_h)
                    d_rh = tf.matmul(dpre_h, uh, transpose_b=True)
                    dzr = tf.raw_ops.SigmoidGrad(y=zr, dy=tf.concat([d_z, d_rh * hd], 1))
                    dhd = d_rh * r + tf.matmul(dzr, uzr, transpose_b=True)
                if rm is not None:
                    dhd = dhd * rm
                dh_prev = dhd + dhz
                if m is not None:
                    dh_prev = dh_prev + dh_keep
                # the loop stores the projection's gradient only ([K, B, 3H], in
                # two blocks); what dU needs beyond it is formed after the loop
                return (dh_prev,), [dzr, dpre_h]

            loop = _time_loop(step, [tf.concat([h0, h0], 1), h0], reverse=True,
                              compiled=compiled, prev=(1,))
            def run_chunk(j, t0, t1, carry, dh_c, deps):
                with _after(deps):
                    hs_c = _time_major(hs, t0, t1)
                h_before = hs[:, t0 - 1] if j else h0
                seqs = [dh_c, hs_c] + saved[j] + _mask_seq(m, t0, t1)
                carry, (dzr, dpre) = loop(seqs, carry, [h_before])
                with _after([dzr]):
                    # (a slice along the last axis is a copy: made any earlier,
                    # the executor would make every chunk's during the forward pass)
                    r = saved[j][0][..., H:]
                prev = _prev_states(h_before, hs_c, rm)
                if not reset_after:
                    # [h U_zr | (r * h) U_h]
                    du = tf.concat([_prev_weight_grad(prev, dzr),
                                    _prev_weight_grad(prev, dpre, scale=r)], axis=1)
                    return carry, [dzr, dpre], du, ()
                # h U + b_h = [h U_zr | h U_h] + b_h, the candidate block scaled
                # by r: its gradient is dpre * r
                dhr = dpre * r
                du = tf.concat([_prev_weight_grad(prev, dzr), _prev_weight_grad(prev, dhr)], 1)
                dbh = tf.concat([_sum_rows(dzr), _sum_rows(dhr)], axis=0)
                return carry, [dzr, dpre], du, (dbh,) if bh is not None else ()

            carry, dx, sums = _backward_chunks(bounds, x, w, dhs, (dh_t,), run_chunk,
                                               n_extra=int(bh is not None))
            return [dx, sums[0], sums[1], sums[2], carry[0]] + sums[3:]


        return (hs, h_t), grad

    args = [x, w, bx, u, h0] + ([bh] if bh is not None else [])
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


def _simple_recurrence(x, w, b, u, h0, m, rm, activation):
    """h_t = act(x_t W + b + h_{t-1} U) over time-major x [T,B,D]. Returns
    hs [B,T,H], h_T."""
    bounds = _chunks(_num_steps(x))
    compiled = loops_compiled()
    act = _ACT_FN[activation]
    dact = _act_grad(activation)

    def f(x, w, b, u, h0):
        def step(el, carry):
            (h,) = carry
            hd = h * rm if rm is not None else h
            h_new = act(el[0] + tf.matmul(hd, u))
            if m is not None:
                h_new = tf.where(el[1], h_new, h)
            return (h_new,), [h_new]

        loop = _time_loop(step, [h0], compiled=compiled)
        (h_t,), outs, _ = _forward_chunks(loop, bounds, x, w, b, m, (h0,))
        hs = _batch_major([o[0] for o in outs])

        def grad(dhs, dh_t):
            dhs = _zeros_if_none(dhs, hs)
            dh_t = _zeros_if_none(dh_t, h_t)

            def step(el, carry):
                (dh,) = carry
                dh = dh + el[0]
                if m is not None:
                    zero = tf.zeros_like(dh)
                    dh_keep = tf.where(el[2], zero, dh)
                    dh = tf.where(el[2], dh, zero)
                dz = dact(el[1], dh)
                dh_prev = tf.matmul(dz, u, transpose_b=True)
                if rm is not None:
                    dh_prev = dh_prev * rm
                if m is not None:
                    dh_prev = dh_prev + dh_keep
                return (dh_prev,), [dz]

            loop = _time_loop(step, [h0], reverse=True, compiled=compiled)

            def run_chunk(j, t0, t1, carry, dh_c, deps):
                with _after(deps):
                    hs_c = _time_major(hs, t0, t1)
                h_before = hs[:, t0 - 1] if j else h0
                carry, (dz,) = loop([dh_c, hs_c] + _mask_seq(m, t0, t1), carry)
                return carry, dz, _prev_weight_grad(_prev_states(h_before, hs_c, rm), dz), ()

            carry, dx, (dw, db, du) = _backward_chunks(bounds, x, w, dhs, (dh_t,), run_chunk)
            return [dx, dw, db, du, carry[0]]

        return (hs, h_t), grad

    return tf.custom_gradient(f)(x, w, b, u, h0)


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


def _bias(b, kernel, dtype):
    """The input bias cast to ``dtype``, zeros when the cell has none (its
    gradient is then computed and dropped: one [G] reduction per chunk)."""
    if b is None:
        return tf.zeros([kernel.shape[-1]], dtype)
    return _cast(b, dtype)


def _cast(w, dtype):
    return None if w is None else tf.cast(tf.convert_to_tensor(w), dtype)


def _state(s, x, units):
    if s is None:
        return tf.zeros(tf.stack([tf.shape(x)[0], units]), x.dtype)
    return tf.cast(tf.convert_to_tensor(s), x.dtype)


def _rmask(rm, dtype):
    return None if rm is None else tf.cast(tf.convert_to_tensor(rm), dtype)


def _masked(hs, m):
    """The layer's outputs from the batch-major states [B,T,H].

    With a mask, Keras' RNN emits at a masked step the previous *output*,
    which starts at zero: before the first unmasked step (in processing
    order) the output is 0, after it the carried h. So outputs are the states
    zeroed where no step has been valid yet.
    """
    if m is None:
        return hs
    seen = tf.transpose(tf.cumsum(tf.cast(m, hs.dtype), axis=0) > 0, [1, 0, 2])
    return tf.where(seen, hs, tf.zeros_like(hs))


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
    hs, h_t, c_t = _lstm_recurrence(
        xs, _cast(kernel, dt), _bias(bias, kernel, dt), _cast(recurrent_kernel, dt), h0, c0, m,
        _rmask(recurrent_dropout_mask, dt),
    )
    return _masked(hs, m), h_t, c_t


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
    p_if = tf.concat([_cast(peephole_i, dt), _cast(peephole_f, dt)], axis=0)
    hs, h_t, c_t = _lstm_recurrence(
        xs, _cast(kernel, dt), _bias(bias, kernel, dt), _cast(recurrent_kernel, dt), h0, c0, m,
        _rmask(recurrent_dropout_mask, dt),
        peephole=(p_if, _cast(peephole_o, dt)),
    )
    return _masked(hs, m), h_t, c_t


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
    hs, h_t = _gru_recurrence(
        xs, _cast(kernel, dt), _bias(bx, kernel, dt), _cast(recurrent_kernel, dt), bh, h0, m,
        _rmask(recurrent_dropout_mask, dt),
        reset_after,
    )
    return _masked(hs, m), h_t


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
    hs, h_t = _simple_recurrence(
        xs, _cast(kernel, dt), _bias(bias, kernel, dt), _cast(recurrent_kernel, dt), h0, m,
        _rmask(recurrent_dropout_mask, dt), activation,
    )
    return _masked(hs, m), h_t


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
