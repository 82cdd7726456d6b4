"""Recurrent layers from a cell spec, and deep / bidirectional stacks of them.

This module is the one place that turns a *cell spec* into sequence layers;
every builder in :mod:`seqlab.models` stacks its recurrent layers here.

A cell spec is a cell name or a mapping ``{"name": ..., **options}`` (the
shape of ``conf/model/cell/*.yaml``):

- ``name`` is a seqlab cell (``seqlab.layers.CELLS``: ``simple_rnn``,
  ``lstm``, ``gru``, ``gru_cho``, ``peephole_lstm``, ``layernorm_lstm``), run
  by :class:`seqlab.layers.Recurrent`, or one of Keras' built-in layers
  ``keras_lstm``, ``keras_gru``, ``keras_simple_rnn``, for comparisons.
- the options named in :data:`LAYER_OPTIONS` (``return_sequences``,
  ``stateful``, ``implementation``, ``chunks``, ...) go to the sequence layer,
  the others to the cell (``forget_bias``, ``dropout``, initializers, ...).

:func:`recurrent_stack` is a functional-API builder: it applies
``num_layers`` layers (each optionally wrapped in
``keras.layers.Bidirectional``) to a tensor and returns the result, so the
model it ends up in saves and loads like any Keras model (no custom stack
layer to serialize).

    x --[Dropout]--> RNN_0 (+ x) --[Dropout]--> RNN_1 (+ residual) ... --> y
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import keras

from seqlab.errors import ConfigError
from seqlab.layers.recurrent import Recurrent
from seqlab.layers.registry import CELLS, get_cell
from seqlab.layers.regularization import LockedDropout

MERGE_MODES = ("concat", "sum", "ave", "mul")

#: Keras' built-in sequence layers, selectable by name for comparisons.
BUILTIN_LAYERS = {
    "keras_lstm": keras.layers.LSTM,
    "keras_gru": keras.layers.GRU,
    "keras_simple_rnn": keras.layers.SimpleRNN,
}

#: Options of a cell spec that belong to the sequence layer
#: (:class:`seqlab.layers.Recurrent`), not to the cell.
LAYER_OPTIONS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "implementation",
    "compile_loops",
    "chunks",
)

#: Layer names of a stack, formatted with its ``name`` and the layer index ``i``.
LAYER_NAMES = {
    "rnn": "{name}_{i}",
    "dropout": "{name}_dropout_{i}",
    "residual": "{name}_residual_{i}",
    "bidirectional": "{name}_bidirectional_{i}",
}


def split_cell_spec(cell: str | Mapping, key: str = "cell") -> tuple[str, dict]:
    """Split a cell spec into its name and its options.

    Args:
        cell: a cell name, or a mapping ``{"name": ..., **options}``.
        key: what to call the spec in error messages (builders pass
            ``"model.cell"``, the config key a user sets).

    Returns:
        ``(name, options)``: the name as a string and a new dict of the other
        entries.

    Raises:
        ConfigError: (a ``ValueError``) if ``cell`` is neither a string nor a
            mapping with a ``name`` key, or names no known cell or built-in
            layer.

    Example:

    >>> split_cell_spec("gru")
    ('gru', {})
    >>> split_cell_spec({"name": "lstm", "forget_bias": 0.0, "stateful": True})
    ('lstm', {'forget_bias': 0.0, 'stateful': True})
    """
    if isinstance(cell, str):
        name, options = cell, {}
    elif isinstance(cell, Mapping) and "name" in cell:
        name = str(cell["name"])
        options = {k: v for k, v in cell.items() if k != "name"}
    else:
        raise ConfigError(f"{key} must be a cell name or a mapping with a 'name' key, got {cell!r}")
    if name not in CELLS and name not in BUILTIN_LAYERS:
        raise ConfigError(
            f"unknown {key} {name!r}; choose one of {sorted(CELLS) + sorted(BUILTIN_LAYERS)}"
        )
    return name, options


def recurrent_layer(
    cell: str | Mapping, units: int, *, name: str | None = None, key: str = "cell", **options
):
    """One sequence layer for a cell spec; it returns sequences unless told otherwise.

    Args:
        cell: a cell spec: a name (``seqlab.layers.CELLS`` or ``keras_lstm``,
            ``keras_gru``, ``keras_simple_rnn``) or ``{"name": ..., **options}``.
        units: the width of the hidden state.
        name: the layer name.
        key: what to call the spec in error messages (builders pass
            ``"model.cell"``).
        **options: override the spec's options. For a seqlab cell, those in
            :data:`LAYER_OPTIONS` go to :class:`seqlab.layers.Recurrent`, the
            others to the cell (``get_cell(name, units, **options)``); a
            built-in Keras layer takes them all.

    Returns:
        An unbuilt ``seqlab.layers.Recurrent`` (or ``keras.layers.LSTM`` /
        ``GRU`` / ``SimpleRNN``) with ``return_sequences=True`` by default.

    Raises:
        ConfigError: (a ``ValueError``) for an unknown cell or a bad option,
            naming ``key`` and the cell.

    Example:

    >>> layer = recurrent_layer({"name": "gru", "dropout": 0.1, "go_backwards": True}, 8)
    >>> type(layer).__name__, type(layer.cell).__name__, layer.cell.dropout, layer.go_backwards
    ('Recurrent', 'GRUCell', 0.1, True)
    >>> import numpy as np
    >>> tuple(layer(np.zeros((2, 5, 3), "float32")).shape)
    (2, 5, 8)
    """
    cell_name, spec_options = split_cell_spec(cell, key)
    options = {**spec_options, **options}
    if cell_name in BUILTIN_LAYERS:
        options.setdefault("return_sequences", True)
        return BUILTIN_LAYERS[cell_name](units, name=name, **options)
    layer_options = {k: options.pop(k) for k in LAYER_OPTIONS if k in options}
    layer_options.setdefault("return_sequences", True)
    try:
        return Recurrent(get_cell(cell_name, units, **options), name=name, **layer_options)
    except ValueError as err:
        raise ConfigError(f"{key} {cell_name!r}: {err}") from err


def _check_rate(key: str, rate) -> None:
    if not 0.0 <= float(rate) < 1.0:
        raise ConfigError(f"recurrent_stack: {key} must be in [0, 1), got {rate!r}; use 0.0 to disable it.")


def recurrent_stack(
    x,
    cell: str | Mapping = "lstm",
    units: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    merge_mode: str = "concat",
    dropout_between: float = 0.0,
    residual: bool = False,
    cell_options: Mapping | Callable[[int], Mapping] | None = None,
    return_sequences: bool = True,
    implementation: str | None = None,
    name: str = "rnn",
    *,
    input_dropout: float = 0.0,
    variational_dropout: bool = False,
    layer_names: Mapping[str, str] | None = None,
    key: str = "cell",
):
    """Apply ``num_layers`` stacked recurrent layers to ``x`` ``[B, T, D]``.

    For each layer ``i``: dropout on its input (``input_dropout`` for the
    first layer, ``dropout_between`` for the others; none at rate 0), the
    recurrent layer (:func:`recurrent_layer`), optionally bidirectional, and
    with ``residual`` the layer's input (before dropout) added to its output
    where their shapes match. Layers are created in this order, one layer
    after the other, so a seeded build is reproducible.

    Args:
        x: a (symbolic or eager) tensor ``[B, T, D]``; its Keras mask, if any,
            flows through every layer.
        cell: a cell spec: a name (``seqlab.layers.CELLS``, or ``keras_lstm``,
            ``keras_gru``, ``keras_simple_rnn``) or ``{"name": ..., **options}``.
        units: units of every layer.
        num_layers: number of stacked layers (>= 1).
        bidirectional: wrap each layer in ``keras.layers.Bidirectional``; a
            layer's width is then ``2 * units`` for ``merge_mode="concat"``,
            else ``units``.
        merge_mode: how the two directions combine: concat, sum, ave, mul.
        dropout_between: dropout rate on the input of every layer but the
            first (between layers).
        residual: add a layer's input to its output whenever their shapes are
            equal (``y = x + RNN(x)``, He et al. / Wu et al. 2016 GNMT style).
        cell_options: options for every layer, merged over those in ``cell``
            (split between layer and cell as in :func:`recurrent_layer`); or a
            callable ``i -> options``, called just before layer ``i`` is
            created, for values that must be fresh per layer (initializer
            instances, which draw their seed when created).
        return_sequences: of the last layer (the others always return sequences).
        implementation: passed to :class:`seqlab.layers.Recurrent` (``auto``,
            ``fast``, ``generic``); ``None`` leaves the layer's default.
        name: prefix of the layer names (see ``layer_names``).
        input_dropout: dropout rate on the input of the first layer.
        variational_dropout: use :class:`seqlab.layers.LockedDropout` (one
            mask per sequence, shared over time) instead of
            ``keras.layers.Dropout``.
        layer_names: format strings overriding :data:`LAYER_NAMES` (keys
            ``rnn``, ``dropout``, ``residual``, ``bidirectional``; fields
            ``{name}`` and ``{i}``). The default names are ``{name}_{i}``,
            ``{name}_dropout_{i}``, ``{name}_residual_{i}`` and
            ``{name}_bidirectional_{i}``.
        key: what to call ``cell`` in error messages (builders pass
            ``"model.cell"``).

    Returns:
        The output tensor: ``[B, T, W]`` if ``return_sequences`` else
        ``[B, W]``, with ``W = units`` (``2 * units`` when bidirectional with
        ``merge_mode="concat"``).

    Raises:
        ConfigError: (a ``ValueError``) for a bad cell spec, ``num_layers``,
            ``merge_mode`` or dropout rate.

    Example:

    >>> import keras
    >>> inputs = keras.Input((None, 3))
    >>> outputs = recurrent_stack(inputs, "gru", units=4, num_layers=2, bidirectional=True,
    ...                           residual=True, name="encoder")
    >>> outputs.shape
    (None, None, 8)
    >>> model = keras.Model(inputs, outputs)
    >>> [layer.name for layer in model.layers[1:]]
    ['encoder_bidirectional_0', 'encoder_bidirectional_1', 'encoder_residual_1']
    >>> model.count_params()
    552
    """
    split_cell_spec(cell, key)  # validate before building anything
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ConfigError(
            f"recurrent_stack: num_layers must be a positive integer, got {num_layers!r}."
        )
    if merge_mode not in MERGE_MODES:
        raise ConfigError(
            f"recurrent_stack: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}."
        )
    _check_rate("dropout_between", dropout_between)
    _check_rate("input_dropout", input_dropout)
    names = {**LAYER_NAMES, **dict(layer_names or {})}
    dropout_layer = LockedDropout if variational_dropout else keras.layers.Dropout

    for i in range(num_layers):
        last = i == num_layers - 1
        layer_input = x
        rate = input_dropout if i == 0 else dropout_between
        if rate:
            x = dropout_layer(rate, name=names["dropout"].format(name=name, i=i))(x)
        options = dict(cell_options(i) if callable(cell_options) else cell_options or {})
        if implementation is not None:
            options["implementation"] = implementation
        options["return_sequences"] = bool(return_sequences or not last)
        layer = recurrent_layer(cell, units, name=names["rnn"].format(name=name, i=i), key=key,
                                **options)
        if bidirectional:
            layer = keras.layers.Bidirectional(
                layer, merge_mode=merge_mode, name=names["bidirectional"].format(name=name, i=i)
            )
        y = layer(x)
        if residual and y.shape[-1] == layer_input.shape[-1] and len(y.shape) == len(layer_input.shape):
            y = keras.layers.Add(name=names["residual"].format(name=name, i=i))([layer_input, y])
        x = y
    return x
