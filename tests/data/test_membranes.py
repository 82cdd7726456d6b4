"""The ISBI 2012 membranes: the local copy decodes as shared/data/README.md says
with membrane as the positive class, training patches come only from the
training slices, augmentation keeps masks on their images, and an image
without its mask (or of another size) gives one clear error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from seqlab.data import membranes as mb
from seqlab.errors import ConfigError, DataError
from tests.conftest import require_data


@pytest.fixture(scope="module")
def shared() -> Path:
    return require_data(*["isbi2012_membrane/train/label/0.png"])


def test_membranes_decode_like_pillow_with_membrane_as_the_positive_class(shared):
    from PIL import Image  # the reference decoder (matplotlib's dependency)

    images, masks, unlabelled = mb.load_membrane(unlabelled=True)
    assert images.shape == masks.shape == unlabelled.shape == (30, 512, 512)
    folder = shared / "isbi2012_membrane"
    for i in (0, 17, 29):
        raw_label = np.asarray(Image.open(folder / "train" / "label" / f"{i}.png"))
        assert set(np.unique(raw_label)) <= {0, 255}
        np.testing.assert_array_equal(masks[i], (raw_label == 0).astype(np.uint8))  # 0 = membrane
        np.testing.assert_array_equal(images[i], np.asarray(Image.open(folder / "train" / "image" / f"{i}.png")))
    np.testing.assert_array_equal(unlabelled[3], np.asarray(Image.open(folder / "test" / "3.png")))
    assert 0.15 < masks.mean() < 0.3  # membranes are the minority class


def _is_window_of(patch: np.ndarray, images: np.ndarray) -> bool:
    size = patch.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2))
    return bool(np.any(np.all(np.isclose(windows, patch, atol=1e-6), axis=(-2, -1))))


def test_membrane_training_patches_come_only_from_the_training_slices(shared):
    bundle = mb.build_membrane_data(batch_size=4, image_size=64, crop_size=32, patches_per_epoch=8,
                                    flip=False, rotate90=False, mask_preview=0)
    assert bundle.model_kwargs == {"input_shape": (32, 32, 1), "num_classes": 1}
    assert (bundle.info["train_images"], bundle.info["holdout_images"]) == (24, 6)
    assert (bundle.info["labelled_images"], bundle.info["unlabelled_images"]) == (30, 30)
    assert bundle.info["holdout_slices"] == "24-29" and bundle.steps_per_epoch == 2
    images, masks, _ = mb.load_membrane()
    small = tf.image.resize(images[..., None] / 255.0, (64, 64), method="area").numpy()[..., 0]
    patches = [p for x, _ in bundle.train for p in x.numpy()[..., 0]]
    assert len(patches) == 8
    for patch in patches:
        assert _is_window_of(patch, small[:24]) and not _is_window_of(patch, small[24:])
    # held-out slices, whole, as 2x2 tiles of 32: untiling gives them back
    x_test = np.concatenate([x.numpy() for x, _ in bundle.test])
    assert x_test.shape == (6 * 4, 32, 32, 1)
    np.testing.assert_allclose(mb.untile(x_test, 64, 64)[..., 0], small[24:], atol=1e-6)
    assert bundle.validation is bundle.test
    with pytest.raises(ConfigError, match="crop_size=48 must divide"):
        mb.build_membrane_data(batch_size=4, image_size=64, crop_size=48)
    with pytest.raises(ConfigError, match="data.holdout"):
        mb.build_membrane_data(batch_size=4, holdout=30)


def test_tiles_and_untile_are_inverse():
    x = np.arange(2 * 6 * 4 * 3).reshape(2, 6, 4, 3)
    t = mb.tiles(x, 2)
    assert t.shape == (12, 2, 2, 3)
    np.testing.assert_array_equal(t[1], x[0, 0:2, 2:4])  # row-major within an image
    np.testing.assert_array_equal(mb.untile(t, 6, 4), x)


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
    augment = mb.segmentation_augmentation(seed=1, crop_size=24, flip=True, rotate90=True, elastic=0.0)
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
    both = mb.segmentation_augmentation(seed=0, crop_size=None, flip=True, rotate90=True, elastic=0.0)
    flips = mb.segmentation_augmentation(seed=0, crop_size=None, flip=True, rotate90=False, elastic=0.0)
    turns = mb.segmentation_augmentation(seed=0, crop_size=None, flip=False, rotate90=True, elastic=0.0)
    # (Keras' RandomFlip("horizontal_and_vertical") alone would give 2: one coin for both axes)
    assert (_distinct(both, stacked), _distinct(flips, stacked), _distinct(turns, stacked)) == (8, 4, 4)


def test_elastic_deformation_keeps_the_mask_binary_and_on_its_image():
    stacked = _blobs(size=48, seed=2)
    augment = mb.segmentation_augmentation(seed=3, crop_size=None, flip=False, rotate90=False, elastic=0.5)
    image, mask = augment(tf.constant(stacked))
    image, mask = image.numpy(), mask.numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert not np.allclose(image, stacked[..., :1])  # it deformed
    # bilinear resampling blurs the 0.5 contour by at most a pixel: near-total agreement
    assert np.mean(mask == (image > 0.5)) > 0.97


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(array[..., None]).numpy())


def test_an_image_and_mask_of_different_sizes_name_both_files(tmp_path):
    _write_png(tmp_path / "train" / "image" / "0.png", np.zeros((16, 16), np.uint8))
    _write_png(tmp_path / "train" / "label" / "0.png", np.full((16, 16), 255, np.uint8))
    _write_png(tmp_path / "train" / "image" / "1.png", np.zeros((16, 16), np.uint8))
    _write_png(tmp_path / "train" / "label" / "1.png", np.zeros((12, 16), np.uint8))
    with pytest.raises(DataError) as err:
        mb.load_membrane(path=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "train" / "image" / "1.png") in message
    assert str(tmp_path / "train" / "label" / "1.png") in message and "16x16" in message and "16x12" in message
    (tmp_path / "train" / "label" / "1.png").unlink()
    with pytest.raises(DataError, match=r"1\.png has no mask"):
        mb.load_membrane(path=str(tmp_path))
