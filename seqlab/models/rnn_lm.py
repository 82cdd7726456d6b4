"""Recurrent language model: Embedding -> stacked recurrent layers -> Dense logits.

    tokens [B, T] --Embedding--> [B, T, E] --RNN x L--> [B, T, H] --Dense--> logits [B, T, V]

The model outputs logits (no softmax): the loss and the metrics take
``from_logits=True``, which is both cheaper and numerically safer.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from seqlab.errors import ConfigError
from seqlab.layers import CELLS, LockedDropout, OutputBias, Recurrent, get_cell

# Cell names resolve to seqlab's own cells (``seqlab.layers.CELLS``: simple_rnn,
# lstm, gru, gru_cho, peephole_lstm, layernorm_lstm) run by
# ``seqlab.layers.Recurrent``. The ``keras_*`` names pick Keras' built-in layers,
# for comparisons.
_BUILTIN_LAYERS = {
    "keras_lstm": keras.layers.LSTM,
    "keras_gru": keras.layers.GRU,
    "keras_simple_rnn": keras.layers.SimpleRNN,
}
# Options of the sequence layer (the rest of a cell spec goes to the cell).
_LAYER_OPTIONS = ("return_sequences", "return_state", "go_backwards", "stateful", "implementation",
                  "compile_loops")


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
    """A sequence layer for ``cell`` with ``units``, returning sequences.

    ``cell`` is a name or ``{"name": ..., **options}``. seqlab cell names
    (``seqlab.layers.CELLS``) give ``seqlab.layers.Recurrent(get_cell(name,
    units, **cell options))``; ``keras_lstm`` / ``keras_gru`` /
    ``keras_simple_rnn`` give the Keras built-in layer with the options, for
    comparisons. Options named in ``_LAYER_OPTIONS`` (``stateful``,
    ``go_backwards``, ``implementation``, ...) go to the sequence layer, the
    others to the cell; ``kwargs`` override the spec's options.
    """
    cell_name, options = _split_cell(cell)
    options = {**options, **kwargs}
    if cell_name in _BUILTIN_LAYERS:
        options.setdefault("return_sequences", True)
        return _BUILTIN_LAYERS[cell_name](units, name=name, **options)
    if cell_name not in CELLS:
        raise ConfigError(
            f"unknown model.cell {cell_name!r}; choose one of "
            f"{sorted(CELLS) + sorted(_BUILTIN_LAYERS)}"
        )
    layer_options = {k: options.pop(k) for k in _LAYER_OPTIONS if k in options}
    layer_options.setdefault("return_sequences", True)
    try:
        return Recurrent(get_cell(cell_name, units, **options), name=name, **layer_options)
    except ValueError as err:
        raise ConfigError(f"model.cell {cell_name!r}: {err}") from err


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
    residual: bool = False,
) -> keras.Model:
    """A token-level recurrent language model returning logits ``[B, T, vocab]``.

    Args:
        vocab_size: number of token ids (the tokenizer's ``vocab_size``).
        embedding_dim: width of the token embedding.
        hidden_size: units of every recurrent layer.
        num_layers: number of stacked recurrent layers.
        cell: a cell name (``seqlab.layers.CELLS``: ``simple_rnn``, ``lstm``, ``gru``,
            ``gru_cho``, ``peephole_lstm``, ``layernorm_lstm``; or ``keras_lstm``,
            ``keras_gru``, ``keras_simple_rnn`` for Keras' built-ins) or
            ``{"name": ..., **cell options}``.
        dropout: dropout rate after the embedding, between layers and before the
            output projection (0 disables it).
        name: the Keras model name.
        embedding_dropout: rate on the embedding output (None = ``dropout``).
        output_dropout: rate before the output projection (None = ``dropout``).
        variational_dropout: one dropout mask per sequence, shared over time
            (``seqlab.layers.LockedDropout``) instead of a new
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
        residual: add each recurrent layer's input to its output where the
            widths match (every layer after the first; the first too when
            ``embedding_dim == hidden_size``), layers ``residual_{i}``. The
            model stays causal; there is no ``bidirectional`` option here, as a
            bidirectional LM would see the tokens it predicts (use
            ``seqlab.layers.recurrent_stack`` for encoders/classifiers).
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
        layer_input = x
        rate = embedding_dropout if i == 0 else dropout
        if rate:
            x = drop(rate, f"dropout_{i}")(x)
        layer_kwargs = {}
        if init_scale:
            layer_kwargs.update(kernel_initializer=uniform(), recurrent_initializer=uniform())
        if stateful:
            layer_kwargs["stateful"] = True
        x = recurrent_layer(cell, hidden_size, name=f"rnn_{i}", **layer_kwargs)(x)
        if residual and layer_input.shape[-1] == hidden_size:
            x = keras.layers.Add(name=f"residual_{i}")([layer_input, x])
    if output_dropout:
        x = drop(output_dropout, "dropout_out")(x)
    if tie_weights:
        logits = embedding(x, reverse=True)
        logits = OutputBias(bias_initializer=uniform() or "zeros", name="logits")(logits)
    else:
        dense_init = {"kernel_initializer": uniform(), "bias_initializer": uniform()} if init_scale else {}
        logits = keras.layers.Dense(vocab_size, name="logits", **dense_init)(x)
    return keras.Model(tokens, logits, name=name)
