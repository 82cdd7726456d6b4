"""Recurrent language model: Embedding -> stacked recurrent layers -> Dense logits.

    tokens [B, T] --Embedding--> [B, T, E] --RNN x L--> [B, T, H] --Dense--> logits [B, T, V]

The model outputs logits (no softmax): the loss and the metrics take
``from_logits=True``, which is both cheaper and numerically safer.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from seqlab.errors import ConfigError
from seqlab.layers import LockedDropout, OutputBias
from seqlab.layers.stacks import recurrent_stack, split_cell_spec
from seqlab.models._checks import check_positive, check_rate


def build_rnn_lm(
    vocab_size: int,
    embedding_dim: int = 64,
    hidden_size: int = 256,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    dropout: float = 0.0,
    name: str = "rnn_lm",
    # -- issue #4 options (regularisation, tying, init, stateful TBPTT) --
    embedding_dropout: float | None = None,
    output_dropout: float | None = None,
    variational_dropout: bool = False,
    tie_weights: bool = False,
    init_scale: float | None = None,
    stateful: bool = False,
    batch_size: int | None = None,
    residual: bool = False,
) -> keras.Model:
    """A token-level recurrent language model returning logits ``[B, T, vocab_size]``.

    Layers, in order: ``embedding``, then per recurrent layer ``i`` an
    optional ``dropout_{i}``, ``rnn_{i}`` and optional ``residual_{i}``
    (:func:`seqlab.layers.recurrent_stack`), an optional ``dropout_out`` and
    the output projection ``logits``. The defaults are those of
    ``conf/model/rnn_lm.yaml``.

    Args:
        vocab_size: number of token ids (the tokenizer's ``vocab_size``).
        embedding_dim: width of the token embedding.
        hidden_size: units of every recurrent layer.
        num_layers: number of stacked recurrent layers.
        cell: a cell name (``seqlab.layers.CELLS``: ``simple_rnn``, ``lstm``, ``gru``,
            ``gru_cho``, ``peephole_lstm``, ``layernorm_lstm``; or ``keras_lstm``,
            ``keras_gru``, ``keras_simple_rnn`` for Keras' built-ins) or
            ``{"name": ..., **options}`` (cell options, and the sequence-layer
            options of :data:`seqlab.layers.stacks.LAYER_OPTIONS`).
        dropout: dropout rate after the embedding, between layers and before the
            output projection (0 disables it).
        name: the Keras model name.
        embedding_dropout: rate on the embedding output (None = ``dropout``).
        output_dropout: rate before the output projection (None = ``dropout``).
        variational_dropout: one dropout mask per sequence, shared over time
            (:class:`seqlab.layers.LockedDropout`) instead of a new mask per
            step.
        tie_weights: the output projection is the embedding matrix transposed
            (one shared variable, ``keras.layers.ReversibleEmbedding``) plus an
            output bias (:class:`seqlab.layers.OutputBias`); needs
            ``embedding_dim == hidden_size``.
        init_scale: if set, every embedding, kernel, recurrent kernel and the
            output weights and bias start uniform in ``[-init_scale, init_scale]``
            (Zaremba et al.); recurrent biases keep the cell's own init.
        stateful: carry recurrent states across batches (truncated BPTT over
            contiguous streams, ``data.batching=streams``); needs ``batch_size``,
            which fixes the model's batch dimension.
        batch_size: the fixed batch size of a stateful model.
        residual: add each recurrent layer's input to its output where the
            widths match (every layer after the first; the first too when
            ``embedding_dim == hidden_size``), layers ``residual_{i}``. The
            model stays causal; there is no ``bidirectional`` option here, as a
            bidirectional LM would see the tokens it predicts (use
            :func:`seqlab.layers.recurrent_stack` for encoders/classifiers).

    Returns:
        An uncompiled ``keras.Model`` from int32 ``tokens [B, T]`` to logits
        ``[B, T, vocab_size]`` (no softmax: use ``from_logits=True``).

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad
            value.

    Example:

    >>> model = build_rnn_lm(vocab_size=10, embedding_dim=4, hidden_size=8, num_layers=2,
    ...                      cell="gru", dropout=0.1)
    >>> [layer.name for layer in model.layers]
    ['tokens', 'embedding', 'dropout_0', 'rnn_0', 'dropout_1', 'rnn_1', 'dropout_out', 'logits']
    >>> model.output.shape
    (None, None, 10)
    >>> model.count_params()
    898
    """
    check_positive(
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        hidden_size=hidden_size,
        num_layers=num_layers,
    )
    embedding_dropout = dropout if embedding_dropout is None else embedding_dropout
    output_dropout = dropout if output_dropout is None else output_dropout
    for key, rate in (("dropout", dropout), ("embedding_dropout", embedding_dropout), ("output_dropout", output_dropout)):
        check_rate(key, rate)
    split_cell_spec(cell, "model.cell")  # validate the spec before building anything
    if tie_weights and embedding_dim != hidden_size:
        raise ConfigError(
            f"model.tie_weights=true needs model.embedding_dim == model.hidden_size (the output "
            f"projection is the embedding matrix transposed), got embedding_dim={embedding_dim}, "
            f"hidden_size={hidden_size}; set them equal or set model.tie_weights=false"
        )
    if init_scale is not None and not float(init_scale) > 0:
        raise ConfigError(f"model.init_scale must be positive or null, got {init_scale!r}")
    if stateful:
        check_positive(batch_size=batch_size)

    def uniform():
        # A fresh initializer per weight (a shared instance would give equal draws).
        return keras.initializers.RandomUniform(-float(init_scale), float(init_scale)) if init_scale else None

    def layer_options(i):
        # Called by recurrent_stack right before layer i is created, so the
        # initializers draw their seeds in creation order.
        options = {}
        if init_scale:
            options.update(kernel_initializer=uniform(), recurrent_initializer=uniform())
        if stateful:
            options["stateful"] = True
        return options

    if stateful:
        tokens = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="tokens")
    else:
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    embedding_init = {"embeddings_initializer": uniform()} if init_scale else {}
    if tie_weights:
        embedding = keras.layers.ReversibleEmbedding(
            vocab_size, embedding_dim, tie_weights=True, name="embedding", **embedding_init
        )
    else:
        embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding", **embedding_init)
    x = embedding(tokens)
    x = recurrent_stack(
        x,
        cell,
        hidden_size,
        num_layers,
        dropout_between=dropout,
        residual=residual,
        cell_options=layer_options,
        name="rnn",
        input_dropout=embedding_dropout,
        variational_dropout=variational_dropout,
        layer_names={"dropout": "dropout_{i}", "residual": "residual_{i}"},
        key="model.cell",
    )
    if output_dropout:
        dropout_layer = LockedDropout if variational_dropout else keras.layers.Dropout
        x = dropout_layer(output_dropout, name="dropout_out")(x)
    if tie_weights:
        logits = embedding(x, reverse=True)
        logits = OutputBias(bias_initializer=uniform() or "zeros", name="logits", dtype="float32")(logits)
    else:
        dense_init = {"kernel_initializer": uniform(), "bias_initializer": uniform()} if init_scale else {}
        # float32 logits under a mixed precision policy: the softmax and the
        # loss need more than bfloat16's 8 mantissa bits.
        logits = keras.layers.Dense(vocab_size, name="logits", dtype="float32", **dense_init)(x)
    return keras.Model(tokens, logits, name=name)
