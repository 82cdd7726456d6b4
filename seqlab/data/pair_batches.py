"""Length-bucketed, teacher-forced batches of encoded translation pairs (``tf.data``).

One example is a sentence pair (:class:`~seqlab.data.pairs.EncodedPairs`), served as

    inputs  {"source": [B, S], "target_in": [B, T]}    source pieces + <eos>; <bos> + target pieces
    targets target_out [B, T]                          target pieces + <eos> (target_in shifted by one)
    weights [B, T] float32                             1 on real tokens, 0 on padding

Batches group pairs of similar length (buckets every ``bucket_width``
tokens, padded to the bucket's upper edge: few distinct shapes, so few XLA
compilations, and little padding). A batch holds ``batch_size`` pairs, or
with ``batch_tokens`` as many pairs as fit ``batch_tokens`` padded positions
(``batch_tokens // bucket_length``; long sentences, smaller batches).
"""

from __future__ import annotations

import numpy as np

from seqlab.data.pairs import PAD_ID, EncodedPairs


def bucket_lengths(pairs: EncodedPairs) -> np.ndarray:
    """The length a pair is bucketed by: its longer side (source, or target_in)."""
    return np.maximum(pairs.source_lengths(), pairs.target_lengths())


def bucket_plan(lengths: np.ndarray, *, batch_size: int, batch_tokens: int | None, bucket_width: int):
    """``(boundaries, batch_sizes, batches)`` for ``tf.data``'s ``bucket_by_sequence_length``.

    Bucket ``k`` holds lengths ``(k w, (k + 1) w]`` padded to ``(k + 1) w``
    (``w = bucket_width``); its batch size is ``batch_size``, or
    ``max(1, batch_tokens // ((k + 1) w))``. ``batches``: the number of
    batches one pass yields with ``drop_remainder=False``, per bucket.
    """
    top = max(int(lengths.max()), 1)
    buckets = -(-top // bucket_width)
    boundaries = [(k + 1) * bucket_width + 1 for k in range(buckets)]
    sizes = [
        max(1, batch_tokens // ((k + 1) * bucket_width)) if batch_tokens else batch_size
        for k in range(buckets)
    ]
    index = (np.maximum(lengths, 1) - 1) // bucket_width
    counts = np.bincount(index, minlength=buckets)
    return boundaries, sizes + [sizes[-1]], counts, np.asarray(sizes)


def pair_dataset(
    pairs: EncodedPairs,
    *,
    batch_size: int,
    batch_tokens: int | None = None,
    bucket_width: int = 8,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
):
    """Length-bucketed ``({"source", "target_in"}, target_out, weights)`` batches.

    Returns ``(dataset, batches per pass, target tokens per pass)``. With
    ``shuffle`` the pairs are reshuffled every pass (seeded) before they are
    bucketed; ``drop_remainder`` drops each bucket's last incomplete batch
    (training: fewer distinct batch shapes to compile; the pairs dropped
    change from pass to pass).
    """
    import tensorflow as tf

    lengths = bucket_lengths(pairs)
    boundaries, sizes, counts, bucket_sizes = bucket_plan(
        lengths, batch_size=batch_size, batch_tokens=batch_tokens, bucket_width=bucket_width
    )
    width = boundaries[-1] - 1

    def padded(rows):
        out = np.zeros((len(rows), width), dtype=np.int32)
        for i, row in enumerate(rows):
            out[i, : row.size] = row
        return out

    arrays = (
        padded(pairs.source), pairs.source_lengths().astype(np.int32),
        padded(pairs.target_in), padded(pairs.target_out), pairs.target_lengths().astype(np.int32),
    )
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)

    def unpad(source, source_len, target_in, target_out, target_len):
        return source[:source_len], target_in[:target_len], target_out[:target_len]

    def longest(source, target_in, target_out):
        return tf.maximum(tf.shape(source)[0], tf.shape(target_in)[0])

    def to_model(source, target_in, target_out):
        weights = tf.cast(tf.not_equal(target_out, PAD_ID), tf.float32)
        return {"source": source, "target_in": target_in}, target_out, weights

    ds = ds.map(unpad, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.bucket_by_sequence_length(
        longest, boundaries, sizes, padding_values=PAD_ID, pad_to_bucket_boundary=True,
        drop_remainder=drop_remainder,
    )
    ds = ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    per_bucket = counts // bucket_sizes if drop_remainder else -(-counts // bucket_sizes)
    if drop_remainder:
        # tokens of the pairs that make it into a batch, on average
        kept = np.minimum(counts, per_bucket * bucket_sizes)
        share = np.divide(kept, counts, out=np.zeros(counts.shape), where=counts > 0)
        index = (np.maximum(lengths, 1) - 1) // bucket_width
        tokens = float(np.sum(pairs.target_lengths() * share[index]))
    else:
        tokens = float(pairs.target_lengths().sum())
    return ds, int(per_bucket.sum()), tokens
