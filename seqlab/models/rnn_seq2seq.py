"""The recurrent encoder-decoder, without (Sutskever et al. 2014) or with additive attention (Bahdanau et al. 2015).

    source [B, S] (0 = padding) --source_embedding--> --source_dropout-->
        --encoder_0 .. encoder_{L-1} (optionally bidirectional; padded steps carry the state)-->
        memory H [B, S, W] (W = H, or 2 H bidirectional), the final states of every layer
    target_in [B, T] (<bos> + target) --target_embedding--> --target_dropout--> y

    attention: none (Sutskever et al.)
        decoder layer l starts from encoder layer l's final states (bidirectional: from
        bridge_l_k = tanh(W [s_fwd; s_bwd] + b), one per state)
        y --decoder_0 .. decoder_{L-1}--> h [B, T, H] --output_dropout--> --logits--> [B, T, V]
    attention: additive (Bahdanau et al.)
        s_0^l = tanh(W [final states of encoder layer l] + b)              (bridge_l_k)
        c_i = sum_j alpha_ij h_j,  alpha_i = softmax_j(v^T tanh(W_q s_{i-1} + W_k h_j)),
              padded j at exactly 0                                       (decoder: AttentionDecoder)
        s_i = cell([y_{i-1}; c_i], s_{i-1})
        [s_i; c_i; y_{i-1}] --output_dropout--> --logits--> [B, T, V]      (bentrevett's fc_out)

With ``tie_weights`` the logits are ``output_projection`` (linear, to the
embedding width) followed by the target embedding transposed plus a bias
(:class:`seqlab.layers.OutputBias`), as in Press & Wolf (2017).

:class:`RnnSeq2SeqParts` holds the named layers and the forward code of both
halves. The builder wires the Keras graph by calling it on symbolic inputs;
:class:`seqlab.generation.rnn_seq2seq.RecurrentCachedStep` recovers it from a
built (or loaded) model by layer name and calls the same code to encode once
and decode one token at a time (the decoder's recurrent states carried, the
attention keys computed once), so training and decoding are one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

from seqlab.errors import ConfigError
from seqlab.layers import OutputBias
from seqlab.layers.attention_decoder import AttentionDecoder
from seqlab.layers.recurrent import Recurrent
from seqlab.layers.stacks import BUILTIN_LAYERS, recurrent_layer, split_cell_spec
from seqlab.models._checks import check_positive, check_rate
from seqlab.models.transformer_seq2seq import _get, head_missing, inputs_missing

ATTENTIONS = ("none", "additive")


def _numbered(model, prefix):
    out, i = [], 0
    while _get(model, f"{prefix}_{i}") is not None:
        out.append(model.get_layer(f"{prefix}_{i}"))
        i += 1
    return out


class RnnSeq2SeqParts:
    """The layers of a recurrent encoder-decoder and its forward computation.

    Args:
        source_embedding, target_embedding: ``Embedding`` layers (the same
            object when shared; ``ReversibleEmbedding`` when tied).
        source_dropout, target_dropout, output_dropout: ``Dropout`` layers, or None.
        encoder_layers: ``Recurrent`` (returning sequences and states) or
            ``Bidirectional`` of one, per encoder layer.
        encoder_dropouts: ``Dropout`` (or None) before encoder layer ``i``, ``i >= 1``.
        bridges: per decoder layer, None (the encoder's final states as they
            are) or one ``Dense`` per state.
        decoder: an :class:`~seqlab.layers.attention_decoder.AttentionDecoder`
            (additive attention), or the list of ``Recurrent`` decoder layers.
        decoder_dropouts: ``Dropout`` (or None) before decoder layer ``i >= 1`` (no attention).
        output_projection: ``Dense`` to the embedding width (tied), or None.
        logits: ``OutputBias`` (tied) or ``Dense``.
        pad_id: the padding id of the source (0).
    """

    def __init__(self, *, source_embedding, target_embedding, source_dropout, target_dropout, encoder_layers,
                 encoder_dropouts, bridges, decoder, decoder_dropouts, output_dropout, output_projection, logits,
                 pad_id: int = 0):
        self.source_embedding = source_embedding
        self.target_embedding = target_embedding
        self.source_dropout = source_dropout
        self.target_dropout = target_dropout
        self.encoder_layers = list(encoder_layers)
        self.encoder_dropouts = list(encoder_dropouts)
        self.bridges = list(bridges)
        self.decoder = decoder
        self.decoder_dropouts = list(decoder_dropouts)
        self.output_dropout = output_dropout
        self.output_projection = output_projection
        self.logits = logits
        self.tied = isinstance(logits, OutputBias)
        self.pad_id = int(pad_id)
        self.attention = "additive" if isinstance(decoder, AttentionDecoder) else "none"
        cells = decoder.cells if self.attention == "additive" else [layer.cell for layer in decoder]
        self.state_counts = [len(_sizes(cell.state_size)) for cell in cells]

    # -- from a model ---------------------------------------------------------------------
    @staticmethod
    def missing(model) -> str | None:
        """None if ``model`` has the named layers of :func:`build_rnn_seq2seq`, else what is missing."""
        if reason := inputs_missing(model):
            return reason
        encoder = _get(model, "encoder_0")
        if not isinstance(getattr(encoder, "forward_layer", encoder), Recurrent):
            return "no Recurrent (or Bidirectional) layer named encoder_0"
        if not isinstance(_get(model, "decoder"), AttentionDecoder) and not isinstance(
            _get(model, "decoder_0"), Recurrent
        ):
            return "no AttentionDecoder named decoder and no Recurrent layer named decoder_0"
        return head_missing(model)

    @classmethod
    def from_model(cls, model) -> RnnSeq2SeqParts:
        """The parts of a model made by :func:`build_rnn_seq2seq` (also after loading)."""
        reason = cls.missing(model)
        if reason is not None:
            raise ConfigError(f"model {model.name!r} is not a build_rnn_seq2seq model: {reason}")
        encoder_layers = _numbered(model, "encoder")
        decoder = _get(model, "decoder")
        if not isinstance(decoder, AttentionDecoder):
            decoder = _numbered(model, "decoder")
        layers = len(decoder.cells) if isinstance(decoder, AttentionDecoder) else len(decoder)
        bridges = []
        for i in range(layers):
            bridge = _numbered(model, f"bridge_{i}")
            bridges.append(bridge or None)
        shared = _get(model, "embedding")
        return cls(
            source_embedding=shared or model.get_layer("source_embedding"),
            target_embedding=shared or model.get_layer("target_embedding"),
            source_dropout=_get(model, "source_dropout"),
            target_dropout=_get(model, "target_dropout"),
            encoder_layers=encoder_layers,
            encoder_dropouts=[None] + [_get(model, f"encoder_dropout_{i}") for i in range(1, len(encoder_layers))],
            bridges=bridges,
            decoder=decoder,
            decoder_dropouts=[None] + [_get(model, f"decoder_dropout_{i}") for i in range(1, layers)],
            output_dropout=_get(model, "output_dropout"),
            output_projection=_get(model, "output_projection"),
            logits=model.get_layer("logits"),
        )

    # -- encoder --------------------------------------------------------------------------
    @staticmethod
    def _drop(layer, x, training):
        return x if layer is None else layer(x, training=training)

    def source_mask(self, source):
        """``[B, S]`` bool: True on real source tokens."""
        return ops.not_equal(source, self.pad_id)

    def encode(self, source, training=None):
        """``source [B, S]`` -> ``(memory [B, S, W], source_mask [B, S], final states per layer)``.

        The final states of a layer are its ``Recurrent``'s (``[h, c]`` for an
        LSTM), forward then backward when bidirectional.
        """
        mask = self.source_mask(source)
        x = self._drop(self.source_dropout, self.source_embedding(source), training)
        finals = []
        for layer, dropout in zip(self.encoder_layers, self.encoder_dropouts, strict=True):
            x = self._drop(dropout, x, training)
            x, *states = layer(x, mask=mask, training=training)
            finals.append(states)
        return x, mask, finals

    def initial_state(self, finals):
        """The decoder's initial states (flat list, layer 0 first) from the encoder's final states."""
        flat = []
        for i, (states, bridge, count) in enumerate(zip(finals, self.bridges, self.state_counts, strict=True)):
            if bridge is None:
                flat += list(states)
                continue
            if len(states) not in (count, 2 * count):
                raise ConfigError(f"encoder layer {i} has {len(states)} final states for {count} decoder states")
            for k, dense in enumerate(bridge):
                pair = [states[k], states[count + k]] if len(states) == 2 * count else [states[k]]
                flat.append(dense(ops.concatenate(pair, axis=-1) if len(pair) == 2 else pair[0]))
        return flat

    # -- decoder --------------------------------------------------------------------------
    def _grouped(self, flat):
        flat, out, i = list(flat), [], 0
        for n in self.state_counts:
            out.append(flat[i : i + n])
            i += n
        return out

    def _output(self, features, training=None):
        features = self._drop(self.output_dropout, features, training)
        if self.tied:
            return self.logits(self.target_embedding(self.output_projection(features), reverse=True))
        return self.logits(features)

    def decode(self, target_in, memory, source_mask, states, training=None, return_attention_scores=False):
        """Teacher-forced decoder: ``target_in [B, T]`` -> logits ``[B, T, V]`` (and the attention weights)."""
        y = self._drop(self.target_dropout, self.target_embedding(target_in), training)
        weights = None
        if self.attention == "additive":
            out = self.decoder(y, memory, initial_state=list(states), memory_mask=source_mask,
                               return_attention_scores=return_attention_scores, training=training)
            if return_attention_scores:
                out, weights = out
            features = ops.concatenate([out, y], axis=-1)
        else:
            if return_attention_scores:
                raise ConfigError("this model has no attention (model.attention=none): no attention weights")
            h = y
            for layer, dropout, layer_states in zip(self.decoder, self.decoder_dropouts, self._grouped(states),
                                                    strict=True):
                h = layer(self._drop(dropout, h, training), initial_state=layer_states, training=training)
            features = h
        logits = self._output(features, training)
        return (logits, weights) if return_attention_scores else logits

    def attention_weights(self, source, target_in):
        """The attention weights ``[B, T, S]`` of the teacher-forced decoder (float32, padding at 0)."""
        memory, mask, finals = self.encode(source, training=False)
        _, weights = self.decode(target_in, memory, mask, self.initial_state(finals), training=False,
                                 return_attention_scores=True)
        return weights

    # -- incremental decoding -------------------------------------------------------------
    def encode_for_decoding(self, source):
        """Everything the decoder reads per sentence, batch first: the initial states (a
        tuple), and with attention the memory, its attention keys and the source mask."""
        memory, mask, finals = self.encode(source, training=False)
        out = {"initial_state": tuple(self.initial_state(finals))}
        if self.attention == "additive":
            out.update(memory=memory, keys=self.decoder.project_memory(memory), source_mask=mask)
        return out

    def decode_step(self, token, states, context):
        """``token [B]`` -> ``(logits [B, V], new flat states)``: one step of every decoder layer."""
        y = self.target_embedding(token)
        if self.attention == "additive":
            out, _, new = self.decoder.step(self.decoder.input_projection(y), list(states), context["memory"],
                                            context["keys"], context["source_mask"])
            features = ops.concatenate([out, ops.cast(y, out.dtype)], axis=-1)
        else:
            h, new = y, []
            for layer, layer_states in zip(self.decoder, self._grouped(states), strict=True):
                h, layer_new = layer.cell(h, layer_states, training=False)
                new += list(layer_new) if isinstance(layer_new, (list, tuple)) else [layer_new]
            features = h
        return self._output(features, training=False), tuple(new)


def _sizes(state_size) -> list:
    return [state_size] if isinstance(state_size, int) else list(state_size)


def build_rnn_seq2seq(
    source_vocab_size: int,
    target_vocab_size: int,
    cell: str | Mapping = "gru",
    attention: str = "additive",
    bidirectional: bool = True,
    num_layers: int = 1,
    embedding_dim: int = 256,
    hidden_size: int = 512,
    attention_units: int | None = None,
    dropout: float = 0.5,
    tie_weights: bool = False,
    share_embeddings: bool = False,
    shared_vocabulary: bool | None = None,
    pad_id: int = 0,
    max_source_len: int | None = None,
    max_target_len: int | None = None,
    name: str = "rnn_seq2seq",
) -> keras.Model:
    """A recurrent encoder-decoder: ``{"source", "target_in"}`` -> logits ``[B, T, target_vocab_size]``.

    Layers: inputs ``source`` and ``target_in``; ``source_embedding`` and
    ``target_embedding`` (or one ``embedding`` with ``share_embeddings``),
    ``source_dropout`` / ``target_dropout`` (if ``dropout``), ``encoder_i``
    (``Recurrent``, or ``Bidirectional`` of one) with ``encoder_dropout_i``
    before every layer after the first, ``bridge_i_k`` (the ``Dense`` giving
    state ``k`` of decoder layer ``i``, where a projection is needed), then
    ``decoder`` (:class:`~seqlab.layers.attention_decoder.AttentionDecoder`,
    attention ``additive``) or ``decoder_i`` with ``decoder_dropout_i``
    (attention ``none``), ``output_dropout``, ``output_projection`` (tied
    only) and ``logits``. The defaults are those of
    ``conf/model/rnn_seq2seq.yaml`` (bentrevett/pytorch-seq2seq notebook 3/4:
    a bidirectional GRU encoder, 256-wide embeddings, 512 hidden units,
    dropout 0.5).

    Args:
        source_vocab_size, target_vocab_size: ids per side (from the data).
        cell: a seqlab cell name (``lstm``, ``gru``, ... of
            ``seqlab.layers.CELLS``) or ``{"name": ..., **options}``; the
            encoder runs it with :class:`seqlab.layers.Recurrent` (fused
            kernels), the decoder steps it.
        attention: ``none`` (the decoder starts from the encoder's final
            states, Sutskever et al. 2014) or ``additive`` (Bahdanau et al.
            2015: context fed to the decoder's input and output every step).
        bidirectional: a bidirectional encoder (memory width ``2 hidden_size``).
        num_layers: encoder and decoder layers each (decoder layer ``l``
            starts from encoder layer ``l``'s final states).
        embedding_dim: width of the token embeddings.
        hidden_size: units of every recurrent layer (per direction).
        attention_units: the attention's scoring width (None: ``hidden_size``).
        dropout: on the embeddings, between recurrent layers (attention
            ``none``; between encoder layers always) and before the output layer.
        tie_weights: the output layer is a linear projection to
            ``embedding_dim`` followed by the target embedding transposed (+ bias).
        share_embeddings: one embedding for source and target; needs a shared
            vocabulary.
        shared_vocabulary: whether the data built one vocabulary for both
            sides (the data bundle says).
        pad_id: the padding id (must be 0: the source mask is ``source != 0``).
        max_source_len, max_target_len: accepted from the data bundle and
            unused (a recurrent model has no position table).
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` with int32 inputs ``source [B, S]`` and
        ``target_in [B, T]`` and float32 logits ``[B, T, target_vocab_size]``
        (position ``t`` sees the whole source and ``target_in[:, :t+1]``).

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad value and the fix.

    Example:

    >>> import numpy as np
    >>> model = build_rnn_seq2seq(20, 30, cell="gru", embedding_dim=8, hidden_size=16)
    >>> [layer.name for layer in model.layers if layer.name.startswith(("encoder", "bridge", "decoder"))]
    ['encoder_0', 'bridge_0_0', 'decoder']
    >>> logits = model({"source": np.array([[5, 6, 2, 0]]), "target_in": np.array([[1, 7, 8]])})
    >>> tuple(logits.shape), keras.backend.standardize_dtype(logits.dtype)
    ((1, 3, 30), 'float32')
    """
    check_positive(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                   num_layers=num_layers, embedding_dim=embedding_dim, hidden_size=hidden_size)
    if attention_units is not None:
        check_positive(attention_units=attention_units)
    check_rate("dropout", dropout)
    if attention not in ATTENTIONS:
        raise ConfigError(f"model.attention={attention!r} is unknown; choose one of {list(ATTENTIONS)}")
    cell_name, cell_options = split_cell_spec(cell, "model.cell")
    if cell_name in BUILTIN_LAYERS:
        raise ConfigError(
            f"build_rnn_seq2seq steps seqlab cells one token at a time; model.cell {cell_name!r} is a "
            f"Keras built-in: use {cell_name.removeprefix('keras_')!r}"
        )
    if attention == "additive" and any(cell_options.get(k) for k in ("dropout", "recurrent_dropout")):
        raise ConfigError(
            "model.cell dropout / recurrent_dropout are not applied inside the attention decoder's loop; "
            "remove them from model.cell and use model.dropout"
        )
    if pad_id != 0:
        raise ConfigError(f"model.pad_id must be 0 (the source mask is source != 0), got {pad_id!r}")
    if share_embeddings and (shared_vocabulary is False or source_vocab_size != target_vocab_size):
        raise ConfigError(
            "model.share_embeddings=true needs one vocabulary for both languages, but the data has "
            f"{'separate vocabularies' if shared_vocabulary is False else 'different vocabulary sizes'} "
            f"(source {source_vocab_size}, target {target_vocab_size}); set data.vocabulary=shared "
            "or model.share_embeddings=false"
        )

    def embedding(vocab, layer_name, reversible):
        if reversible:  # also the output projection (its transpose)
            return keras.layers.ReversibleEmbedding(vocab, embedding_dim, tie_weights=True, name=layer_name)
        return keras.layers.Embedding(vocab, embedding_dim, name=layer_name)

    def dropout_layer(layer_name):
        return keras.layers.Dropout(dropout, name=layer_name) if dropout else None

    if share_embeddings:
        source_embedding = target_embedding = embedding(target_vocab_size, "embedding", tie_weights)
    else:
        source_embedding = embedding(source_vocab_size, "source_embedding", False)
        target_embedding = embedding(target_vocab_size, "target_embedding", tie_weights)

    def encoder_layer(i):
        layer = recurrent_layer(cell, hidden_size, name=f"encoder_{i}", key="model.cell", return_sequences=True,
                                return_state=True)
        return keras.layers.Bidirectional(layer, name=f"encoder_{i}") if bidirectional else layer

    encoder_layers = [encoder_layer(i) for i in range(num_layers)]
    if attention == "additive":
        decoder = AttentionDecoder(cell, hidden_size, num_layers=num_layers, attention_units=attention_units,
                                   name="decoder")
        state_sizes = decoder.state_size[: decoder.state_counts[0]]
    else:
        # The decoder returns sequences, forwards, from the given states: the spec's layer
        # options other than these (chunks, compile_loops, implementation) still apply.
        fixed = ("return_sequences", "return_state", "go_backwards", "stateful")
        decoder_options = {k: v for k, v in cell_options.items() if k not in fixed}
        decoder = [recurrent_layer({"name": cell_name, **decoder_options}, hidden_size, name=f"decoder_{i}",
                                   key="model.cell", return_sequences=True) for i in range(num_layers)]
        state_sizes = decoder[0].state_size
    # A projection of the encoder's final states starts the decoder, unless they fit as they are.
    project = attention == "additive" or bidirectional
    bridges = [
        [keras.layers.Dense(size, activation="tanh", name=f"bridge_{i}_{k}") for k, size in enumerate(state_sizes)]
        if project else None
        for i in range(num_layers)
    ]
    parts = RnnSeq2SeqParts(
        source_embedding=source_embedding,
        target_embedding=target_embedding,
        source_dropout=dropout_layer("source_dropout"),
        target_dropout=dropout_layer("target_dropout"),
        encoder_layers=encoder_layers,
        encoder_dropouts=[None] + [dropout_layer(f"encoder_dropout_{i}") for i in range(1, num_layers)],
        bridges=bridges,
        decoder=decoder,
        decoder_dropouts=[None] + [
            dropout_layer(f"decoder_dropout_{i}") if attention == "none" else None for i in range(1, num_layers)
        ],
        output_dropout=dropout_layer("output_dropout"),
        output_projection=keras.layers.Dense(embedding_dim, name="output_projection") if tie_weights else None,
        logits=(
            OutputBias(name="logits", dtype="float32")
            if tie_weights
            else keras.layers.Dense(target_vocab_size, name="logits", dtype="float32")
        ),
        pad_id=pad_id,
    )
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    memory, source_mask, finals = parts.encode(source)
    logits = parts.decode(target_in, memory, source_mask, parts.initial_state(finals))
    return keras.Model({"source": source, "target_in": target_in}, logits, name=name)


def attention_weights(model, source, target_in):
    """The attention weights ``[B, T, S]`` of a :func:`build_rnn_seq2seq` model with
    ``attention=additive`` on ``(source, target_in)``, teacher-forced; None for any
    other model (no attention to show)."""
    if RnnSeq2SeqParts.missing(model) is not None:
        return None
    parts = RnnSeq2SeqParts.from_model(model)
    if parts.attention != "additive":
        return None
    return parts.attention_weights(ops.convert_to_tensor(source, "int32"), ops.convert_to_tensor(target_in, "int32"))


__all__ = ["ATTENTIONS", "RnnSeq2SeqParts", "attention_weights", "build_rnn_seq2seq"]
