"""Attention from its equations: scaled dot-product and multi-head attention.

Scaled dot-product attention of queries ``Q [Tq, d_k]`` over keys
``K [Tk, d_k]`` and values ``V [Tk, d_v]``::

    scores  = Q K^T / sqrt(d_k)                      [Tq, Tk]
    scores  = scores where mask else -1e9            (masked keys get ~zero weight)
    weights = softmax(scores, over keys)             (in float32)
    output  = weights V                              [Tq, d_v]

Multi-head attention projects the inputs into ``H`` heads of width
``d_head = d_model / H``, attends in each head and projects the
concatenated heads back::

    Q, K, V = x W_q, c W_k, c W_v   split into H heads [B, H, T, d_head]
    head_h  = attention(Q_h, K_h, V_h)
    output  = concat_h(head_h) W_o

For self-attention (``c = x``) the three projections are ONE matmul with the
fused kernel ``W_qkv = [W_q | W_k | W_v]`` (``[d_in, 3 d_model]``); for
cross-attention the query has its own kernel and keys and values share the
fused ``W_kv = [W_k | W_v]`` (``[d_context, 2 d_model]``).

Incremental decoding (a KV cache): a self-attention layer called with
``cache [B, 2, H, L, d_head]`` (keys at ``[:, 0]``, values at ``[:, 1]``, for
``L`` positions, from :meth:`MultiHeadAttention.init_cache`) and
``cache_index`` (the position of the first of the ``T`` new queries) writes the
new keys and values at ``cache_index .. cache_index + T - 1`` with
``ops.slice_update`` and attends over the buffer, positions
``<= cache_index + i`` for query ``i`` (causal) or ``< cache_index + T``
(non-causal; positions not yet written never count). It returns
``(output, new_cache)``. One new token costs one position of every projection
and one row of scores over the fixed-size buffer: static shapes, so XLA
compiles the decoding loop. ``T > 1`` fills several positions at once (a
prompt "prefill").
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from seqlab.layers.position import RotaryEmbedding, _concrete_int


def _large_negative(dtype) -> float:
    """What masked scores become: far below any real score, finite in ``dtype``."""
    return -3e4 if str(dtype) in ("float16", "bfloat16") else -1e9


def masked_softmax(scores, mask=None):
    """``softmax(scores)`` over the last axis in float32; ``mask`` (bool,
    broadcastable, True = keep) sets the other scores to -1e9 first. A row
    with every key masked gets uniform weights (finite, never NaN)."""
    if scores.dtype != "float32":
        scores = ops.cast(scores, "float32")
    if scores.shape[-1] == 1:  # one key: weight 1 (Keras warns on a softmax over one entry)
        return ops.ones_like(scores)
    if mask is not None:
        # An additive bias (0 or -1e9) rather than a select on the scores: the
        # bias has the mask's (smaller, or constant) shape, and the backward
        # pass of an add is free, where a select costs one more pass over the
        # [B, H, Tq, Tk] scores.
        if isinstance(mask, np.ndarray):
            bias = np.where(mask, 0.0, _large_negative("float32")).astype("float32")
        else:
            bias = ops.where(mask, 0.0, _large_negative("float32"))
        scores = scores + bias
    return ops.softmax(scores, axis=-1)


def scaled_dot_product_attention(
    q,
    k,
    v,
    mask=None,
    dropout_rate: float = 0.0,
    training=None,
    seed_generator=None,
    return_weights: bool = False,
):
    """``softmax(Q K^T / sqrt(d_k) [masked]) V``, any leading (batch, head) axes.

    Args:
        q: queries ``[..., Tq, d_k]``.
        k: keys ``[..., Tk, d_k]``.
        v: values ``[..., Tk, d_v]``.
        mask: bool, broadcastable to ``[..., Tq, Tk]``; True where query ``i``
            may attend to key ``j``. Masked keys get weight ``~exp(-1e9) = 0``.
        dropout_rate: dropout on the attention weights (training only).
        training: whether dropout is active.
        seed_generator: a ``keras.random.SeedGenerator`` for the dropout.
        return_weights: also return the weights (before dropout).

    Returns:
        ``output [..., Tq, d_v]``, or ``(output, weights [..., Tq, Tk])``.
        The softmax runs in float32; the weights are cast back to ``v``'s
        dtype before they multiply ``v``.

    Example:

    >>> import numpy as np
    >>> q = np.array([[1.0, 0.0]], "float32"); k = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> v = np.array([[1.0], [3.0]], "float32")
    >>> out, w = scaled_dot_product_attention(q, k, v, return_weights=True)
    >>> e = np.exp(1 / np.sqrt(2)); bool(np.allclose(w, [[e / (e + 1), 1 / (e + 1)]]))
    True
    >>> float(np.asarray(scaled_dot_product_attention(q, k, v, mask=np.array([[False, True]])))[0, 0])
    3.0
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    return _attend(
        q * ops.cast(scale, q.dtype),
        ops.swapaxes(k, -1, -2),
        v,
        mask,
        dropout_rate,
        training,
        seed_generator,
        return_weights,
    )


def _attend(q, k_t, v, mask, dropout_rate, training, seed_generator, return_weights):
    """The attention of already scaled queries over TRANSPOSED keys ``k_t [..., d_k, Tk]``
    (the multi-head layer lays its keys out so, saving a transpose)."""
    weights = masked_softmax(ops.matmul(q, k_t), mask)
    used = weights
    if training and dropout_rate > 0.0:
        used = keras.random.dropout(weights, dropout_rate, seed=seed_generator)
    output = ops.matmul(ops.cast(used, v.dtype), v)
    return (output, weights) if return_weights else output


def _causal_mask(query_length, key_length, start=0):
    """``[Tq, Tk]`` bool: query ``i`` (at position ``start + i``) sees keys ``j <= start + i``.
    A NumPy constant when everything is static, else built from ``arange``."""
    tq, tk, s = _concrete_int(query_length), _concrete_int(key_length), _concrete_int(start)
    if tq is not None and tk is not None and s is not None:
        return np.arange(tk)[None, :] <= (s + np.arange(tq))[:, None]
    rows = ops.arange(query_length, dtype="int32") + ops.cast(start, "int32")
    return ops.arange(key_length, dtype="int32")[None, :] <= rows[:, None]


def _and(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return ops.logical_and(a, b)


@keras.saving.register_keras_serializable(package="seqlab")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with a fused QKV projection and a KV cache.

    Self-attention (``context`` not given at the first call): one kernel
    ``qkv_kernel [d_in, 3 d_model]``. Cross-attention (``context`` given):
    ``q_kernel [d_in, d_model]`` and ``kv_kernel [d_context, 2 d_model]``. Both:
    ``out_kernel [d_model, d_in]`` back to the query width, so the layer fits
    a residual connection. Column ``h * d_head + i`` of each of the Q, K, V
    blocks is feature ``i`` of head ``h`` (the layout of
    ``keras.layers.MultiHeadAttention``'s kernels reshaped to 2-D).

    Masks (all combined; True = may attend):

    * padding: a Keras mask on the keys' input (``Embedding(mask_zero=True)``
      propagates one), or ``query_mask``/``context_mask`` ``[B, T]``: padded
      keys get zero weight. In self-attention the keys are the query input,
      so its mask is the key mask. Padded queries are not masked (their rows
      attend as usual; nothing else reads them, and the mask propagates to
      the output for the loss or pooling to ignore them).
    * causal: ``causal=True`` (or ``use_causal_mask=True`` per call): query
      ``i`` sees keys ``j <= i``.
    * ``attention_mask``: bool ``[B, Tq, Tk]`` (or ``[B, H, Tq, Tk]``).

    Args:
        num_heads: number of heads ``H``.
        d_model: width of the attention, ``H * d_head`` (default: the query
            width). Must be divisible by ``num_heads``.
        dropout: dropout on the attention weights (training only).
        use_bias: biases on the projections.
        causal: mask future keys by default.
        rotary: apply rotary position embeddings (RoPE) to queries and keys
            (self-attention only), at positions ``cache_index + i``.
        rope_max_wavelength: RoPE's base.
        max_length: the context length the model was built for (informative:
            the cache size a generation step allocates).
        kernel_initializer: initializer of the Q, K, V kernels (each block
            drawn on its own ``[d_in, d_model]`` shape).
        output_initializer: initializer of ``W_o`` (default: ``kernel_initializer``).
        bias_initializer: initializer of the biases.
        seed: seed of the attention dropout.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        query: ``[B, T, d_in]``.
        context: ``[B, S, d_context]`` for cross-attention (None: self).
        attention_mask: optional bool ``[B, T, S]`` or ``[B, H, T, S]``.
        query_mask, context_mask: ``[B, T]``, ``[B, S]`` padding masks (filled
            from Keras masks automatically; ``mask`` is the query's when it is
            the only tensor argument).
        use_causal_mask: override ``causal`` for this call.
        cache: ``[B, 2, H, L, d_head]`` (self-attention): incremental decoding.
        cache_index: position of the first new query (int or scalar tensor).
        context_kv: ``[B, 2, H, S, d_head]`` from :meth:`project_context`:
            cross-attention keys/values computed once (``context`` then unused).
        return_weights: also return the attention weights ``[B, H, T, S]``.
        training: dropout on or off.

    Returns:
        ``output [B, T, d_in]``; ``(output, weights)`` with ``return_weights``;
        ``(output, new_cache)`` with ``cache``; ``(output, weights, new_cache)``
        with both.

    Raises:
        ValueError: ``d_model`` not divisible by ``num_heads``; a mask of the
            wrong shape; a cache written past its length or fed out of order
            (checked when the values are known, i.e. eagerly).

    Example:

    >>> import numpy as np
    >>> mha = MultiHeadAttention(num_heads=2, causal=True)
    >>> x = np.random.default_rng(0).normal(size=(1, 4, 8)).astype("float32")
    >>> full = np.asarray(mha(x))
    >>> cache = mha.init_cache(batch_size=1, max_length=4)
    >>> steps = []
    >>> for t in range(4):
    ...     out, cache = mha(x[:, t : t + 1], cache=cache, cache_index=t)
    ...     steps.append(np.asarray(out))
    >>> bool(np.allclose(np.concatenate(steps, axis=1), full, atol=1e-5))
    True
    """

    def __init__(
        self,
        num_heads: int,
        d_model: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        causal: bool = False,
        rotary: bool = False,
        rope_max_wavelength: float = 10000.0,
        max_length: int | None = None,
        kernel_initializer="glorot_uniform",
        output_initializer=None,
        bias_initializer="zeros",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            isinstance(num_heads, bool)
            or not isinstance(num_heads, (int, np.integer))
            or num_heads <= 0
        ):
            raise ValueError(
                f"MultiHeadAttention: num_heads must be a positive integer, got {num_heads!r}"
            )
        self.num_heads = int(num_heads)
        self.d_model = None if d_model is None else int(d_model)
        if self.d_model is not None:
            self._check_divisible(self.d_model)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.causal = bool(causal)
        self.rotary = bool(rotary)
        self.rope_max_wavelength = float(rope_max_wavelength)
        self.max_length = None if max_length is None else int(max_length)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_initializer = keras.initializers.get(output_initializer or kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.dropout > 0 else None
        self.rope = (
            RotaryEmbedding(
                rope_max_wavelength,
                max_length=self.max_length,
                name="rope",
                dtype=self.dtype_policy,
            )
            if self.rotary
            else None
        )
        self.is_cross = None  # set by build
        self.supports_masking = True

    # -- shapes --------------------------------------------------------------------------

    def _check_divisible(self, d_model):
        if d_model % self.num_heads:
            raise ValueError(
                f"MultiHeadAttention {self.name!r}: d_model={d_model} is not divisible by "
                f"num_heads={self.num_heads}; choose d_model a multiple of num_heads "
                f"(e.g. {self.num_heads * max(1, round(d_model / self.num_heads))})"
            )

    @property
    def head_dim(self) -> int:
        return self._d // self.num_heads

    def _blocks_initializer(self, blocks: int, d_in: int):
        init = self.kernel_initializer

        def initializer(shape, dtype=None):
            return ops.concatenate(
                [init((d_in, self._d), dtype=dtype) for _ in range(blocks)], axis=1
            )

        return initializer

    def build(self, query_shape, context_shape=None):
        d_in = query_shape[-1]
        self._d = self.d_model or d_in
        self._check_divisible(self._d)
        self.is_cross = context_shape is not None
        if self.rotary and self.is_cross:
            raise ValueError(
                f"MultiHeadAttention {self.name!r}: rotary=True is for self-attention; "
                "cross-attention keys have no positions relative to the queries"
            )
        if self.rotary and self.head_dim % 2:
            raise ValueError(
                f"MultiHeadAttention {self.name!r}: rotary=True needs an even head width, got "
                f"d_model / num_heads = {self._d} / {self.num_heads} = {self.head_dim}"
            )
        bias = {"initializer": self.bias_initializer}
        if self.is_cross:
            self.q_kernel = self.add_weight(
                shape=(d_in, self._d),
                initializer=self._blocks_initializer(1, d_in),
                name="q_kernel",
            )
            d_context = context_shape[-1]
            self.kv_kernel = self.add_weight(
                shape=(d_context, 2 * self._d),
                initializer=self._blocks_initializer(2, d_context),
                name="kv_kernel",
            )
            if self.use_bias:
                self.q_bias = self.add_weight(shape=(self._d,), name="q_bias", **bias)
                self.kv_bias = self.add_weight(shape=(2 * self._d,), name="kv_bias", **bias)
        else:
            self.qkv_kernel = self.add_weight(
                shape=(d_in, 3 * self._d),
                initializer=self._blocks_initializer(3, d_in),
                name="qkv_kernel",
            )
            if self.use_bias:
                self.qkv_bias = self.add_weight(shape=(3 * self._d,), name="qkv_bias", **bias)
        self.out_kernel = self.add_weight(
            shape=(self._d, d_in), initializer=self.output_initializer, name="out_kernel"
        )
        if self.use_bias:
            self.out_bias = self.add_weight(shape=(d_in,), name="out_bias", **bias)
        if self.rope is not None:
            self.rope.built = True  # no weights: used through cos_sin / apply
        self.built = True

    # -- projections ---------------------------------------------------------------------

    def _dense(self, x, kernel, bias):
        y = ops.matmul(x, kernel)
        return y + bias if self.use_bias else y

    def _heads(self, x, keys_last: bool = False):
        """``[B, T, d]`` -> ``[B, H, T, d_head]`` (``keys_last``: ``[B, H, d_head, T]``).

        Split-then-transpose per block with a rank-4 permutation: on CPU this
        is about twice as fast (forward + backward) as one rank-5 transpose
        of the fused ``[B, T, 3, H, d_head]`` tensor."""
        shape = ops.shape(x)
        x = ops.reshape(x, (shape[0], shape[1], self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 3, 1) if keys_last else (0, 2, 1, 3))

    def project_context(self, context):
        """Cross-attention keys and values of ``context [B, S, d_context]``:
        ``[B, 2, H, S, d_head]`` (pass as ``context_kv`` to skip recomputing)."""
        if not self.is_cross:
            raise ValueError(f"MultiHeadAttention {self.name!r} is a self-attention layer")
        k, v = ops.split(
            self._dense(context, self.kv_kernel, getattr(self, "kv_bias", None)), 2, axis=-1
        )
        return ops.stack([self._heads(k), self._heads(v)], axis=1)

    def init_cache(self, batch_size: int, max_length: int | None = None, dtype=None):
        """Zeros ``[batch_size, 2, H, max_length, d_head]``: the KV cache of a
        self-attention layer (needs the layer built, or ``d_model`` given)."""
        d = self.d_model if not self.built else self._d
        max_length = max_length or self.max_length
        if d is None or max_length is None:
            raise ValueError(
                f"MultiHeadAttention {self.name!r}: init_cache needs d_model (build the layer "
                "first) and max_length"
            )
        return ops.zeros(
            (batch_size, 2, self.num_heads, max_length, d // self.num_heads),
            dtype=dtype or self.compute_dtype,
        )

    # -- checks --------------------------------------------------------------------------

    def _check_mask(self, what, mask, expected):
        """``expected``: a tuple of dims (None = any)."""
        if mask is None:
            return
        shape = tuple(mask.shape)
        ok = len(shape) == len(expected) and all(
            e is None or s is None or int(s) == int(e) for s, e in zip(shape, expected)
        )
        if not ok:
            want = ", ".join("?" if e is None else str(e) for e in expected)
            raise ValueError(
                f"MultiHeadAttention {self.name!r}: {what} must have shape [{want}], got {shape}"
            )

    def _check_cache(self, cache, cache_index, new_positions):
        length = cache.shape[3]
        expected = (None, 2, self.num_heads, None, self.head_dim)
        self._check_mask("cache", cache, expected)
        index = _concrete_int(cache_index)
        count = _concrete_int(new_positions)
        if index is None:
            return
        if index < 0 or (count is not None and length is not None and index + count > length):
            raise ValueError(
                f"MultiHeadAttention {self.name!r}: cache_index={index} with {count} new "
                f"position(s) does not fit a cache of length {length}; positions must stay in "
                f"0..{length - 1} (allocate a longer cache with init_cache(max_length=...))"
            )
        if index > 0:
            try:  # eager only: is the position just before still empty?
                previous = ops.convert_to_numpy(cache[:, :, :, index - 1])
            except Exception:
                return
            if not np.any(previous):
                raise ValueError(
                    f"MultiHeadAttention {self.name!r}: cache fed out of order: cache_index="
                    f"{index} but position {index - 1} was never written; feed positions "
                    "0, 1, 2, ... in order (or several at once from 0)"
                )

    # -- call ----------------------------------------------------------------------------

    def call(
        self,
        query,
        context=None,
        attention_mask=None,
        query_mask=None,
        context_mask=None,
        use_causal_mask=None,
        cache=None,
        cache_index=None,
        context_kv=None,
        return_weights=False,
        training=None,
        mask=None,
    ):
        # Keras fills ``mask`` (not ``query_mask``) when the query is the only tensor argument.
        query_mask = mask if query_mask is None else query_mask
        causal = self.causal if use_causal_mask is None else bool(use_causal_mask)
        scale = ops.cast(1.0 / math.sqrt(self.head_dim), query.dtype)
        batch, length = ops.shape(query)[0], ops.shape(query)[1]
        if cache is not None and cache_index is None:
            cache_index = 0
        start = 0 if cache is None else cache_index

        if self.is_cross:
            if context is None and context_kv is None:
                raise ValueError(
                    f"MultiHeadAttention {self.name!r} is a cross-attention layer: pass context "
                    "(or context_kv)"
                )
            if cache is not None:
                raise ValueError(
                    f"MultiHeadAttention {self.name!r}: a cross-attention layer has no growing "
                    "cache; pass context_kv=layer.project_context(context) once instead"
                )
            q = self._heads(
                self._dense(query, self.q_kernel, getattr(self, "q_bias", None)) * scale
            )
            if context_kv is None:
                context_kv = self.project_context(context)
            k, v = context_kv[:, 0], context_kv[:, 1]
            k_t = ops.swapaxes(k, -1, -2)
            key_mask = context_mask
        else:
            if context is not None or context_kv is not None:
                raise ValueError(
                    f"MultiHeadAttention {self.name!r} was built for self-attention; it takes "
                    "no context (build a new layer for cross-attention)"
                )
            qkv = self._dense(query, self.qkv_kernel, getattr(self, "qkv_bias", None))
            q, k, v = ops.split(qkv, 3, axis=-1)
            q, v = self._heads(q * scale), self._heads(v)
            key_mask = query_mask if cache is None else None  # no padding inside a cache
            if self.rotary or cache is not None:
                k = self._heads(k)
                if self.rotary:
                    cos, sin = self.rope.cos_sin(start, length, self.head_dim, q.dtype)
                    q, k = self.rope.apply(q, cos, sin), self.rope.apply(k, cos, sin)
                if cache is not None:
                    self._check_cache(cache, cache_index, length)
                    update = ops.stack([k, v], axis=1)  # [B, 2, H, T, d_head]
                    cache = ops.slice_update(
                        cache,
                        (0, 0, 0, ops.cast(cache_index, "int32"), 0),
                        ops.cast(update, cache.dtype),
                    )
                    k, v = cache[:, 0], cache[:, 1]
                k_t = ops.swapaxes(k, -1, -2)
            else:
                k_t = self._heads(k, keys_last=True)
        key_length = ops.shape(v)[2]

        mask = None
        if key_mask is not None:
            self._check_mask("the key padding mask", key_mask, (None, v.shape[2]))
            mask = ops.cast(key_mask, "bool")[:, None, None, :]
        if causal:
            mask = _and(mask, _causal_mask(length, key_length, start))
        elif cache is not None:  # never attend to positions not written yet
            written = ops.arange(key_length, dtype="int32") < ops.cast(start, "int32") + length
            mask = _and(mask, written[None, :])
        if attention_mask is not None:
            rank = len(attention_mask.shape)
            if rank == 4:
                self._check_mask(
                    "attention_mask", attention_mask, (None, None, q.shape[2], v.shape[2])
                )
                if attention_mask.shape[1] not in (None, 1, self.num_heads):
                    self._check_mask(
                        "attention_mask",
                        attention_mask,
                        (None, self.num_heads, q.shape[2], v.shape[2]),
                    )
                extra = ops.cast(attention_mask, "bool")
            else:
                self._check_mask("attention_mask", attention_mask, (None, q.shape[2], v.shape[2]))
                extra = ops.cast(attention_mask, "bool")[:, None]
            mask = _and(mask, extra)

        result = _attend(
            q, k_t, v, mask, self.dropout, training, self.seed_generator, return_weights
        )
        out, weights = result if return_weights else (result, None)
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (batch, length, self._d))
        out = self._dense(out, self.out_kernel, getattr(self, "out_bias", None))
        extras = ([weights] if return_weights else []) + ([cache] if cache is not None else [])
        return (out, *extras) if extras else out

    def compute_mask(self, query, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "d_model": self.d_model,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "causal": self.causal,
            "rotary": self.rotary,
            "rope_max_wavelength": self.rope_max_wavelength,
            "max_length": self.max_length,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "output_initializer": keras.initializers.serialize(self.output_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "seed": self.seed,
        }


__all__ = ["MultiHeadAttention", "masked_softmax", "scaled_dot_product_attention"]
