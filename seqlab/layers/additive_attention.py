"""Additive (Bahdanau) attention from its equations.

A query ``s_i`` (the decoder's state, ``[d_q]``) attends over the values
``h_j`` (the encoder's outputs, ``[S, d_v]``) through a one-hidden-layer
scoring network (Bahdanau, Cho & Bengio 2015, eq. 6 and appendix A.1.2)::

    k_j      = W_k h_j + b                          keys, [S, A]: computed ONCE per source
    e_ij     = v^T tanh(W_q s_i + k_j)              scores, [S]
    alpha_ij = exp(e_ij) / sum_{j': m_j'} exp(e_ij')   for m_j (a real source position), else 0
    c_i      = sum_j alpha_ij h_j                   context, [d_v]

``W_q [d_q, A]``, ``W_k [d_v, A]``, ``b [A]`` and ``v [A]`` are the weights
(``A = units``). The keys do not depend on the query, so a decoder computes
them once per sentence (:meth:`BahdanauAttention.project_keys`) and passes
them to every step: one step then costs ``O(S A + d_q A + S d_v)``, not the
``O(S d_v A)`` of projecting every value again.

Masking: padded source positions (``mask`` False) get weight exactly 0 (their
scores are set to the lowest float before the softmax, and the weights are
zeroed after it, so even a row with no real position gives zeros, never NaN
or a uniform spread over padding). The softmax runs in float32.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqlab")
class BahdanauAttention(keras.layers.Layer):
    """Additive attention of queries over values (see the module docstring for the equations).

    Args:
        units: ``A``, the width of the scoring network's hidden layer.
        use_bias: the bias ``b`` of the key projection.
        kernel_initializer: of ``W_q``, ``W_k`` and ``v``.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        query: ``[B, d_q]`` (one query per row, a decoder step) or
            ``[B, T, d_q]`` (``T`` queries).
        value: ``[B, S, d_v]``.
        value_mask: ``[B, S]`` bool, True on real source positions; None:
            every position is real.
        keys: ``project_keys(value)``, precomputed; None: computed here.
        return_attention_scores: also return the weights ``alpha``.

    Returns:
        The context ``[B, d_v]`` (or ``[B, T, d_v]``), and with
        ``return_attention_scores`` the weights ``[B, S]`` (or ``[B, T, S]``),
        float32, summing to 1 over the real positions.

    Example:

    >>> import numpy as np
    >>> layer = BahdanauAttention(8)
    >>> value = np.random.default_rng(0).normal(size=(2, 5, 6)).astype("float32")
    >>> mask = np.array([[True] * 5, [True, True, True, False, False]])
    >>> context, weights = layer(np.ones((2, 4), "float32"), value, value_mask=mask,
    ...                          return_attention_scores=True)
    >>> tuple(context.shape), np.asarray(weights)[1, 3:].tolist()
    ((2, 6), [0.0, 0.0])
    """

    def __init__(self, units: int, use_bias: bool = True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"BahdanauAttention: units must be a positive integer, got {units!r}")
        self.units = units
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, query_shape, value_shape=None, *args, **kwargs):
        if value_shape is None:
            raise ValueError("BahdanauAttention is called as layer(query, value, ...)")
        init = self.kernel_initializer
        self.query_kernel = self.add_weight(shape=(query_shape[-1], self.units), name="query_kernel",
                                            initializer=init)
        self.key_kernel = self.add_weight(shape=(value_shape[-1], self.units), name="key_kernel",
                                          initializer=init)
        self.key_bias = (self.add_weight(shape=(self.units,), name="key_bias", initializer="zeros")
                         if self.use_bias else None)
        # v: a [A] vector; glorot on [A, 1] gives it a sensible scale.
        self.score_vector = self.add_weight(shape=(self.units, 1), name="score_vector", initializer=init)
        self.built = True

    def project_keys(self, value):
        """``k_j = W_k h_j + b``: ``[B, S, d_v]`` -> ``[B, S, A]`` (once per source)."""
        keys = ops.matmul(value, self.key_kernel)
        if self.key_bias is not None:
            keys = keys + self.key_bias
        return keys

    def scores(self, query, keys):
        """``e = v^T tanh(W_q s + k)``: ``[B, (T,) d_q]`` x ``[B, S, A]`` -> ``[B, (T,) S]``."""
        q = ops.matmul(query, self.query_kernel)
        if len(query.shape) == 2:
            hidden = ops.tanh(ops.expand_dims(q, 1) + keys)  # [B, S, A]
        else:
            hidden = ops.tanh(ops.expand_dims(q, 2) + ops.expand_dims(keys, 1))  # [B, T, S, A]
        return ops.squeeze(ops.matmul(hidden, self.score_vector), -1)

    @staticmethod
    def weights_from_scores(scores, value_mask=None):
        """``alpha``: softmax over the source axis (float32), exactly 0 where ``value_mask`` is False."""
        scores = ops.cast(scores, "float32")
        if value_mask is None:
            return ops.softmax(scores, axis=-1)
        mask = ops.cast(value_mask, "bool")
        if len(scores.shape) == 3:
            mask = ops.expand_dims(mask, 1)
        # The lowest float makes exp() underflow to 0; the final where also zeroes a
        # row with no real position (uniform over its padding otherwise).
        weights = ops.softmax(ops.where(mask, scores, -3.0e38), axis=-1)
        return ops.where(mask, weights, 0.0)

    def call(self, query, value, value_mask=None, keys=None, return_attention_scores=False):
        if keys is None:
            keys = self.project_keys(value)
        weights = self.weights_from_scores(self.scores(query, keys), value_mask)
        if len(query.shape) == 2:
            context = ops.squeeze(ops.matmul(ops.expand_dims(ops.cast(weights, value.dtype), 1), value), 1)
        else:
            context = ops.matmul(ops.cast(weights, value.dtype), value)
        if return_attention_scores:
            return context, weights
        return context

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


__all__ = ["BahdanauAttention"]
