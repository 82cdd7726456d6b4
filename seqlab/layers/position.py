"""Positional information for Transformers: sinusoidal, learned and rotary.

Self-attention is blind to order (permuting the tokens permutes its output),
so the position of each token is added to its embedding or, with rotary
embeddings, to the queries and keys themselves:

``SinusoidalPositionEncoding`` (Vaswani et al. 2017)
    ``x_p + PE_p`` with the fixed table
    ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``;
    no weights, defined for any position.
``LearnedPositionEmbedding`` (GPT, BERT)
    ``x_p + P[p]`` with a trainable table ``P [max_length, d]``; positions
    ``>= max_length`` do not exist (a clear error).
``RotaryEmbedding`` (RoPE, Su et al. 2021)
    rotates each pair of features ``(x_j, x_{j+d/2})`` of a query or key at
    position ``p`` by the angle ``p * theta_j``, ``theta_j = base^(-2j/d)``, so
    that ``<R_p q, R_s k>`` depends on ``p - s`` only: attention scores see the
    relative offset. Used inside :class:`seqlab.layers.attention.MultiHeadAttention`
    (``rotary=True``); no weights, any position.

Each layer takes ``start`` (a Python int or a scalar int tensor): the position
of the first row, so an incremental decoder feeding one token at position
``t`` calls it with ``start=t``. ``max_length`` is the context length the
model was built for (required by the learned table; informative for the
other two, and the size of the key/value cache a generation step allocates).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _concrete_int(value):
    """``value`` as a Python int if it is known now (an int, a NumPy or eager
    scalar), else None (a symbolic tensor inside a traced function)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        return int(ops.convert_to_numpy(value))
    except Exception:  # symbolic: not known until it runs
        return None


def _check_max_length(name, max_length, required=False):
    if max_length is None and not required:
        return None
    if (
        isinstance(max_length, bool)
        or not isinstance(max_length, (int, np.integer))
        or max_length <= 0
    ):
        raise ValueError(f"{name}: max_length must be a positive integer, got {max_length!r}")
    return int(max_length)


def sinusoidal_table(positions, dim: int, max_wavelength: float = 10000.0, dtype="float32"):
    """``PE [len(positions), dim]``: ``sin`` on even features, ``cos`` on odd ones.

    ``PE[p, 2i] = sin(p / max_wavelength^(2i/dim))``,
    ``PE[p, 2i+1] = cos(p / max_wavelength^(2i/dim))``; an odd ``dim`` drops
    the last cosine. ``positions`` is a 1-D tensor (any numeric dtype).
    """
    half = (dim + 1) // 2
    inv_freq = np.power(max_wavelength, -np.arange(half, dtype="float64") * 2.0 / dim).astype(
        "float32"
    )
    angles = ops.cast(positions, "float32")[:, None] * ops.convert_to_tensor(inv_freq)[None, :]
    # [T, half, 2] -> [T, 2 * half]: sin, cos interleaved.
    table = ops.reshape(ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1), (-1, 2 * half))
    return ops.cast(table[:, :dim], dtype)


def _positions(start, length):
    return ops.arange(length, dtype="int32") + ops.cast(start, "int32")


@keras.saving.register_keras_serializable(package="seqlab")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """``x + PE[start : start + T]``, the fixed sinusoidal encoding of Vaswani et al.

    ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``
    (:func:`sinusoidal_table`). No weights; any position is defined, and a
    Keras mask on the input passes through.

    Args:
        max_length: the context length the model was built for (optional;
            kept in the config for generation, not a limit).
        max_wavelength: the ``10000`` of the formula.
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``[B, T, d]``.
        start: position of the first row (int or scalar int tensor), default 0.

    Returns:
        ``inputs + PE`` of the input's shape.

    Example:

    >>> import numpy as np
    >>> layer = SinusoidalPositionEncoding()
    >>> y = np.asarray(layer(np.zeros((1, 3, 4), "float32"), start=2))
    >>> bool(np.allclose(y[0, 1], [np.sin(3), np.cos(3), np.sin(3 / 100), np.cos(3 / 100)]))
    True
    """

    def __init__(self, max_length: int | None = None, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_length = _check_max_length("SinusoidalPositionEncoding", max_length)
        self.max_wavelength = float(max_wavelength)
        self.supports_masking = True

    def call(self, inputs, start=0):
        length = ops.shape(inputs)[1]
        table = sinusoidal_table(
            _positions(start, length), inputs.shape[-1], self.max_wavelength, inputs.dtype
        )
        return inputs + table[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "max_wavelength": self.max_wavelength,
        }


@keras.saving.register_keras_serializable(package="seqlab")
class LearnedPositionEmbedding(keras.layers.Layer):
    """``x + P[start : start + T]`` with a trainable table ``P [max_length, d]``.

    A sequence reaching past ``max_length`` raises a ``ValueError`` naming its
    length and the maximum (eagerly, and when the length is static while
    tracing). A Keras mask on the input passes through.

    Args:
        max_length: number of positions in the table.
        initializer: the table's initializer (GPT-2: ``normal(0.02)``).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``[B, T, d]``.
        start: position of the first row (int or scalar int tensor), default 0.

    Returns:
        ``inputs + P[start : start + T]``.

    Example:

    >>> import numpy as np
    >>> layer = LearnedPositionEmbedding(max_length=5, initializer="ones")
    >>> np.asarray(layer(np.zeros((1, 2, 3), "float32")))[0].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    >>> try:
    ...     layer(np.zeros((1, 6, 3), "float32"))
    ... except ValueError as err:
    ...     print("a sequence of length 6 (positions 0..5) is longer than max_length=5" in str(err))
    True
    """

    def __init__(self, max_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_length = _check_max_length("LearnedPositionEmbedding", max_length, required=True)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_length, input_shape[-1]),
            initializer=self.initializer,
            name="embeddings",
        )

    def _check_length(self, start, length):
        start, length = _concrete_int(start), _concrete_int(length)
        if start is None or length is None:
            return
        if start + length > self.max_length:
            raise ValueError(
                f"LearnedPositionEmbedding {self.name!r}: a sequence of length {start + length} "
                f"(positions {start}..{start + length - 1}) is longer than "
                f"max_length={self.max_length}; shorten it or build the model with a larger "
                "max_length (e.g. model.max_length)"
            )

    def call(self, inputs, start=0):
        length = ops.shape(inputs)[1]
        self._check_length(start, length)
        table = ops.slice(
            ops.cast(self.embeddings, inputs.dtype),
            ops.stack([ops.cast(start, "int32"), 0]),
            (length, inputs.shape[-1]),
        )
        return inputs + table[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="seqlab")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE) of queries or keys.

    For a feature vector ``x`` of even width ``d`` at position ``p``, with
    ``theta_j = max_wavelength^(-2j/d)`` and ``j < d/2`` ("rotate-half" pairing,
    GPT-NeoX / LLaMA)::

        y_j       = x_j cos(p theta_j) - x_{j+d/2} sin(p theta_j)
        y_{j+d/2} = x_{j+d/2} cos(p theta_j) + x_j sin(p theta_j)

    Each pair is rotated by a position-proportional angle, so the dot product
    of a rotated query at ``p`` and a rotated key at ``s`` depends on ``p - s``
    only. No weights.

    Args:
        max_wavelength: the base of the frequencies (10000).
        max_length: the context length the model was built for (optional,
            informative; any position is defined).
        sequence_axis: the axis of positions in the input (1 for ``[B, T, ...]``).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``[B, T, ..., d]`` (positions on ``sequence_axis``, features last).
        start: position of the first entry on the sequence axis.

    Returns:
        The rotated input, same shape and dtype.

    Example:

    >>> import numpy as np
    >>> rope = RotaryEmbedding()
    >>> q = np.random.default_rng(0).normal(size=(1, 1, 8)).astype("float32")
    >>> k = np.random.default_rng(1).normal(size=(1, 1, 8)).astype("float32")
    >>> s1 = np.sum(np.asarray(rope(q, start=7)) * np.asarray(rope(k, start=3)))
    >>> s2 = np.sum(np.asarray(rope(q, start=14)) * np.asarray(rope(k, start=10)))
    >>> bool(np.isclose(s1, s2, atol=1e-4))
    True
    """

    def __init__(
        self,
        max_wavelength: float = 10000.0,
        max_length: int | None = None,
        sequence_axis: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_wavelength = float(max_wavelength)
        self.max_length = _check_max_length("RotaryEmbedding", max_length)
        self.sequence_axis = int(sequence_axis)
        self.supports_masking = True

    def cos_sin(self, start, length, dim: int, dtype="float32"):
        """``cos, sin`` of the angles, each ``[length, dim]`` (halves repeated)."""
        if dim % 2:
            raise ValueError(
                f"RotaryEmbedding {self.name!r}: the feature width must be even, got {dim}"
            )
        inv_freq = np.power(self.max_wavelength, -np.arange(0, dim, 2, dtype="float64") / dim)
        angles = (
            ops.cast(_positions(start, length), "float32")[:, None]
            * ops.convert_to_tensor(inv_freq.astype("float32"))[None, :]
        )
        angles = ops.concatenate([angles, angles], axis=-1)
        return ops.cast(ops.cos(angles), dtype), ops.cast(ops.sin(angles), dtype)

    def apply(self, x, cos, sin):
        """Rotate ``x [..., d]`` with ``cos, sin`` already broadcastable to it."""
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return x * cos + ops.concatenate([-x2, x1], axis=-1) * sin

    def call(self, inputs, start=0):
        axis = self.sequence_axis % len(inputs.shape)
        cos, sin = self.cos_sin(start, ops.shape(inputs)[axis], inputs.shape[-1], inputs.dtype)
        # [T, d] -> broadcastable: T on the sequence axis, d last, ones between.
        shape = [1] * len(inputs.shape)
        shape[axis], shape[-1] = -1, inputs.shape[-1]
        return self.apply(inputs, ops.reshape(cos, shape), ops.reshape(sin, shape))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_wavelength": self.max_wavelength,
            "max_length": self.max_length,
            "sequence_axis": self.sequence_axis,
        }


__all__ = [
    "LearnedPositionEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionEncoding",
    "sinusoidal_table",
]
