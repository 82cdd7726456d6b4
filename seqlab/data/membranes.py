"""The ISBI 2012 EM membranes as binary segmentation (:func:`build_membrane_data`).

A local copy only (there is no TFDS catalog entry): ``data.path``, else
``$SEQLAB_DATA_DIR/isbi2012_membrane/``; missing, the loader fails naming
``SEQLAB_DATA_DIR`` and the folder it looked in. Format and checked counts:
``shared/data/README.md``.

``isbi2012_membrane`` (:func:`build_membrane_data`)
    30 labelled 512x512 grey EM slices (``train/image/i.png`` with
    ``train/label/i.png``) and 30 unlabelled ones (``test/i.png``). In the
    label files 0 = membrane, 255 = cell interior; seqlab's masks are
    **1 = membrane** (the positive class, scored by IoU and Dice), 0 =
    interior. The last ``holdout`` slices (a contiguous block: neighbouring
    slices look alike) are held out for evaluation.

Pixels are scaled to [0, 1] (``float32``). Augmentation runs inside the
``tf.data`` pipeline with Keras preprocessing layers, training split only:
random crops, flips, quarter turns and optionally elastic deformation,
applied to the image and its mask stacked as channels, so they stay aligned.
Held-out slices are scored whole, as non-overlapping tiles (:func:`tiles`,
:func:`untile`).

The bundle hands the model builders ``input_shape`` ``(H, W, 1)`` and
``num_classes`` 1 (a binary mask: one logit channel); the loss and metrics
take logits.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqlab.data._image_common import _local_folder, _not_found, random_flips
from seqlab.data.bundle import DataBundle
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: seqlab's membrane mask values: the positive class is the membrane.
MEMBRANE, INTERIOR = 1, 0
MEMBRANE_CLASSES = ("interior", "membrane")
MEMBRANE_DIRS = ("train/image", "train/label", "test")


def decode_png(path: Path) -> np.ndarray:
    """A PNG file as a ``[H, W]`` uint8 array (grey; colour is converted)."""
    try:
        image = tf.io.decode_png(tf.io.read_file(str(path)), channels=0, dtype=tf.uint8)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
        raise DataError(f"{path}: not a readable PNG ({err.message.splitlines()[0][:200]})") from None
    if image.shape[-1] in (3, 4):
        image = tf.image.rgb_to_grayscale(image[..., :3])
    return image.numpy()[..., 0]


def _numbered_pngs(folder: Path) -> list[Path]:
    files = [p for p in folder.glob("*.png") if p.stem.isdigit()]
    return sorted(files, key=lambda p: int(p.stem))


def load_membrane(path: str | None = None, data_dir: str | None = None, unlabelled: bool = False):
    """The ISBI 2012 membranes: ``(images [30, 512, 512] uint8, masks [30, 512, 512] uint8,
    unlabelled [30, 512, 512] uint8 or None)``; masks are 1 = membrane, 0 = interior.

    ``train/image/i.png`` pairs with ``train/label/i.png``.

    Raises:
        DataNotFoundError: no such folder (naming it and ``SEQLAB_DATA_DIR``).
        DataError: an image without its mask, or an image and its mask of
            different sizes (naming both files).
    """
    folder, why = _local_folder("isbi2012_membrane", path, data_dir)
    missing = [] if folder is None else [d for d in MEMBRANE_DIRS[:2] if not (folder / d).is_dir()]
    if folder is None or missing:
        raise _not_found("isbi2012_membrane", folder, why if folder is None else f"missing {', '.join(missing)}",
                         [f"{d}/0.png" for d in MEMBRANE_DIRS], "no TFDS catalog entry")
    image_files = _numbered_pngs(folder / "train" / "image")
    if not image_files:
        raise DataError(f"{folder / 'train' / 'image'} holds no numbered PNG files (0.png, 1.png, ...)")
    images, masks = [], []
    for image_file in image_files:
        label_file = folder / "train" / "label" / image_file.name
        if not label_file.is_file():
            raise DataError(f"{image_file} has no mask: {label_file} is missing")
        image, label = decode_png(image_file), decode_png(label_file)
        if image.shape != label.shape:
            raise DataError(
                f"image {image_file} is {image.shape[1]}x{image.shape[0]} but its mask {label_file} is "
                f"{label.shape[1]}x{label.shape[0]}; an image and its mask must have the same size"
            )
        if images and image.shape != images[0].shape:
            raise DataError(
                f"{image_file} is {image.shape[1]}x{image.shape[0]}, the images before it "
                f"{images[0].shape[1]}x{images[0].shape[0]}; all images must have one size"
            )
        images.append(image)
        # label files: 0 = membrane (dark), 255 = interior
        masks.append(np.where(label < 128, MEMBRANE, INTERIOR).astype(np.uint8))
    extra = None
    if unlabelled:
        extra = np.stack([decode_png(p) for p in _numbered_pngs(folder / "test")])
    return np.stack(images), np.stack(masks), extra


def segmentation_augmentation(seed: int, crop_size: int | None, flip: bool, rotate90: bool,
                              elastic: float):
    """One augmentation of a single ``[H, W, C + 1]`` tensor, the image's channels
    with its mask as the last channel: random crop, flips and quarter turns
    (together: each of the 8 symmetries of the square), elastic deformation
    (bilinear; the mask is rounded back to 0/1 after)."""
    crop = keras.layers.RandomCrop(crop_size, crop_size, seed=seed) if crop_size else None
    # rot90 alone gives the 4 rotations; one mirror on top gives all 8 symmetries of the square
    flips = random_flips("horizontal" if rotate90 else "horizontal_and_vertical", seed + 10) if flip else []
    warp = None
    if elastic:
        if not 0.0 < float(elastic) <= 1.0:
            raise ConfigError(f"data.elastic={elastic!r} must be in (0, 1] (the largest distortion scale) or 0")
        # factor (1, 1): every patch is deformed, by a scale drawn from [0, elastic]
        # (displacements up to 0.1 x scale x the patch side, smoothed over 0.05 x scale x side).
        warp = keras.layers.RandomElasticTransform(factor=(1.0, 1.0), scale=float(elastic),
                                                   fill_mode="reflect", value_range=(0.0, 1.0),
                                                   seed=seed + 2)
    turns = keras.random.SeedGenerator(seed + 3) if rotate90 else None

    def apply(stacked):
        if crop is not None:
            stacked = crop(stacked, training=True)
        for layer in flips:
            stacked = layer(stacked, training=True)
        if turns is not None:
            k = keras.random.randint((), 0, 4, seed=turns, dtype="int32")
            stacked = tf.image.rot90(stacked, k)
        if warp is not None:
            stacked = warp(stacked, training=True)
        image, mask = stacked[..., :-1], stacked[..., -1:]
        return image, tf.round(mask)

    return apply


def tiles(array: np.ndarray, size: int) -> np.ndarray:
    """``[N, H, W, C]`` -> ``[N * (H/size) * (W/size), size, size, C]``, row-major per image."""
    n, h, w, c = array.shape
    out = array.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return out.reshape(-1, size, size, c)


def untile(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """The inverse of :func:`tiles`."""
    size, c = array.shape[1], array.shape[-1]
    rows, cols = height // size, width // size
    out = array.reshape(-1, rows, cols, size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return out.reshape(-1, height, width, c)


def _resize(images: np.ndarray, masks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    images = tf.image.resize(images, (size, size), method="area").numpy()
    masks = tf.image.resize(masks, (size, size), method="nearest").numpy()
    return images, masks


def _segmentation_loss_factory(num_classes: int):
    if num_classes == 1:
        return lambda: keras.losses.BinaryCrossentropy(from_logits=True)
    return lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def membrane_metrics() -> list:
    """``pixel_accuracy``, ``iou`` and ``dice`` of the membrane class (1), and the ISBI 2012
    challenge's ``pixel_error``: 1 - the maximal F-score over thresholds of the cell interior
    (the ISBI masks' white, our class 0), the figure the U-Net paper reports (0.0611 on the
    challenge's test stack); not 1 - pixel accuracy."""
    from seqlab.metrics import MaxFScorePixelError, segmentation_metrics

    return [*segmentation_metrics(), MaxFScorePixelError(foreground_class=0)]


def build_membrane_data(
    *,
    batch_size: int,
    seed: int = 0,
    path: str | None = None,
    data_dir: str | None = None,
    holdout: int = 6,
    image_size: int | None = None,
    crop_size: int | None = 256,
    patches_per_epoch: int = 240,
    flip: bool = True,
    rotate90: bool = True,
    elastic: float = 0.0,
    validate_on_holdout: bool = True,
    mask_preview: int = 3,
) -> DataBundle:
    """The ISBI 2012 membranes as a binary segmentation :class:`DataBundle`.

    Images (grey, [0, 1]) are optionally resized to ``image_size`` (null:
    the native 512). The last ``holdout`` labelled slices are the test split
    (and, with ``validate_on_holdout``, scored after every epoch too: 30
    images leave no separate validation set; nothing is selected on it);
    the rest are training images. An epoch is ``patches_per_epoch`` random
    ``crop_size`` crops (null: whole images) of the training images,
    augmented (flips, quarter turns, ``elastic`` deformation scale; 0 = off).
    Held-out images are scored whole, as non-overlapping ``crop_size`` tiles
    (the model sees one input size; pixel metrics cover every pixel).

    The model gets one binary logit channel (``num_classes=1``); target 1 =
    membrane. Loss: binary cross-entropy on logits; metrics
    ``pixel_accuracy``, ``iou``, ``dice`` of the membrane class and the
    challenge's ``pixel_error`` (1 - the best F-score of the cell interior
    over thresholds; see :func:`membrane_metrics`).
    """
    images, masks, _ = load_membrane(path, data_dir)
    folder, _ = _local_folder("isbi2012_membrane", path, data_dir)
    unlabelled = len(_numbered_pngs(folder / "test")) if (folder / "test").is_dir() else 0
    n = len(images)
    if isinstance(holdout, bool) or not isinstance(holdout, int) or not 0 < holdout < n:
        raise ConfigError(f"data.holdout must be an integer in [1, {n - 1}] (held-out slices), got {holdout!r}")
    images = images[..., None].astype(np.float32) / 255.0
    masks = masks[..., None].astype(np.float32)
    if image_size:
        images, masks = _resize(images, masks, int(image_size))
    height, width = images.shape[1:3]
    size = int(crop_size) if crop_size else None
    if size is not None and (size <= 0 or height % size or width % size):
        raise ConfigError(
            f"data.crop_size={crop_size} must divide the image size {height}x{width} (held-out images "
            "are scored as non-overlapping tiles of crop_size); e.g. 128 or 256, or null for whole images"
        )
    if not isinstance(patches_per_epoch, int) or patches_per_epoch < batch_size:
        raise ConfigError(
            f"data.patches_per_epoch={patches_per_epoch!r} must be an integer >= trainer.batch_size "
            f"({batch_size})"
        )
    train_idx = np.arange(n - holdout)
    test_idx = np.arange(n - holdout, n)
    stacked = np.concatenate([images[train_idx], masks[train_idx]], axis=-1)
    augment = segmentation_augmentation(seed, size, flip, rotate90, elastic)
    repeats = math.ceil(patches_per_epoch / len(train_idx))
    train = (
        tf.data.Dataset.from_tensor_slices(stacked)
        .shuffle(len(train_idx), seed=seed, reshuffle_each_iteration=True)
        .repeat(repeats)
        .take(patches_per_epoch)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    test_images, test_masks = images[test_idx], masks[test_idx]
    if size is not None:
        eval_x, eval_y = tiles(test_images, size), tiles(test_masks, size)
    else:
        eval_x, eval_y = test_images, test_masks
    test = tf.data.Dataset.from_tensor_slices((eval_x, eval_y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    callbacks = []
    if mask_preview:
        from seqlab.diagnostics.vision import MaskPreview

        shown = min(int(mask_preview), holdout)
        callbacks.append(MaskPreview(test_images[:shown], test_masks[:shown], tile_size=size,
                                     title="held-out membranes (1 = membrane)"))
    side = size or height
    info = {
        "task": "isbi2012_membrane",
        "labelled_images": n,
        "unlabelled_images": unlabelled,
        "train_images": len(train_idx),
        "holdout_images": holdout,
        "holdout_slices": f"{test_idx[0]}-{test_idx[-1]}",
        "image_size": f"{height}x{width}",
        "patch_size": f"{side}x{side}",
        "patches_per_epoch": patches_per_epoch,
        "positive_class": "membrane (label value 0)",
        "membrane_fraction_train": round(float(masks[train_idx].mean()), 4),
        "membrane_fraction_holdout": round(float(test_masks.mean()), 4),
    }
    log.info("isbi2012_membrane: %s", info)
    return DataBundle(
        train=train,
        validation=test if validate_on_holdout else None,
        test=test,
        model_kwargs={"input_shape": (side, side, 1), "num_classes": 1},
        loss=_segmentation_loss_factory(1),
        metrics=membrane_metrics,
        steps_per_epoch=patches_per_epoch // batch_size,
        throughput_unit="images",
        items_per_batch=batch_size,
        callbacks=callbacks,
        info=info,
    )
