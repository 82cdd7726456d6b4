"""What the image builders share: :mod:`seqlab.data.images`,
:mod:`seqlab.data.membranes` and :mod:`seqlab.data.tfds_images`.

Class names, finding a local copy (``data.path``, else
``$SEQLAB_DATA_DIR/<folder>``) and the "not found" message naming both,
random flips (one coin per axis), and the classifiers' augmentation, loss
and metrics. Private, and below the three: none of them imports another in
a circle.
"""

from __future__ import annotations

from pathlib import Path

import keras

from seqlab.data.corpora import resolve_data_dir
from seqlab.errors import ConfigError, DataNotFoundError

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGITS = tuple(str(d) for d in range(10))


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


# ------------------------------------------------------------------------ augmentation
def classifier_augmentation(flip: str | None, translate: float, seed: int,
                            erase: float = 0.0) -> keras.Sequential | None:
    """Random flips (``"horizontal"``, ``"vertical"``, ``"horizontal_and_vertical"``),
    translations (a fraction of the height/width, zero fill) and random
    erasing (Zhong et al. 2017) per image; None when all are off.

    ``erase`` is the probability that an image gets one rectangle replaced by
    noise (Keras ``RandomErasing`` on ``[0, 1]`` pixels: side fractions
    ``sqrt(U(0.02, 0.4))``, i.e. the paper's 2-40 % of the area, fill
    ``clip(N(0, 1), 0, 1)``). It comes last, after the shifts, as in the paper.
    """
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
    if erase:
        if isinstance(erase, bool) or not 0.0 < float(erase) <= 1.0:
            raise ConfigError(f"data.erase={erase!r} must be a probability in [0, 1] (0 = off)")
        # A (p, p) factor: Keras samples the probability from U(factor), and a
        # single float f would mean U(0, f), i.e. p/2 on average.
        layers.append(keras.layers.RandomErasing(factor=(float(erase), float(erase)), scale=(0.02, 0.4),
                                                 value_range=(0.0, 1.0), seed=seed + 2))
    return keras.Sequential(layers, name="augment") if layers else None


def random_flips(mode: str, seed: int) -> list[keras.layers.Layer]:
    """Keras ``RandomFlip`` layers for ``mode``, one per axis.

    Keras' own ``"horizontal_and_vertical"`` draws one coin for both axes
    (no flip, or both: a half turn); here each axis gets its own coin, so
    all four results occur.
    """
    axes = ("horizontal", "vertical") if mode == "horizontal_and_vertical" else (mode,)
    return [keras.layers.RandomFlip(axis, seed=seed + i) for i, axis in enumerate(axes)]


# ------------------------------------------------------------------------ classifiers
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
