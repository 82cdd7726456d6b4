"""Language-model metrics computed from logits, token-weighted.

Perplexity and bits per character are functions of the *mean token
cross-entropy over the whole split*. A mean of per-batch perplexities (or of
per-batch means when batches differ in size) is not that, so these metrics
accumulate the summed cross-entropy and the token count and only divide at
``result()``:

    perplexity = exp(sum_i CE_i / N)
    bpc        = (sum_i CE_i / N) / ln 2

``sample_weight`` (e.g. a padding mask) weights tokens; a weight of 0 removes
the token from both sums.
"""

from __future__ import annotations

import math

import keras
from keras import ops

LN2 = math.log(2.0)


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
        if sample_weight is None:
            weight = ops.ones_like(ce)
        else:
            weight = ops.broadcast_to(ops.cast(sample_weight, self.dtype), ops.shape(ce))
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
