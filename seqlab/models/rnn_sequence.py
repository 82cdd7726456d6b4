"""Recurrent models for sequence tasks other than language modelling.

    build_rnn_regressor:  x [B, T, D] --RNN x L--> [B, T, H] --last step--> [B, H] --Dense--> [B, out]
    build_rnn_tagger:     tokens [B, T] --one-hot / Embedding--> --RNN x L--> [B, T, H] --Dense--> logits [B, T, C]

Both stack their recurrent layers with :func:`seqlab.layers.recurrent_stack`,
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
from seqlab.layers.stacks import recurrent_stack, split_cell_spec
from seqlab.models._checks import check_positive


def _stack(x, cell, hidden_size: int, num_layers: int):
    # Layers rnn_0, rnn_1, ..., every one returning sequences.
    return recurrent_stack(x, cell, hidden_size, num_layers, name="rnn", key="model.cell")


def build_rnn_regressor(
    input_dim: int,
    output_dim: int = 1,
    hidden_size: int = 128,
    num_layers: int = 1,
    cell: str | Mapping = "lstm",
    name: str = "rnn_regressor",
) -> keras.Model:
    """Sequence ``[B, T, input_dim]`` -> ``[B, output_dim]`` from the last hidden state.

    Layers: ``inputs``, ``rnn_0`` ... ``rnn_{L-1}`` (all returning sequences),
    ``last_step`` (:class:`seqlab.layers.LastTimeStep`) and the linear
    ``output``. The defaults are those of ``conf/model/rnn_regressor.yaml``.

    Args:
        input_dim: features per time step (the data bundle supplies it).
        output_dim: regression outputs (linear).
        hidden_size: units of every recurrent layer.
        num_layers: stacked recurrent layers (``rnn_0``, ``rnn_1``, ...).
        cell: cell name or ``{"name": ..., **options}`` (see
            :func:`seqlab.layers.recurrent_layer`).
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from float ``inputs [B, T, input_dim]``
        to ``[B, output_dim]``.

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad
            value.

    Example:

    >>> model = build_rnn_regressor(input_dim=2, hidden_size=4, cell="simple_rnn")
    >>> [layer.name for layer in model.layers]
    ['inputs', 'rnn_0', 'last_step', 'output']
    >>> model.output.shape
    (None, 1)
    >>> model.count_params()
    33
    """
    check_positive(input_dim=input_dim, output_dim=output_dim, hidden_size=hidden_size,
                    num_layers=num_layers)
    split_cell_spec(cell, "model.cell")
    inputs = keras.Input(shape=(None, input_dim), name="inputs")
    x = _stack(inputs, cell, hidden_size, num_layers)
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
    encoded by :class:`seqlab.layers.OneHot`, or embedded when
    ``embedding_dim`` is set) or features ``[B, T, input_dim]``. The defaults
    are those of ``conf/model/rnn_tagger.yaml``.

    Args:
        num_classes: classes per time step (the width of the logits).
        vocab_size: number of token ids, for token inputs; give exactly one of
            ``vocab_size`` and ``input_dim``.
        input_dim: features per time step, for feature inputs.
        embedding_dim: embed the tokens with ``keras.layers.Embedding`` of
            this width (``None``: one-hot inputs); only with ``vocab_size``.
        hidden_size: units of every recurrent layer.
        num_layers: stacked recurrent layers (``rnn_0``, ``rnn_1``, ...).
        cell: cell name or ``{"name": ..., **options}`` (see
            :func:`seqlab.layers.recurrent_layer`).
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from ``tokens [B, T]`` (int32) or
        ``inputs [B, T, input_dim]`` to logits ``[B, T, num_classes]`` (no
        softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the ``model.*`` key of a bad
            value, or if both or neither of ``vocab_size`` and ``input_dim``
            are given.

    Example:

    >>> model = build_rnn_tagger(num_classes=3, vocab_size=5, hidden_size=4, cell="gru")
    >>> [layer.name for layer in model.layers]
    ['tokens', 'one_hot', 'rnn_0', 'logits']
    >>> model.output.shape
    (None, None, 3)
    >>> model.count_params()
    147
    """
    if (vocab_size is None) == (input_dim is None):
        raise ConfigError(
            "build_rnn_tagger needs exactly one of vocab_size (token inputs) or input_dim "
            f"(feature inputs), got vocab_size={vocab_size!r}, input_dim={input_dim!r}"
        )
    check_positive(num_classes=num_classes, hidden_size=hidden_size, num_layers=num_layers)
    split_cell_spec(cell, "model.cell")
    if vocab_size is not None:
        check_positive(vocab_size=vocab_size)
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        if embedding_dim is None:
            x = OneHot(vocab_size, name="one_hot")(inputs)
        else:
            check_positive(embedding_dim=embedding_dim)
            x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    else:
        check_positive(input_dim=input_dim)
        inputs = keras.Input(shape=(None, input_dim), name="inputs")
        x = inputs
    x = _stack(x, cell, hidden_size, num_layers)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
