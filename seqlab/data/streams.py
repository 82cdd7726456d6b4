"""Token ids -> stateful truncated-BPTT batches (``data.batching: streams``).

The split is cut into ``batch_size`` contiguous streams, one per batch row,
and each stream into consecutive windows of ``seq_len`` tokens, so that row
``b`` of window ``t`` continues exactly where row ``b`` of window ``t - 1``
ended. A stateful model carries its hidden state from one window to the next
(truncated backpropagation through time, as Zaremba et al. 2014 and
AWD-LSTM train); the state is reset at the start of every epoch and of every
evaluation (:mod:`seqlab.training.stateful`).

Training (``pad=False``) follows the TensorFlow PTB tutorial's reader: the
split is trimmed to ``batch_size * L`` tokens, ``L = n // batch_size``, and
only full windows are used; the few trailing tokens are dropped.

Evaluation (``pad=True``) covers the whole split: every (input, next token)
pair is a target exactly once. Streams are ``ceil((n - 1) / batch_size)``
pairs long, the last stream and the last window are padded, and a sample
weight of 0 masks every padded target, so a token-weighted metric
(``seqlab.metrics.Perplexity``) is exactly the split's perplexity.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqlab.errors import DataError


def _check(batch_size: int, seq_len: int) -> None:
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise DataError(f"trainer.batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(seq_len, int) or seq_len <= 0:
        raise DataError(f"data.seq_len must be a positive integer, got {seq_len!r}")


def stream_arrays(
    ids: np.ndarray, batch_size: int, seq_len: int, *, pad: bool = False, split: str = "split"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of ``batch_size`` parallel streams.

    Returns ``(inputs, targets, weights)``, each ``[n_windows, batch_size,
    seq_len]``; ``weights`` is 1 for a real target and 0 for padding (all ones
    when ``pad`` is False).
    """
    _check(batch_size, seq_len)
    ids = np.asarray(ids, dtype=np.int32).reshape(-1)
    if not pad:
        length = ids.size // batch_size
        n_windows = (length - 1) // seq_len
        if n_windows < 1:
            raise DataError(
                f"the {split} split has {ids.size} tokens: cut into trainer.batch_size={batch_size} "
                f"streams of {length} tokens, fewer than data.seq_len + 1 = {seq_len + 1}; "
                "lower trainer.batch_size or data.seq_len, or use a larger corpus"
            )
        data = ids[: batch_size * length].reshape(batch_size, length)
        span = n_windows * seq_len
        inputs = data[:, :span].reshape(batch_size, n_windows, seq_len)
        targets = data[:, 1 : span + 1].reshape(batch_size, n_windows, seq_len)
        weights = np.ones(inputs.shape, dtype=np.float32)
    else:
        pairs = ids.size - 1
        if pairs < 1:
            raise DataError(
                f"the {split} split has {ids.size} tokens; at least 2 are needed to score one "
                "next-token prediction"
            )
        length = -(-pairs // batch_size)  # stream length in pairs
        n_windows = -(-length // seq_len)
        span = n_windows * seq_len

        def rows(values, fill):
            out = np.full(batch_size * length, fill, dtype=values.dtype)
            out[: values.size] = values
            out = out.reshape(batch_size, length)
            padded = np.full((batch_size, span), fill, dtype=values.dtype)
            padded[:, :length] = out
            return padded.reshape(batch_size, n_windows, seq_len)

        inputs = rows(ids[:-1], np.int32(0))
        targets = rows(ids[1:], np.int32(0))
        weights = rows(np.ones(pairs, dtype=np.float32), np.float32(0.0))
    # [B, W, T] -> [W, B, T]: window-major, one batch per window.
    return (
        np.ascontiguousarray(inputs.transpose(1, 0, 2)),
        np.ascontiguousarray(targets.transpose(1, 0, 2)),
        np.ascontiguousarray(weights.transpose(1, 0, 2)),
    )


def stream_dataset(
    ids: np.ndarray, batch_size: int, seq_len: int, *, pad: bool = False, split: str = "split"
) -> tf.data.Dataset:
    """One element per window, in stream order: ``(inputs, targets)`` for
    training (``pad=False``), ``(inputs, targets, weights)`` for evaluation."""
    inputs, targets, weights = stream_arrays(ids, batch_size, seq_len, pad=pad, split=split)
    tensors = (inputs, targets, weights) if pad else (inputs, targets)
    return tf.data.Dataset.from_tensor_slices(tensors).prefetch(tf.data.AUTOTUNE)


def num_stream_windows(n_tokens: int, batch_size: int, seq_len: int) -> int:
    """Training windows (optimizer steps) per epoch for ``n_tokens`` tokens."""
    return (n_tokens // batch_size - 1) // seq_len
