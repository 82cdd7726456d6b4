"""``data.seq_len_schedule``: a curriculum on the window length of LM training data.

Starting with shorter windows (the LM notes: "starting with shorter
sequences"; Li et al. 2022, sequence-length warmup) makes early steps cheaper
(fewer sequential steps for a recurrent model, a smaller ``T^2`` for
attention) while the model learns local statistics, then trains at the full
context. The schedule is a list of ``[epoch, seq_len]`` pairs, epochs
counted from 0, each pair in force from its epoch until the next one::

    data.seq_len_schedule=[[0,32],[1,64],[2,128]]   # 32, then 64, then 128 from epoch 2 on

**What stays fixed**: ``data.seq_len`` (``T``) is the model's context (a
Transformer's position table, ``max_length``) and the length validation and
test are scored at, so ``val_loss`` compares with a fixed-length run. Every
training batch keeps ``B x T`` tokens (``trainer.batch_size`` x
``data.seq_len``): a stage of length ``L`` batches ``B x T / L`` windows of
``L`` tokens (``L`` must divide ``B x T``). Every epoch is the same ``S``
optimizer steps, ``S`` = the steps of one pass at length ``T``, so
``steps_per_epoch``, tokens per step and per epoch, the ``tokens_per_sec``
unit and a learning-rate schedule over ``epochs x S`` optimizer steps mean
what they mean without a curriculum. A stage's epoch is one pass over the
training tokens, cut afresh into windows of ``L`` (offset 0, stride ``L``)
and shuffled with a seed of ``(data seed, epoch)``; the tokens that do not
fill the ``S``-th batch (fewer than one batch) are left out of that epoch.

**How it reaches ``fit``**: Keras reads one dataset for the whole of ``fit``
and creates a new iterator of it at the start of each epoch (``trainer.
steps_per_epoch: null``), after the callbacks' ``on_epoch_begin``.
:class:`SeqLenCurriculum` (a bundle callback) writes the epoch into a
variable there, and the dataset (:func:`curriculum_dataset`) reads it when
the iterator is made, so each epoch's windows have that epoch's length
exactly. It also logs the epoch's window length as the metric ``seq_len``.
This needs one iterator per epoch: ``trainer.steps_per_epoch`` must be null
(one pass per epoch), which :func:`seqlab.experiment.validate` checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from seqlab.errors import ConfigError

KEY = "data.seq_len_schedule"


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_seq_len_schedule(
    schedule, *, seq_len: int, batch_size: int, batching: str = "windows"
) -> list[tuple[int, int]] | None:
    """The schedule as ``[(first_epoch, seq_len), ...]``, or None for none.

    Raises :class:`ConfigError` naming the bad entry: not a list of
    ``[epoch, seq_len]`` pairs, epochs not starting at 0 or not increasing, a
    length that is not a positive integer, longer than ``data.seq_len`` (the
    model's context) or not dividing the ``batch_size x seq_len`` tokens of a
    batch; or stateful streams (``data.batching=streams``), whose carried
    states need one window length.

    >>> check_seq_len_schedule([[0, 32], [2, 128]], seq_len=128, batch_size=16)
    [(0, 32), (2, 128)]
    """
    if schedule is None:
        return None
    example = f"e.g. {KEY}=[[0,{max(1, seq_len // 4)}],[2,{seq_len}]] ([epoch, seq_len] pairs from epoch 0)"
    if batching != "windows":
        raise ConfigError(
            f"{KEY} needs data.batching=windows (stateful streams carry states between windows of one "
            f"length), got data.batching={batching!r}; set {KEY}=null or data.batching=windows"
        )
    if isinstance(schedule, str) or not isinstance(schedule, Sequence) or not schedule:
        raise ConfigError(f"{KEY}={schedule!r}: expected a non-empty list of [epoch, seq_len] pairs, {example}")
    stages: list[tuple[int, int]] = []
    tokens = batch_size * seq_len
    for i, entry in enumerate(schedule):
        if (isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) != 2
                or not all(_is_int(v) for v in entry)):
            raise ConfigError(f"{KEY}[{i}]={entry!r}: expected a pair of integers [epoch, seq_len], {example}")
        epoch, length = int(entry[0]), int(entry[1])
        if i == 0 and epoch != 0:
            raise ConfigError(f"{KEY}[0]={list(entry)}: the first stage must start at epoch 0, {example}")
        if i > 0 and epoch <= stages[-1][0]:
            raise ConfigError(
                f"{KEY}[{i}]={list(entry)}: epochs must increase, but epoch {epoch} follows epoch {stages[-1][0]}"
            )
        if length <= 0 or length > seq_len:
            raise ConfigError(
                f"{KEY}[{i}]={list(entry)}: seq_len {length} must be in 1..data.seq_len={seq_len} (the "
                f"model's context and the length validation is scored at); raise data.seq_len or "
                f"shorten the stage"
            )
        if tokens % length:
            raise ConfigError(
                f"{KEY}[{i}]={list(entry)}: seq_len {length} must divide the {tokens} tokens of a batch "
                f"(trainer.batch_size={batch_size} x data.seq_len={seq_len}), so every step trains on as "
                f"many tokens; e.g. use a power of two"
            )
        stages.append((epoch, length))
    return stages


def length_at(stages: list[tuple[int, int]], epoch: int) -> int:
    """The window length in force at ``epoch``.

    >>> length_at([(0, 32), (2, 128)], 1), length_at([(0, 32), (2, 128)], 5)
    (32, 128)
    """
    return [length for first, length in stages if first <= epoch][-1]


def curriculum_dataset(
    ids: np.ndarray,
    stages: list[tuple[int, int]],
    *,
    seq_len: int,
    batch_size: int,
    seed: int,
    epoch: tf.Variable,
) -> tuple[tf.data.Dataset, int]:
    """The training windows of the epoch held in ``epoch`` when an iterator is made.

    Returns ``(dataset, steps)``: each iterator yields exactly ``steps``
    batches (the batches of one pass at ``seq_len``) of
    ``batch_size x seq_len / L`` shuffled windows of the epoch's length
    ``L`` (``inputs, targets``, each ``[B x T / L, L]``).
    """
    ids = np.asarray(ids, dtype=np.int32).reshape(-1)
    windows = (ids.size - 1) // seq_len
    if windows < 1:
        raise ConfigError(
            f"the train split has {ids.size} tokens, fewer than data.seq_len + 1 = {seq_len + 1}; lower "
            "data.seq_len or use a larger corpus"
        )
    # One pass at length T; at L < T a pass has >= T/L times the windows and
    # T/L times the batch, hence at least as many batches: take exactly these.
    steps = -(-windows // batch_size)
    tokens = batch_size * seq_len
    firsts = tf.constant([first for first, _ in stages], tf.int64)
    lengths = tf.constant([length for _, length in stages], tf.int64)
    corpus = tf.constant(ids)
    n_tokens = tf.constant(ids.size, tf.int64)
    seed64 = tf.constant(int(seed), tf.int64)

    def epoch_windows(_):
        current = tf.cast(epoch.read_value(), tf.int64)
        length = tf.gather(lengths, tf.reduce_sum(tf.cast(firsts <= current, tf.int32)) - 1)
        n = (n_tokens - 1) // length
        inputs = tf.reshape(corpus[: n * length], tf.stack([n, length]))
        targets = tf.reshape(corpus[1 : n * length + 1], tf.stack([n, length]))
        # A new order every epoch, the same orders for the same seed (a
        # stateless shuffle: independent of the global seed and of what
        # other pipelines drew).
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed64, current]))
        windows = (tf.gather(inputs, order), tf.gather(targets, order))
        return tf.data.Dataset.from_tensor_slices(windows).batch(tokens // length).take(steps)

    dataset = tf.data.Dataset.range(1).flat_map(epoch_windows)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return dataset.prefetch(tf.data.AUTOTUNE), steps


class SeqLenCurriculum(keras.callbacks.Callback):
    """Sets the epoch the curriculum dataset reads, and logs its ``seq_len``.

    Keras makes an epoch's data iterator after ``on_epoch_begin``; the
    dataset of :func:`curriculum_dataset` reads the variable then.
    """

    def __init__(self, stages: list[tuple[int, int]], epoch: tf.Variable):
        super().__init__()
        self.stages = stages
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(int(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seq_len"] = float(length_at(self.stages, int(epoch)))


def epoch_variable() -> tf.Variable:
    """The variable :class:`SeqLenCurriculum` writes and the dataset reads (on the CPU)."""
    with tf.device("/cpu:0"):
        return tf.Variable(0, dtype=tf.int64, trainable=False, name="curriculum_epoch")
