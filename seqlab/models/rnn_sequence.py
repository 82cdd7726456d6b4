"""Recurrent models for sequence tasks other than language modelling.

    build_rnn_regressor:  x [B, T, D] --RNN x L--> [B, T, H] --last step--> [B, H] --Dense--> [B, out]
    build_rnn_tagger:     tokens [B, T] --one-hot / Embedding--> --RNN x L--> [B, T, H] --Dense--> logits [B, T, C]

Both build their recurrent layers with :func:`seqlab.models.rnn_lm.recurrent_layer`,
so ``cell`` is a cell name or ``{"name": ..., **cell options}`` and the options
(``recurrent_initializer: identity | orthogonal``, ``forget_bias`` /
``unit_forget_bias``, ...) go to the cell unchanged. The regressor keeps the
full hidden sequence inside the graph and takes its last step with
:class:`seqlab.layers.LastTimeStep`, so gradient diagnostics can split the model at the
recurrent layer's output.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from seqlab.errors import ConfigError
from seqlab.layers import LastTimeStep, OneHot
from seqlab.models.rnn_lm import _check_positive, _split_cell, recurrent_layer


def _recurrent_stack(x, cell, hidden_size: int, num_layers: int):
    for i in range(num_layers):
        x = recurrent_layer(cell, hidden_size, name=f"rnn_{i}")(x)
    return x


def build_rnn_regressor(
    input_dim: int,
    output_dim: int = 1,
    hidden_size: int = 128,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    name: str = "rnn_regressor",
) -> keras.Model:
    """Sequence ``[B, T, input_dim]`` -> ``[B, output_dim]`` from the last hidden state.

    Args:
        input_dim: features per time step (the data bundle supplies it).
        output_dim: regression outputs (linear).
        hidden_size: units of every recurrent layer.
        num_layers: stacked recurrent layers (``rnn_0``, ``rnn_1``, ...).
        cell: cell name or ``{"name": ..., **cell options}``.
        name: the Keras model name.
    """
    _check_positive(input_dim=input_dim, output_dim=output_dim, hidden_size=hidden_size,
                    num_layers=num_layers)
    _split_cell(cell)
    inputs = keras.Input(shape=(None, input_dim), name="inputs")
    x = _recurrent_stack(inputs, cell, hidden_size, num_layers)
    x = LastTimeStep(name="last_step")(x)
    outputs = keras.layers.Dense(output_dim, name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def build_rnn_tagger(
    num_classes: int,
    vocab_size: int | None = None,
    input_dim: int | None = None,
    embedding_dim: int | None = None,
    hidden_size: int = 128,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    name: str = "rnn_tagger",
) -> keras.Model:
    """Sequence -> per-step logits ``[B, T, num_classes]``.

    The input is either token ids ``[B, T]`` (``vocab_size`` given; one-hot
    encoded, or embedded when ``embedding_dim`` is set) or features
    ``[B, T, input_dim]``.
    """
    if (vocab_size is None) == (input_dim is None):
        raise ConfigError(
            "build_rnn_tagger needs exactly one of vocab_size (token inputs) or input_dim "
            f"(feature inputs), got vocab_size={vocab_size!r}, input_dim={input_dim!r}"
        )
    _check_positive(num_classes=num_classes, hidden_size=hidden_size, num_layers=num_layers)
    _split_cell(cell)
    if vocab_size is not None:
        _check_positive(vocab_size=vocab_size)
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        if embedding_dim is None:
            x = OneHot(vocab_size, name="one_hot")(inputs)
        else:
            _check_positive(embedding_dim=embedding_dim)
            x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    else:
        _check_positive(input_dim=input_dim)
        inputs = keras.Input(shape=(None, input_dim), name="inputs")
        x = inputs
    x = _recurrent_stack(x, cell, hidden_size, num_layers)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
