"""The translation training loss and metrics: label-smoothed cross-entropy, token accuracy.

Both take logits ``[B, T, V]`` and integer targets ``[B, T]``; the padding
mask comes in as the sample weights (1 on real tokens, 0 on padding), so
padding neither counts nor dilutes. With label smoothing ``eps``
(Szegedy et al. 2016; Vaswani et al. use ``eps = 0.1``)::

    loss     = (1 - eps) * (-log p_y) + eps * mean_v(-log p_v)
    accuracy = sum_i w_i [argmax_v logits_iv == y_i] / sum_i w_i

the accuracy (like :class:`~seqlab.metrics.Perplexity`) summed over every
token of the split before it divides. The data builder
(:mod:`seqlab.data.translation`) trains on :class:`SmoothedCrossEntropy` and
logs :func:`translation_metrics`.
"""

from __future__ import annotations

import keras
from keras import ops

from seqlab.errors import ConfigError
from seqlab.metrics import Perplexity, token_weights


@keras.saving.register_keras_serializable(package="seqlab")
class SmoothedCrossEntropy(keras.losses.Loss):
    """Sparse cross-entropy from logits with label smoothing (Szegedy et al. 2016).

    The target distribution puts ``1 - eps`` on the true token and spreads
    ``eps`` uniformly over all ``V`` tokens (the true one included), as in
    ``keras.losses.CategoricalCrossentropy(label_smoothing=eps)`` on one-hot
    targets and in Vaswani et al. (``eps = 0.1``)::

        loss = (1 - eps) * (-log p_y) + eps * mean_v(-log p_v)

    ``eps = 0`` is plain cross-entropy. With the default reduction
    (``mean_with_sample_weight``) the batch loss is the mean over tokens of
    weight 1, so padding (weight 0) neither counts nor dilutes.

    Example:

    >>> import numpy as np
    >>> logits = np.log(np.array([[[0.7, 0.2, 0.1]]], "float32"))
    >>> loss = SmoothedCrossEntropy(label_smoothing=0.1)
    >>> expected = 0.9 * -np.log(0.7) + 0.1 * -np.log([0.7, 0.2, 0.1]).mean()
    >>> bool(np.isclose(float(loss(np.array([[0]]), logits)), expected, atol=1e-6))
    True
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        name: str = "smoothed_crossentropy",
        reduction: str = "mean_with_sample_weight",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ConfigError(f"data.label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        y_true = ops.cast(y_true, "int32")
        nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)
        if self.label_smoothing == 0.0:
            return nll
        smooth = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "name": self.name,
                "reduction": self.reduction, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="seqlab")
class TokenAccuracy(keras.metrics.Metric):
    """Share of real tokens whose argmax prediction is right, over the whole split.

        accuracy = sum_i w_i [argmax_v logits_iv == y_i] / sum_i w_i

    over every token of every batch (``w``: the padding mask).
    ``keras.metrics.SparseCategoricalAccuracy`` with ``[B, T]`` sample weights
    averages each sequence over its padded length first, so a token in a
    batch padded to 32 counts half as much as one padded to 16; this one
    counts tokens, like :class:`~seqlab.metrics.Perplexity`.

    Example:

    >>> import numpy as np
    >>> m = TokenAccuracy()
    >>> logits = np.eye(3, dtype="float32")[None, [0, 1, 2]]     # predicts 0, 1, 2
    >>> m.update_state(np.array([[0, 2, 2]]), logits, sample_weight=np.array([[1, 1, 0]]))
    >>> float(m.result())
    0.5
    """

    def __init__(self, name: str = "accuracy", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hit = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), ops.cast(y_true, "int32")), self.dtype)
        weight = token_weights(sample_weight, hit)
        self.correct.assign_add(ops.sum(hit * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


def translation_metrics() -> list:
    """Token accuracy and perplexity (unsmoothed), token-weighted over the split, padding masked."""
    return [TokenAccuracy(name="accuracy"), Perplexity(name="perplexity")]
