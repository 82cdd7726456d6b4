"""Recurrent language model: Embedding -> stacked recurrent layers -> Dense logits.

    tokens [B, T] --Embedding--> [B, T, E] --RNN x L--> [B, T, H] --Dense--> logits [B, T, V]

The model outputs logits (no softmax): the loss and the metrics take
``from_logits=True``, which is both cheaper and numerically safer.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from seqlab.errors import ConfigError
from seqlab.models.regularization import LockedDropout, OutputBias

# Keras built-in recurrent layers by cell name. The seqlab cell library
# registers its own cells in ``seqlab.layers``; until a name is found there the
# built-in is used.
_BUILTIN_LAYERS = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}


def _split_cell(cell: str | Mapping) -> tuple[str, dict]:
    """``"lstm"`` or ``{"name": "lstm", **options}`` -> (name, options)."""
    if isinstance(cell, str):
        return cell, {}
    if isinstance(cell, Mapping) and "name" in cell:
        options = {k: v for k, v in cell.items() if k != "name"}
        return str(cell["name"]), options
    raise ConfigError(
        f"model.cell must be a cell name or a mapping with a 'name' key, got {cell!r}"
    )


def _check_positive(**values):
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")


def recurrent_layer(cell: str | Mapping, units: int, *, name: str | None = None, **kwargs):
    """A sequence layer for ``cell`` with ``units``, returning sequences."""
    cell_name, options = _split_cell(cell)
    options = {**options, **kwargs}
    if cell_name not in _BUILTIN_LAYERS:
        raise ConfigError(
            f"unknown model.cell {cell_name!r}; choose one of {sorted(_BUILTIN_LAYERS)}"
        )
    return _BUILTIN_LAYERS[cell_name](units, return_sequences=True, name=name, **options)


def build_rnn_lm(
    vocab_size: int,
    embedding_dim: int = 64,
    hidden_size: int = 512,
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
) -> keras.Model:
    """A token-level recurrent language model returning logits ``[B, T, vocab]``.

    Args:
        vocab_size: number of token ids (the tokenizer's ``vocab_size``).
        embedding_dim: width of the token embedding.
        hidden_size: units of every recurrent layer.
        num_layers: number of stacked recurrent layers.
        cell: ``"lstm"``, ``"gru"``, ``"simple_rnn"`` or ``{"name": ..., **cell options}``.
        dropout: dropout rate after the embedding, between layers and before the
            output projection (0 disables it).
        name: the Keras model name.
        embedding_dropout: rate on the embedding output (None = ``dropout``).
        output_dropout: rate before the output projection (None = ``dropout``).
        variational_dropout: one dropout mask per sequence, shared over time
            (``seqlab.models.regularization.LockedDropout``) instead of a new
            mask per step.
        tie_weights: the output projection is the embedding matrix transposed
            (one shared variable, ``keras.layers.ReversibleEmbedding``) plus an
            output bias; needs ``embedding_dim == hidden_size``.
        init_scale: if set, every embedding, kernel, recurrent kernel and the
            output weights and bias start uniform in ``[-init_scale, init_scale]``
            (Zaremba et al.); recurrent biases keep the cell's own init.
        stateful: carry recurrent states across batches (truncated BPTT over
            contiguous streams, ``data.batching=streams``); needs ``batch_size``,
            which fixes the model's batch dimension.
        batch_size: the fixed batch size of a stateful model.
    """
    _check_positive(
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        hidden_size=hidden_size,
        num_layers=num_layers,
    )
    embedding_dropout = dropout if embedding_dropout is None else embedding_dropout
    output_dropout = dropout if output_dropout is None else output_dropout
    for key, rate in (("dropout", dropout), ("embedding_dropout", embedding_dropout), ("output_dropout", output_dropout)):
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"model.{key} must be in [0, 1), got {rate!r}")
    _split_cell(cell)  # validate the spec before building anything
    if tie_weights and embedding_dim != hidden_size:
        raise ConfigError(
            f"model.tie_weights=true needs model.embedding_dim == model.hidden_size (the output "
            f"projection is the embedding matrix transposed), got embedding_dim={embedding_dim}, "
            f"hidden_size={hidden_size}; set them equal or set model.tie_weights=false"
        )
    if init_scale is not None and not float(init_scale) > 0:
        raise ConfigError(f"model.init_scale must be positive or null, got {init_scale!r}")
    if stateful:
        _check_positive(batch_size=batch_size)

    def uniform():
        # A fresh initializer per weight (a shared instance would give equal draws).
        return keras.initializers.RandomUniform(-float(init_scale), float(init_scale)) if init_scale else None

    def drop(rate, layer_name):
        if variational_dropout:
            return LockedDropout(rate, name=layer_name)
        return keras.layers.Dropout(rate, name=layer_name)

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
    for i in range(num_layers):
        rate = embedding_dropout if i == 0 else dropout
        if rate:
            x = drop(rate, f"dropout_{i}")(x)
        layer_kwargs = {}
        if init_scale:
            layer_kwargs.update(kernel_initializer=uniform(), recurrent_initializer=uniform())
        if stateful:
            layer_kwargs["stateful"] = True
        x = recurrent_layer(cell, hidden_size, name=f"rnn_{i}", **layer_kwargs)(x)
    if output_dropout:
        x = drop(output_dropout, "dropout_out")(x)
    if tie_weights:
        logits = embedding(x, reverse=True)
        logits = OutputBias(bias_initializer=uniform() or "zeros", name="logits")(logits)
    else:
        dense_init = {"kernel_initializer": uniform(), "bias_initializer": uniform()} if init_scale else {}
        logits = keras.layers.Dense(vocab_size, name="logits", **dense_init)(x)
    return keras.Model(tokens, logits, name=name)
