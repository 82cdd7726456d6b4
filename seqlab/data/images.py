"""Image datasets: Fashion-MNIST, the MNIST test set, the ISBI 2012 membranes, TFDS images.

Each dataset is found the way the text corpora are (:mod:`seqlab.data.corpora`):
a local copy under ``$SEQLAB_DATA_DIR/<folder>/`` (or ``data.path``) first,
then, where the catalog has it, the TensorFlow Datasets entry, downloaded
only when the download host answers (offline the loader fails in seconds,
naming ``SEQLAB_DATA_DIR``, the folder it looked in and the catalog name).

Local copies (formats and checked counts: ``shared/data/README.md``):

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
``isbi2012_membrane`` (:func:`build_membrane_data`)
    30 labelled 512x512 grey EM slices (``train/image/i.png`` with
    ``train/label/i.png``) and 30 unlabelled ones (``test/i.png``). In the
    label files 0 = membrane, 255 = cell interior; seqlab's masks are
    **1 = membrane** (the positive class, scored by IoU and Dice), 0 =
    interior. The last ``holdout`` slices (a contiguous block: neighbouring
    slices look alike) are held out for evaluation.

TFDS catalog (:func:`build_tfds_image_data`, online): ``mnist``,
``fashion_mnist``, ``cifar10`` (classification) and ``oxford_iiit_pet``
(3-class trimap segmentation, resized to ``image_size``).

Pixels are scaled to [0, 1] (``float32``). Augmentation runs inside the
``tf.data`` pipeline with Keras preprocessing layers, training split only:
classifiers get random flips and translations per image; segmentation gets
random crops, flips, quarter turns and optionally elastic deformation,
applied to the image and its mask stacked as channels, so they stay aligned.

The bundles hand the model builders ``input_shape`` ``(H, W, C)`` and
``num_classes`` (1 for a binary mask: one logit channel); losses and metrics
take logits.
"""

from __future__ import annotations

import functools
import gzip
import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqlab.data.bundle import DataBundle
from seqlab.data.corpora import default_cache_dir, probe_download_host, resolve_data_dir
from seqlab.errors import ConfigError, DataError, DataNotFoundError

log = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGITS = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
#: seqlab's membrane mask values: the positive class is the membrane.
MEMBRANE, INTERIOR = 1, 0
MEMBRANE_CLASSES = ("interior", "membrane")


# --------------------------------------------------------------------------- IDX files
#: IDX type codes (LeCun's format): numpy dtypes, big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` is decompressed transparently).

    Header: two zero bytes, a type code (:data:`IDX_DTYPES`), the number of
    dimensions ``d``, then ``d`` big-endian uint32 sizes; the data follows.
    The size the header promises (``4 + 4 d + prod(sizes) * itemsize``
    bytes) must be the size of the (decompressed) file.

    Raises:
        DataError: naming the file, when it is not IDX, is truncated or has
            extra bytes, or is a broken gzip stream.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(
            f"{path}: cannot read it ({type(err).__name__}: {err}); the file is damaged, "
            "copy it again (its sha256 is in $SEQLAB_DATA_DIR/MANIFEST.sha256)"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (its first bytes are {raw[:4].hex() or 'missing'}, expected "
            "00 00 <type code> <dimensions>); point data.path at the folder of IDX files"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: the IDX header is cut short ({len(raw)} bytes, expected {header})")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: the IDX header says {'x'.join(map(str, shape))} values of {dtype.name} "
            f"({expected:,} bytes with the header) but the file holds {len(raw):,} bytes"
            f"{' decompressed' if path.suffix == '.gz' else ''}; it is truncated or corrupt, "
            "copy it again (its sha256 is in $SEQLAB_DATA_DIR/MANIFEST.sha256)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(stamp: tuple) -> np.ndarray:
    array = read_idx(stamp[0])
    array.setflags(write=False)
    return array


def read_idx_pair(images_file: Path, labels_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, H, W] uint8, labels [N] int32)`` from two IDX files, checked to pair up.

    Read once per process (cached by path, size and mtime): a multirun's
    jobs share the decoded arrays.
    """
    images = _read_idx_cached(_stamp(images_file))
    labels = _read_idx_cached(_stamp(labels_file))
    if images.ndim != 3:
        raise DataError(f"{images_file}: expected images [N, H, W], the IDX header gives {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_file}: expected labels [N], the IDX header gives {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_file} holds {len(images):,} images but {labels_file} {len(labels):,} labels; "
            "the two files must come from the same split"
        )
    return images, labels.astype(np.int32)


# ------------------------------------------------------------------------ finding data
def _local_folder(folder_name: str, path: str | None, data_dir: str | None) -> tuple[Path | None, str]:
    """The folder to read (or None) and how it was chosen, for error messages."""
    if path:
        return Path(path).expanduser().resolve(), "data.path"
    root = resolve_data_dir(data_dir)
    if root is None:
        return None, "no local folder: data.path and $SEQLAB_DATA_DIR are both unset"
    return root / folder_name, "$SEQLAB_DATA_DIR"


def _not_found(name: str, folder: Path | None, why: str, required: list[str], tfds_note: str) -> DataNotFoundError:
    where = f"{folder} ({why})" if folder is not None else why
    return DataNotFoundError(
        f"dataset {name!r} not found. Tried: {where}; {tfds_note}. Fix: set SEQLAB_DATA_DIR to a "
        f"folder holding {name}/{{{', '.join(required)}}} (e.g. SEQLAB_DATA_DIR=../shared/data) "
        "or pass data.path=<folder>"
    )


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


# ------------------------------------------------------------------------ augmentation
def classifier_augmentation(flip: str | None, translate: float, seed: int) -> keras.Sequential | None:
    """Random flips (``"horizontal"``, ``"vertical"``, ``"horizontal_and_vertical"``)
    and translations (a fraction of the height/width, zero fill) per image; None when both are off."""
    layers = []
    if flip:
        if flip not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise ConfigError(
                f"data.flip={flip!r}: expected horizontal, vertical, horizontal_and_vertical or null"
            )
        layers += random_flips(flip, seed)
    if translate:
        if not 0.0 < float(translate) < 1.0:
            raise ConfigError(f"data.translate={translate!r} must be a fraction in [0, 1) of the image size")
        layers.append(keras.layers.RandomTranslation(translate, translate, fill_mode="constant",
                                                     seed=seed + 1))
    return keras.Sequential(layers, name="augment") if layers else None


def random_flips(mode: str, seed: int) -> list[keras.layers.Layer]:
    """Keras ``RandomFlip`` layers for ``mode``, one per axis.

    Keras' own ``"horizontal_and_vertical"`` draws one coin for both axes
    (no flip, or both: a half turn); here each axis gets its own coin, so
    all four results occur.
    """
    axes = ("horizontal", "vertical") if mode == "horizontal_and_vertical" else (mode,)
    return [keras.layers.RandomFlip(axis, seed=seed + i) for i, axis in enumerate(axes)]


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


def _classifier_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _classifier_metrics() -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def _check_batch(batch_size: int, train_size: int) -> None:
    if train_size < batch_size:
        raise ConfigError(
            f"the training split has {train_size} images, fewer than trainer.batch_size={batch_size}; "
            "lower the batch size"
        )


def _classifier_bundle(name, splits, *, class_names, batch_size, seed, validation_fraction,
                       validate_on_test, split_seed, flip, translate, confusion_matrix, source,
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
    augment = classifier_augmentation(flip, translate, seed)
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
        split_seed=split_seed, flip=flip, translate=translate, confusion_matrix=confusion_matrix,
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
        split_seed=split_seed + 1, flip=flip, translate=translate, confusion_matrix=confusion_matrix,
        source=source,
        extra_info={"split": f"MNIST t10k, stratified by digit, split_seed={split_seed}"},
    )


# ------------------------------------------------------------------------ membranes
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
    ``pixel_accuracy``, ``iou``, ``dice`` of the membrane class.
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
    from seqlab.metrics import segmentation_metrics

    return DataBundle(
        train=train,
        validation=test if validate_on_holdout else None,
        test=test,
        model_kwargs={"input_shape": (side, side, 1), "num_classes": 1},
        loss=_segmentation_loss_factory(1),
        metrics=segmentation_metrics,
        steps_per_epoch=patches_per_epoch // batch_size,
        throughput_unit="images",
        items_per_batch=batch_size,
        callbacks=callbacks,
        info=info,
    )


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
        layers = classifier_augmentation(flip, translate, seed)
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
