"""Image data: the local copies hold what shared/data/README.md says, splits are
disjoint and seeded, augmentation keeps masks on their images, bad files and
missing data give one clear error, and TFDS names never download here."""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from seqlab.data import images as im
from seqlab.errors import ConfigError, DataError, DataNotFoundError

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def shared() -> Path:
    path = Path(os.environ.get("SEQLAB_DATA_DIR", ""))
    needed = ["fashion_mnist/train-images-idx3-ubyte.gz", "mnist_t10k/t10k-images-idx3-ubyte.gz",
              "isbi2012_membrane/train/label/0.png"]
    if not all((path / f).is_file() for f in needed):
        message = f"the image data is not under SEQLAB_DATA_DIR={path}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


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


def test_membranes_decode_like_pillow_with_membrane_as_the_positive_class(shared):
    from PIL import Image  # the reference decoder (matplotlib's dependency)

    images, masks, unlabelled = im.load_membrane(unlabelled=True)
    assert images.shape == masks.shape == unlabelled.shape == (30, 512, 512)
    folder = shared / "isbi2012_membrane"
    for i in (0, 17, 29):
        raw_label = np.asarray(Image.open(folder / "train" / "label" / f"{i}.png"))
        assert set(np.unique(raw_label)) <= {0, 255}
        np.testing.assert_array_equal(masks[i], (raw_label == 0).astype(np.uint8))  # 0 = membrane
        np.testing.assert_array_equal(images[i], np.asarray(Image.open(folder / "train" / "image" / f"{i}.png")))
    np.testing.assert_array_equal(unlabelled[3], np.asarray(Image.open(folder / "test" / "3.png")))
    assert 0.15 < masks.mean() < 0.3  # membranes are the minority class


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


def _is_window_of(patch: np.ndarray, images: np.ndarray) -> bool:
    size = patch.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2))
    return bool(np.any(np.all(np.isclose(windows, patch, atol=1e-6), axis=(-2, -1))))


def test_membrane_training_patches_come_only_from_the_training_slices(shared):
    bundle = im.build_membrane_data(batch_size=4, image_size=64, crop_size=32, patches_per_epoch=8,
                                    flip=False, rotate90=False, mask_preview=0)
    assert bundle.model_kwargs == {"input_shape": (32, 32, 1), "num_classes": 1}
    assert (bundle.info["train_images"], bundle.info["holdout_images"]) == (24, 6)
    assert (bundle.info["labelled_images"], bundle.info["unlabelled_images"]) == (30, 30)
    assert bundle.info["holdout_slices"] == "24-29" and bundle.steps_per_epoch == 2
    images, masks, _ = im.load_membrane()
    small = tf.image.resize(images[..., None] / 255.0, (64, 64), method="area").numpy()[..., 0]
    patches = [p for x, _ in bundle.train for p in x.numpy()[..., 0]]
    assert len(patches) == 8
    for patch in patches:
        assert _is_window_of(patch, small[:24]) and not _is_window_of(patch, small[24:])
    # held-out slices, whole, as 2x2 tiles of 32: untiling gives them back
    x_test = np.concatenate([x.numpy() for x, _ in bundle.test])
    assert x_test.shape == (6 * 4, 32, 32, 1)
    np.testing.assert_allclose(im.untile(x_test, 64, 64)[..., 0], small[24:], atol=1e-6)
    assert bundle.validation is bundle.test
    with pytest.raises(ConfigError, match="crop_size=48 must divide"):
        im.build_membrane_data(batch_size=4, image_size=64, crop_size=48)
    with pytest.raises(ConfigError, match="data.holdout"):
        im.build_membrane_data(batch_size=4, holdout=30)


def test_tiles_and_untile_are_inverse():
    x = np.arange(2 * 6 * 4 * 3).reshape(2, 6, 4, 3)
    t = im.tiles(x, 2)
    assert t.shape == (12, 2, 2, 3)
    np.testing.assert_array_equal(t[1], x[0, 0:2, 2:4])  # row-major within an image
    np.testing.assert_array_equal(im.untile(t, 6, 4), x)


# ----------------------------------------------------------------- augmentation
def _blobs(size=40, seed=0) -> np.ndarray:
    """An asymmetric grey image and its mask (image > 0.5) as channels [H, W, 2]."""
    rng = np.random.default_rng(seed)
    smooth = tf.image.resize(rng.uniform(size=(1, 6, 6, 1)), (size, size), method="bicubic").numpy()[0]
    image = np.clip(smooth, 0, 1).astype(np.float32)
    image[2:6, 2:12] = 0.9  # a bar in one corner: no flip or turn leaves it in place
    return np.concatenate([image, (image > 0.5).astype(np.float32)], axis=-1)


def test_geometric_augmentation_moves_image_and_mask_together():
    stacked = _blobs()
    augment = im.segmentation_augmentation(seed=1, crop_size=24, flip=True, rotate90=True, elastic=0.0)
    outputs = [augment(tf.constant(stacked)) for _ in range(6)]
    for image, mask in outputs:
        assert image.shape == (24, 24, 1) and mask.shape == (24, 24, 1)
        np.testing.assert_array_equal(mask.numpy(), (image.numpy() > 0.5).astype(np.float32))
    distinct = {hashlib.sha1(image.numpy().tobytes()).hexdigest() for image, _ in outputs}
    assert len(distinct) >= 4  # random crops / flips / turns differ from call to call
    # inside tf.data, per example, as the bundle runs it
    ds = tf.data.Dataset.from_tensors(stacked).repeat(4).map(augment)
    for image, mask in ds:
        np.testing.assert_array_equal(mask.numpy(), (image.numpy() > 0.5).astype(np.float32))


def _distinct(augment, stacked, n=48) -> int:
    ds = tf.data.Dataset.from_tensors(stacked).repeat(n).map(augment)
    return len({hashlib.sha1(image.numpy().tobytes()).hexdigest() for image, _ in ds})


def test_flips_and_quarter_turns_reach_every_symmetry_of_the_square():
    stacked = _blobs(size=16)  # no symmetry of its own
    both = im.segmentation_augmentation(seed=0, crop_size=None, flip=True, rotate90=True, elastic=0.0)
    flips = im.segmentation_augmentation(seed=0, crop_size=None, flip=True, rotate90=False, elastic=0.0)
    turns = im.segmentation_augmentation(seed=0, crop_size=None, flip=False, rotate90=True, elastic=0.0)
    # (Keras' RandomFlip("horizontal_and_vertical") alone would give 2: one coin for both axes)
    assert (_distinct(both, stacked), _distinct(flips, stacked), _distinct(turns, stacked)) == (8, 4, 4)


def test_elastic_deformation_keeps_the_mask_binary_and_on_its_image():
    stacked = _blobs(size=48, seed=2)
    augment = im.segmentation_augmentation(seed=3, crop_size=None, flip=False, rotate90=False, elastic=0.5)
    image, mask = augment(tf.constant(stacked))
    image, mask = image.numpy(), mask.numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert not np.allclose(image, stacked[..., :1])  # it deformed
    # bilinear resampling blurs the 0.5 contour by at most a pixel: near-total agreement
    assert np.mean(mask == (image > 0.5)) > 0.97


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


# ----------------------------------------------------------------- bad files
def _idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_idx_reader_round_trips_and_checks_the_header_against_the_size(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx_bytes(array)))
    np.testing.assert_array_equal(im.read_idx(good), array)
    ints = tmp_path / "ints-idx1-ubyte"
    ints.write_bytes(_idx_bytes(np.array([1, -2, 70000], np.int32)))
    assert im.read_idx(ints).tolist() == [1, -2, 70000]

    short = tmp_path / "short-idx3-ubyte.gz"
    short.write_bytes(gzip.compress(_idx_bytes(array)[:-5]))
    with pytest.raises(DataError) as err:
        im.read_idx(short)
    message = str(err.value)
    assert str(short) in message and "2x3x4" in message and "40 bytes" in message and "35 bytes" in message
    assert "MANIFEST.sha256" in message

    long = tmp_path / "long-idx3-ubyte"
    long.write_bytes(_idx_bytes(array) + b"\0")
    with pytest.raises(DataError, match=f"{long}.*41 bytes"):
        im.read_idx(long)
    not_idx = tmp_path / "text.gz"
    not_idx.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(DataError, match=f"{not_idx}: not an IDX file"):
        im.read_idx(not_idx)
    cut_gzip = tmp_path / "cut-idx3-ubyte.gz"
    cut_gzip.write_bytes(good.read_bytes()[:-12])
    with pytest.raises(DataError, match=f"{cut_gzip}: cannot read it"):
        im.read_idx(cut_gzip)


def test_images_and_labels_of_different_lengths_name_both_files(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(np.zeros((3, 28, 28), np.uint8))))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(2, np.uint8))))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(np.zeros((1, 28, 28), np.uint8))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(1, np.uint8))))
    with pytest.raises(DataError, match="holds 3 images but .*train-labels-idx1-ubyte.gz 2 labels"):
        im.build_fashion_mnist_data(batch_size=1, path=str(tmp_path))


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(array[..., None]).numpy())


def test_an_image_and_mask_of_different_sizes_name_both_files(tmp_path):
    _write_png(tmp_path / "train" / "image" / "0.png", np.zeros((16, 16), np.uint8))
    _write_png(tmp_path / "train" / "label" / "0.png", np.full((16, 16), 255, np.uint8))
    _write_png(tmp_path / "train" / "image" / "1.png", np.zeros((16, 16), np.uint8))
    _write_png(tmp_path / "train" / "label" / "1.png", np.zeros((12, 16), np.uint8))
    with pytest.raises(DataError) as err:
        im.load_membrane(path=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "train" / "image" / "1.png") in message
    assert str(tmp_path / "train" / "label" / "1.png") in message and "16x16" in message and "16x12" in message
    (tmp_path / "train" / "label" / "1.png").unlink()
    with pytest.raises(DataError, match=r"1\.png has no mask"):
        im.load_membrane(path=str(tmp_path))


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
        im.build_tfds_image_data(name, batch_size=8, cache_dir=str(tmp_path / "cache"))
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
        im.build_membrane_data(batch_size=2)


def test_tfds_names_compose_their_pipelines_on_mock_data(tmp_path, monkeypatch):
    """The TFDS path without a download: tfds.testing.mock_data serves random
    examples shaped like the catalog's features."""
    import tensorflow_datasets as tfds

    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", "off")
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        cifar = im.build_tfds_image_data("cifar10", batch_size=4, cache_dir=str(tmp_path))
        pets = im.build_tfds_image_data("oxford_iiit_pet", batch_size=2, image_size=32,
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
        im.build_tfds_image_data("imagenet", batch_size=4)
