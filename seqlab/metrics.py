"""Metrics computed from logits: language models (token-weighted) and segmentation (pixel-weighted).

Perplexity and bits per character are functions of the *mean token
cross-entropy over the whole split*. A mean of per-batch perplexities (or of
per-batch means when batches differ in size) is not that, so these metrics
accumulate the summed cross-entropy and the token count and only divide at
``result()``:

    perplexity = exp(sum_i CE_i / N)
    bpc        = (sum_i CE_i / N) / ln 2

``sample_weight`` (e.g. a padding mask) weights tokens; a weight of 0 removes
the token from both sums.

The segmentation metrics (:class:`PixelAccuracy`, :class:`SegmentationIoU`,
:class:`SegmentationDice`, logged as ``pixel_accuracy``, ``iou``, ``dice``)
likewise sum pixel counts over the whole split and divide once:

    pixel_accuracy = correct pixels / pixels
    iou            = TP / (TP + FP + FN)
    dice           = 2 TP / (2 TP + FP + FN)

of the positive class (a binary logit above 0, or the argmax).
"""

from __future__ import annotations

import math

import keras
from keras import ops

LN2 = math.log(2.0)


def token_weights(sample_weight, values):
    """``sample_weight`` (None = all ones) broadcast to ``values``' shape and dtype:
    the per-token weights of a token-weighted metric (0 on padding)."""
    if sample_weight is None:
        return ops.ones_like(values)
    return ops.broadcast_to(ops.cast(sample_weight, values.dtype), ops.shape(values))


class _TokenCrossEntropy(keras.metrics.Metric):
    """Accumulates summed sparse cross-entropy (nats) and token count."""

    def __init__(self, name: str, from_logits: bool = True, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.from_logits = from_logits
        self.total_nats = self.add_variable(shape=(), initializer="zeros", name="total_nats")
        self.token_count = self.add_variable(shape=(), initializer="zeros", name="token_count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        ce = keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits
        )
        ce = ops.cast(ce, self.dtype)
        weight = token_weights(sample_weight, ce)
        self.total_nats.assign_add(ops.sum(ce * weight))
        self.token_count.assign_add(ops.sum(weight))

    def mean_nats(self):
        return ops.divide_no_nan(self.total_nats, self.token_count)

    def reset_state(self):
        self.total_nats.assign(0.0)
        self.token_count.assign(0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="seqlab")
class Perplexity(_TokenCrossEntropy):
    """exp(mean token cross-entropy), token-weighted across batches.

    ``perplexity = exp(sum_i w_i CE_i / sum_i w_i)`` over every token of every
    batch since the last ``reset_state()``: a batch counts by its tokens, so
    a short or mostly padded last batch does not count as a full one.

    Args:
        name: the metric's name (``perplexity``).
        from_logits: whether ``y_pred`` holds logits (seqlab's models) or
            probabilities.
        dtype: the dtype of the accumulators and the result.

    ``update_state`` arguments:
        y_true: integer token ids ``[B, T]``.
        y_pred: logits (or probabilities) ``[B, T, vocab_size]``.
        sample_weight: optional token weights, broadcast to ``[B, T]``; 0
            removes a token (padding).

    Returns:
        ``result()``: a scalar, ``vocab_size`` for uniform predictions, 1 for
        perfect ones.

    Example:

    >>> import numpy as np
    >>> m = Perplexity()
    >>> uniform = np.zeros((1, 3, 4), "float32")        # 4 equally likely tokens
    >>> m.update_state(np.array([[1, 2, 3]]), uniform, sample_weight=np.array([[1, 1, 0]]))
    >>> round(float(m.result()), 4)
    4.0

    In ``model.compile(metrics=[Perplexity()])`` it is logged as ``perplexity``
    / ``val_perplexity``.
    """

    def __init__(self, name: str = "perplexity", from_logits: bool = True, dtype=None, **kwargs):
        super().__init__(name=name, from_logits=from_logits, dtype=dtype, **kwargs)

    def result(self):
        return ops.exp(self.mean_nats())


@keras.saving.register_keras_serializable(package="seqlab")
class BitsPerCharacter(_TokenCrossEntropy):
    """Mean token cross-entropy in bits (nats / ln 2), token-weighted.

    Named for character models; on any other tokenization it is bits per token.
    ``bpc = (sum_i w_i CE_i / sum_i w_i) / ln 2`` over every token since the
    last ``reset_state()``, as for :class:`Perplexity` (``bpc =
    log2(perplexity)``).

    Args:
        name: the metric's name (``bpc``).
        from_logits: whether ``y_pred`` holds logits (seqlab's models) or
            probabilities.
        dtype: the dtype of the accumulators and the result.

    ``update_state`` arguments:
        y_true: integer token ids ``[B, T]``.
        y_pred: logits (or probabilities) ``[B, T, vocab_size]``.
        sample_weight: optional token weights, broadcast to ``[B, T]``; 0
            removes a token (padding).

    Returns:
        ``result()``: a scalar in bits, ``log2(vocab_size)`` for uniform
        predictions, 0 for perfect ones.

    Example:

    >>> import numpy as np
    >>> m = BitsPerCharacter()
    >>> m.update_state(np.array([[0, 1]]), np.zeros((1, 2, 8), "float32"))  # uniform over 8
    >>> round(float(m.result()), 4)
    3.0
    """

    def __init__(self, name: str = "bpc", from_logits: bool = True, dtype=None, **kwargs):
        super().__init__(name=name, from_logits=from_logits, dtype=dtype, **kwargs)

    def result(self):
        return self.mean_nats() / LN2


@keras.saving.register_keras_serializable(package="seqlab")
class ExactLoss(keras.metrics.Mean):
    """A loss as the exact sample-weighted mean over a whole evaluation.

    Keras' own ``loss`` in ``evaluate`` averages per-batch losses weighted by
    the batch size, so a last batch whose targets are mostly padding (weight
    0) counts as much as a full one. This metric sums ``weight * loss`` and
    ``weight`` over every token of every batch and divides once:

        exact_loss = sum_i w_i * loss_i / sum_i w_i

    Args:
        loss: a Keras loss object; its per-element values (``loss.call``) are
            averaged.
        name: the metric's name (``exact_loss``).

    Example:

    >>> import numpy as np
    >>> m = ExactLoss(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> logits = np.zeros((1, 2, 4), "float32")       # uniform over 4 classes
    >>> m.update_state(np.array([[1, 2]]), logits, sample_weight=np.array([[1.0, 0.0]]))
    >>> round(float(m.result()), 4)                   # ln 4, the padded token ignored
    1.3863
    """

    def __init__(self, loss, name: str = "exact_loss", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.loss = keras.losses.get(loss) if isinstance(loss, (dict, str)) else loss

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self.loss.call(y_true, y_pred), sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "loss": keras.losses.serialize(self.loss)}


# --------------------------------------------------------------------------
# Segmentation metrics (vision): pixel accuracy, IoU and Dice from logits
# --------------------------------------------------------------------------
def _pixel_weights(sample_weight, pixels):
    """``sample_weight`` (None, per image or per pixel) broadcast to the ``[B, H, W]`` of ``pixels``."""
    if sample_weight is None:
        return ops.ones_like(pixels)
    weight = ops.cast(sample_weight, pixels.dtype)
    while len(weight.shape) > len(pixels.shape):
        weight = ops.squeeze(weight, axis=-1)
    while len(weight.shape) < len(pixels.shape):
        weight = ops.expand_dims(weight, axis=-1)
    return ops.broadcast_to(weight, ops.shape(pixels))


class _PixelCounts(keras.metrics.Metric):
    """Accumulates per-pixel counts over every batch since ``reset_state()``.

    ``y_pred`` holds logits ``[B, H, W, K]``:

    - ``K == 1``: one binary logit per pixel; a pixel is predicted positive
      when its logit is above ``threshold`` (0, i.e. probability 0.5), and
      ``y_true`` (0/1, ``[B, H, W]`` or ``[B, H, W, 1]``) is positive where it
      equals 1;
    - ``K > 1``: the predicted class is the argmax over the last axis and the
      positive class is ``positive_class``; ``y_true`` holds class ids.

    Counted (``sample_weight``, broadcast to ``[B, H, W]``, weights pixels):
    ``TP``, ``FP``, ``FN`` of the positive class, the correctly classified
    pixels (all classes) and all pixels. Ratios are taken once, at
    ``result()``, so they are pixel-weighted over the whole split, not means
    of per-batch or per-image values.
    """

    def __init__(self, name: str, positive_class: int = 1, threshold: float = 0.0, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.positive_class = int(positive_class)
        self.threshold = float(threshold)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")
        self.false_positives = self.add_variable(shape=(), initializer="zeros", name="false_positives")
        self.false_negatives = self.add_variable(shape=(), initializer="zeros", name="false_negatives")
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        if y_pred.shape[-1] == 1:
            predicted = ops.cast(ops.squeeze(y_pred, axis=-1) > self.threshold, "int32")
            positive = 1
        else:
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
            positive = self.positive_class
        y_true = ops.cast(ops.round(ops.cast(y_true, "float32")), "int32")
        pred_pos = ops.cast(ops.equal(predicted, positive), self.dtype)
        true_pos = ops.cast(ops.equal(y_true, positive), self.dtype)
        correct = ops.cast(ops.equal(predicted, y_true), self.dtype)
        weight = _pixel_weights(sample_weight, correct)
        self.true_positives.assign_add(ops.sum(pred_pos * true_pos * weight))
        self.false_positives.assign_add(ops.sum(pred_pos * (1.0 - true_pos) * weight))
        self.false_negatives.assign_add(ops.sum((1.0 - pred_pos) * true_pos * weight))
        self.correct.assign_add(ops.sum(correct * weight))
        self.total.assign_add(ops.sum(weight))

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros_like(variable))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "positive_class": self.positive_class,
                "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="seqlab")
class PixelAccuracy(_PixelCounts):
    """The share of pixels whose predicted class is the true one, from logits.

        pixel_accuracy = sum_p w_p [pred_p == true_p] / sum_p w_p

    over every pixel of every batch since the last ``reset_state()``. With
    one logit channel the prediction is ``logit > threshold`` (0: probability
    0.5); with ``K`` channels it is the argmax (all classes count).

    Args:
        name: the metric's name (``pixel_accuracy``).
        positive_class: unused by this ratio (kept so the three segmentation
            metrics take the same arguments).
        threshold: the logit above which a binary pixel is positive.

    ``update_state`` arguments:
        y_true: ``[B, H, W]`` or ``[B, H, W, 1]`` class ids (0/1 for binary).
        y_pred: logits ``[B, H, W, K]``, ``K >= 1``.
        sample_weight: optional pixel or image weights.

    Example:

    >>> import numpy as np
    >>> m = PixelAccuracy()
    >>> y_true = np.array([[[1, 0], [0, 0]]])                  # one 2x2 mask
    >>> logits = np.array([[[[3.0], [2.0]], [[-1.0], [-4.0]]]])  # predicts [[1, 1], [0, 0]]
    >>> m.update_state(y_true, logits)
    >>> float(m.result())                                      # 3 of 4 pixels right
    0.75
    """

    def __init__(self, name: str = "pixel_accuracy", positive_class: int = 1, threshold: float = 0.0,
                 dtype=None, **kwargs):
        super().__init__(name=name, positive_class=positive_class, threshold=threshold, dtype=dtype,
                         **kwargs)

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)


@keras.saving.register_keras_serializable(package="seqlab")
class SegmentationIoU(_PixelCounts):
    """Intersection over union (Jaccard index) of the positive class, from logits.

        iou = TP / (TP + FP + FN)

    with ``TP``, ``FP``, ``FN`` the (weighted) pixel counts of the positive
    class summed over every batch since the last ``reset_state()``. When
    neither the truth nor the prediction has a positive pixel
    (``TP + FP + FN = 0``) the two agree perfectly and ``iou = 1``.

    Args:
        name: the metric's name (``iou``).
        positive_class: the class scored when ``y_pred`` has ``K > 1``
            channels; with one channel the positive class is 1.
        threshold: the logit above which a binary pixel is positive.

    Example:

    >>> import numpy as np
    >>> m = SegmentationIoU()
    >>> y_true = np.array([[[1, 0], [0, 0]]])
    >>> logits = np.array([[[[3.0], [2.0]], [[-1.0], [-4.0]]]])  # TP=1, FP=1, FN=0
    >>> m.update_state(y_true, logits)
    >>> float(m.result())
    0.5
    """

    def __init__(self, name: str = "iou", positive_class: int = 1, threshold: float = 0.0, dtype=None,
                 **kwargs):
        super().__init__(name=name, positive_class=positive_class, threshold=threshold, dtype=dtype,
                         **kwargs)

    def result(self):
        union = self.true_positives + self.false_positives + self.false_negatives
        return ops.where(union > 0, ops.divide_no_nan(self.true_positives, union), 1.0)


@keras.saving.register_keras_serializable(package="seqlab")
class SegmentationDice(_PixelCounts):
    """Dice coefficient (F1 score) of the positive class, from logits.

        dice = 2 TP / (2 TP + FP + FN)      (= 2 iou / (1 + iou))

    with the pixel counts of :class:`SegmentationIoU`; 1 when neither the
    truth nor the prediction has a positive pixel.

    Args:
        name: the metric's name (``dice``).
        positive_class: the class scored when ``y_pred`` has ``K > 1``
            channels; with one channel the positive class is 1.
        threshold: the logit above which a binary pixel is positive.

    Example:

    >>> import numpy as np
    >>> m = SegmentationDice()
    >>> y_true = np.array([[[1, 0], [0, 0]]])
    >>> logits = np.array([[[[3.0], [2.0]], [[-1.0], [-4.0]]]])  # TP=1, FP=1, FN=0
    >>> m.update_state(y_true, logits)
    >>> round(float(m.result()), 4)
    0.6667
    """

    def __init__(self, name: str = "dice", positive_class: int = 1, threshold: float = 0.0, dtype=None,
                 **kwargs):
        super().__init__(name=name, positive_class=positive_class, threshold=threshold, dtype=dtype,
                         **kwargs)

    def result(self):
        denominator = 2.0 * self.true_positives + self.false_positives + self.false_negatives
        return ops.where(denominator > 0, ops.divide_no_nan(2.0 * self.true_positives, denominator), 1.0)


def segmentation_metrics(positive_class: int = 1, threshold: float = 0.0) -> list:
    """Fresh ``pixel_accuracy``, ``iou`` and ``dice`` metrics (the MLflow keys of DESIGN.md)."""
    return [
        PixelAccuracy(positive_class=positive_class, threshold=threshold),
        SegmentationIoU(positive_class=positive_class, threshold=threshold),
        SegmentationDice(positive_class=positive_class, threshold=threshold),
    ]


@keras.saving.register_keras_serializable(package="seqlab")
class MaxFScorePixelError(keras.metrics.Metric):
    """The ISBI 2012 challenge's *pixel error* of a binary segmentation, from logits.

        pixel_error = 1 - max_theta F1_theta,   F1_theta = 2 TP / (2 TP + FP + FN)

    where a pixel is predicted foreground when its foreground probability is
    above ``theta``, for each ``theta`` of ``thresholds``, and the counts are
    summed over every batch since the last ``reset_state()``. This is the
    challenge's definition ("1 - the maximal F-score of pixel similarity",
    Fiji's ``trainableSegmentation.metrics.PixelError``): its foreground is
    the label value > 0 of the ISBI masks, i.e. the **cell interior**, not
    the membrane. It is not ``1 - pixel accuracy``: the U-Net paper's 0.0611
    (Ronneberger et al. 2015, table 1) is this figure on the challenge's
    test stack.

    Args:
        name: the metric's name (``pixel_error``).
        foreground_class: which 0/1 label is the F-score's foreground; the
            probability of class 1 is ``sigmoid(logit)``. seqlab's membrane
            data has membrane = 1, so the ISBI foreground is class 0.
        thresholds: the probabilities swept (default 0, 0.1, ..., 1).

    ``update_state`` arguments: ``y_true`` 0/1 ``[B, H, W]`` or
    ``[B, H, W, 1]``, ``y_pred`` one logit channel ``[B, H, W, 1]``,
    optional ``sample_weight``, as for :class:`PixelAccuracy`.

    Example:

    >>> import numpy as np
    >>> m = MaxFScorePixelError(foreground_class=1, thresholds=(0.25, 0.5))
    >>> y_true = np.array([[[1, 1], [0, 0]]])
    >>> p = np.array([[[[0.9], [0.4]], [[0.3], [0.1]]]])     # probabilities of class 1
    >>> m.update_state(y_true, np.log(p / (1 - p)))          # logits
    >>> # theta 0.25: TP 2, FP 1 -> F1 0.8; theta 0.5: TP 1, FN 1 -> F1 0.667
    >>> round(float(m.result()), 4)
    0.2
    """

    def __init__(self, name: str = "pixel_error", foreground_class: int = 0,
                 thresholds=tuple(i / 10 for i in range(11)), dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if foreground_class not in (0, 1):
            raise ValueError(f"foreground_class must be 0 or 1, got {foreground_class!r}")
        self.foreground_class = int(foreground_class)
        self.thresholds = tuple(float(t) for t in thresholds)
        shape = (len(self.thresholds),)
        self.true_positives = self.add_variable(shape=shape, initializer="zeros", name="true_positives")
        self.false_positives = self.add_variable(shape=shape, initializer="zeros", name="false_positives")
        self.false_negatives = self.add_variable(shape=shape, initializer="zeros", name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if y_pred.shape[-1] != 1:
            raise ValueError(f"{self.name} scores one binary logit channel; got {y_pred.shape[-1]} channels")
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        probability = ops.sigmoid(ops.cast(ops.squeeze(y_pred, axis=-1), "float32"))
        if self.foreground_class == 0:
            probability = 1.0 - probability
        truth = ops.cast(ops.equal(ops.cast(ops.round(ops.cast(y_true, "float32")), "int32"),
                                   self.foreground_class), self.dtype)
        weight = _pixel_weights(sample_weight, truth)
        # [n_thresholds, pixels]: one row of predictions per threshold
        predicted = ops.cast(ops.reshape(probability, (1, -1)) >
                             ops.convert_to_tensor(self.thresholds, "float32")[:, None], self.dtype)
        truth, weight = ops.reshape(truth, (1, -1)), ops.reshape(weight, (1, -1))
        self.true_positives.assign_add(ops.sum(predicted * truth * weight, axis=1))
        self.false_positives.assign_add(ops.sum(predicted * (1.0 - truth) * weight, axis=1))
        self.false_negatives.assign_add(ops.sum((1.0 - predicted) * truth * weight, axis=1))

    def result(self):
        f1 = ops.divide_no_nan(2.0 * self.true_positives,
                               2.0 * self.true_positives + self.false_positives + self.false_negatives)
        return 1.0 - ops.max(f1)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros_like(variable))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "foreground_class": self.foreground_class,
                "thresholds": list(self.thresholds)}
