"""Image classification data: the local copies hold what shared/data/README.md
says, splits are disjoint and seeded, classifier augmentation works per image,
and the names old configs give under seqlab.data.images still resolve."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from seqlab.data import images as im
from seqlab.errors import ConfigError
from tests.conftest import require_data


@pytest.fixture(scope="module")
def shared() -> Path:
    return require_data(*["fashion_mnist/train-images-idx3-ubyte.gz", "mnist_t10k/t10k-images-idx3-ubyte.gz"])


# ----------------------------------------------------------------- the data README's counts
def test_fashion_mnist_counts_match_the_data_readme(shared):
    splits = im.load_fashion_mnist()
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert round(x_train.mean() / 255, 4) == 0.2860 and round(x_test.mean() / 255, 4) == 0.2868


def test_mnist_t10k_counts_match_the_data_readme(shared):
    x, y = im.load_mnist_t10k()
    assert x.shape == (10000, 28, 28)
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ----------------------------------------------------------------- splits
def test_stratified_split_is_disjoint_proportional_and_seeded():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    kept, held = im.stratified_split(labels, 10, seed=3)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 100
    assert np.bincount(labels[held]).tolist() == [5, 3, 2]
    again, _ = im.stratified_split(labels, 10, seed=3)
    other, _ = im.stratified_split(labels, 10, seed=4)
    assert (again == kept).all() and not (other == kept).all()
    _, held = im.stratified_split(labels, 7, seed=0)  # 3.5, 2.1, 1.4: largest remainders
    assert np.bincount(labels[held]).tolist() == [4, 2, 1]


def _labels(ds) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in ds])


def _hashes(ds) -> set[bytes]:
    return {hashlib.sha1(np.ascontiguousarray(x).tobytes()).digest() for b, _ in ds for x in b.numpy()}


def test_fashion_mnist_bundle_holds_out_a_stratified_validation_split(shared):
    bundle = im.build_fashion_mnist_data(batch_size=500, validation_fraction=0.1)
    assert bundle.info["train_images"] == 54000 and bundle.info["validation_images"] == 6000
    assert bundle.info["test_images"] == 10000 and bundle.steps_per_epoch == 108
    assert bundle.model_kwargs == {"input_shape": (28, 28, 1), "num_classes": 10}
    assert bundle.throughput_unit == "images" and bundle.items_per_batch == 500
    assert np.bincount(_labels(bundle.validation)).tolist() == [600] * 10
    x, y = next(iter(bundle.train))
    assert x.shape == (500, 28, 28, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    with pytest.raises(ConfigError, match="validation_fraction=0"):
        im.build_fashion_mnist_data(batch_size=500, validate_on_test=True)
    on_test = im.build_fashion_mnist_data(batch_size=500, validation_fraction=0.0, validate_on_test=True)
    assert on_test.validation is on_test.test and on_test.info["train_images"] == 60000


def test_mnist_split_is_8000_2000_disjoint_stratified_and_independent_of_the_run_seed(shared):
    a = im.build_mnist_data(batch_size=1000, seed=0)
    b = im.build_mnist_data(batch_size=1000, seed=7)
    assert (a.info["train_images"], a.info["test_images"]) == (8000, 2000) and a.validation is None
    test_labels = _labels(a.test)
    expected = np.array([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]) / 5
    assert np.abs(np.bincount(test_labels) - expected).max() < 1
    assert (test_labels == _labels(b.test)).all()
    train_hashes = _hashes(a.train.unbatch().batch(1000))  # augmentation is off for the raw check below
    raw = im.build_mnist_data(batch_size=1000, translate=0.0)
    assert len(_hashes(raw.train.unbatch().batch(1000))) == 8000
    assert not _hashes(raw.train.unbatch().batch(1000)) & _hashes(raw.test)
    assert train_hashes  # the augmented stream exists too
    with_val = im.build_mnist_data(batch_size=100, validation_fraction=0.1)
    assert (with_val.info["train_images"], with_val.info["validation_images"]) == (7200, 800)
    with pytest.raises(ConfigError, match="data.test_size"):
        im.build_mnist_data(batch_size=100, test_size=10000)


# ----------------------------------------------------------------- augmentation
def test_classifier_augmentation_flips_and_shifts_each_image():
    x = np.zeros((8, 28, 28, 1), np.float32)
    x[:, 4:10, 2:8] = 1.0  # a square off-centre, in the same place in every image
    augment = im.classifier_augmentation("horizontal", 0.1, seed=0)
    out = augment(tf.constant(x), training=True).numpy()
    assert out.shape == x.shape
    centres = {tuple(np.argwhere(o[..., 0] > 0.5).mean(0).round(1)) for o in out}
    assert len(centres) > 1  # per image, not one transform per batch
    assert im.classifier_augmentation(None, 0.0, seed=0) is None
    with pytest.raises(ConfigError, match="data.flip='sideways'"):
        im.classifier_augmentation("sideways", 0.1, seed=0)


def test_random_erasing_replaces_one_rectangle_per_image_at_the_asked_rate():
    x = tf.fill((64, 28, 28, 1), 0.5)
    out = im.classifier_augmentation(None, 0.0, seed=0, erase=0.5)(x, training=True).numpy()
    changed = np.abs(out - 0.5) > 1e-6
    erased = changed.reshape(64, -1).any(1)
    assert 16 <= erased.sum() <= 48  # p = 0.5: Binomial(64, 0.5) is 32 +- 4
    for mask in changed[erased, ..., 0]:
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        # one axis-aligned box: its bounding box is (almost) all noise, and
        # its area is the paper's 2-40 % of the image
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.mean() > 0.8  # noise clipped to [0, 1] can land on 0.5 only by chance
        assert 0.02 * 784 - 28 <= box.size <= 0.4 * 784 + 28
    assert out.min() >= 0.0 and out.max() <= 1.0
    every = im.classifier_augmentation(None, 0.0, seed=0, erase=1.0)(x, training=True).numpy()
    assert (np.abs(every - 0.5) > 1e-6).reshape(64, -1).any(1).all()
    assert np.array_equal(im.classifier_augmentation(None, 0.0, seed=0, erase=1.0)(x, training=False), x)
    for bad in (1.5, -0.1, True):
        with pytest.raises(ConfigError, match=f"data.erase={bad!r} must be a probability"):
            im.classifier_augmentation(None, 0.0, seed=0, erase=bad)


def test_old_configs_naming_seqlab_data_images_still_resolve():
    from hydra.utils import get_method

    from seqlab.data import idx, membranes, tfds_images

    assert get_method("seqlab.data.images.build_membrane_data") is membranes.build_membrane_data
    assert get_method("seqlab.data.images.build_tfds_image_data") is tfds_images.build_tfds_image_data
    assert get_method("seqlab.data.images.load_membrane") is membranes.load_membrane
    assert get_method("seqlab.data.images.read_idx") is idx.read_idx
