"""Adding problem and copy memory: layout, targets, seeding, baselines."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from seqlab.data.synthetic import (
    adding_problem,
    build_adding_data,
    build_copy_memory_data,
    copy_memory,
    copy_memory_baseline,
)
from seqlab.errors import ConfigError


@pytest.mark.parametrize("length", [2, 7, 50])
def test_adding_targets_are_the_sum_of_the_two_marked_values(length):
    x, y = adding_problem(500, length, np.random.default_rng(0))
    assert x.shape == (500, length, 2) and y.shape == (500, 1)
    assert x.dtype == np.float32
    marks = x[..., 1]
    assert set(np.unique(marks)) <= {0.0, 1.0}
    assert (marks.sum(axis=1) == 2).all()
    half = length // 2
    assert (marks[:, :half].sum(axis=1) == 1).all() and (marks[:, half:].sum(axis=1) == 1).all()
    for i in range(500):
        (pos,) = np.nonzero(marks[i])
        assert y[i, 0] == pytest.approx(x[i, pos[0], 0] + x[i, pos[1], 0], abs=1e-6)
    assert (x[..., 0] >= 0).all() and (x[..., 0] <= 1).all()


def test_adding_bundle_is_seeded_and_its_baseline_holds():
    a = build_adding_data(30, batch_size=10, seed=3, train_size=40, validation_size=2000, test_size=20)
    b = build_adding_data(30, batch_size=10, seed=3, train_size=40, validation_size=2000, test_size=20)
    c = build_adding_data(30, batch_size=10, seed=4, train_size=40, validation_size=2000, test_size=20)
    xa, ya = next(iter(a.validation))
    xb, _ = next(iter(b.validation))
    xc, _ = next(iter(c.validation))
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)
    assert xa.shape == (10, 30, 2) and ya.shape == (10, 1)
    # splits are different samples
    xt, _ = next(iter(a.test))
    assert not np.array_equal(xa, xt)
    assert a.steps_per_epoch == 4 and len(list(a.train)) == 4
    assert a.model_kwargs == {"input_dim": 2, "output_dim": 1}
    # predicting 1.0 always: MSE ~ 1/6 (2000 samples: standard error ~ 0.005)
    ys = np.concatenate([y.numpy() for _, y in a.validation])
    assert float(np.mean((ys - 1.0) ** 2)) == pytest.approx(1 / 6, abs=0.02)
    assert a.info["baseline_loss"] == pytest.approx(1 / 6, abs=1e-6)
    assert float(a.loss()(ys, np.ones_like(ys))) == pytest.approx(float(np.mean((ys - 1.0) ** 2)), rel=1e-5)


@pytest.mark.parametrize("length", [1, 5, 30])
def test_copy_memory_layout(length):
    x, y = copy_memory(200, length, np.random.default_rng(1))
    total = length + 20
    assert x.shape == y.shape == (200, total) and x.dtype == np.int32
    symbols = x[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (x[:, 10 : 10 + length - 1] == 0).all()  # T - 1 blanks
    assert (x[:, 10 + length - 1] == 9).all()  # the delimiter
    assert (x[:, 10 + length :] == 0).all()  # 10 blanks while recalling
    assert ((x == 9).sum(axis=1) == 1).all()
    assert (y[:, : length + 10] == 0).all()
    np.testing.assert_array_equal(y[:, -10:], symbols)


def test_copy_memory_baseline_is_the_cross_entropy_of_the_memoryless_guess():
    length = 40
    bundle = build_copy_memory_data(length, batch_size=25, seed=0, train_size=50, validation_size=50,
                                    test_size=50)
    _, y = next(iter(bundle.test))
    # blanks with certainty, then uniform over symbols 1..8 for the last 10 steps
    logits = np.full((25, length + 20, 10), -1e9, np.float32)
    logits[:, : length + 10, 0] = 0.0
    logits[:, length + 10 :, 1:9] = 0.0
    loss = float(bundle.loss()(y, logits))
    assert loss == pytest.approx(10 * math.log(8) / (length + 20), rel=1e-5)
    assert loss == pytest.approx(copy_memory_baseline(length), rel=1e-5)
    assert bundle.model_kwargs == {"vocab_size": 10, "num_classes": 10}
    assert isinstance(bundle.metrics()[0], keras.metrics.Metric)


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="data.length"):
        build_adding_data(0, batch_size=4)
    with pytest.raises(ConfigError, match="train_size"):
        build_copy_memory_data(10, batch_size=64, train_size=10)
    for build in (build_adding_data, build_copy_memory_data):
        with pytest.raises(ConfigError, match=r"data.train_size \(10\) is smaller than trainer.batch_size \(64\)"):
            build(10, batch_size=64, train_size=10)
