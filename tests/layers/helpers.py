"""Shared helpers for the layer tests: random weights, random masks."""

from __future__ import annotations

import numpy as np

from seqlab.layers import CELLS, Recurrent, get_cell

CELL_NAMES = sorted(CELLS)


def randomize(cell, rng, scale=0.5):
    """Set every weight of a built ``cell`` to random values; return them by name."""
    values = {}
    for var in cell.weights:
        shape = tuple(var.shape)
        if var.name in ("gate_gamma", "cell_gamma"):
            value = 1.0 + 0.3 * rng.standard_normal(shape)
        else:
            value = scale * rng.standard_normal(shape)
        value = value.astype(var.dtype)
        var.assign(value)
        values[var.name] = value
    return values


def random_mask(rng, batch, time, holes=False):
    """Right-padded mask with random lengths >= 1 (and optionally holes inside)."""
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0] = time  # one full-length row
    mask = np.arange(time)[None, :] < lengths[:, None]
    if holes:
        mask &= rng.random((batch, time)) > 0.25
        mask[:, 0] = True
    return mask


def make_layer(name, units, x, rng, dtype="float32", **layer_kwargs):
    """A built generic-path ``Recurrent`` with random weights, and the weights."""
    cell = get_cell(name, units, dtype=dtype)
    layer = Recurrent(cell, implementation="generic", dtype=dtype, **layer_kwargs)
    layer.build(x.shape)
    return layer, randomize(cell, rng)


def xla_function_calls(concrete):
    """Names of the XLA-compiled functions (``_XlaMustCompile``) that a traced
    ``ConcreteFunction`` calls, nested function bodies included."""
    gdef = concrete.graph.as_graph_def()
    fdefs = list(gdef.library.function)
    nodes = list(gdef.node) + [n for f in fdefs for n in f.node_def]
    called = {n.attr["f"].func.name for n in nodes if "f" in n.attr}
    return called & {f.signature.name for f in fdefs if f.attr["_XlaMustCompile"].b}
