"""Cells by name, so configs pick them: ``get_cell("gru_cho", 128, dropout=0.1)``.

A maintainer adds a cell by writing its class and one entry here (plus one
``conf/model/cell/<name>.yaml`` and one test).
"""

from __future__ import annotations

from types import MappingProxyType

from seqlab.layers.cells import (
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
    SimpleRNNCell,
)

#: name -> (cell class, default options that the name implies)
CELLS = MappingProxyType(
    {
        "simple_rnn": (SimpleRNNCell, {}),
        "lstm": (LSTMCell, {}),
        "gru": (GRUCell, {"reset_after": True}),
        "gru_cho": (GRUCell, {"reset_after": False}),
        "peephole_lstm": (PeepholeLSTMCell, {}),
        "layernorm_lstm": (LayerNormLSTMCell, {}),
    }
)


def get_cell(name: str, units: int, **options):
    """A new cell registered as ``name`` with ``units`` and ``options``.

    ``options`` override the defaults the name implies (``gru_cho`` is
    ``GRUCell(reset_after=False)``). The cell is named ``{name}_cell`` unless
    ``options`` name it, as Keras names the cells of its layers, so weight
    paths read ``rnn_0/lstm_cell/kernel`` like those of ``keras.layers.LSTM``.

    Args:
        name: a key of :data:`CELLS` (``simple_rnn``, ``lstm``, ``gru``,
            ``gru_cho``, ``peephole_lstm``, ``layernorm_lstm``).
        units: ``H``.
        **options: the cell class's keyword arguments.

    Returns:
        The cell (not built).

    Raises:
        ValueError: for an unknown name, listing the known ones.

    Example:

    >>> from seqlab.layers import get_cell
    >>> cell = get_cell("gru_cho", 8, dropout=0.1)
    >>> type(cell).__name__, cell.reset_after, cell.dropout, cell.name
    ('GRUCell', False, 0.1, 'gru_cho_cell')
    """
    if name not in CELLS:
        raise ValueError(
            f"unknown cell {name!r}; choose one of {sorted(CELLS)} "
            "(or register a new one in seqlab/layers/registry.py)."
        )
    cls, defaults = CELLS[name]
    return cls(units, **{"name": f"{name}_cell", **defaults, **options})
