"""Image datasets of the TensorFlow Datasets catalog (:func:`build_tfds_image_data`, online).

``mnist``, ``fashion_mnist``, ``cifar10`` (classification) and
``oxford_iiit_pet`` (3-class trimap segmentation, resized to ``image_size``):
:data:`TFDS_IMAGES`. The catalog is also where the local IDX datasets of
:mod:`seqlab.data.images` fall back to when there is no local copy.

Pitfalls: TFDS is called only when a prepared copy is in the cache
(``cache_dir``, else ``$SEQLAB_CACHE_DIR/tfds``) or the download host answers
(``$SEQLAB_DOWNLOAD_PROBE``); offline the builder fails in seconds, naming the
catalog entry, the probe's answer and the local dataset to use instead. Split
sizes can be unknown (``tfds.testing.mock_data``): the bundle's info then says
``unknown``. The pet trimap is stored 1-based (1 pet, 2 background, 3 border)
and shifted to classes 0-2; the pet (0) is the class scored.

Pixels are scaled to [0, 1] (``float32``). Augmentation runs inside the
``tf.data`` pipeline with Keras preprocessing layers, training split only:
classifiers get random flips and translations per image; segmentation gets
random horizontal flips of the image and its mask stacked as channels.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqlab.data._image_common import (
    DIGITS,
    FASHION_MNIST_CLASSES,
    _check_batch,
    _classifier_loss,
    _classifier_metrics,
    classifier_augmentation,
)
from seqlab.data.bundle import DataBundle
from seqlab.data.corpora import default_cache_dir, prepare_lock, probe_download_host
from seqlab.data.membranes import _segmentation_loss_factory
from seqlab.errors import ConfigError, DataNotFoundError

log = logging.getLogger(__name__)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


# ------------------------------------------------------------------------ reading the catalog
def _tfds_prepared(tfds_name: str, cache: Path) -> bool:
    return (cache / tfds_name).is_dir()


def _tfds_gate(tfds_name: str, cache: Path, download: bool) -> tuple[bool, str | None]:
    """``(may call TFDS, why not)``: offline (the probe fails) only a prepared copy is read."""
    if _tfds_prepared(tfds_name, cache):
        return True, None
    if not download:
        return False, f"TFDS catalog {tfds_name!r} (not tried: data.download=false, nothing prepared in {cache})"
    offline = probe_download_host()
    if offline:
        return False, (
            f"TFDS catalog {tfds_name!r} (not tried: offline, the download host {offline}; "
            f"nothing prepared in {cache})"
        )
    return True, None


def _tfds_arrays(tfds_name: str, split: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    ds = tfds.load(tfds_name, split=split, as_supervised=True, batch_size=-1, data_dir=str(cache),
                   download=not _tfds_prepared(tfds_name, cache))
    images, labels = tfds.as_numpy(ds)
    return np.asarray(images)[..., 0], np.asarray(labels, dtype=np.int32)


# ------------------------------------------------------------------------ TFDS catalog
#: The TFDS image datasets seqlab knows: the task, the class names or count,
#: the local copy to use offline instead.
TFDS_IMAGES = {
    "mnist": {"task": "classification", "classes": DIGITS, "offline": "data=mnist (the 10,000 test images)"},
    "fashion_mnist": {"task": "classification", "classes": FASHION_MNIST_CLASSES,
                      "offline": "data=fashion_mnist (the local IDX copy)"},
    "cifar10": {"task": "classification", "classes": CIFAR10_CLASSES, "offline": None},
    # trimap: 1 pet, 2 background, 3 border -> classes 0, 1, 2; the pet (0) is scored.
    "oxford_iiit_pet": {"task": "segmentation", "classes": ("pet", "background", "border"),
                        "offline": None},
}


def _tfds_segmentation_pipeline(ds, image_size: int):
    def prepare(example):
        image = tf.image.resize(tf.cast(example["image"], tf.float32) / 255.0, (image_size, image_size))
        mask = tf.image.resize(example["segmentation_mask"], (image_size, image_size), method="nearest")
        return image, tf.cast(mask, tf.int32) - 1

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def build_tfds_image_data(
    name: str,
    *,
    batch_size: int,
    seed: int = 0,
    cache_dir: str | None = None,
    download: bool = True,
    validation_percent: int = 10,
    image_size: int | None = None,
    flip: str | None = "horizontal",
    translate: float = 0.1,
    erase: float = 0.0,
    confusion_matrix: bool = True,
    mask_preview: int = 3,
) -> DataBundle:
    """A TensorFlow Datasets image dataset (:data:`TFDS_IMAGES`) by its catalog name.

    Classification (``mnist``, ``fashion_mnist``, ``cifar10``): the last
    ``validation_percent`` % of TFDS's train split is the validation split;
    the TFDS test split is the test split; images keep their size
    (``image_size`` resizes them). Segmentation (``oxford_iiit_pet``): the
    trimap as 3 classes (0 pet, 1 background, 2 border; the pet is scored by
    ``iou`` and ``dice``), images and masks resized to ``image_size`` (128
    when null).

    Online only: with no prepared copy in the TFDS cache, the download host is
    probed first (``$SEQLAB_DOWNLOAD_PROBE``) and, offline, a
    :class:`DataNotFoundError` names the catalog entry, the probe's answer and
    the local dataset to use instead.
    """
    if name not in TFDS_IMAGES:
        raise ConfigError(f"unknown TFDS image dataset data.name={name!r}; known: {sorted(TFDS_IMAGES)}")
    if not isinstance(validation_percent, int) or not 0 <= validation_percent < 100:
        raise ConfigError(f"data.validation_percent must be an integer in [0, 100), got {validation_percent!r}")
    spec = TFDS_IMAGES[name]
    cache = Path(cache_dir or default_cache_dir()).expanduser().resolve()
    allowed, note = _tfds_gate(name, cache, download)
    if not allowed:
        instead = f", or use the local copy: {spec['offline']}" if spec["offline"] else ""
        raise DataNotFoundError(
            f"TFDS image dataset {name!r} is not available. Tried: {note}. Fix: download TFDS dataset "
            f"{name!r} once with network access (or through $HTTPS_PROXY) into {cache} "
            f"($SEQLAB_CACHE_DIR){instead}"
        )
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    train_split = f"train[:{100 - validation_percent}%]" if validation_percent else "train"
    split_names = {"train": train_split, "test": "test"}
    if validation_percent:
        split_names["validation"] = f"train[{100 - validation_percent}%:]"
    with prepare_lock(cache, name):  # parallel jobs of a sweep: one downloads, the others wait
        builder = tfds.builder(name, data_dir=str(cache))
        if not _tfds_prepared(name, cache):
            builder.download_and_prepare()
    num_classes = len(spec["classes"])
    segmentation = spec["task"] == "segmentation"
    raw = {split: builder.as_dataset(split=s, as_supervised=not segmentation,
                                     shuffle_files=split == "train", read_config=tfds.ReadConfig(
                                         shuffle_seed=seed))
           for split, s in split_names.items()}
    counts = {split: _split_count(builder, s) for split, s in split_names.items()}
    if counts["train"] is not None:
        _check_batch(batch_size, counts["train"])
    if segmentation:
        size = int(image_size or 128)
        shape = (size, size, 3)
        data = {split: _tfds_segmentation_pipeline(ds, size) for split, ds in raw.items()}
        augment = None
        if flip:
            flips = keras.layers.RandomFlip("horizontal", seed=seed)

            def augment(x, y):
                stacked = flips(tf.concat([x, tf.cast(y, tf.float32)], axis=-1), training=True)
                return stacked[..., :3], tf.cast(tf.round(stacked[..., 3:]), tf.int32)
    else:
        features = builder.info.features
        shape = tuple(int(d) for d in features["image"].shape)
        if image_size:
            shape = (int(image_size), int(image_size), shape[-1])

        def prepare(x, y, _size=image_size):
            x = tf.cast(x, tf.float32) / 255.0
            if _size:
                x = tf.image.resize(x, (_size, _size))
            return x, tf.cast(y, tf.int32)

        data = {split: ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE) for split, ds in raw.items()}
        layers = classifier_augmentation(flip, translate, seed, erase)
        augment = None if layers is None else (lambda x, y: (layers(x, training=True), y))

    def finish(ds, train):
        if train:
            ds = ds.shuffle(min(counts["train"] or 10000, 10000), seed=seed, reshuffle_each_iteration=True)
            ds = ds.batch(batch_size, drop_remainder=True)
            if augment is not None:
                ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.batch(batch_size)
        return ds.prefetch(tf.data.AUTOTUNE)

    train = finish(data["train"], True)
    validation = finish(data["validation"], False) if "validation" in data else None
    test = finish(data["test"], False)
    callbacks = []
    if segmentation:
        from seqlab.metrics import segmentation_metrics

        model_kwargs = {"input_shape": shape, "num_classes": num_classes}
        loss = _segmentation_loss_factory(num_classes)
        metrics = functools.partial(segmentation_metrics, positive_class=0)
        if mask_preview:
            from seqlab.diagnostics.vision import MaskPreview

            x, y = next(iter(test.unbatch().batch(int(mask_preview))))
            callbacks.append(MaskPreview(x.numpy(), y.numpy(), positive_class=0,
                                         title=f"{name} (test; pet = class 0)"))
    else:
        model_kwargs = {"input_shape": shape, "num_classes": num_classes}
        loss, metrics = _classifier_loss, _classifier_metrics
        if confusion_matrix:
            from seqlab.diagnostics.vision import ConfusionMatrixPlot

            callbacks.append(ConfusionMatrixPlot(test, class_names=spec["classes"], split="test"))
    info = {
        "task": name,
        "source": f"TFDS {name}",
        "image_shape": "x".join(map(str, shape)),
        "num_classes": num_classes,
        **{f"{split}_images": "unknown" if counts.get(split, 0) is None else counts.get(split, 0)
           for split in ("train", "validation", "test")},
    }
    log.info("%s: %s", name, info)
    return DataBundle(
        train=train,
        validation=validation,
        test=test,
        model_kwargs=model_kwargs,
        loss=loss,
        metrics=metrics,
        steps_per_epoch=None if counts["train"] is None else counts["train"] // batch_size,
        throughput_unit="images",
        items_per_batch=batch_size,
        callbacks=callbacks,
        info=info,
    )


def _split_count(builder, split: str) -> int | None:
    """Examples in a TFDS split (slices included); None where the builder's
    info holds no split sizes (``tfds.testing.mock_data``)."""
    try:
        return int(builder.info.splits[split].num_examples)
    except KeyError:
        return None
