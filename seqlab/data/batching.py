"""Padded, length-bucketed batches of id sequences as a ``tf.data`` pipeline.

Shared by the labelled-sequence tasks and :mod:`seqlab.data.tagging`: id 0 is
padding everywhere; batches are bucketed by length (``bucket_width``): every
batch is cut to its longest sequence rounded up to a multiple of
``bucket_width``, so there are few distinct shapes (a fused recurrent kernel
compiles once per length). Training batches are reshuffled every epoch from
``seed``; the number of batches is exact (``steps_per_epoch``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from seqlab.errors import ConfigError


def pad_ids(sequences: Sequence[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad int sequences with 0 to ``[N, length]`` (default: the
    longest; longer ones are cut). Returns ``(ids, lengths)``; trailing
    dimensions (feature columns ``[L, F]``) are kept."""
    lengths = np.array([min(len(s), length) if length else len(s) for s in sequences], np.int64)
    width = int(length or (lengths.max() if lengths.size else 0))
    first = np.asarray(sequences[0]) if len(sequences) else np.zeros(0, np.int32)
    out = np.zeros((len(sequences), width, *first.shape[1:]), np.int32)
    for i, (s, n) in enumerate(zip(sequences, lengths, strict=True)):
        out[i, :n] = np.asarray(s)[:n]
    return out, lengths


def bucket_batches(
    lengths: np.ndarray, batch_size: int, bucket_width: int, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Example indices of each batch: examples grouped by their length rounded
    up to ``bucket_width``; with ``rng``, shuffled within buckets and the
    batches in random order, else in length order. The number of batches,
    ``sum_b ceil(n_b / batch_size)``, does not depend on ``rng``."""
    keys = np.ceil(np.maximum(lengths, 1) / bucket_width).astype(np.int64)
    batches = []
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        if rng is not None:
            idx = rng.permutation(idx)
        batches += [idx[i : i + batch_size] for i in range(0, idx.size, batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def bucketed_dataset(
    arrays: dict[str, np.ndarray],
    lengths: np.ndarray,
    element: Callable[[dict[str, Any]], tuple],
    *,
    batch_size: int,
    bucket_width: int,
    shuffle: bool,
    seed: int = 0,
    time_keys: Sequence[str] = (),
) -> tuple[tf.data.Dataset, int]:
    """Batches of ``element(batch)`` with the arrays of ``time_keys`` (``[N, L, ...]``)
    cut to the batch's bucket length; ``(dataset, batches per pass)``.

    Training data (``shuffle``) is reshuffled each pass with the seeds
    ``(seed, pass)``, so a run is reproducible.
    """
    if isinstance(bucket_width, bool) or not isinstance(bucket_width, int) or bucket_width < 1:
        raise ConfigError(f"data.bucket_width must be a positive integer, got {bucket_width!r}")
    lengths = np.asarray(lengths)
    width = max((arrays[k].shape[1] for k in time_keys), default=0)
    num_batches = len(bucket_batches(lengths, batch_size, bucket_width))
    passes = [0]

    def generate():
        rng = np.random.default_rng([seed, passes[0]]) if shuffle else None
        passes[0] += 1
        for idx in bucket_batches(lengths, batch_size, bucket_width, rng):
            cut = min(width, int(math.ceil(max(int(lengths[idx].max()), 1) / bucket_width) * bucket_width))
            yield {k: (v[idx, :cut] if k in time_keys else v[idx]) for k, v in arrays.items()}

    signature = {
        k: tf.TensorSpec((None, None, *v.shape[2:]) if k in time_keys else (None, *v.shape[1:]),
                         tf.as_dtype(v.dtype))
        for k, v in arrays.items()
    }
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.map(element, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), num_batches


def _check_batch(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"trainer.batch_size must be a positive integer, got {batch_size!r}")


def _check_max_len(max_len) -> None:
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ConfigError(f"data.max_len must be a positive integer or null, got {max_len!r}")
