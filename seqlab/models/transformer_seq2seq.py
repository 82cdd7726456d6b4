"""The encoder-decoder Transformer (Vaswani et al. 2017) for translation.

    source [B, S] (0 = padding) --source_embedding--> (+ source_position) --source_dropout-->
        --encoder_block_0 .. encoder_block_{N-1}: x += Attn(LN(x)) over non-padded keys; x += FFN(LN(x))-->
        --encoder_norm--> memory [B, S, d]
    target_in [B, T] (<bos> + target) --target_embedding--> (+ target_position) --target_dropout-->
        --decoder_block_0 .. decoder_block_{M-1}: y += Attn(LN(y)) causal;
                                                  y += CrossAttn(LN(y), memory) over non-padded sources;
                                                  y += FFN(LN(y))-->
        --decoder_norm--> --logits (tied target embedding^T + bias, or Dense)--> [B, T, V] float32

(``norm_first=False``: post-norm blocks, no ``encoder_norm``/``decoder_norm``.)
The blocks are :class:`seqlab.layers.transformer.TransformerEncoderBlock` and
:class:`~seqlab.layers.transformer.TransformerDecoderBlock`; positions come
from :mod:`seqlab.layers.position` (``learned``, ``sinusoidal``, or ``rope``
inside every self-attention). The source padding mask (``source != 0``) is
computed once and masks the encoder's self-attention keys and every decoder
block's cross-attention keys; the target needs none (right padding under a
causal mask is never seen by a real position).

:class:`Seq2SeqParts` holds the named layers and the forward code of both
halves. The builder wires the Keras graph by calling it on symbolic inputs;
:class:`seqlab.generation.seq2seq.TransformerCachedStep` recovers it from a
built (or loaded) model by layer name and calls the same code to encode once
and decode one token at a time with a KV cache, so the two paths are one
implementation.
"""

from __future__ import annotations

import keras
from keras import ops

from seqlab.errors import ConfigError
from seqlab.layers import OutputBias
from seqlab.layers.position import LearnedPositionEmbedding
from seqlab.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock
from seqlab.models._checks import check_positive, check_rate
from seqlab.models.transformer import _block_options, _check, _embedding, _initializers, _position

INPUTS = ("source", "target_in")


def _get(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def inputs_missing(model) -> str | None:
    """None if ``model`` takes the seq2seq inputs ``source`` and ``target_in``, else what it takes."""
    names = getattr(model, "input_names", None) or [t.name for t in getattr(model, "inputs", [])]
    if sorted(str(n) for n in names) != sorted(INPUTS):
        return f"inputs are {names}, not {list(INPUTS)}"
    return None


def head_missing(model) -> str | None:
    """None if ``model`` has the ``logits`` layer and its embeddings (one shared, or
    ``source_embedding`` and ``target_embedding``), else what is missing."""
    if _get(model, "logits") is None:
        return "no layer named logits"
    if _get(model, "embedding") is None and (
        _get(model, "source_embedding") is None or _get(model, "target_embedding") is None
    ):
        return "no embedding (or source_embedding and target_embedding) layer"
    return None


class Seq2SeqParts:
    """The layers of an encoder-decoder Transformer and its forward computation.

    Args:
        source_embedding, target_embedding: ``Embedding`` layers (the same
            object when shared; ``ReversibleEmbedding`` when tied).
        source_position, target_position: position layers, or None (rope).
        source_dropout, target_dropout: ``Dropout`` layers, or None.
        encoder_blocks, decoder_blocks: the Transformer blocks.
        encoder_norm, decoder_norm: final ``LayerNormalization`` (pre-norm), or None.
        logits: ``OutputBias`` (tied: applied to the reversed target
            embedding) or ``Dense``.
        pad_id: the padding id of the source (0).
    """

    def __init__(self, *, source_embedding, target_embedding, source_position, target_position,
                 source_dropout, target_dropout, encoder_blocks, decoder_blocks, encoder_norm,
                 decoder_norm, logits, pad_id: int = 0):
        self.source_embedding = source_embedding
        self.target_embedding = target_embedding
        self.source_position = source_position
        self.target_position = target_position
        self.source_dropout = source_dropout
        self.target_dropout = target_dropout
        self.encoder_blocks = list(encoder_blocks)
        self.decoder_blocks = list(decoder_blocks)
        self.encoder_norm = encoder_norm
        self.decoder_norm = decoder_norm
        self.logits = logits
        self.tied = isinstance(logits, OutputBias)
        self.pad_id = int(pad_id)

    # -- from a model ---------------------------------------------------------------------
    @staticmethod
    def missing(model) -> str | None:
        """None if ``model`` has the named layers of this builder, else what is missing."""
        if reason := inputs_missing(model):
            return reason
        if not isinstance(_get(model, "decoder_block_0"), TransformerDecoderBlock):
            return "no TransformerDecoderBlock named decoder_block_0"
        if not isinstance(_get(model, "encoder_block_0"), TransformerEncoderBlock):
            return "no TransformerEncoderBlock named encoder_block_0"
        return head_missing(model)

    @classmethod
    def from_model(cls, model) -> Seq2SeqParts:
        """The parts of a model made by :func:`build_transformer_seq2seq` (also after loading)."""
        reason = cls.missing(model)
        if reason is not None:
            raise ConfigError(f"model {model.name!r} is not a build_transformer_seq2seq model: {reason}")

        def blocks(prefix):
            out, i = [], 0
            while _get(model, f"{prefix}_{i}") is not None:
                out.append(model.get_layer(f"{prefix}_{i}"))
                i += 1
            return out

        shared = _get(model, "embedding")
        return cls(
            source_embedding=shared or model.get_layer("source_embedding"),
            target_embedding=shared or model.get_layer("target_embedding"),
            source_position=_get(model, "source_position"),
            target_position=_get(model, "target_position"),
            source_dropout=_get(model, "source_dropout"),
            target_dropout=_get(model, "target_dropout"),
            encoder_blocks=blocks("encoder_block"),
            decoder_blocks=blocks("decoder_block"),
            encoder_norm=_get(model, "encoder_norm"),
            decoder_norm=_get(model, "decoder_norm"),
            logits=model.get_layer("logits"),
        )

    # -- forward --------------------------------------------------------------------------
    @staticmethod
    def _embed(tokens, embedding, position, dropout, start, training):
        x = embedding(tokens)
        if position is not None:
            x = position(x, start=start)
        if dropout is not None:
            x = dropout(x, training=training)
        return x

    def source_mask(self, source):
        """``[B, S]`` bool: True on real source tokens."""
        return ops.not_equal(source, self.pad_id)

    def encode(self, source, training=None):
        """``source [B, S]`` -> ``(memory [B, S, d], source_mask [B, S])``."""
        mask = self.source_mask(source)
        x = self._embed(source, self.source_embedding, self.source_position, self.source_dropout, 0, training)
        for block in self.encoder_blocks:
            x = block(x, mask=mask, training=training)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, mask

    def _output(self, y):
        if self.decoder_norm is not None:
            y = self.decoder_norm(y)
        if self.tied:
            return self.logits(self.target_embedding(y, reverse=True))
        return self.logits(y)

    def decode(self, target_in, memory, source_mask, training=None):
        """Teacher-forced decoder: ``target_in [B, T]`` -> logits ``[B, T, V]``."""
        y = self._embed(target_in, self.target_embedding, self.target_position, self.target_dropout, 0,
                        training)
        for block in self.decoder_blocks:
            y = block(y, memory, memory_mask=source_mask, training=training)
        return self._output(y)

    # -- incremental decoding -------------------------------------------------------------
    def project_memory(self, memory):
        """Every decoder block's cross-attention keys/values of ``memory``, computed once."""
        return tuple(block.project_memory(memory) for block in self.decoder_blocks)

    def check_positions(self, positions: int) -> None:
        """Raise if the decoder cannot take ``positions`` target positions (learned table)."""
        position = self.target_position
        if isinstance(position, LearnedPositionEmbedding) and positions > position.max_length:
            raise ConfigError(
                f"decoding {positions} new tokens needs {positions} target positions, but the learned "
                f"position table has max_length={position.max_length}; lower "
                f"data.decoding.max_new_tokens to <= {position.max_length} (or build the model with a "
                "larger max_target_len)"
            )

    def init_caches(self, batch_size, length: int):
        """A zero self-attention KV cache of ``length`` positions per decoder block."""
        return tuple(block.init_cache(batch_size, length) for block in self.decoder_blocks)

    def decode_step(self, tokens, start, caches, memory_kv, source_mask):
        """``tokens [B, n]`` at positions ``start ..`` -> ``(logits [B, n, V], new caches)``."""
        y = self._embed(tokens, self.target_embedding, self.target_position, self.target_dropout, start,
                        False)
        new_caches = []
        for block, cache, kv in zip(self.decoder_blocks, caches, memory_kv, strict=True):
            y, cache = block(y, memory_kv=kv, memory_mask=source_mask, cache=cache, cache_index=start,
                             training=False)
            new_caches.append(cache)
        return self._output(y), tuple(new_caches)


def build_transformer_seq2seq(
    source_vocab_size: int,
    target_vocab_size: int,
    max_source_len: int = 64,
    max_target_len: int = 64,
    d_model: int = 256,
    num_heads: int = 8,
    num_layers: int = 3,
    num_encoder_layers: int | None = None,
    num_decoder_layers: int | None = None,
    ff_dim: int | None = 512,
    dropout: float = 0.1,
    attention_dropout: float | None = None,
    position: str = "learned",
    norm_first: bool = True,
    activation: str = "relu",
    tie_weights: bool = True,
    share_embeddings: bool = False,
    shared_vocabulary: bool | None = None,
    pad_id: int = 0,
    init_std: float | None = 0.02,
    name: str = "transformer_seq2seq",
) -> keras.Model:
    """An encoder-decoder Transformer: ``{"source", "target_in"}`` -> logits ``[B, T, target_vocab_size]``.

    Layers: inputs ``source`` and ``target_in``; ``source_embedding`` and
    ``target_embedding`` (or one ``embedding`` with ``share_embeddings``),
    ``source_position``/``target_position`` (not for rope),
    ``source_dropout``/``target_dropout`` (if ``dropout``),
    ``encoder_block_i``, ``encoder_norm``, ``decoder_block_i``,
    ``decoder_norm`` (pre-norm only) and ``logits``. The defaults are those of
    ``conf/model/transformer_seq2seq.yaml`` (bentrevett's notebook-6 shape:
    3 + 3 layers, d 256, 8 heads, ff 512).

    Args:
        source_vocab_size, target_vocab_size: ids per side (from the data).
        max_source_len, max_target_len: longest source / target_in (the
            learned position tables' sizes).
        d_model: the model width.
        num_heads: attention heads (``d_model`` must be divisible by it).
        num_layers: encoder and decoder blocks each, unless
            ``num_encoder_layers`` / ``num_decoder_layers`` say otherwise.
        ff_dim: feed-forward hidden width (None = ``4 d_model``).
        dropout: after the embeddings and on every residual branch.
        attention_dropout: on the attention weights (None = ``dropout``).
        position: ``learned``, ``sinusoidal`` or ``rope``.
        norm_first: pre-norm blocks plus final LayerNorms, or post-norm.
        activation: FFN activation (``relu`` as in the paper, ``gelu``, ...).
        tie_weights: the output projection is the target embedding
            transposed (plus a bias).
        share_embeddings: one embedding for source and target (and, with
            ``tie_weights``, the output); needs a shared vocabulary.
        shared_vocabulary: whether the data built one vocabulary for both
            sides (the data bundle says); ``share_embeddings`` needs it true.
        pad_id: the padding id (must be 0: the source mask is ``source != 0``).
        init_std: GPT-2 initialisation (``normal(0, init_std)``, residual
            outputs scaled by ``1/sqrt(2 L)``); None = Keras defaults.
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` with int32 inputs ``source [B, S]`` and
        ``target_in [B, T]`` and float32 logits ``[B, T, target_vocab_size]``
        (position ``t`` sees the whole source and ``target_in[:, :t+1]``).

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value.

    Example:

    >>> import numpy as np
    >>> model = build_transformer_seq2seq(20, 30, max_source_len=8, max_target_len=8,
    ...                                   d_model=16, num_heads=2, num_layers=1, ff_dim=32)
    >>> [layer.name for layer in model.layers if "block" in layer.name]
    ['encoder_block_0', 'decoder_block_0']
    >>> logits = model({"source": np.array([[5, 6, 2, 0]]), "target_in": np.array([[1, 7, 8]])})
    >>> tuple(logits.shape), keras.backend.standardize_dtype(logits.dtype)
    ((1, 3, 30), 'float32')
    """
    num_encoder_layers = num_layers if num_encoder_layers is None else num_encoder_layers
    num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
    check_positive(target_vocab_size=target_vocab_size, max_source_len=max_source_len,
                   num_encoder_layers=num_encoder_layers, num_decoder_layers=num_decoder_layers)
    _check(source_vocab_size, max_target_len, d_model, num_heads, num_layers, ff_dim, dropout, position,
           activation)
    if attention_dropout is not None:
        check_rate("attention_dropout", attention_dropout)
    if pad_id != 0:
        raise ConfigError(f"model.pad_id must be 0 (the source mask is source != 0), got {pad_id!r}")
    if share_embeddings:
        if shared_vocabulary is False or source_vocab_size != target_vocab_size:
            raise ConfigError(
                "model.share_embeddings=true needs one vocabulary for both languages, but the data has "
                f"{'separate vocabularies' if shared_vocabulary is False else 'different vocabulary sizes'} "
                f"(source {source_vocab_size}, target {target_vocab_size}); set data.vocabulary=shared "
                "or model.share_embeddings=false"
            )
    ff_dim = ff_dim or 4 * d_model
    kernel_init, output_init, embedding_init = _initializers(
        init_std, num_encoder_layers + num_decoder_layers
    )

    def embedding(vocab, layer_name, reversible):
        return _embedding(vocab, d_model, embedding_init, reversible, False, layer_name)

    def position_layer(max_length, layer_name):
        return _position(position, max_length, embedding_init, layer_name)

    def dropout_layer(layer_name):
        return keras.layers.Dropout(dropout, name=layer_name) if dropout else None

    def block_options(max_length):
        return _block_options(
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation=activation,
            norm_first=norm_first,
            position=position,
            max_length=max_length,
            inits=(kernel_init, output_init),
        )

    if share_embeddings:
        source_embedding = target_embedding = embedding(target_vocab_size, "embedding", tie_weights)
    else:
        source_embedding = embedding(source_vocab_size, "source_embedding", False)
        target_embedding = embedding(target_vocab_size, "target_embedding", tie_weights)
    parts = Seq2SeqParts(
        source_embedding=source_embedding,
        target_embedding=target_embedding,
        source_position=position_layer(max_source_len, "source_position"),
        target_position=position_layer(max_target_len, "target_position"),
        source_dropout=dropout_layer("source_dropout"),
        target_dropout=dropout_layer("target_dropout"),
        encoder_blocks=[
            TransformerEncoderBlock(num_heads, ff_dim, name=f"encoder_block_{i}", **block_options(max_source_len))
            for i in range(num_encoder_layers)
        ],
        decoder_blocks=[
            TransformerDecoderBlock(num_heads, ff_dim, cross_attention=True, name=f"decoder_block_{i}",
                                    **block_options(max_target_len))
            for i in range(num_decoder_layers)
        ],
        encoder_norm=keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm") if norm_first else None,
        decoder_norm=keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm") if norm_first else None,
        logits=(
            OutputBias(name="logits", dtype="float32")
            if tie_weights
            else keras.layers.Dense(target_vocab_size, kernel_initializer=kernel_init(), name="logits",
                                    dtype="float32")
        ),
        pad_id=pad_id,
    )
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    memory, source_mask = parts.encode(source)
    logits = parts.decode(target_in, memory, source_mask)
    return keras.Model({"source": source, "target_in": target_in}, logits, name=name)


__all__ = ["Seq2SeqParts", "build_transformer_seq2seq"]
