"""Time chunks: the schedule and the forward and backward chunk drivers.

Time is cut into ``chunks`` runs of consecutive steps (``chunk_bounds``).
The forward pass projects a chunk's inputs, ``x W + b``, as one matmul over
its K*B rows just before the chunk's loop; the backward pass runs the chunks
in reverse and, right after a chunk's loop, forms its weight gradients and
``dx`` as one matmul or reduction each over its K*B rows. So only one
chunk's [K, B, G] projection or gate gradient ``dz`` is alive at a time
instead of [T, B, G]: less peak memory, for a small price in speed
(``chunks=1`` is the unchunked form; the measurements are in
``experiments/throughput/README.md``, session 5).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import tensorflow as tf

from seqlab.layers.fused.layout import add, concat, mask_slice, rows, sum_rows, time_major

#: Default of ``chunks`` in the kernels and in ``Recurrent`` (and ``chunks:``
#: in conf/model/cell/*.yaml).
DEFAULT_CHUNKS = 8
#: A chunk has at least this many steps (fewer chunks otherwise).
MIN_CHUNK_STEPS = 8


def chunking(n, chunks):
    """(number of chunks, steps per chunk) for a static ``n``: the divisor of
    ``n`` nearest to ``chunks`` whose chunks have at least ``MIN_CHUNK_STEPS``
    steps, else one chunk."""
    if chunks <= 1:
        return 1, n
    options = [d for d in range(2, n + 1) if n % d == 0 and n // d >= MIN_CHUNK_STEPS]
    if not options:
        return 1, n
    nc = min(options, key=lambda d: (abs(d - chunks), d))
    return nc, n // nc


def chunk_bounds(n, chunks):
    """The chunks of ``n`` time steps as slice bounds ``[(t0, t1), ...]``;
    ``[(0, None)]`` (the whole sequence) when ``n`` is not static."""
    if not isinstance(n, int):
        return [(0, None)]
    nc, k = chunking(n, chunks)
    return [(j * k, (j + 1) * k) for j in range(nc)]


# ------------------------------------------------------------ ordering


def after(tensors):
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


# ------------------------------------------------------------ per-chunk matmuls


def project(x, kernel, bias):
    """A chunk's input projection ``x W + b``: [K,B,D] @ [D,G] + bias as one matmul -> [K,B,G]."""
    xw = tf.nn.bias_add(tf.matmul(rows(x), kernel), bias)
    return tf.reshape(xw, tf.concat([tf.shape(x)[:2], [kernel.shape[-1]]], 0))


def weight_grad(a, b):
    """sum_t a_t^T b_t over a chunk's steps as one matmul: a [K,B,M], b [K,B,G] -> [M, G]."""
    return tf.matmul(rows(a), rows(b), transpose_a=True)


def input_grads(x, w, dxw):
    """The gradients (dW, db, dx [K,B,D]) of a chunk's input projection
    ``x W + b``, from its gradient ``dxw``: a [K,B,G] tensor, or a list of
    blocks of it in gate order (each block is multiplied with its columns of
    ``W``: no concatenated [K,B,G] copy is made)."""
    parts = dxw if isinstance(dxw, (list, tuple)) else [dxw]
    ws = tf.split(w, [p.shape[-1] for p in parts], axis=1) if len(parts) > 1 else [w]
    dx = add([tf.matmul(rows(p), wp, transpose_b=True) for p, wp in zip(parts, ws)])
    dx = tf.reshape(dx, tf.concat([tf.shape(parts[0])[:2], [w.shape[0]]], 0))
    dw = concat([weight_grad(x, p) for p in parts], axis=1)
    db = concat([sum_rows(p) for p in parts])
    return dw, db, dx


def prev_states(h_before, hs, rm):
    """The states the recurrent matmul saw at a chunk's steps, h_{t-1} * rm,
    without stacking shifted states: (steps 1..K-1 as ``hs[:-1]``, a view of
    the chunk's states ``hs`` [K,B,H] when ``rm`` is None, and step 0's
    ``h_before``, the state before the chunk)."""
    if rm is None:
        return hs[:-1], h_before
    return hs[:-1] * rm, h_before * rm


def prev_weight_grad(prev, dzs, scale=None):
    """sum_t (h_{t-1} * rm * scale_t)^T dz_t over a chunk, for
    ``prev = prev_states(...)``: one matmul over steps 1..K-1 plus the
    step-0 term. ``scale`` [K, ...] is optional."""
    a, a0 = prev
    if scale is not None:
        a, a0 = a * scale[1:], a0 * scale[0]
    return weight_grad(a, dzs[1:]) + tf.matmul(a0, dzs[0], transpose_a=True)


def _running(sums, value):
    """Appends ``value`` plus the last running sum to ``sums``. The chunks'
    weight gradients are summed as they come, so no chunk's [H, G] partial
    waits for the end (held to the end, they cost memory: see
    experiments/throughput/README.md)."""
    sums.append(value if not sums else sums[-1] + value)


# ------------------------------------------------------------ drivers


def forward_chunks(loop, bounds, x, w, b, m, carry):
    """The forward pass, chunk by chunk: a chunk's input projection (made
    after the previous chunk's loop), then its loop ``loop([xw, mask],
    carry)``. Returns the final carry, each chunk's stacked outputs and each
    chunk's final carry."""
    outs, carries = [], []
    for t0, t1 in bounds:
        with after(carry if outs else ()):
            xw = project(x[t0:t1], w, b)
        carry, o = loop([xw, mask_slice(m, t0, t1)], carry)
        outs.append(o)
        carries.append(carry)
    return carry, outs, carries


def backward_chunks(bounds, x, w, dhs, carry, run_chunk, n_extra=0):
    """The backward pass, chunks in reverse time order.

    ``run_chunk(j, t0, t1, carry, dh_c, deps) -> (carry, dxw, du, extras)``
    runs chunk ``j``'s backward loop on its slice ``dh_c`` [K,B,H] of dL/dh
    and returns the gradient of its input projection (a [K,B,G] tensor or
    blocks of it), of U, and ``n_extra`` more (the GRU's recurrent bias).
    Inputs it prepares itself go under ``after(deps)``. dW, db and dx come
    from ``dxw`` here. Returns ``(carry, dx [T,B,D], [dW, db, dU, *extras])``,
    summed over the chunks as they come.
    """
    dxs, sums = [], [[] for _ in range(3 + n_extra)]
    for j in reversed(range(len(bounds))):
        t0, t1 = bounds[j]
        deps = list(carry) + _two_back(dxs, *sums) if dxs else []
        with after(deps):
            dh_c = time_major(dhs, t0, t1)
        carry, dxw, du, extras = run_chunk(j, t0, t1, carry, dh_c, deps)
        dw, db, dx = input_grads(x[t0:t1], w, dxw)
        dxs.append(dx)
        for total, value in zip(sums, (dw, db, du) + tuple(extras)):
            _running(total, value)
    return carry, concat(dxs[::-1]), [total[-1] for total in sums]


class StepInput(NamedTuple):
    """What a forward step reads: step t of the chunk's projection and mask."""

    xw: tf.Tensor  #: x_t W + b [B, G]
    mask: tf.Tensor | None  #: [B, 1] bool, None without a mask
