"""Seeded synthetic long-range tasks: the adding problem and the copy-memory task.

Both are generated once from ``seed`` as fixed-size train / validation / test
sets (numpy), then served as ``tf.data`` pipelines inside a :class:`DataBundle`.
The sequence length ``T`` is ``data.length``.

Adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015)
    inputs ``[T, 2]`` float32: channel 0 uniform in [0, 1]; channel 1 is 0
    except for exactly two 1s, one at a uniform position in the first half
    ``[0, T//2)`` and one in the second half ``[T//2, T)``.
    target ``[1]``: the sum of the two marked channel-0 values. Loss: MSE.
    Trivial baseline: always predict 1.0 (the target's mean), MSE = Var = 1/6.

Copy memory (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016)
    alphabet: 0 = blank, 1..8 = data symbols, 9 = delimiter ("go").
    inputs ``[T + 20]`` int32: 10 symbols uniform in 1..8, then ``T - 1``
    blanks, the delimiter, then 10 blanks.
    targets ``[T + 20]`` int32: ``T + 10`` blanks, then the 10 symbols.
    Loss: per-step sparse cross-entropy over 10 classes (logits).
    Trivial baseline: blanks everywhere, then a uniform guess over the 8 symbols
    for the last 10 steps: cross-entropy ``10 log 8 / (T + 20)`` per step.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np
import tensorflow as tf

from seqlab.data.bundle import DataBundle
from seqlab.errors import ConfigError

log = logging.getLogger(__name__)

COPY_BLANK = 0
COPY_DELIMITER = 9
COPY_NUM_SYMBOLS = 8  # data symbols 1..8
COPY_VOCAB = 10
COPY_LENGTH = 10  # symbols to remember

_SPLITS = ("train", "validation", "test")


def _check_sizes(**sizes) -> None:
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")
    if sizes["train_size"] < sizes["batch_size"]:
        raise ConfigError(
            f"data.train_size ({sizes['train_size']}) is smaller than trainer.batch_size "
            f"({sizes['batch_size']}); raise data.train_size or lower the batch size"
        )


# --------------------------------------------------------------------- generators
def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` adding-problem examples of length ``length``: (inputs [n, T, 2], targets [n, 1])."""
    if length < 2:
        raise ConfigError(f"data.length must be >= 2 for the adding problem, got {length}")
    values = rng.uniform(0.0, 1.0, size=(n, length)).astype(np.float32)
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    marks = np.zeros((n, length), dtype=np.float32)
    rows = np.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    inputs = np.stack([values, marks], axis=-1)
    targets = (values[rows, first] + values[rows, second]).astype(np.float32)[:, None]
    return inputs, targets


def copy_memory(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` copy-memory examples with delay ``length``: (inputs, targets), both [n, T + 20] int32."""
    if length < 1:
        raise ConfigError(f"data.length must be >= 1 for copy memory, got {length}")
    total = length + 2 * COPY_LENGTH
    symbols = rng.integers(1, COPY_NUM_SYMBOLS + 1, size=(n, COPY_LENGTH)).astype(np.int32)
    inputs = np.full((n, total), COPY_BLANK, dtype=np.int32)
    inputs[:, :COPY_LENGTH] = symbols
    inputs[:, COPY_LENGTH + length - 1] = COPY_DELIMITER
    targets = np.full((n, total), COPY_BLANK, dtype=np.int32)
    targets[:, -COPY_LENGTH:] = symbols
    return inputs, targets


def adding_baseline() -> float:
    """MSE of always predicting 1.0 (the mean target): Var(U1 + U2) = 1/6."""
    return 1.0 / 6.0


def copy_memory_baseline(length: int) -> float:
    """Per-step cross-entropy of 'blanks, then a uniform guess over the 8 symbols'."""
    return COPY_LENGTH * math.log(COPY_NUM_SYMBOLS) / (length + 2 * COPY_LENGTH)


# ------------------------------------------------------------------------ bundles
def _datasets(make, length, sizes, batch_size, seed):
    """One generator stream per split, from independent child seeds of ``seed``."""
    children = np.random.SeedSequence(seed).spawn(len(_SPLITS))
    out = {}
    for split, child, n in zip(_SPLITS, children, sizes, strict=True):
        x, y = make(n, length, np.random.default_rng(child))
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if split == "train":
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
            ds = ds.batch(batch_size, drop_remainder=True)
        else:
            ds = ds.batch(batch_size)
        out[split] = ds.prefetch(tf.data.AUTOTUNE)
    return out


def _mse_loss():
    return keras.losses.MeanSquaredError()


def _adding_metrics() -> list:
    return [keras.metrics.MeanAbsoluteError(name="mae")]


def _copy_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _copy_metrics() -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def build_adding_data(
    length: int,
    *,
    batch_size: int,
    seed: int = 0,
    train_size: int = 10000,
    validation_size: int = 1000,
    test_size: int = 1000,
) -> DataBundle:
    """The adding problem with sequences of ``length`` steps as a :class:`DataBundle`.

    The model receives ``input_dim=2`` and ``output_dim=1``.
    """
    _check_sizes(length=length, batch_size=batch_size, train_size=train_size,
                 validation_size=validation_size, test_size=test_size)
    ds = _datasets(adding_problem, length, (train_size, validation_size, test_size), batch_size, seed)
    info = {
        "task": "adding",
        "length": length,
        "train_size": train_size,
        "validation_size": validation_size,
        "test_size": test_size,
        "baseline_loss": round(adding_baseline(), 6),
    }
    log.info("adding problem: %s", info)
    return DataBundle(
        train=ds["train"],
        validation=ds["validation"],
        test=ds["test"],
        model_kwargs={"input_dim": 2, "output_dim": 1},
        loss=_mse_loss,
        metrics=_adding_metrics,
        steps_per_epoch=train_size // batch_size,
        throughput_unit="sequences",
        items_per_batch=batch_size,
        info=info,
    )


def build_copy_memory_data(
    length: int,
    *,
    batch_size: int,
    seed: int = 0,
    train_size: int = 10000,
    validation_size: int = 1000,
    test_size: int = 1000,
) -> DataBundle:
    """The copy-memory task with a delay of ``length`` blanks (sequences of ``length + 20``).

    The model receives ``vocab_size=10`` (input symbols) and
    ``num_classes=10`` (per-step outputs).
    """
    _check_sizes(length=length, batch_size=batch_size, train_size=train_size,
                 validation_size=validation_size, test_size=test_size)
    ds = _datasets(copy_memory, length, (train_size, validation_size, test_size), batch_size, seed)
    info = {
        "task": "copy_memory",
        "length": length,
        "sequence_length": length + 2 * COPY_LENGTH,
        "train_size": train_size,
        "validation_size": validation_size,
        "test_size": test_size,
        "baseline_loss": round(copy_memory_baseline(length), 6),
    }
    log.info("copy memory: %s", info)
    return DataBundle(
        train=ds["train"],
        validation=ds["validation"],
        test=ds["test"],
        model_kwargs={"vocab_size": COPY_VOCAB, "num_classes": COPY_VOCAB},
        loss=_copy_loss,
        metrics=_copy_metrics,
        steps_per_epoch=train_size // batch_size,
        throughput_unit="sequences",
        items_per_batch=batch_size,
        info=info,
    )
