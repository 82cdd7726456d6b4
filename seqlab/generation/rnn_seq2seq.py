"""Incremental decoding of the recurrent encoder-decoder (:func:`seqlab.models.rnn_seq2seq.build_rnn_seq2seq`).

The step protocol is :mod:`seqlab.generation.seq2seq`'s: ``encode`` once,
``initial_state``, then one call per new token. For a recurrent decoder

    memory = {"initial_state": the decoder's initial states (from the encoder's final states),
              with attention also "memory": H [B, S, W], "keys": W_k H + b [B, S, A],
              "source_mask": [B, S]}
    state  = the flat tuple of every decoder layer's recurrent states, each [B, H]

and one step is one cell step per decoder layer (with attention: one
``[S, A]`` scoring against the precomputed keys first), ``O(1)`` in the
number of tokens already made. Every leaf has the batch on axis 0, so beam
search repeats the memory per beam and reorders the states with one gather.
The forward code is the model's own
(:class:`~seqlab.models.rnn_seq2seq.RnnSeq2SeqParts`, the
:class:`~seqlab.layers.attention_decoder.AttentionDecoder`'s ``step``).

Importing :mod:`seqlab.generation.seq2seq` registers :class:`RecurrentCachedStep`.
"""

from __future__ import annotations

import keras
from keras import ops

from seqlab.generation.seq2seq import register_seq2seq_step


@register_seq2seq_step
class RecurrentCachedStep:
    """The state-carrying step of a :func:`~seqlab.models.rnn_seq2seq.build_rnn_seq2seq` model.

    Example:

    >>> import numpy as np
    >>> from seqlab.generation.seq2seq import greedy_decode, make_seq2seq_step
    >>> from seqlab.models.rnn_seq2seq import build_rnn_seq2seq
    >>> model = build_rnn_seq2seq(12, 12, cell="gru", embedding_dim=4, hidden_size=8, dropout=0.0)
    >>> type(make_seq2seq_step(model)).__name__
    'RecurrentCachedStep'
    >>> greedy_decode(model, np.array([[5, 6, 2]]), 4, jit_compile=False).shape
    (1, 4)
    """

    carries_state = True

    @staticmethod
    def supports(model) -> str | None:
        from seqlab.models.rnn_seq2seq import RnnSeq2SeqParts

        return RnnSeq2SeqParts.missing(model)

    def __init__(self, model: keras.Model):
        from seqlab.models.rnn_seq2seq import RnnSeq2SeqParts

        self.model = model
        self.parts = RnnSeq2SeqParts.from_model(model)

    def encode(self, source):
        return self.parts.encode_for_decoding(source)

    def initial_state(self, memory, length: int):
        return tuple(memory["initial_state"])

    def __call__(self, tokens, t, state, memory):
        token = ops.take(tokens, t, axis=1)  # [B]: the token at position t
        logits, state = self.parts.decode_step(token, state, memory)
        return ops.cast(logits, "float32"), state


__all__ = ["RecurrentCachedStep"]
