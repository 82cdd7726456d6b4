"""Tensor layout and argument preparation shared by the recurrences.

The public functions take batch-major inputs [B, T, D]; the recurrences run
time-major [T, B, ...] inside (a step reads one [B, ...] slice) and return
their states batch-major [B, T, H], the layer's output layout. Matmuls over
a chunk's steps see its [K, B, ...] tensors as [K*B, ...] rows.
"""

from __future__ import annotations

import tensorflow as tf


def rows(x):
    """[T, B, K] -> [T*B, K]."""
    return tf.reshape(x, [-1, x.shape[-1]])


def sum_rows(x):
    """The sum over time and batch of [T, B, K] -> [K]."""
    return tf.reduce_sum(rows(x), axis=0)


def zeros_if_none(g, like):
    """An incoming gradient that TF left as None (the output is unused) as zeros."""
    return tf.zeros_like(like) if g is None else g


def add(parts):
    """The sum of a non-empty list of tensors (no op for one)."""
    return parts[0] if len(parts) == 1 else tf.add_n(parts)


def concat(parts, axis=0):
    """``tf.concat`` of a non-empty list of tensors (no op for one)."""
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=axis)


def batch_major(chunks):
    """Time-major chunks [K,B,H] -> one batch-major [B,T,H]."""
    hs = chunks[0] if len(chunks) == 1 else tf.concat(chunks, axis=0)
    return tf.transpose(hs, [1, 0, 2])


def time_major(x, t0, t1):
    """Steps t0..t1-1 of a batch-major [B,T,H] as time-major [K,B,H]."""
    return tf.transpose(x[:, t0:t1], [1, 0, 2])


def mask_slice(m, t0, t1):
    """Steps t0..t1-1 of the time-major mask [T,B,1], or None without a mask."""
    return None if m is None else m[t0:t1]


# ------------------------------------------------------------ public arguments


def prepare(inputs, mask, input_dropout_mask, go_backwards):
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


def cast(w, dtype):
    """A weight (or None) as a tensor of ``dtype``."""
    return None if w is None else tf.cast(tf.convert_to_tensor(w), dtype)


def input_bias(b, kernel, dtype):
    """The input bias cast to ``dtype``, zeros when the cell has none (its
    gradient is then computed and dropped: one [G] reduction per chunk)."""
    if b is None:
        return tf.zeros([kernel.shape[-1]], dtype)
    return cast(b, dtype)


def state(s, x, units):
    """An initial state [B, H] of ``x``'s dtype, zeros when ``s`` is None."""
    if s is None:
        return tf.zeros(tf.stack([tf.shape(x)[0], units]), x.dtype)
    return tf.cast(tf.convert_to_tensor(s), x.dtype)


def masked_outputs(hs, m):
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


def check_options(name, chunks, compile_loops):
    """ValueError unless ``chunks`` is a positive int and ``compile_loops`` a bool."""
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ValueError(f"{name}: chunks must be a positive integer (1: no chunks), "
                         f"got {chunks!r}")
    if not isinstance(compile_loops, bool):
        raise ValueError(f"{name}: compile_loops must be True or False, got {compile_loops!r}")
