"""The IDX reader: arrays round-trip, and bad files (truncated, too long, not
IDX, broken gzip, images and labels of different lengths) give one clear error
naming the file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from seqlab.data import idx
from seqlab.data import images as im
from seqlab.errors import DataError


def _idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_idx_reader_round_trips_and_checks_the_header_against_the_size(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx_bytes(array)))
    np.testing.assert_array_equal(idx.read_idx(good), array)
    ints = tmp_path / "ints-idx1-ubyte"
    ints.write_bytes(_idx_bytes(np.array([1, -2, 70000], np.int32)))
    assert idx.read_idx(ints).tolist() == [1, -2, 70000]

    short = tmp_path / "short-idx3-ubyte.gz"
    short.write_bytes(gzip.compress(_idx_bytes(array)[:-5]))
    with pytest.raises(DataError) as err:
        idx.read_idx(short)
    message = str(err.value)
    assert str(short) in message and "2x3x4" in message and "40 bytes" in message and "35 bytes" in message
    assert "MANIFEST.sha256" in message

    long = tmp_path / "long-idx3-ubyte"
    long.write_bytes(_idx_bytes(array) + b"\0")
    with pytest.raises(DataError, match=f"{long}.*41 bytes"):
        idx.read_idx(long)
    not_idx = tmp_path / "text.gz"
    not_idx.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(DataError, match=f"{not_idx}: not an IDX file"):
        idx.read_idx(not_idx)
    cut_gzip = tmp_path / "cut-idx3-ubyte.gz"
    cut_gzip.write_bytes(good.read_bytes()[:-12])
    with pytest.raises(DataError, match=f"{cut_gzip}: cannot read it"):
        idx.read_idx(cut_gzip)


def test_images_and_labels_of_different_lengths_name_both_files(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(np.zeros((3, 28, 28), np.uint8))))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(2, np.uint8))))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(np.zeros((1, 28, 28), np.uint8))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(1, np.uint8))))
    with pytest.raises(DataError, match="holds 3 images but .*train-labels-idx1-ubyte.gz 2 labels"):
        im.build_fashion_mnist_data(batch_size=1, path=str(tmp_path))
