"""Every layer inside a Keras model, through public attributes only.

Keras keeps its own recursive walk private (``Layer._flatten_layers``); this
one follows what a model shows publicly: a model's ``layers``, a wrapper's
``layer`` (``TimeDistributed``), ``Bidirectional``'s ``forward_layer`` and
``backward_layer``, a recurrent layer's ``cell``, and the layers a subclassed
block holds as attributes (a residual block's convolutions, a Transformer
block's attention), alone or in a list.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras

_CHILDREN = ("layer", "forward_layer", "backward_layer", "cell")


def walk_layers(root: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Yield ``root`` and every layer nested inside it, depth first, each once.

    >>> inner = keras.Sequential([keras.layers.Dense(2, name="d")], name="inner")
    >>> x = keras.Input((3,), name="x")
    >>> model = keras.Model(x, inner(x), name="outer")
    >>> [layer.name for layer in walk_layers(model)]
    ['outer', 'x', 'inner', 'd']
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        children = list(getattr(layer, "layers", None) or [])
        children += [getattr(layer, name) for name in _CHILDREN
                     if isinstance(getattr(layer, name, None), keras.layers.Layer)]
        # A block's own layers (a model lists its own in ``layers``).
        attributes = {} if isinstance(layer, keras.Model) else vars(layer)
        for name, value in attributes.items():
            if name.startswith("_"):
                continue
            if isinstance(value, keras.layers.Layer):
                children.append(value)
            elif isinstance(value, list | tuple):
                children += [v for v in value if isinstance(v, keras.layers.Layer)]
        stack.extend(reversed(children))
