"""Plots of what a vision model predicts, logged as ``plots/*.png`` at the end of a run.

- :class:`ConfusionMatrixPlot`: the confusion matrix of a classifier on a
  split (rows: true class, columns: predicted class; cells coloured by the
  share of the true class, annotated with counts).
- :class:`MaskPreview`: held-out images beside their true and predicted
  masks and the disagreement between the two.

Both are :class:`~seqlab.training.context.RunCallback` s that the image data
builders attach (``data.confusion_matrix``, ``data.mask_preview``). In a run
they write into ``<output_dir>/plots/`` and log the file under ``plots/``;
outside one, :meth:`ConfusionMatrixPlot.compute` / :meth:`MaskPreview.predict`
and the ``plot`` methods work on any model. Drawing uses matplotlib's Agg
canvas (no pyplot, no display).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqlab.training.context import RunCallback

log = logging.getLogger(__name__)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[K, K]`` int64 counts: entry ``(i, j)`` = examples of true class ``i`` predicted as ``j``."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat[: num_classes * num_classes].reshape(num_classes, num_classes)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str = "confusion matrix") -> Path:
    """Draw ``matrix`` (counts) as a PNG: colour = share of the true class (row), text = count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(matrix)
    k = len(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    side = max(4.0, 0.55 * k + 2.5)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(k), labels=[str(c) for c in class_names], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels=[str(c) for c in class_names], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(matrix.sum())
    accuracy = np.trace(matrix) / total if total else float("nan")
    ax.set_title(f"{title}: {total:,} examples, accuracy {accuracy:.4f}", fontsize=9)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.subplots_adjust(left=0.2, right=0.88, bottom=0.2, top=0.92)
    fig.savefig(path, format="png")
    return path


def _run_steps(context, split: str) -> int | None:
    """The batches the run scores of ``split`` (``trainer.test_steps`` / ``validation_steps``)."""
    if context is None:
        return None
    trainer = context.config.get("trainer") or {}
    return trainer.get("test_steps" if split == "test" else "validation_steps")


class ConfusionMatrixPlot(RunCallback):
    """At the end of the run, the confusion matrix of the trained classifier on
    ``dataset`` as ``plots/<filename>``.

    Args:
        dataset: batches of ``(images, labels)`` (the test or validation split).
        class_names: one name per class (the matrix is ``K x K``).
        split: the split's name, shown in the title; it also picks which of
            ``trainer.test_steps`` / ``trainer.validation_steps`` limits the
            batches read when ``max_batches`` is None.
        max_batches: batches of ``dataset`` to read (None: as the run scores
            that split, else all).
        filename: the PNG's name under ``plots/``.

    After the run, ``matrix`` holds the counts.
    """

    def __init__(self, dataset, class_names: Sequence[str], split: str = "test",
                 max_batches: int | None = None, filename: str = "confusion_matrix.png"):
        super().__init__()
        self.dataset = dataset
        self.class_names = [str(c) for c in class_names]
        self.split = split
        self.max_batches = max_batches
        self.filename = filename
        self.matrix: np.ndarray | None = None

    def compute(self, model, max_batches: int | None = None) -> np.ndarray:
        """The ``[K, K]`` counts of ``model`` (logits or probabilities) on the dataset."""
        k = len(self.class_names)
        matrix = np.zeros((k, k), dtype=np.int64)
        dataset = self.dataset.take(max_batches) if max_batches else self.dataset
        for batch in dataset:
            images, labels = batch[0], batch[1]
            scores = model(images, training=False)
            predicted = np.argmax(np.asarray(scores), axis=-1)
            matrix += confusion_matrix(np.asarray(labels), predicted, k)
        return matrix

    def plot(self, path: str | Path) -> Path:
        return plot_confusion_matrix(self.matrix, self.class_names, path,
                                     title=f"{self.split} confusion matrix")

    def on_run_end(self) -> str | None:
        steps = self.max_batches or _run_steps(self.context, self.split)
        self.matrix = self.compute(self.model, steps)
        if self.context is None:
            return None
        path = self.plot(self.context.output_dir / "plots" / self.filename)
        self.context.log_artifact(path, "plots")
        off = self.matrix - np.diag(np.diag(self.matrix))
        i, j = np.unravel_index(np.argmax(off), off.shape)
        worst = f"; most confused: {self.class_names[i]} -> {self.class_names[j]} ({off[i, j]})" if off[i, j] else ""
        return f"confusion matrix on {int(self.matrix.sum()):,} {self.split} images: plots/{self.filename}{worst}"


def predicted_classes(logits: np.ndarray) -> np.ndarray:
    """Per-pixel classes from logits ``[..., K]``: ``logit > 0`` for ``K = 1``, else the argmax."""
    logits = np.asarray(logits)
    if logits.shape[-1] == 1:
        return (logits[..., 0] > 0).astype(np.int32)
    return np.argmax(logits, axis=-1).astype(np.int32)


def plot_masks(images: np.ndarray, true_masks: np.ndarray, predicted_masks: np.ndarray,
               path: str | Path, positive_class: int = 1, title: str = "masks") -> Path:
    """A grid, one row per image: the image, the true mask, the predicted mask,
    and their disagreement (red: predicted positive only, blue: true positive
    only) with the per-image pixel accuracy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(images)
    fig = _figure(10.0, 2.6 * n + 0.4)
    truth = np.asarray(true_masks).reshape(np.asarray(predicted_masks).shape)
    for row in range(n):
        image = np.asarray(images[row])
        grey = image[..., 0] if image.shape[-1] == 1 else image
        true_pos = truth[row] == positive_class
        pred_pos = predicted_masks[row] == positive_class
        errors = np.ones(true_pos.shape + (3,))
        errors[pred_pos & ~true_pos] = (0.85, 0.1, 0.1)
        errors[true_pos & ~pred_pos] = (0.1, 0.3, 0.85)
        accuracy = float(np.mean(truth[row] == predicted_masks[row]))
        panels = [
            (grey, "image", {"cmap": "gray"}),
            (truth[row], "true mask", {"cmap": "viridis", "interpolation": "nearest"}),
            (predicted_masks[row], "predicted mask", {"cmap": "viridis", "interpolation": "nearest"}),
            (errors, f"disagreement (acc {accuracy:.3f})", {}),
        ]
        vmax = max(1, int(truth.max()), int(np.max(predicted_masks)))
        for col, (panel, label, style) in enumerate(panels):
            ax = fig.add_subplot(n, 4, row * 4 + col + 1)
            if col in (1, 2):
                style = {**style, "vmin": 0, "vmax": vmax}
            ax.imshow(panel, **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0 or col == 3:
                ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.5 / (2.6 * n + 0.4), wspace=0.05,
                        hspace=0.15)
    fig.savefig(path, format="png")
    return path


class MaskPreview(RunCallback):
    """At the end of the run (and every ``every_n_epochs``), ``images`` beside
    their true and predicted masks as ``plots/<filename>``.

    Args:
        images: ``[N, H, W, C]`` float images as the model takes them.
        masks: ``[N, H, W]`` or ``[N, H, W, 1]`` true class ids.
        tile_size: the model's input size when it is smaller than the images:
            each image is cut into non-overlapping tiles, predicted, and put
            back together (None: whole images).
        positive_class: the class drawn in the disagreement panel.
        every_n_epochs: also draw ``masks_epoch<k>.png`` every N epochs (0: only at the end).
        filename: the final PNG's name under ``plots/``.
        title: the figure's title.
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, tile_size: int | None = None,
                 positive_class: int = 1, every_n_epochs: int = 0, filename: str = "masks.png",
                 title: str = "masks"):
        super().__init__()
        self.images = np.asarray(images, dtype=np.float32)
        masks = np.asarray(masks)
        self.masks = masks[..., 0] if masks.ndim == 4 else masks
        self.tile_size = tile_size
        self.positive_class = int(positive_class)
        self.every_n_epochs = int(every_n_epochs)
        self.filename = filename
        self.title = title

    def predict(self, model) -> np.ndarray:
        """Predicted class ids ``[N, H, W]`` of ``model`` (logits) for the images."""
        from seqlab.data.membranes import tiles, untile

        height, width = self.images.shape[1:3]
        x = tiles(self.images, self.tile_size) if self.tile_size else self.images
        logits = np.asarray(model.predict(x, batch_size=8, verbose=0))
        if self.tile_size:
            logits = untile(logits, height, width)
        return predicted_classes(logits)

    def _draw(self, filename: str, title: str) -> Path | None:
        if self.context is None:
            return None
        path = plot_masks(self.images, self.masks, self.predict(self.model),
                          self.context.output_dir / "plots" / filename, self.positive_class, title)
        self.context.log_artifact(path, "plots")
        return path

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0:
            stem, _, suffix = self.filename.rpartition(".")
            self._draw(f"{stem}_epoch{epoch + 1}.{suffix}", f"{self.title}, epoch {epoch + 1}")

    def on_run_end(self) -> str | None:
        path = self._draw(self.filename, self.title)
        return None if path is None else f"mask preview of {len(self.images)} images: plots/{self.filename}"
