"""Multilayer perceptron on images: flatten, a dense stack, logits.

    images [B, H, W, C] --flatten--> a_0 [B, H*W*C]
        --dense_l: z_l = a_{l-1} W_l + b_l, [BN], a_l = f(z_l), [dropout]--> ... (l = 1..L)
        --logits: z_{L+1} = a_L W_{L+1} + b_{L+1}--> [B, num_classes]

Backpropagation is the chain rule through these equations: with the loss
``E`` and ``delta_l = dE/dz_l``,

    delta_{L+1} = dE/dz_{L+1}  (softmax cross-entropy: (softmax(z) - y) / B)
    dE/dW_l = a_{l-1}^T delta_l,   dE/db_l = sum_batch delta_l
    delta_{l-1} = (delta_l W_l^T) * f'(z_{l-1})

(``tests/models/test_mlp.py`` checks Keras' forward and backward pass
against exactly these equations in NumPy.)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from seqlab.layers.batch_norm import BatchNorm
from seqlab.models._checks import check_rate
from seqlab.models._vision import (
    check_activation,
    check_num_classes,
    image_input,
    int_tuple,
    logits_dtype,
)


def build_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden_units: Sequence[int] = (256, 128),
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
    name: str = "mlp",
) -> keras.Model:
    """Images ``[B, H, W, C]`` -> logits ``[B, num_classes]`` through a dense stack.

    Layers: ``images``, ``flatten``, then per hidden layer ``l``: ``dense_l``
    (with the activation; with ``batch_norm``: ``dense_l`` without bias,
    ``bn_l``, ``act_l``) and ``dropout_l`` (when ``dropout > 0``); ``logits``
    (linear). The defaults are those of ``conf/model/mlp.yaml``.

    Args:
        input_shape: ``(H, W, C)`` of the images (the data bundle supplies it).
        num_classes: width of the logits.
        hidden_units: units of each hidden layer (``[]``: softmax regression).
        activation: a Keras activation name (``relu``, ``tanh``, ``sigmoid``).
        dropout: dropout rate after each hidden layer, in ``[0, 1)``.
        batch_norm: batch norm between each hidden layer's affine map and its
            activation.
        name: the Keras model name.

    Returns:
        An uncompiled ``keras.Model`` from ``images`` to logits (no softmax).

    Raises:
        ConfigError: (a ``ValueError``) naming the bad value.

    Example:

    >>> model = build_mlp((28, 28, 1), 10, hidden_units=[32])
    >>> [layer.name for layer in model.layers]
    ['images', 'flatten', 'dense_0', 'logits']
    >>> model.count_params()          # 784 * 32 + 32 + 32 * 10 + 10
    25450
    """
    num_classes = check_num_classes(num_classes)
    units = int_tuple("hidden_units", hidden_units)
    check_rate("dropout", dropout)
    check_activation("activation", activation)
    inputs = image_input(input_shape)
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, n in enumerate(units):
        if batch_norm:
            x = keras.layers.Dense(n, use_bias=False, name=f"dense_{i}")(x)
            x = BatchNorm(name=f"bn_{i}")(x)
            x = keras.layers.Activation(activation, name=f"act_{i}")(x)
        else:
            x = keras.layers.Dense(n, activation=activation, name=f"dense_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype=logits_dtype())(x)
    return keras.Model(inputs, logits, name=name)
