"""Fused recurrent kernels (LSTM, GRU, simple RNN, peephole LSTM) with a
hand-written BPTT gradient. Under construction: ``supports`` answers False.
"""

from __future__ import annotations


def supports(cell) -> tuple[bool, str]:
    """Whether ``run`` can execute ``cell`` on the fused path (and why not)."""
    return False, "fast path under construction"


def run(cell, inputs, initial_state, mask=None, input_dropout_mask=None,
        recurrent_dropout_mask=None, go_backwards=False):
    """Run ``cell`` over ``inputs`` on the fused path."""
    raise NotImplementedError("seqlab.layers.fast_rnn is under construction")
