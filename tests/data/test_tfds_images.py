"""The TFDS catalog path: TFDS names never download here, offline they (and a
missing local copy) fail fast saying why, and the pipelines compose on mock data."""

from __future__ import annotations

import socket
import time

import pytest
import tensorflow as tf

from seqlab.data import images as im
from seqlab.data import membranes as mb
from seqlab.data import tfds_images as ti
from seqlab.errors import ConfigError, DataNotFoundError


# ----------------------------------------------------------------- offline, TFDS
def _closed_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", f"127.0.0.1:{_closed_local_port()}")
    import tensorflow_datasets as tfds

    def refuse(*args, **kwargs):
        raise AssertionError(f"TFDS was called offline: {args} {kwargs}")

    monkeypatch.setattr(tfds, "load", refuse)
    monkeypatch.setattr(tfds, "builder", refuse)


@pytest.mark.parametrize("name, instead", [("cifar10", None), ("fashion_mnist", "data=fashion_mnist"),
                                           ("oxford_iiit_pet", None), ("mnist", "data=mnist")])
def test_an_offline_tfds_name_fails_fast_and_says_why(tmp_path, offline, name, instead):
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as err:
        ti.build_tfds_image_data(name, batch_size=8, cache_dir=str(tmp_path / "cache"))
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert f"TFDS catalog {name!r} (not tried: offline, the download host 127.0.0.1:" in message
    assert "ConnectionRefusedError" in message and "once with network access" in message
    assert str(tmp_path / "cache") in message
    assert (instead in message) if instead else "local copy" not in message


def test_a_missing_local_copy_offline_names_the_folder_and_the_catalog(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEQLAB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError) as err:
        im.build_mnist_data(batch_size=8)
    message = str(err.value)
    assert str(tmp_path / "data" / "mnist_t10k") in message and "SEQLAB_DATA_DIR" in message
    assert "TFDS catalog 'mnist' (not tried: offline" in message
    with pytest.raises(DataNotFoundError, match="isbi2012_membrane.*no TFDS catalog entry"):
        mb.build_membrane_data(batch_size=2)


def test_tfds_names_compose_their_pipelines_on_mock_data(tmp_path, monkeypatch):
    """The TFDS path without a download: tfds.testing.mock_data serves random
    examples shaped like the catalog's features."""
    import tensorflow_datasets as tfds

    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", "off")
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        cifar = ti.build_tfds_image_data("cifar10", batch_size=4, cache_dir=str(tmp_path))
        pets = ti.build_tfds_image_data("oxford_iiit_pet", batch_size=2, image_size=32,
                                        cache_dir=str(tmp_path))
        x, y = next(iter(cifar.train))
        assert cifar.model_kwargs == {"input_shape": (32, 32, 3), "num_classes": 10}
        assert x.shape == (4, 32, 32, 3) and y.shape == (4,) and float(tf.reduce_max(x)) <= 1.0
        assert [m.name for m in cifar.metrics()] == ["accuracy"]
        x, y = next(iter(pets.train))
        assert pets.model_kwargs == {"input_shape": (32, 32, 3), "num_classes": 3}
        assert x.shape == (2, 32, 32, 3) and y.shape == (2, 32, 32, 1) and y.dtype == tf.int32
        assert [m.name for m in pets.metrics()] == ["pixel_accuracy", "iou", "dice"]
        assert pets.metrics()[1].positive_class == 0  # the pet
    with pytest.raises(ConfigError, match="unknown TFDS image dataset data.name='imagenet'"):
        ti.build_tfds_image_data("imagenet", batch_size=4)
