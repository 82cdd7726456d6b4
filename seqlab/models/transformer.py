"""Transformer builders: a decoder-only LM (GPT) and an encoder-only classifier (BERT).

    build_transformer_lm:
        tokens [B, T] --embedding--> [B, T, d] (+ position) --dropout-->
            --block_0 .. block_{L-1}: x += Attn(LN(x)) causal; x += FFN(LN(x))-->
            --final_norm--> --logits (tied embedding^T + bias, or Dense)--> [B, T, V] float32

    build_transformer_classifier:
        tokens [B, T] (0 = padding) --embedding (mask_zero)--> (+ position) --dropout-->
            [--cls: prepend a learned [CLS] vector-->]
            --block_0 .. block_{L-1}: x += Attn(LN(x)) over non-padded keys; x += FFN(LN(x))-->
            --final_norm--> --pool ([CLS] -> Dense tanh | masked mean)--> --logits--> [B, C]

Both output logits (no softmax; ``from_logits=True``) in float32 whatever the
compute dtype. The blocks are :class:`seqlab.layers.transformer.TransformerDecoderBlock`
(``cross_attention=False``) and :class:`~seqlab.layers.transformer.TransformerEncoderBlock`;
positions are :mod:`seqlab.layers.position` (``sinusoidal``, ``learned``, or
``rope`` inside every attention). ``init_std`` gives GPT-2's initialisation:
every kernel and embedding ``normal(0, init_std)``, the residual-branch output
projections ``normal(0, init_std / sqrt(2 L))``, biases zero.
"""

from __future__ import annotations

import math

import keras

from seqlab.errors import ConfigError
from seqlab.layers import OutputBias
from seqlab.layers.activations import ACTIVATIONS
from seqlab.layers.class_token import ClassToken, FirstToken
from seqlab.layers.normalization import LayerNorm
from seqlab.layers.pooling import MaskedMeanPooling
from seqlab.layers.position import LearnedPositionEmbedding, SinusoidalPositionEncoding
from seqlab.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock
from seqlab.models._checks import check_positive, check_rate

POSITIONS = ("sinusoidal", "learned", "rope")
POOLINGS = ("cls", "mean")


def _check(
    vocab_size, max_length, d_model, num_heads, num_layers, ff_dim, dropout, position, activation
):
    check_positive(
        vocab_size=vocab_size,
        max_length=max_length,
        d_model=d_model,
        num_heads=num_heads,
        num_layers=num_layers,
    )
    if ff_dim is not None:
        check_positive(ff_dim=ff_dim)
    check_rate("dropout", dropout)
    if d_model % num_heads:
        raise ConfigError(
            f"model.d_model={d_model} is not divisible by model.num_heads={num_heads}; "
            "each head gets d_model / num_heads features: pick d_model a multiple of num_heads"
        )
    if position not in POSITIONS:
        raise ConfigError(f"model.position must be one of {', '.join(POSITIONS)}, got {position!r}")
    if position == "rope" and (d_model // num_heads) % 2:
        raise ConfigError(
            f"model.position=rope needs an even head width, got d_model / num_heads = "
            f"{d_model} / {num_heads} = {d_model // num_heads}"
        )
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"model.activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
        )


def _initializers(init_std, num_layers):
    """(kernel/embedding initializer, residual output initializer), fresh per call."""
    if init_std is None:
        return (lambda: "glorot_uniform"), (lambda: "glorot_uniform"), (lambda: "uniform")
    std, out_std = float(init_std), float(init_std) / math.sqrt(2 * num_layers)
    return (
        lambda: keras.initializers.RandomNormal(stddev=std),
        lambda: keras.initializers.RandomNormal(stddev=out_std),
        lambda: keras.initializers.RandomNormal(stddev=std),
    )


def _embedding(vocab_size, d_model, init, tied, mask_zero, name):
    """A token embedding; ``tied``: a ``ReversibleEmbedding`` that is also the output projection."""
    if tied:
        return keras.layers.ReversibleEmbedding(
            vocab_size,
            d_model,
            tie_weights=True,
            embeddings_initializer=init(),
            mask_zero=mask_zero,
            name=name,
        )
    return keras.layers.Embedding(
        vocab_size, d_model, embeddings_initializer=init(), mask_zero=mask_zero, name=name
    )


def _position(position, max_length, init, name):
    """The additive position layer (None for rope, which acts inside attention)."""
    if position == "sinusoidal":
        return SinusoidalPositionEncoding(max_length=max_length, name=name)
    if position == "learned":
        return LearnedPositionEmbedding(max_length, initializer=init(), name=name)
    return None


def _block_options(
    *, dropout, attention_dropout, activation, norm_first, position, max_length, inits, **extra
):
    """Keyword arguments shared by every Transformer block of a builder.

    ``inits`` is ``(kernel_init, output_init)`` from :func:`_initializers`;
    each call returns fresh initializer objects, so no two blocks share a
    seeded initializer (they would start equal).
    """
    kernel_init, output_init = inits
    return {
        "dropout": dropout,
        "attention_dropout": attention_dropout,
        "activation": activation,
        "norm_first": norm_first,
        "rotary": position == "rope",
        "max_length": max_length,
        "kernel_initializer": kernel_init(),
        "output_initializer": output_init(),
        **extra,
    }


def _embed(tokens, vocab_size, d_model, max_length, position, dropout, init, tied, mask_zero):
    """tokens -> [B, T, d]: embedding, position (unless rope), dropout. Returns (x, embedding)."""
    embedding = _embedding(vocab_size, d_model, init, tied, mask_zero, "embedding")
    x = embedding(tokens)
    position_layer = _position(position, max_length, init, "position")
    if position_layer is not None:
        x = position_layer(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    return x, embedding


def build_transformer_lm(
    vocab_size: int,
    max_length: int = 128,
    d_model: int = 128,
    num_heads: int = 4,
    num_layers: int = 4,
    ff_dim: int | None = None,
    dropout: float = 0.0,
    attention_dropout: float | None = None,
    position: str = "learned",
    norm_first: bool = True,
    tie_weights: bool = True,
    activation: str = "gelu",
    use_bias: bool = True,
    init_std: float | None = 0.02,
    name: str = "transformer_lm",
) -> keras.Model:
    """A decoder-only (GPT) Transformer language model returning logits ``[B, T, vocab_size]``.

    Layers: ``tokens``, ``embedding``, ``position`` (sinusoidal or learned;
    none for rope), ``embedding_dropout`` (if ``dropout``), ``block_0`` ..
    ``block_{L-1}`` (:class:`~seqlab.layers.transformer.TransformerDecoderBlock`,
    causal, no cross-attention), ``final_norm`` (pre-norm only) and
    ``logits``. The defaults are those of ``conf/model/transformer_lm.yaml``.
    Generation (``seqlab.generation``) runs it through a KV cache
    (:class:`seqlab.generation.transformer.TransformerStep`).

    Args:
        vocab_size: number of token ids (the tokenizer's ``vocab_size``).
        max_length: the context length (``data.seq_len``): the learned
            position table's size and the KV cache's length in generation.
        d_model: the model width.
        num_heads: attention heads (``d_model`` must be divisible by it).
        num_layers: Transformer blocks.
        ff_dim: feed-forward hidden width (None = ``4 d_model``).
        dropout: dropout after the embedding and on every residual branch.
        attention_dropout: dropout on the attention weights (None = ``dropout``).
        position: ``learned`` (GPT), ``sinusoidal`` (Vaswani) or ``rope``.
        norm_first: pre-norm blocks and a final LayerNorm (GPT-2) or post-norm.
        tie_weights: the output projection is the embedding matrix transposed,
            plus a bias (:class:`seqlab.layers.OutputBias`); else a ``Dense``.
        activation: FFN activation (``gelu``, ``gelu_tanh``, ``relu``, ...).
        use_bias: biases in the attention and FFN projections.
        init_std: GPT-2 initialisation with this standard deviation; None =
            Keras defaults (Glorot uniform kernels, uniform embeddings).
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from int32 ``tokens [B, T]`` to float32
        logits ``[B, T, vocab_size]`` (causal: position ``t`` sees tokens ``<= t``).

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value.

    Example:

    >>> model = build_transformer_lm(vocab_size=11, max_length=8, d_model=16, num_heads=2,
    ...                              num_layers=2)
    >>> [layer.name for layer in model.layers]
    ['tokens', 'embedding', 'position', 'block_0', 'block_1', 'final_norm', 'logits']
    >>> model.output.shape, model.output.dtype
    ((None, None, 11), 'float32')
    """
    _check(
        vocab_size,
        max_length,
        d_model,
        num_heads,
        num_layers,
        ff_dim,
        dropout,
        position,
        activation,
    )
    if attention_dropout is not None:
        check_rate("attention_dropout", attention_dropout)
    ff_dim = ff_dim or 4 * d_model
    kernel_init, output_init, embedding_init = _initializers(init_std, num_layers)

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x, embedding = _embed(
        tokens,
        vocab_size,
        d_model,
        max_length,
        position,
        dropout,
        embedding_init,
        tie_weights,
        False,
    )
    options = dict(
        dropout=dropout,
        attention_dropout=attention_dropout,
        activation=activation,
        norm_first=norm_first,
        position=position,
        max_length=max_length,
        inits=(kernel_init, output_init),
    )
    for i in range(num_layers):
        x = TransformerDecoderBlock(
            num_heads,
            ff_dim,
            cross_attention=False,
            name=f"block_{i}",
            **_block_options(**options, use_bias=use_bias),
        )(x)
    if norm_first:
        x = LayerNorm(epsilon=1e-5, name="final_norm")(x)
    if tie_weights:
        logits = OutputBias(name="logits", dtype="float32")(embedding(x, reverse=True))
    else:
        logits = keras.layers.Dense(
            vocab_size, kernel_initializer=kernel_init(), name="logits", dtype="float32"
        )(x)
    return keras.Model(tokens, logits, name=name)


def build_transformer_classifier(
    vocab_size: int,
    num_classes: int,
    max_length: int = 128,
    d_model: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.1,
    position: str = "learned",
    norm_first: bool = True,
    pooling: str = "cls",
    activation: str = "gelu",
    init_std: float | None = 0.02,
    name: str = "transformer_classifier",
) -> keras.Model:
    """An encoder-only (BERT-style) Transformer: token ids ``[B, T]`` -> logits ``[B, num_classes]``.

    Token id 0 is padding (``Embedding(mask_zero=True)``): padded positions
    get zero attention weight in every block and do not enter the pooled
    vector. Layers: ``tokens``, ``embedding``, ``position`` (not for rope),
    ``embedding_dropout`` (if ``dropout``), ``cls_token`` (``pooling=cls``),
    ``block_0`` .. ``block_{L-1}``
    (:class:`~seqlab.layers.transformer.TransformerEncoderBlock`),
    ``final_norm`` (pre-norm only), the pooled head (``cls``: ``cls_output``
    then ``pooler``, ``Dense(d, tanh)`` as in BERT; ``mean``: ``mean_pool``),
    ``pooled_dropout`` (if ``dropout``) and ``logits``. The defaults are those
    of ``conf/model/transformer_classifier.yaml``.

    Args:
        vocab_size: number of token ids (0 = padding).
        num_classes: width of the logits.
        max_length: longest input in tokens (the learned position table's
            size; ``[CLS]`` is prepended after the positions are added).
        d_model, num_heads, num_layers, ff_dim, dropout, position, norm_first,
            activation, init_std: as :func:`build_transformer_lm`.
        pooling: ``cls`` (a learned ``[CLS]`` vector prepended, its final
            state through a tanh pooler) or ``mean`` (masked mean of the states).
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from int32 ``tokens [B, T]`` to float32
        logits ``[B, num_classes]``.

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value.

    Example:

    >>> model = build_transformer_classifier(vocab_size=20, num_classes=3, max_length=16,
    ...                                      d_model=16, num_heads=2, num_layers=1)
    >>> [layer.name for layer in model.layers][:4]
    ['tokens', 'embedding', 'position', 'embedding_dropout']
    >>> model.output.shape
    (None, 3)
    """
    _check(
        vocab_size,
        max_length,
        d_model,
        num_heads,
        num_layers,
        ff_dim,
        dropout,
        position,
        activation,
    )
    check_positive(num_classes=num_classes)
    if pooling not in POOLINGS:
        raise ConfigError(f"model.pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    ff_dim = ff_dim or 4 * d_model
    kernel_init, output_init, embedding_init = _initializers(init_std, num_layers)

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x, _ = _embed(
        tokens, vocab_size, d_model, max_length, position, dropout, embedding_init, False, True
    )
    if pooling == "cls":
        x = ClassToken(initializer=embedding_init(), name="cls_token")(x)
    options = dict(
        dropout=dropout,
        attention_dropout=None,
        activation=activation,
        norm_first=norm_first,
        position=position,
        max_length=max_length,
        inits=(kernel_init, output_init),
    )
    for i in range(num_layers):
        x = TransformerEncoderBlock(num_heads, ff_dim, name=f"block_{i}", **_block_options(**options))(x)
    if norm_first:
        x = LayerNorm(epsilon=1e-5, name="final_norm")(x)
    if pooling == "cls":
        x = FirstToken(name="cls_output")(x)
        x = keras.layers.Dense(
            d_model, activation="tanh", kernel_initializer=kernel_init(), name="pooler"
        )(x)
    else:
        x = MaskedMeanPooling(name="mean_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="pooled_dropout")(x)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=kernel_init(), name="logits", dtype="float32"
    )(x)
    return keras.Model(tokens, logits, name=name)


__all__ = ["build_transformer_classifier", "build_transformer_lm"]
