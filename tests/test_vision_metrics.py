"""Pixel accuracy, IoU and Dice against counts worked out by hand and a NumPy reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.metrics import (
    MaxFScorePixelError,
    PixelAccuracy,
    SegmentationDice,
    SegmentationIoU,
    segmentation_metrics,
)


def _binary_logits(predicted: np.ndarray) -> np.ndarray:
    """Logits [B, H, W, 1] whose thresholding at 0 gives ``predicted`` (0/1)."""
    rng = np.random.default_rng(0)
    magnitude = rng.uniform(0.1, 5.0, size=predicted.shape)
    return np.where(predicted == 1, magnitude, -magnitude)[..., None].astype("float32")


def _reference(y_true, predicted, positive=1, weight=None):
    """NumPy: the three ratios straight from their definitions."""
    y_true, predicted = np.asarray(y_true).ravel(), np.asarray(predicted).ravel()
    w = np.ones_like(y_true, dtype=np.float64) if weight is None else np.asarray(weight, np.float64).ravel()
    tp = np.sum(w * ((predicted == positive) & (y_true == positive)))
    fp = np.sum(w * ((predicted == positive) & (y_true != positive)))
    fn = np.sum(w * ((predicted != positive) & (y_true == positive)))
    accuracy = np.sum(w * (predicted == y_true)) / np.sum(w)
    return accuracy, tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def _scores(metrics):
    return [float(m.result()) for m in metrics]


def test_hand_computed_binary_mask():
    # TP = 2 at (0,0) and (1,1); FP = 1 at (0,2); FN = 1 at (2,1)
    y_true = np.array([[[1, 0, 0],
                        [0, 1, 0],
                        [0, 1, 0]]])
    predicted = np.array([[[1, 0, 1],
                           [0, 1, 0],
                           [0, 0, 0]]])
    # correct pixels: 9 - FP - FN = 7; IoU = 2 / (2 + 1 + 1) = 0.5; Dice = 4 / (4 + 1 + 1) = 2/3
    metrics = segmentation_metrics()
    for m in metrics:
        m.update_state(y_true[..., None], _binary_logits(predicted))  # y_true as [B, H, W, 1]
    assert [m.name for m in metrics] == ["pixel_accuracy", "iou", "dice"]
    assert _scores(metrics) == pytest.approx([7 / 9, 0.5, 2 / 3], abs=1e-6)


def test_threshold_is_at_logit_zero():
    y_true = np.array([[[1, 1, 0, 0]]])
    logits = np.array([[[[0.01], [-0.01], [0.01], [-0.01]]]], "float32")  # sigmoid 0.5025 / 0.4975
    m = SegmentationIoU()
    m.update_state(y_true, logits)
    assert float(m.result()) == pytest.approx(1 / 3)  # TP 1, FN 1, FP 1


def test_multiclass_argmax_with_a_chosen_positive_class():
    # 3 classes; class 0 is scored (e.g. "pet" in the Oxford pets trimap)
    y_true = np.array([[[0, 0, 1, 2],
                        [2, 0, 1, 1]]])
    predicted = np.array([[[0, 1, 1, 2],
                           [0, 0, 2, 1]]])
    logits = np.eye(3, dtype="float32")[predicted] * 4.0 - 1.0
    # class 0: TP 2, FP 1 (1,0), FN 1 (0,1); correct 5 of 8 over all classes
    metrics = segmentation_metrics(positive_class=0)
    for m in metrics:
        m.update_state(y_true, logits)
    assert _scores(metrics) == pytest.approx([5 / 8, 2 / 4, 4 / 6], abs=1e-6)
    assert _scores(metrics) == pytest.approx(_reference(y_true, predicted, positive=0), abs=1e-6)


def test_counts_accumulate_over_batches_by_pixel_not_by_batch():
    rng = np.random.default_rng(1)
    batches = []
    for n in (3, 1):  # uneven batches: a mean of batch means would differ
        y = (rng.uniform(size=(n, 6, 5)) < 0.3).astype("int32")
        p = np.where(rng.uniform(size=y.shape) < 0.8, y, 1 - y)
        batches.append((y, p))
    metrics = segmentation_metrics()
    for y, p in batches:
        for m in metrics:
            m.update_state(y, _binary_logits(p))
    y_all = np.concatenate([y for y, _ in batches])
    p_all = np.concatenate([p for _, p in batches])
    expected = _reference(y_all, p_all)
    per_batch = np.mean([_reference(y, p)[1] for y, p in batches])
    assert abs(per_batch - expected[1]) > 1e-3  # the test can tell them apart
    assert _scores(metrics) == pytest.approx(expected, abs=1e-6)
    for m in metrics:
        m.reset_state()
    assert float(metrics[0].result()) == 0.0


def test_sample_weight_removes_pixels_and_weights_images():
    y_true = np.array([[[1, 0], [0, 1]], [[1, 1], [0, 0]]])
    predicted = np.array([[[1, 1], [0, 0]], [[1, 0], [0, 0]]])
    pixel_weight = np.array([[[1, 0], [1, 1]], [[1, 1], [0, 1]]], "float32")
    metrics = segmentation_metrics()
    for m in metrics:
        m.update_state(y_true, _binary_logits(predicted), sample_weight=pixel_weight)
    assert _scores(metrics) == pytest.approx(_reference(y_true, predicted, weight=pixel_weight), abs=1e-6)
    image_weight = np.array([2.0, 0.0], "float32")  # only the first image counts
    for m in metrics:
        m.reset_state()
        m.update_state(y_true, _binary_logits(predicted), sample_weight=image_weight)
    assert _scores(metrics) == pytest.approx(_reference(y_true[:1], predicted[:1]), abs=1e-6)


def test_empty_truth_and_empty_prediction_agree_perfectly():
    y_true = np.zeros((1, 3, 3), "int32")
    metrics = segmentation_metrics()
    for m in metrics:
        m.update_state(y_true, _binary_logits(np.zeros((1, 3, 3), "int32")))
    assert _scores(metrics) == [1.0, 1.0, 1.0]
    for m in metrics:  # one false positive: IoU and Dice drop to 0
        m.reset_state()
        m.update_state(y_true, _binary_logits(np.eye(3, dtype="int32")[None]))
    assert _scores(metrics) == pytest.approx([6 / 9, 0.0, 0.0])


def test_in_compiled_evaluate_and_serialized():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 8, 8, 1)).astype("float32")
    y = (x[..., 0] > 0.2).astype("float32")[..., None]
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, use_bias=True)(inputs))
    model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=segmentation_metrics(), jit_compile=True)
    scores = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    predicted = (model.predict(x, verbose=0)[..., 0] > 0).astype("int32")
    expected = _reference(y[..., 0], predicted)
    assert [scores["pixel_accuracy"], scores["iou"], scores["dice"]] == pytest.approx(expected, abs=1e-5)
    for cls in (PixelAccuracy, SegmentationIoU, SegmentationDice):
        m = cls(name="val_thing", positive_class=2, threshold=0.5)
        again = keras.metrics.deserialize(keras.metrics.serialize(m))
        assert isinstance(again, cls) and again.name == "val_thing"
        assert (again.positive_class, again.threshold) == (2, 0.5)


def _isbi_pixel_error(labels, probability, thresholds, weight=None):
    """The Fiji PixelError sweep in NumPy: foreground = label > 0, predicted = proposal > theta."""
    weight = np.ones_like(probability) if weight is None else weight
    truth = labels > 0
    best = 0.0
    for theta in thresholds:
        predicted = probability > theta
        tp = np.sum(weight * (predicted & truth))
        fp = np.sum(weight * (predicted & ~truth))
        fn = np.sum(weight * (~predicted & truth))
        best = max(best, 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return 1.0 - best


def test_isbi_pixel_error_is_one_minus_the_best_f_score_over_thresholds():
    rng = np.random.default_rng(3)
    interior = (rng.random((3, 16, 16)) > 0.25).astype("float32")  # ISBI convention: 1 = cell interior
    p_interior = np.clip(0.35 * interior + 0.65 * rng.random(interior.shape), 0.01, 0.99)
    thresholds = tuple(i / 10 for i in range(11))
    expected = _isbi_pixel_error(interior, p_interior, thresholds)
    assert 0.0 < expected < 0.3
    # seqlab's membrane data: class 1 = membrane, logits of the membrane; the foreground is class 0
    membrane = 1.0 - interior
    logits = np.log((1 - p_interior) / p_interior)[..., None]
    m = MaxFScorePixelError(foreground_class=0, thresholds=thresholds)
    m.update_state(membrane[:2], logits[:2])
    m.update_state(membrane[2:], logits[2:])  # counts accumulate, not per-batch means
    assert float(m.result()) == pytest.approx(expected, abs=1e-6)
    # ... equal to scoring the interior as class 1 directly
    direct = MaxFScorePixelError(foreground_class=1, thresholds=thresholds)
    direct.update_state(interior, -logits)
    assert float(direct.result()) == pytest.approx(expected, abs=1e-6)
    # Sample weights weight pixels, as in the reference.
    weight = rng.random(interior.shape).astype("float32")
    weighted = MaxFScorePixelError(foreground_class=0, thresholds=thresholds)
    weighted.update_state(membrane, logits, sample_weight=weight)
    assert float(weighted.result()) == pytest.approx(
        _isbi_pixel_error(interior, p_interior, thresholds, weight), abs=1e-5)


def test_isbi_pixel_error_checks_and_serializes():
    with pytest.raises(ValueError, match="foreground_class must be 0 or 1, got 2"):
        MaxFScorePixelError(foreground_class=2)
    with pytest.raises(ValueError, match="one binary logit channel; got 3 channels"):
        MaxFScorePixelError().update_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 3)))
    m = MaxFScorePixelError(name="val_pixel_error", thresholds=(0.3, 0.6))
    again = keras.metrics.deserialize(keras.metrics.serialize(m))
    assert isinstance(again, MaxFScorePixelError) and again.thresholds == (0.3, 0.6)
    assert again.foreground_class == 0
