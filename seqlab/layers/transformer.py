"""Transformer blocks: self-attention, optional cross-attention, feed-forward.

Encoder block (BERT; the encoder of Vaswani et al.), pre-norm
(``norm_first=True``, GPT-2 and most modern models)::

    x = x + Dropout(SelfAttention(LN(x)))            padding mask from the input's Keras mask
    x = x + Dropout(FFN(LN(x)))                      FFN(h) = W_2 act(W_1 h + b_1) + b_2

post-norm (``norm_first=False``, the original paper)::

    x = LN(x + Dropout(SelfAttention(x)))
    x = LN(x + Dropout(FFN(x)))

Decoder block: the same with a **causal** self-attention and, with
``cross_attention=True``, a cross-attention over an encoder ``memory``
between the two (``x = x + Dropout(CrossAttention(LN(x), memory))``, its keys
masked by ``memory_mask``). A decoder-only LM (GPT) uses decoder blocks with
``cross_attention=False``.

Incremental decoding: both blocks take ``cache`` (their self-attention's
``[B, 2, H, L, d_head]`` buffer, :meth:`TransformerEncoderBlock.init_cache`)
and ``cache_index`` and then return ``(output, new_cache)``; see
:class:`seqlab.layers.attention.MultiHeadAttention`. The cross-attention's
keys/values come from ``memory`` on every call, or once:
``memory_kv = block.project_memory(memory)`` and then
``block(x, memory_kv=memory_kv, memory_mask=..., cache=..., cache_index=t)``
(``memory`` may then be omitted).

Sublayers (names fixed, for weight copying and inspection): ``attention``,
``attention_norm``, ``attention_dropout``; decoder ``cross_attention``,
``cross_norm``, ``cross_dropout``; ``ffn_in``, ``ffn_out`` (Dense),
``ffn_norm``, ``ffn_dropout``. The norms are
:class:`~seqlab.layers.normalization.LayerNorm` (Keras' LayerNormalization
with a closed-form gradient); ``activation="gelu"`` is
:func:`~seqlab.layers.activations.gelu` (exact, hand-written gradient).

For encoder heads, :mod:`seqlab.layers.class_token` has
:class:`~seqlab.layers.class_token.ClassToken` (prepend a learned ``[CLS]``
vector, extending the padding mask) and
:class:`~seqlab.layers.class_token.FirstToken` (its output). The mean over
valid positions is :class:`seqlab.layers.pooling.MaskedMeanPooling`.
"""

from __future__ import annotations

import keras

from seqlab.layers.activations import ACTIVATIONS, activation_fn
from seqlab.layers.attention import MultiHeadAttention
from seqlab.layers.normalization import LayerNorm


@keras.saving.register_keras_serializable(package="seqlab")
class TransformerEncoderBlock(keras.layers.Layer):
    """Self-attention and a position-wise feed-forward network, each with a
    residual connection and layer normalisation (pre- or post-norm).

    Args:
        num_heads: attention heads (``d_model`` must be divisible by it).
        ff_dim: hidden width of the feed-forward network (typically ``4 d_model``).
        d_model: the model width; None = the input's last dimension.
        dropout: dropout on each sublayer's output before the residual add.
        attention_dropout: dropout on the attention weights (None = ``dropout``).
        activation: FFN activation: ``gelu`` (exact), ``gelu_tanh``, ``relu``,
            ``silu``/``swish``, ``tanh``.
        norm_first: pre-norm (True) or post-norm (False).
        layer_norm_epsilon: epsilon of every LayerNormalization.
        use_bias: biases in the projections.
        causal: causal self-attention (an encoder block used as a GPT block).
        rotary: rotary position embeddings on queries and keys.
        max_length: the context length (informative; cache size for generation).
        kernel_initializer: initializer of the projections.
        output_initializer: initializer of the residual-branch output
            projections (``W_o`` and ``ffn_out``; GPT-2 scales them by
            ``1/sqrt(2 L)``); None = ``kernel_initializer``.
        seed: seed of the dropout layers.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``[B, T, d_model]``; a Keras mask (padding) propagates.
        mask: ``[B, T]`` padding mask (filled from the input's Keras mask).
        attention_mask: optional bool ``[B, T, T]``.
        cache, cache_index: incremental decoding (returns ``(output, new_cache)``).
        training: dropout on or off.

    Returns:
        ``[B, T, d_model]`` (the input's mask stays on it), or
        ``(output, new_cache)`` when ``cache`` is given.

    Example:

    >>> import numpy as np
    >>> block = TransformerEncoderBlock(num_heads=2, ff_dim=16, name="block")
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    >>> block(x).shape
    TensorShape([2, 5, 8])
    >>> [w.path for w in block.weights][:3]
    ['block/attention/qkv_kernel', 'block/attention/qkv_bias', 'block/attention/out_kernel']
    """

    _default_causal = False

    def __init__(
        self,
        num_heads: int,
        ff_dim: int,
        d_model: int | None = None,
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        activation: str = "gelu",
        norm_first: bool = True,
        layer_norm_epsilon: float = 1e-5,
        use_bias: bool = True,
        causal: bool | None = None,
        rotary: bool = False,
        max_length: int | None = None,
        kernel_initializer="glorot_uniform",
        output_initializer=None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(ff_dim, bool) or not isinstance(ff_dim, int) or ff_dim <= 0:
            raise ValueError(
                f"{type(self).__name__}: ff_dim must be a positive integer, got {ff_dim!r}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"{type(self).__name__}: activation must be one of {', '.join(ACTIVATIONS)}, "
                f"got {activation!r}"
            )
        for key, rate in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            if rate is not None and not 0.0 <= float(rate) < 1.0:
                raise ValueError(f"{type(self).__name__}: {key} must be in [0, 1), got {rate!r}")
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.d_model = d_model
        self.dropout = float(dropout)
        self.attention_dropout = (
            self.dropout if attention_dropout is None else float(attention_dropout)
        )
        self.activation = activation
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.use_bias = bool(use_bias)
        self.causal = self._default_causal if causal is None else bool(causal)
        self.rotary = bool(rotary)
        self.max_length = max_length
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_initializer = keras.initializers.get(output_initializer or kernel_initializer)
        self.seed = seed
        self.supports_masking = True
        # Created here, built in build(): the attention checks num_heads / d_model now.
        self.attention = MultiHeadAttention(
            num_heads,
            d_model=d_model,
            dropout=self.attention_dropout,
            use_bias=use_bias,
            causal=self.causal,
            rotary=rotary,
            max_length=max_length,
            kernel_initializer=self._initializer(self.kernel_initializer),
            output_initializer=self._initializer(self.output_initializer),
            seed=seed,
            name="attention",
            dtype=self.dtype_policy,  # sublayers follow the block's policy, also when reloaded
        )

    @staticmethod
    def _initializer(init):
        return keras.initializers.get(keras.initializers.serialize(init))

    def _norm(self, name):
        return LayerNorm(epsilon=self.layer_norm_epsilon, name=name, dtype=self.dtype_policy)

    def _dropout(self, name, offset):
        seed = None if self.seed is None else self.seed + offset
        return keras.layers.Dropout(self.dropout, seed=seed, name=name, dtype=self.dtype_policy)

    def _build_attention_part(self, inputs_shape):
        d = inputs_shape[-1]
        if self.d_model is not None and d != self.d_model:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: inputs have width {d}, but d_model={self.d_model}"
            )
        self.attention.build(inputs_shape)
        self.attention_norm = self._norm("attention_norm")
        self.attention_norm.build(inputs_shape)
        self.attention_dropout_layer = self._dropout("attention_dropout", 0)

    def _build_ffn(self, inputs_shape):
        d = inputs_shape[-1]
        self.ffn_in = keras.layers.Dense(
            self.ff_dim,
            use_bias=self.use_bias,
            kernel_initializer=self._initializer(self.kernel_initializer),
            name="ffn_in",
            dtype=self.dtype_policy,
        )
        self.ffn_in.build(inputs_shape)
        self.ffn_out = keras.layers.Dense(
            d,
            use_bias=self.use_bias,
            kernel_initializer=self._initializer(self.output_initializer),
            name="ffn_out",
            dtype=self.dtype_policy,
        )
        self.ffn_out.build((*inputs_shape[:-1], self.ff_dim))
        self.ffn_norm = self._norm("ffn_norm")
        self.ffn_norm.build(inputs_shape)
        self.ffn_dropout = self._dropout("ffn_dropout", 2)
        self._act = activation_fn(self.activation)

    def build(self, inputs_shape):
        self._build_attention_part(inputs_shape)
        self._build_ffn(inputs_shape)
        self.built = True

    # -- sublayer steps ------------------------------------------------------------------

    def _residual(self, x, norm, dropout, fn, training):
        """Pre-norm ``x + drop(fn(LN(x)))`` or post-norm ``LN(x + drop(fn(x)))``."""
        if self.norm_first:
            return x + dropout(fn(norm(x)), training=training)
        return norm(x + dropout(fn(x), training=training))

    def _ffn(self, h):
        return self.ffn_out(self._act(self.ffn_in(h)))

    def _self_attention(self, x, mask, attention_mask, cache, cache_index, training):
        new_cache = []

        def attend(h):
            result = self.attention(
                h,
                attention_mask=attention_mask,
                query_mask=mask,
                cache=cache,
                cache_index=cache_index,
                training=training,
            )
            if cache is None:
                return result
            new_cache.append(result[1])
            return result[0]

        x = self._residual(x, self.attention_norm, self.attention_dropout_layer, attend, training)
        return x, (new_cache[0] if new_cache else None)

    # -- public --------------------------------------------------------------------------

    def init_cache(self, batch_size: int, max_length: int | None = None, dtype=None):
        """Zeros ``[batch_size, 2, H, max_length, d_head]``: this block's self-attention cache."""
        return self.attention.init_cache(batch_size, max_length or self.max_length, dtype)

    def call(
        self,
        inputs,
        mask=None,
        attention_mask=None,
        cache=None,
        cache_index=None,
        training=None,
        inputs_mask=None,
    ):
        # Keras fills ``mask`` when ``inputs`` is the only tensor argument, else ``inputs_mask``.
        mask = inputs_mask if mask is None else mask
        x, new_cache = self._self_attention(
            inputs, mask, attention_mask, cache, cache_index, training
        )
        x = self._residual(x, self.ffn_norm, self.ffn_dropout, self._ffn, training)
        return x if cache is None else (x, new_cache)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "d_model": self.d_model,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "activation": self.activation,
            "norm_first": self.norm_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "use_bias": self.use_bias,
            "causal": self.causal,
            "rotary": self.rotary,
            "max_length": self.max_length,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "output_initializer": keras.initializers.serialize(self.output_initializer),
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="seqlab")
class TransformerDecoderBlock(TransformerEncoderBlock):
    """Causal self-attention, optional cross-attention over ``memory``, FFN.

    Arguments as :class:`TransformerEncoderBlock` (``causal`` defaults to
    True), plus:

    Args:
        cross_attention: include the cross-attention sublayer (an
            encoder-decoder model); False for a decoder-only LM.

    Call arguments:
        inputs: ``[B, T, d_model]`` (target side).
        memory: encoder output ``[B, S, d_memory]`` (cross-attention only).
        mask: ``[B, T]`` target padding mask (from the Keras mask); with the
            causal mask it only matters for left padding.
        memory_mask: ``[B, S]`` source padding mask (from ``memory``'s Keras
            mask, or given): padded source positions get zero weight.
        attention_mask: optional bool ``[B, T, T]`` for the self-attention.
        cache, cache_index: the self-attention KV cache (returns ``(output, new_cache)``).
        memory_kv: ``[B, 2, H, S, d_head]`` from :meth:`project_memory`:
            cross-attention keys/values computed once for a whole decoding.
        training: dropout on or off.

    Returns:
        ``[B, T, d_model]``, or ``(output, new_cache)`` when ``cache`` is given.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> block = TransformerDecoderBlock(num_heads=2, ff_dim=16)
    >>> x = rng.normal(size=(1, 3, 8)).astype("float32")
    >>> memory = rng.normal(size=(1, 4, 6)).astype("float32")
    >>> full = np.asarray(block(x, memory))
    >>> memory_kv, cache = block.project_memory(memory), block.init_cache(1, max_length=3)
    >>> out, cache = block(x[:, :1], memory_kv=memory_kv, cache=cache, cache_index=0)
    >>> bool(np.allclose(out, full[:, :1], atol=1e-5))
    True
    """

    _default_causal = True

    def __init__(self, num_heads: int, ff_dim: int, cross_attention: bool = True, **kwargs):
        super().__init__(num_heads, ff_dim, **kwargs)
        self.has_cross_attention = bool(cross_attention)
        if self.has_cross_attention:
            self.cross_attention = MultiHeadAttention(
                num_heads,
                d_model=self.d_model,
                dropout=self.attention_dropout,
                use_bias=self.use_bias,
                kernel_initializer=self._initializer(self.kernel_initializer),
                output_initializer=self._initializer(self.output_initializer),
                seed=None if self.seed is None else self.seed + 1,
                name="cross_attention",
                dtype=self.dtype_policy,
            )

    def build(self, inputs_shape, memory_shape=None):
        self._build_attention_part(inputs_shape)
        if self.has_cross_attention:
            self.cross_attention.build(inputs_shape, memory_shape or inputs_shape)
            self.cross_norm = self._norm("cross_norm")
            self.cross_norm.build(inputs_shape)
            self.cross_dropout = self._dropout("cross_dropout", 1)
        self._build_ffn(inputs_shape)
        self.built = True

    def project_memory(self, memory):
        """Cross-attention keys/values ``[B, 2, H, S, d_head]`` of ``memory``, for ``memory_kv``."""
        if not self.has_cross_attention:
            raise ValueError(f"TransformerDecoderBlock {self.name!r} has no cross-attention")
        return self.cross_attention.project_context(memory)

    def call(
        self,
        inputs,
        memory=None,
        mask=None,
        memory_mask=None,
        attention_mask=None,
        cache=None,
        cache_index=None,
        memory_kv=None,
        training=None,
        inputs_mask=None,
    ):
        mask = inputs_mask if mask is None else mask
        if self.has_cross_attention and memory is None and memory_kv is None:
            raise ValueError(
                f"TransformerDecoderBlock {self.name!r} has cross-attention: pass memory (the "
                "encoder output) or memory_kv, or build it with cross_attention=False"
            )
        if not self.has_cross_attention and (memory is not None or memory_kv is not None):
            raise ValueError(
                f"TransformerDecoderBlock {self.name!r} was built with cross_attention=False; "
                "it takes no memory"
            )
        x, new_cache = self._self_attention(
            inputs, mask, attention_mask, cache, cache_index, training
        )
        if self.has_cross_attention:

            def cross(h):
                if memory_kv is not None:
                    return self.cross_attention(
                        h, context_kv=memory_kv, context_mask=memory_mask, training=training
                    )
                return self.cross_attention(h, memory, context_mask=memory_mask, training=training)

            x = self._residual(x, self.cross_norm, self.cross_dropout, cross, training)
        x = self._residual(x, self.ffn_norm, self.ffn_dropout, self._ffn, training)
        return x if cache is None else (x, new_cache)

    def get_config(self):
        return {**super().get_config(), "cross_attention": self.has_cross_attention}


__all__ = [
    "ClassToken",
    "FirstToken",
    "LayerNorm",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
]

# Moved to their own modules (LayerNorm too, imported above); still importable from here.
from seqlab.layers.activations import gelu  # noqa: E402, F401
from seqlab.layers.class_token import ClassToken, FirstToken  # noqa: E402
from seqlab.layers.xla import compiled_by_xla  # noqa: E402, F401
