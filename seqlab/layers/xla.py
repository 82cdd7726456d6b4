"""Whether the code being traced will be compiled by XLA: hand-written gradients or autodiff.

:func:`~seqlab.layers.activations.gelu` and
:class:`~seqlab.layers.normalization.LayerNorm` carry hand-written
gradients, which save passes over memory in graph mode (one pass per op).
Under XLA the elementwise ops of autodiff fuse into a few loops, and the
plain formulas were measured faster, so both ask :func:`compiled_by_xla`
which of the two (numerically the same function) to trace.
"""

from __future__ import annotations

import keras


def compiled_by_xla() -> bool:
    """Whether the function being traced now will be compiled by XLA: always
    with JAX; with TensorFlow inside ``tf.function(jit_compile=True)`` (what
    ``model.compile(jit_compile=True)`` uses).

    The hand-written gradients of :func:`gelu` and :class:`LayerNorm` save
    passes over memory in graph mode, where every op is one pass; XLA fuses
    the elementwise ops of autodiff into a few loops and was measured ~4 %
    faster on the whole LM step without them, so under XLA the plain
    formulas are used (the same function either way)."""
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow without these internals
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))
