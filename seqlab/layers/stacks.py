"""Deep and bidirectional recurrent stacks, built from serializable Keras layers.

``recurrent_stack`` is a functional-API builder: it applies ``num_layers``
:class:`Recurrent` layers (each optionally wrapped in
``keras.layers.Bidirectional``) to a tensor and returns the result, so the
model it ends up in saves and loads like any Keras model (no custom stack
layer to serialize).

    x --[Dropout]--> RNN_1 --[Dropout]--> RNN_2 (+ residual) ... --> y
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from seqlab.layers.recurrent import Recurrent
from seqlab.layers.registry import get_cell

MERGE_MODES = ("concat", "sum", "ave", "mul")


def recurrent_stack(
    x,
    cell: str | Mapping = "lstm",
    units: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    merge_mode: str = "concat",
    dropout_between: float = 0.0,
    residual: bool = False,
    cell_options: Mapping | None = None,
    return_sequences: bool = True,
    implementation: str = "auto",
    name: str = "rnn",
):
    """Apply ``num_layers`` stacked recurrent layers to ``x`` ``[B, T, D]``.

    Args:
        x: a (symbolic or eager) tensor ``[B, T, D]``; its Keras mask, if any,
            flows through every layer.
        cell: a registered cell name (``seqlab.layers.CELLS``) or a mapping
            ``{"name": ..., **options}``.
        units: units of every layer.
        num_layers: number of stacked layers (>= 1).
        bidirectional: wrap each layer in ``keras.layers.Bidirectional``; a
            layer's width is then ``2 * units`` for ``merge_mode="concat"``,
            else ``units``.
        merge_mode: how the two directions combine: concat, sum, ave, mul.
        dropout_between: dropout rate applied to the input of every layer but
            the first (between layers).
        residual: add a layer's input to its output whenever their widths are
            equal (``y = x + RNN(x)``, He et al. / Wu et al. 2016 GNMT style).
        cell_options: options for every cell (merged over those in ``cell``).
        return_sequences: of the last layer (the others always return sequences).
        implementation: passed to :class:`Recurrent` (auto, fast, generic).
        name: prefix of the layer names (``{name}_{i}``).

    Returns:
        ``[B, T, W]`` if ``return_sequences`` else ``[B, W]``.
    """
    if isinstance(cell, str):
        cell_name, options = cell, {}
    elif isinstance(cell, Mapping) and "name" in cell:
        cell_name = str(cell["name"])
        options = {k: v for k, v in cell.items() if k != "name"}
    else:
        raise ValueError(
            f"recurrent_stack: cell must be a cell name or a mapping with a 'name' key, "
            f"got {cell!r}."
        )
    options = {**options, **dict(cell_options or {})}
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(
            f"recurrent_stack: num_layers must be a positive integer, got {num_layers!r}."
        )
    if merge_mode not in MERGE_MODES:
        raise ValueError(
            f"recurrent_stack: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}."
        )
    if not 0.0 <= float(dropout_between) < 1.0:
        raise ValueError(
            f"recurrent_stack: dropout_between must be in [0, 1), got {dropout_between!r}; "
            "use 0.0 to disable it."
        )

    for i in range(num_layers):
        last = i == num_layers - 1
        if i > 0 and dropout_between:
            x = keras.layers.Dropout(dropout_between, name=f"{name}_dropout_{i}")(x)
        layer = Recurrent(
            get_cell(cell_name, units, **options),
            return_sequences=(return_sequences or not last),
            implementation=implementation,
            name=f"{name}_{i}",
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(
                layer, merge_mode=merge_mode, name=f"{name}_bidirectional_{i}"
            )
        y = layer(x)
        if residual and y.shape[-1] == x.shape[-1] and len(y.shape) == len(x.shape):
            y = keras.layers.Add(name=f"{name}_residual_{i}")([x, y])
        x = y
    return x
