"""The confusion-matrix and mask-preview callbacks: right numbers, PNGs under plots/."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.diagnostics.vision import (
    ConfusionMatrixPlot,
    MaskPreview,
    confusion_matrix,
    plot_masks,
    predicted_classes,
)
from seqlab.training.context import RunContext

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Logged:
    def __init__(self):
        self.artifacts = []

    def __call__(self, path, subdir):
        self.artifacts.append((path, subdir))


def _context(tmp_path, **trainer):
    logged = _Logged()
    return RunContext(bundle=None, output_dir=tmp_path, config={"trainer": trainer}, log_artifact=logged), logged


def _read_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    return imread(path)


def test_confusion_matrix_counts_like_a_loop():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    expected = np.zeros((4, 4), int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 4), expected)


def _linear_classifier(seed=0):
    inputs = keras.Input((4, 4, 1))
    logits = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(seed=seed))(
        keras.layers.Flatten()(inputs))
    return keras.Model(inputs, logits)


def test_the_confusion_matrix_plot_scores_the_split_as_the_run_does(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 3, 40).astype("int32")
    model = _linear_classifier()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    callback = ConfusionMatrixPlot(dataset, class_names=["a", "b", "c"], split="test")
    callback.set_model(model)
    context, logged = _context(tmp_path, test_steps=2)  # debug=fast: 2 test batches
    callback.bind(context)
    message = callback.on_run_end()

    predicted = model.predict(x[:16], verbose=0).argmax(-1)
    expected = np.zeros((3, 3), int)
    for t, p in zip(y[:16], predicted):
        expected[t, p] += 1
    np.testing.assert_array_equal(callback.matrix, expected)
    path = tmp_path / "plots" / "confusion_matrix.png"
    assert logged.artifacts == [(path, "plots")]
    height, width = _read_png(path).shape[:2]
    assert height >= 400 and width > height  # a square matrix beside its colour bar
    off = expected - np.diag(np.diag(expected))
    i, j = np.unravel_index(off.argmax(), off.shape)
    assert message.startswith("confusion matrix on 16 test images: plots/confusion_matrix.png")
    assert f"most confused: {'abc'[i]} -> {'abc'[j]} ({off[i, j]})" in message

    # every batch when the run scores the whole split; nothing logged outside a run
    whole = ConfusionMatrixPlot(dataset, class_names=["a", "b", "c"])
    whole.set_model(model)
    assert whole.on_run_end() is None and whole.matrix.sum() == 40


def test_predicted_classes_threshold_one_logit_and_argmax_several():
    assert predicted_classes(np.array([[[0.3], [-0.1], [0.0]]])).tolist() == [[1, 0, 0]]
    assert predicted_classes(np.array([[[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]])).tolist() == [[1, 0]]


def _threshold_model(side):
    """logit = 10 (x - 0.5): predicts 1 exactly where a pixel is above 0.5."""
    inputs = keras.Input((side, side, 1))
    conv = keras.layers.Conv2D(1, 1)
    outputs = conv(inputs)
    conv.set_weights([np.full((1, 1, 1, 1), 10.0, "float32"), np.array([-5.0], "float32")])
    return keras.Model(inputs, outputs)


def test_the_mask_preview_stitches_tiles_and_logs_a_png(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(2, 8, 8, 1)).astype("float32")
    masks = (images[..., 0] > 0.6).astype("int32")  # the truth differs from the model's 0.5 cut
    preview = MaskPreview(images, masks, tile_size=4, every_n_epochs=2, title="test")
    preview.set_model(_threshold_model(4))  # the model takes 4x4 tiles only
    np.testing.assert_array_equal(preview.predict(preview.model), (images[..., 0] > 0.5).astype(int))

    context, logged = _context(tmp_path)
    preview.bind(context)
    preview.on_epoch_end(0)
    preview.on_epoch_end(1)
    assert preview.on_run_end() == "mask preview of 2 images: plots/masks.png"
    assert [(p.name, d) for p, d in logged.artifacts] == [("masks_epoch2.png", "plots"), ("masks.png", "plots")]
    assert _read_png(tmp_path / "plots" / "masks.png").ndim == 3


def test_the_mask_plot_shows_where_prediction_and_truth_disagree(tmp_path):
    images = np.linspace(0, 1, 2 * 6 * 6).reshape(2, 6, 6, 1)
    masks = (images[..., 0] > 0.5).astype(int)
    same = _read_png(plot_masks(images, masks, masks, tmp_path / "same.png"))
    wrong = masks.copy()
    wrong[:, :3] = 1 - wrong[:, :3]
    different = _read_png(plot_masks(images, masks, wrong, tmp_path / "different.png"))
    assert same.shape == different.shape
    assert not np.allclose(same, different)
    # red (predicted only) appears only when there are false positives
    red = lambda png: np.sum((png[..., 0] > 0.8) & (png[..., 1] < 0.2) & (png[..., 2] < 0.2))  # noqa: E731
    assert red(same) == 0 and red(different) > 0


@pytest.mark.parametrize("bad", [np.zeros((1, 4, 4), int)])
def test_mask_preview_accepts_masks_with_or_without_a_channel(bad):
    images = np.zeros((1, 4, 4, 1), "float32")
    assert MaskPreview(images, bad).masks.shape == (1, 4, 4)
    assert MaskPreview(images, bad[..., None]).masks.shape == (1, 4, 4)
