"""Image classification data: Fashion-MNIST and the MNIST test set.

Each dataset is found the way the text corpora are (:mod:`seqlab.data.corpora`):
a local copy under ``$SEQLAB_DATA_DIR/<folder>/`` (or ``data.path``) first,
then the TensorFlow Datasets entry (:mod:`seqlab.data.tfds_images`), downloaded
only when the download host answers (offline the loader fails in seconds,
naming ``SEQLAB_DATA_DIR``, the folder it looked in and the catalog name).

Local copies (IDX files, read by :mod:`seqlab.data.idx`; formats and checked
counts: ``shared/data/README.md``):

``fashion_mnist`` (:func:`build_fashion_mnist_data`)
    ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``: 60,000 + 10,000
    grey 28x28 images, 10 classes. Validation: a stratified
    ``validation_fraction`` of train (seeded by ``split_seed``), or the test
    split itself (``validate_on_test``, for test-error curves).
``mnist_t10k`` (:func:`build_mnist_data`)
    The 10,000 MNIST *test* images (the training set is not stored): split
    stratified by class, seeded by ``split_seed``, into 8,000 train and
    ``test_size`` = 2,000 test images; ``validation_fraction`` of the train
    part may be held out.

Pixels are scaled to [0, 1] (``float32``). Augmentation runs inside the
``tf.data`` pipeline with Keras preprocessing layers, training split only:
random flips and translations per image.

The bundles hand the model builders ``input_shape`` ``(H, W, C)`` and
``num_classes``; losses and metrics take logits.

The rest of the image data has a module each: the ISBI 2012 membranes
(:mod:`seqlab.data.membranes`), the TFDS catalog
(:mod:`seqlab.data.tfds_images`), the IDX reader (:mod:`seqlab.data.idx`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from seqlab.data._image_common import (
    DIGITS,
    FASHION_MNIST_CLASSES,
    _check_batch,
    _classifier_loss,
    _classifier_metrics,
    _local_folder,
    _not_found,
    classifier_augmentation,
)
from seqlab.data.bundle import DataBundle
from seqlab.data.corpora import default_cache_dir
from seqlab.data.idx import read_idx_pair
from seqlab.data.tfds_images import _tfds_arrays, _tfds_gate
from seqlab.errors import ConfigError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------ finding data
def _load_idx_dataset(name: str, files: dict[str, tuple[str, str]], *, path, data_dir, download,
                      tfds_name, tfds_splits: dict[str, str], cache_dir=None):
    """``{split: (images, labels)}`` from the local IDX copy, else from TFDS."""
    folder, why = _local_folder(name, path, data_dir)
    required = [f for pair in files.values() for f in pair]
    if folder is not None:
        missing = [f for f in required if not (folder / f).is_file()]
        if not missing:
            return {split: read_idx_pair(folder / a, folder / b) for split, (a, b) in files.items()}, \
                f"local copy {folder}"
        why = f"missing {', '.join(missing)}"
    cache = Path(cache_dir or default_cache_dir()).expanduser().resolve()
    allowed, note = _tfds_gate(tfds_name, cache, download)
    if allowed:
        log.info("no local copy of %s; reading the TFDS catalog entry %r", name, tfds_name)
        try:
            return {split: _tfds_arrays(tfds_name, s, cache) for split, s in tfds_splits.items()}, \
                f"TFDS {tfds_name}"
        except Exception as err:  # network, checksum, ...
            first = (str(err).strip().splitlines() or [""])[0][:300]
            note = f"TFDS catalog {tfds_name!r} ({type(err).__name__}: {first})"
    raise _not_found(name, folder, why, required, note)


# ------------------------------------------------------------------------ splits
def stratified_split(labels: np.ndarray, held_out: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held)`` index arrays: ``held_out`` examples drawn per class in
    proportion to the class sizes (largest remainders), seeded; both sorted."""
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 <= held_out <= n:
        raise ConfigError(f"cannot hold out {held_out} of {n} examples")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * held_out / n
    take = np.floor(quota).astype(int)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: held_out - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, int)
    kept = np.setdiff1d(np.arange(n), held, assume_unique=True)
    return kept, held


def _held_count(n: int, fraction: float, key: str) -> int:
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction < 1.0:
        raise ConfigError(f"{key} must be a fraction in [0, 1), got {fraction!r}")
    return int(round(n * fraction))


# ------------------------------------------------------------------------ datasets
def _to_float(images, labels):
    return tf.cast(images, tf.float32) / 255.0, tf.cast(labels, tf.int32)


def _classifier_dataset(images, labels, batch_size, *, train: bool, seed: int, augment=None):
    """Batches of ``(float32 [B, H, W, C] in [0, 1], int32 [B])``; train shuffled and augmented."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if train:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=train).map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if train and augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _classifier_bundle(name, splits, *, class_names, batch_size, seed, validation_fraction,
                       validate_on_test, split_seed, flip, translate, erase, confusion_matrix, source,
                       extra_info=None) -> DataBundle:
    """A classification :class:`DataBundle` from ``{"train": (x, y), "test": (x, y)}`` arrays."""
    x_train, y_train = splits["train"]
    x_test, y_test = splits["test"]
    if x_train.ndim == 3:  # grey: add the channel axis
        x_train, x_test = x_train[..., None], x_test[..., None]
    held = _held_count(len(y_train), validation_fraction, "data.validation_fraction")
    if validate_on_test and held:
        raise ConfigError(
            "data.validate_on_test=true scores the test split after every epoch; set "
            f"data.validation_fraction=0 (got {validation_fraction}) or validate_on_test=false"
        )
    x_val = y_val = None
    if held:
        kept, val_idx = stratified_split(y_train, held, split_seed)
        x_val, y_val = x_train[val_idx], y_train[val_idx]
        x_train, y_train = x_train[kept], y_train[kept]
    _check_batch(batch_size, len(y_train))
    augment = classifier_augmentation(flip, translate, seed, erase)
    test = _classifier_dataset(x_test, y_test, batch_size, train=False, seed=seed)
    if validate_on_test:
        validation = test
    elif held:
        validation = _classifier_dataset(x_val, y_val, batch_size, train=False, seed=seed)
    else:
        validation = None
    num_classes = len(class_names)
    callbacks = []
    if confusion_matrix:
        from seqlab.diagnostics.vision import ConfusionMatrixPlot

        callbacks.append(ConfusionMatrixPlot(test, class_names=class_names, split="test"))
    info = {
        "task": name,
        "source": source,
        "image_shape": "x".join(map(str, x_train.shape[1:])),
        "num_classes": num_classes,
        "train_images": len(y_train),
        "validation_images": len(y_test) if validate_on_test else (0 if y_val is None else len(y_val)),
        "validation_split": "test" if validate_on_test else ("train holdout" if held else "none"),
        "test_images": len(y_test),
        **(extra_info or {}),
    }
    log.info("%s: %s", name, info)
    return DataBundle(
        train=_classifier_dataset(x_train, y_train, batch_size, train=True, seed=seed, augment=augment),
        validation=validation,
        test=test,
        model_kwargs={"input_shape": tuple(int(d) for d in x_train.shape[1:]), "num_classes": num_classes},
        loss=_classifier_loss,
        metrics=_classifier_metrics,
        steps_per_epoch=len(y_train) // batch_size,
        throughput_unit="images",
        items_per_batch=batch_size,
        callbacks=callbacks,
        info=info,
    )


# ------------------------------------------------------------------------ builders
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_T10K_FILES = {"test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def load_fashion_mnist(path: str | None = None, data_dir: str | None = None, download: bool = True,
                       cache_dir: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (60,000 x 28 x 28 uint8, labels), "test": (10,000 ...)}`` (local copy, else TFDS)."""
    splits, _ = _load_idx_dataset("fashion_mnist", FASHION_FILES, path=path, data_dir=data_dir,
                                  download=download, tfds_name="fashion_mnist",
                                  tfds_splits={"train": "train", "test": "test"}, cache_dir=cache_dir)
    return splits


def load_mnist_t10k(path: str | None = None, data_dir: str | None = None, download: bool = True,
                    cache_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test images ``[10000, 28, 28]`` uint8 and their labels (local copy, else TFDS)."""
    splits, _ = _load_idx_dataset("mnist_t10k", MNIST_T10K_FILES, path=path, data_dir=data_dir,
                                  download=download, tfds_name="mnist", tfds_splits={"test": "test"},
                                  cache_dir=cache_dir)
    return splits["test"]


def build_fashion_mnist_data(
    *,
    batch_size: int,
    seed: int = 0,
    path: str | None = None,
    data_dir: str | None = None,
    download: bool = True,
    validation_fraction: float = 0.1,
    validate_on_test: bool = False,
    split_seed: int = 0,
    flip: str | None = "horizontal",
    translate: float = 0.1,
    erase: float = 0.0,
    confusion_matrix: bool = True,
) -> DataBundle:
    """Fashion-MNIST (60,000 train + 10,000 test, 28x28x1, 10 classes) as a :class:`DataBundle`.

    ``validation_fraction`` of train (stratified, ``split_seed``) is the
    validation split; ``validate_on_test`` scores the test split after every
    epoch instead (learning curves on test; nothing is selected on it).
    """
    splits, source = _load_idx_dataset("fashion_mnist", FASHION_FILES, path=path, data_dir=data_dir,
                                       download=download, tfds_name="fashion_mnist",
                                       tfds_splits={"train": "train", "test": "test"})
    return _classifier_bundle(
        "fashion_mnist", splits, class_names=FASHION_MNIST_CLASSES, batch_size=batch_size, seed=seed,
        validation_fraction=validation_fraction, validate_on_test=validate_on_test,
        split_seed=split_seed, flip=flip, translate=translate, erase=erase, confusion_matrix=confusion_matrix,
        source=source,
    )


def build_mnist_data(
    *,
    batch_size: int,
    seed: int = 0,
    path: str | None = None,
    data_dir: str | None = None,
    download: bool = True,
    test_size: int = 2000,
    validation_fraction: float = 0.0,
    validate_on_test: bool = False,
    split_seed: int = 0,
    flip: str | None = None,
    translate: float = 0.1,
    erase: float = 0.0,
    confusion_matrix: bool = True,
) -> DataBundle:
    """The 10,000 MNIST test images split into ``10,000 - test_size`` train and
    ``test_size`` test images (stratified by digit, seeded by ``split_seed``,
    the same split whatever ``trainer.seed``), as a :class:`DataBundle`."""
    loaded, source = _load_idx_dataset("mnist_t10k", MNIST_T10K_FILES, path=path, data_dir=data_dir,
                                       download=download, tfds_name="mnist", tfds_splits={"test": "test"})
    images, labels = loaded["test"]
    if isinstance(test_size, bool) or not isinstance(test_size, int) or not 0 < test_size < len(labels):
        raise ConfigError(f"data.test_size must be an integer in [1, {len(labels) - 1}], got {test_size!r}")
    kept, held = stratified_split(labels, test_size, split_seed)
    splits = {"train": (images[kept], labels[kept]), "test": (images[held], labels[held])}
    return _classifier_bundle(
        "mnist_t10k", splits, class_names=DIGITS, batch_size=batch_size, seed=seed,
        validation_fraction=validation_fraction, validate_on_test=validate_on_test,
        split_seed=split_seed + 1, flip=flip, translate=translate, erase=erase, confusion_matrix=confusion_matrix,
        source=source,
        extra_info={"split": f"MNIST t10k, stratified by digit, split_seed={split_seed}"},
    )


# Old configs and run records name seqlab.data.images.*: these names still resolve here.
from seqlab.data.idx import read_idx  # noqa: E402, F401
from seqlab.data.membranes import build_membrane_data, load_membrane  # noqa: E402, F401
from seqlab.data.tfds_images import build_tfds_image_data  # noqa: E402, F401
