import numpy as np
import pytest

from seqlab.data.windows import lm_dataset, window_arrays
from seqlab.errors import DataError


def test_targets_are_inputs_shifted_by_one():
    ids = np.arange(1, 42, dtype=np.int32)  # 41 tokens
    x, y = window_arrays(ids, seq_len=8)
    assert x.shape == y.shape == (5, 8)  # (41 - 1) // 8
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    # Windows tile the split: every token but the first is a target once.
    np.testing.assert_array_equal(y.reshape(-1), ids[1:41])
    np.testing.assert_array_equal(x.reshape(-1), ids[:40])


def test_windows_never_cross_the_split_boundary():
    train = np.arange(0, 100, dtype=np.int32)
    valid = np.arange(1000, 1030, dtype=np.int32)
    for ids in (train, valid):
        x, y = window_arrays(ids, seq_len=7)
        assert set(np.concatenate([x.ravel(), y.ravel()])) <= set(ids.tolist())


def test_split_shorter_than_a_window_is_a_clear_error():
    with pytest.raises(DataError, match=r"validation split has 5 tokens.*seq_len \+ 1 = 9"):
        window_arrays(np.arange(5), seq_len=8, split="validation")


def test_dataset_is_deterministic_for_a_seed_and_reshuffles_each_epoch():
    ids = np.arange(2000, dtype=np.int32)

    def epochs(seed):
        ds = lm_dataset(ids, 10, 16, shuffle=True, seed=seed)
        return [np.concatenate([x.numpy()[:, 0] for x, _ in ds]) for _ in range(2)]

    a, b = epochs(3), epochs(3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # new order every epoch
    assert sorted(a[0].tolist()) == sorted(a[1].tolist())  # same windows
    assert not np.array_equal(a[0], epochs(4)[0])


def test_unshuffled_dataset_keeps_order_and_last_partial_batch():
    ids = np.arange(1 + 10 * 5, dtype=np.int32)  # 5 windows of 10
    batches = list(lm_dataset(ids, 10, 2, shuffle=False))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(batches[0][0].numpy()[0], np.arange(10))
