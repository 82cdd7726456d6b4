"""``trainer.remat``: gradient checkpointing (rematerialization) of a model's blocks.

Backpropagation keeps every intermediate activation of the forward pass until
the backward pass has used it. For a block ``y = f(x; θ)`` (one recurrent
layer, one Transformer block) that is, per layer and batch of ``B x T``:

    LSTM         gates [B, T, 4H], cell states [B, T, H], outputs [B, T, H]
    Transformer  Q, K, V, attention weights [B, heads, T, T], FFN hidden [B, T, 4d], ...

With remat the forward pass keeps only each block's *input* ``x`` and
discards the rest; the backward pass runs ``f(x)`` once more, under a local
tape, right before it needs the block's gradient. Peak activation memory
drops from ``Σ_blocks (inputs + internals)`` to ``Σ_blocks inputs + max_block
internals``, at the price of a second forward pass of every block (about a
third more compute for a stack of blocks whose backward costs twice the
forward).

Why not ``keras.RematScope``: its ``full`` mode wraps every layer's
``call`` in ``tf.recompute_grad`` with the call's keyword arguments, which
TensorFlow's graph-mode ``custom_gradient`` refuses ("supports keywords
arguments only when eager execution is enabled") and which breaks even the
symbolic build of seqlab's Transformer blocks; nested scopes also recompute
sublayers inside recomputed blocks again. :func:`rematerialize` instead wraps
the ``call`` of each outermost block of an *already built* model, passing the
floating-point tensors (inputs, initial states, a decoder's memory) as the
recomputed function's arguments and closing over the rest (``training``, the
boolean ``mask``).

Two things make the recomputation equal to the original forward pass, so
the gradients equal those without remat (tested to 1e-6):

- **random draws**: dropout draws from ``keras.random.SeedGenerator``
  states that the forward pass advances; a naive recomputation would draw a
  new mask. The block's non-trainable variables (seed states, the carried
  states of a stateful RNN, moving statistics) are read before the forward
  pass and written back at the start of each run of the block, so the
  recomputation starts from the same states as the forward pass did;
- **only training is recomputed**: a call without ``training=True``
  (evaluation, generation through a KV cache) runs the plain ``call``.

The remat mode is a training setting, like ``jit_compile``: it is not part
of the saved model, and a reloaded model runs without it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import keras
import tensorflow as tf

from seqlab.errors import ConfigError
from seqlab.walk import walk_layers

#: Marks a layer whose ``call`` :func:`rematerialize` has wrapped.
_WRAPPED = "_seqlab_remat"


def block_types() -> tuple[type, ...]:
    """The layer classes recomputed as one unit: recurrent layers (seqlab's
    :class:`~seqlab.layers.Recurrent`, Keras' ``RNN``/``LSTM``/``GRU``, a
    ``Bidirectional`` pair) and Transformer blocks (encoder and decoder)."""
    from seqlab.layers import Recurrent
    from seqlab.layers.transformer import TransformerEncoderBlock

    return (Recurrent, keras.layers.RNN, keras.layers.Bidirectional, TransformerEncoderBlock)


def _outermost_blocks(model: keras.Model, types: tuple[type, ...]) -> list[keras.layers.Layer]:
    """Blocks of ``model`` not nested inside another block (a Bidirectional's
    two directions are recomputed with it, not again on their own)."""
    blocks: list[keras.layers.Layer] = []
    inner: set[int] = set()
    for layer in walk_layers(model):
        if layer is model or id(layer) in inner or not isinstance(layer, types):
            continue
        blocks.append(layer)
        inner |= {id(sub) for sub in walk_layers(layer)}
    return blocks


def _is_float_tensor(value) -> bool:
    return tf.is_tensor(value) and value.dtype.is_floating


def _carried_variables(layer: keras.layers.Layer) -> list:
    """The variables a forward pass of ``layer`` reads and then moves on: its
    non-trainable variables (seed states, moving statistics) and the carried
    states of stateful recurrent layers, which seqlab and Keras keep outside
    the layer's tracked variables (they are not weights)."""
    found = {id(v): v for v in layer.non_trainable_variables}
    for sub in walk_layers(layer):
        for variable in getattr(sub, "states", None) or []:
            if isinstance(variable, keras.Variable):
                found.setdefault(id(variable), variable)
    return list(found.values())


def _recomputed_call(layer: keras.layers.Layer):
    """``layer.call`` through ``tf.recompute_grad`` while training."""
    call = layer.call

    @functools.wraps(call)
    def remat_call(*args, **kwargs):
        if kwargs.get("training") is not True:
            return call(*args, **kwargs)
        flat = tf.nest.flatten((args, kwargs))
        where = [i for i, value in enumerate(flat) if _is_float_tensor(value)]
        if not where:
            return call(*args, **kwargs)
        # Seed states, stateful RNN states, moving statistics: as they were
        # before this forward pass, for the recomputation to start from.
        states = _carried_variables(layer)
        saved = [tf.identity(v.value) for v in states]

        def block(*tensors):
            for variable, value in zip(states, saved):
                variable.assign(value)
            values = list(flat)
            for i, tensor in zip(where, tensors):
                values[i] = tensor
            call_args, call_kwargs = tf.nest.pack_sequence_as((args, kwargs), values)
            return call(*call_args, **call_kwargs)

        return tf.recompute_grad(block)(*[flat[i] for i in where])

    return remat_call


def rematerialize(model: keras.Model, types: Iterable[type] | None = None) -> list[str]:
    """Recompute the activations of every block of ``model`` in the backward pass.

    Wraps, in place, the ``call`` of each outermost layer of ``types``
    (default :func:`block_types`) so that a training call runs through
    ``tf.recompute_grad``; calling it twice changes nothing. Returns the names
    of the wrapped blocks.

    Raises:
        ConfigError: the model has no such block (nothing to recompute).

    >>> from seqlab.models import build_rnn_lm
    >>> rematerialize(build_rnn_lm(vocab_size=5, hidden_size=4, num_layers=2))
    ['rnn_0', 'rnn_1']
    """
    types = tuple(types) if types is not None else block_types()
    blocks = _outermost_blocks(model, types)
    if not blocks:
        raise ConfigError(
            f"trainer.remat=true: model {model.name!r} has no recurrent layer or Transformer block "
            "to recompute in the backward pass; set trainer.remat=false"
        )
    for layer in blocks:
        if not getattr(layer, _WRAPPED, False):
            # An instance attribute: Layer.__call__ (and Keras' Operation) call self.call.
            object.__setattr__(layer, "call", _recomputed_call(layer))
            object.__setattr__(layer, _WRAPPED, True)
    return [layer.name for layer in blocks]


def check_remat(value) -> bool:
    if value not in (True, False):
        raise ConfigError(f"trainer.remat must be true or false, got {value!r}")
    return value
