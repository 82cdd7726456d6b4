"""Token ids -> ``tf.data`` pipelines of teacher-forcing windows.

A window is ``seq_len + 1`` consecutive tokens; the input is its first
``seq_len`` tokens and the target the last ``seq_len`` (the input shifted by
one). Windows are cut from one split at a time, so none crosses a split
boundary, and they tile the split without overlap (stride ``seq_len``): every
token except the first is a target exactly once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqlab.errors import DataError


def window_arrays(ids: np.ndarray, seq_len: int, split: str = "split") -> tuple[np.ndarray, np.ndarray]:
    """Cut ``ids`` into ``(inputs, targets)`` arrays of shape ``[n, seq_len]``."""
    ids = np.asarray(ids, dtype=np.int32).reshape(-1)
    if seq_len <= 0:
        raise DataError(f"data.seq_len must be positive, got {seq_len}")
    n = (ids.size - 1) // seq_len
    if n < 1:
        raise DataError(
            f"the {split} split has {ids.size} tokens, fewer than data.seq_len + 1 = "
            f"{seq_len + 1}; lower data.seq_len or use a larger corpus"
        )
    # Two strided views of one buffer: no copy of the corpus per window.
    inputs = ids[: n * seq_len].reshape(n, seq_len)
    targets = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return inputs, targets


def lm_dataset(
    ids: np.ndarray,
    seq_len: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    split: str = "split",
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batched ``(inputs, targets)`` windows, optionally shuffled with ``seed``.

    Shuffling uses the full window count as buffer and a fixed seed with
    ``reshuffle_each_iteration``: every epoch sees a new order, and the whole
    sequence of orders is the same for the same seed.
    """
    if batch_size <= 0:
        raise DataError(f"trainer.batch_size must be positive, got {batch_size}")
    inputs, targets = window_arrays(ids, seq_len, split)
    ds = tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle:
        ds = ds.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
