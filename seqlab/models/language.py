"""Recurrent language model: Embedding -> stacked recurrent layers -> Dense logits.

    tokens [B, T] --Embedding--> [B, T, E] --RNN x L--> [B, T, H] --Dense--> logits [B, T, V]

The model outputs logits (no softmax): the loss and the metrics take
``from_logits=True``, which is both cheaper and numerically safer.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from seqlab.errors import ConfigError

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
    """
    _check_positive(
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        hidden_size=hidden_size,
        num_layers=num_layers,
    )
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {dropout!r}")
    _split_cell(cell)  # validate the spec before building anything

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(tokens)
    for i in range(num_layers):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        x = recurrent_layer(cell, hidden_size, name=f"rnn_{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout_out")(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(tokens, logits, name=name)
