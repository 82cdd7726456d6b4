"""One-token steps of a Transformer LM through its key/value cache.

A Transformer LM (:func:`seqlab.models.transformer.build_transformer_lm`, or
any functional model of the same kind) is the graph ``Embedding -> [position]
-> [Dropout] -> causal blocks -> [LayerNorm] -> logits``. Re-running it on the
growing prefix costs ``O(t)`` positions (``O(t^2)`` attention) per new token.
:class:`TransformerStep` keeps every block's self-attention keys and values
in a fixed-size cache ``[B, 2, H, W, d_head]`` (``W`` = the model's context
length, ``max_length``) and runs the model's own functional graph on the new
token only, with three substitutions:

* every Transformer block is called with ``cache=its cache,
  cache_index=position`` (it writes this position's keys/values and attends
  to the positions before it);
* every position layer is called with ``start=position``;
* every other layer is called with ``training=False``; it must act on each
  position independently (the layers :class:`~seqlab.generation.recurrent.StatefulStep`
  accepts: embeddings, dense, dropout, normalization, element-wise merges).

**Context window.** The model was trained on windows of ``W`` tokens. While
``t < W`` the step is exact: the logits equal the full model's on
``tokens[:, :t+1]``. Past ``W`` the cache slides in blocks: when it is full,
the last ``keep`` tokens (default ``W // 2``) are re-encoded in one forward
pass at positions ``0 .. keep-1`` (a "prefill"), and the next ``W - keep``
tokens are appended one position each. The logits at ``t`` are then exactly
the model's on ``tokens[:, s:t+1]`` for the window start ``s`` of that block
(:meth:`TransformerStep.window_start`), always at least ``keep`` tokens of
context. The schedule depends on ``t`` only, so the states are just the
caches (batch first: beam search reorders them with ``gather``).

Same protocol as :class:`~seqlab.generation.recurrent.StatefulStep`:
``initial_states(batch)`` and ``step(tokens, t, states) -> (logits [B, V]
float32 for position t + 1, states)``; static shapes, so the compiled loops
of :mod:`seqlab.generation.decode` and :mod:`seqlab.generation.beam` run it
under XLA.
"""

from __future__ import annotations

import keras
from keras import ops

from seqlab.errors import ConfigError
from seqlab.generation.recurrent import _PER_POSITION, _graph, _nodes
from seqlab.layers.normalization import LayerNorm
from seqlab.layers.position import (
    LearnedPositionEmbedding,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
)
from seqlab.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

_POSITION_LAYERS = (SinusoidalPositionEncoding, LearnedPositionEmbedding)
_PER_POSITION_HERE = (*_PER_POSITION, LayerNorm)


def _blocks(model) -> list:
    """The Transformer blocks in graph order; raise ConfigError if the model cannot
    be run through a KV cache."""
    graph = _graph(model)
    blocks, seen = [], set()
    for node in _nodes(graph):
        op = node.operation
        name = getattr(op, "name", type(op).__name__)
        if isinstance(op, TransformerEncoderBlock):
            if id(op) in seen:
                raise ConfigError(f"Transformer block {name!r} is called more than once")
            if not op.causal:
                raise ConfigError(
                    f"Transformer block {name!r} is not causal: it is no language model"
                )
            if isinstance(op, TransformerDecoderBlock) and op.has_cross_attention:
                raise ConfigError(
                    f"Transformer block {name!r} has cross-attention (an encoder-decoder model)"
                )
            seen.add(id(op))
            blocks.append(op)
        elif isinstance(op, keras.layers.Concatenate) and op.axis not in (-1, 2):
            raise ConfigError(f"layer {name!r} concatenates along axis {op.axis}, not features")
        elif not isinstance(op, (*_PER_POSITION_HERE, *_POSITION_LAYERS, keras.layers.Concatenate)):
            raise ConfigError(
                f"layer {name!r} ({type(op).__name__}) may mix time steps; only Transformer "
                "blocks, position layers and per-position layers can run through a KV cache"
            )
    if not blocks:
        raise ConfigError(f"model {model.name!r} has no Transformer block")
    return blocks


def transformer_support(model: keras.Model) -> str | None:
    """Whether :class:`TransformerStep` can run ``model``: None if it can,
    else the reason it cannot.

    Example:

    >>> from seqlab.models.transformer import build_transformer_lm
    >>> transformer_support(build_transformer_lm(vocab_size=7, max_length=8, d_model=8,
    ...                                          num_heads=2, num_layers=1)) is None
    True
    """
    try:
        _blocks(model)
    except ConfigError as err:
        return str(err)
    return None


def context_length(model: keras.Model) -> int | None:
    """The context length ``W`` the model was built for (``max_length`` of its
    position layers or blocks), or None if none records it."""
    lengths = []
    for node in _nodes(_graph(model)):
        op = node.operation
        for layer in (op, getattr(getattr(op, "attention", None), "rope", None)):
            length = getattr(layer, "max_length", None)
            if (
                isinstance(layer, (*_POSITION_LAYERS, RotaryEmbedding, TransformerEncoderBlock))
                and length
            ):
                lengths.append(int(length))
    return min(lengths) if lengths else None


class TransformerStep:
    """Advance a Transformer LM by one token through per-block KV caches.

    Args:
        model: a model :func:`transformer_support` accepts.
        max_length: the cache length ``W`` (default: :func:`context_length`).
        keep: tokens re-encoded when the window slides (default ``W // 2``;
            ``1 <= keep < W``).

    Call arguments:
        tokens: ``[B, L]`` int32 (the whole buffer; only column ``t`` and, when
            the window slides, the ``keep`` columns ending at ``t`` are read).
        t: the position whose token is fed (int or scalar tensor).
        states: the previous call's states, or ``initial_states(B)``.

    Returns:
        ``(logits [B, V] float32 for position t + 1, new states)``.

    Raises:
        ConfigError: when the model cannot run through a cache, or no context
            length is known and none is given.

    Example:

    >>> import numpy as np
    >>> from seqlab.models.transformer import build_transformer_lm
    >>> lm = build_transformer_lm(vocab_size=7, max_length=8, d_model=8, num_heads=2, num_layers=1)
    >>> step = TransformerStep(lm)
    >>> tokens = np.array([[1, 2, 3, 4]], "int32")
    >>> states = step.initial_states(1)
    >>> for t in range(4):
    ...     logits, states = step(tokens, t, states)
    >>> bool(np.allclose(logits, lm(tokens)[:, -1], atol=1e-5))
    True
    """

    carries_state = True

    def __init__(self, model: keras.Model, max_length: int | None = None, keep: int | None = None):
        try:
            self.blocks = _blocks(model)
        except ConfigError as err:
            raise ConfigError(
                f"model {model.name!r} cannot run through a KV cache ({err}); use method='naive'"
            ) from None
        self.model = model
        self.graph = _graph(model)
        self.window = int(max_length or context_length(model) or 0)
        if self.window <= 1:
            raise ConfigError(
                f"model {model.name!r}: the KV cache needs a context length >= 2; none is "
                f"recorded in its layers (max_length), so pass max_length=..., got {max_length!r}"
            )
        self.keep = int(keep or max(1, self.window // 2))
        if not 1 <= self.keep < self.window:
            raise ConfigError(f"keep must be in [1, {self.window}), got {keep!r}")
        self._index = {id(block): i for i, block in enumerate(self.blocks)}

    def initial_states(self, batch_size: int):
        """Zeros: one ``[B, 2, H, W, d_head]`` cache per block (a tuple)."""
        return tuple(block.init_cache(batch_size, self.window) for block in self.blocks)

    # -- the sliding-window schedule (a function of t alone) -----------------------------

    @property
    def period(self) -> int:
        """Tokens between two slides of the window."""
        return self.window - self.keep + 1

    def window_start(self, t: int) -> int:
        """The first position of the context the logits at ``t`` are computed from."""
        if t < self.window:
            return 0
        return self.window + (t - self.window) // self.period * self.period + 1 - self.keep

    def __call__(self, tokens, t, states):
        """``tokens [B, L]``, position ``t`` -> logits for position ``t + 1``."""
        length = tokens.shape[1]
        if length is not None and length <= self.window:  # never slides: no branch compiled
            return self._append(tokens, t, t, states)
        if isinstance(t, int):  # eager, Python position: plain branching
            if t < self.window:
                return self._append(tokens, t, t, states)
            r = (t - self.window) % self.period
            return (
                self._slide(tokens, t, states)
                if r == 0
                else self._append(tokens, t, self.keep + r - 1, states)
            )
        t = ops.cast(t, "int32")
        r = ops.mod(ops.maximum(t - self.window, 0), self.period)
        index = ops.where(t < self.window, t, self.keep + r - 1)
        slide = ops.logical_and(t >= self.window, ops.equal(r, 0))
        return ops.cond(
            slide,
            lambda: self._slide(tokens, t, states),
            lambda: self._append(tokens, t, index, states),
        )

    def _append(self, tokens, t, index, states):
        """Feed token ``t`` at cache position ``index``."""
        token = ops.take(tokens, t, axis=1)
        return self.run(ops.expand_dims(ops.cast(token, "int32"), 1), index, states)

    def _slide(self, tokens, t, states):
        """Re-encode ``tokens[:, t+1-keep : t+1]`` at positions ``0 .. keep-1``."""
        start = ops.cast(t, "int32") + 1 - self.keep
        window = ops.slice(tokens, ops.stack([0, start]), (ops.shape(tokens)[0], self.keep))
        return self.run(ops.cast(window, "int32"), 0, states)

    def run(self, tokens, start, states):
        """Run ``tokens [B, S]`` at positions ``start .. start+S-1`` through the caches.

        Returns ``(logits of the last position [B, V] float32, new caches)``.
        """
        new_states = list(states)

        def operation_fn(op):
            i = self._index.get(id(op))
            if i is not None:

                def block_step(x, *args, **kwargs):
                    out, cache = op(x, cache=states[i], cache_index=start, training=False)
                    new_states[i] = cache
                    return out

                return block_step
            if isinstance(op, _POSITION_LAYERS):
                return lambda x, *args, **kwargs: op(x, start=start)
            if getattr(op, "_call_has_training_arg", False):
                return lambda *args, **kwargs: op(*args, **{**kwargs, "training": False})
            return op

        logits = self.graph._run_through_graph(tokens, operation_fn=operation_fn)
        logits = keras.tree.flatten(logits)[0]
        return ops.cast(logits[:, -1], "float32"), tuple(new_states)


__all__ = ["TransformerStep", "context_length", "transformer_support"]
