"""Independent NumPy implementations of the cell equations, stepped in Python.

Written from the equations in the cell docstrings (not from the seqlab code):
each ``*_step`` takes the raw weights as Keras lays them out and returns
``(output, new_states)``; :func:`run` loops over time with Keras' masking
semantics (a masked step carries states and output through unchanged).
"""

from __future__ import annotations

import numpy as np


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def simple_rnn_step(x, states, w):
    (h,) = states
    h = np.tanh(x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
    return h, [h]


def _lstm_blocks(x, h, w):
    z = x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
    return np.split(z, 4, axis=-1)


def lstm_step(x, states, w):
    h, c = states
    zi, zf, zc, zo = _lstm_blocks(x, h, w)
    i, f, o, g = sigmoid(zi), sigmoid(zf), sigmoid(zo), np.tanh(zc)
    c = f * c + i * g
    h = o * np.tanh(c)
    return h, [h, c]


def peephole_lstm_step(x, states, w):
    h, c_prev = states
    zi, zf, zc, zo = _lstm_blocks(x, h, w)
    i = sigmoid(zi + w["input_gate_peephole_weights"] * c_prev)
    f = sigmoid(zf + w["forget_gate_peephole_weights"] * c_prev)
    c = f * c_prev + i * np.tanh(zc)
    o = sigmoid(zo + w["output_gate_peephole_weights"] * c)
    h = o * np.tanh(c)
    return h, [h, c]


def _ln(v, eps):
    mu = v.mean(-1, keepdims=True)
    var = ((v - mu) ** 2).mean(-1, keepdims=True)
    return (v - mu) / np.sqrt(var + eps)


def layernorm_lstm_step(x, states, w, eps=1e-3):
    h, c = states
    H = h.shape[-1]
    a = x @ w["kernel"] + h @ w["recurrent_kernel"]
    gam = w["gate_gamma"]
    blocks = []
    for k in range(4):
        blk = _ln(a[:, k * H : (k + 1) * H], eps) * gam[k * H : (k + 1) * H]
        blocks.append(blk + w["bias"][k * H : (k + 1) * H])
    zi, zf, zc, zo = blocks
    i, f, o, g = sigmoid(zi), sigmoid(zf), sigmoid(zo), np.tanh(zc)
    c = f * c + i * g
    h = o * np.tanh(_ln(c, eps) * w["cell_gamma"] + w["cell_beta"])
    return h, [h, c]


def gru_step(x, states, w, reset_after=True):
    (h,) = states
    H = h.shape[-1]
    W, U = w["kernel"], w["recurrent_kernel"]
    Wz, Wr, Wh = W[:, :H], W[:, H : 2 * H], W[:, 2 * H :]
    Uz, Ur, Uh = U[:, :H], U[:, H : 2 * H], U[:, 2 * H :]
    if reset_after:
        bx, bh = w["bias"][0], w["bias"][1]
    else:
        bx, bh = w["bias"], np.zeros_like(w["bias"])
    z = sigmoid(x @ Wz + bx[:H] + h @ Uz + bh[:H])
    r = sigmoid(x @ Wr + bx[H : 2 * H] + h @ Ur + bh[H : 2 * H])
    if reset_after:  # r applied after the recurrent matmul (cuDNN / Keras)
        hh = np.tanh(x @ Wh + bx[2 * H :] + r * (h @ Uh + bh[2 * H :]))
    else:  # Cho et al. 2014: r applied to h before the matmul
        hh = np.tanh(x @ Wh + bx[2 * H :] + (r * h) @ Uh)
    h = z * h + (1 - z) * hh
    return h, [h]


STEPS = {
    "simple_rnn": simple_rnn_step,
    "lstm": lstm_step,
    "gru": lambda x, s, w: gru_step(x, s, w, reset_after=True),
    "gru_cho": lambda x, s, w: gru_step(x, s, w, reset_after=False),
    "peephole_lstm": peephole_lstm_step,
    "layernorm_lstm": layernorm_lstm_step,
}
NUM_STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1, "gru_cho": 1, "peephole_lstm": 2,
              "layernorm_lstm": 2}


def run(name, x, weights, initial_state=None, mask=None, go_backwards=False):
    """Loop ``STEPS[name]`` over ``x [B, T, D]``.

    Returns ``(outputs [B, T, H] in processing order, final states)``; masked
    steps (``mask[b, t] == False``) keep the previous states and output.
    """
    B, T, _ = x.shape
    H = weights["recurrent_kernel"].shape[0]
    states = (
        [np.zeros((B, H), x.dtype) for _ in range(NUM_STATES[name])]
        if initial_state is None
        else [np.array(s) for s in initial_state]
    )
    prev_out = np.zeros((B, H), x.dtype)
    outputs = []
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    for t in order:
        out, new_states = STEPS[name](x[:, t], states, weights)
        if mask is not None:
            m = mask[:, t][:, None]
            out = np.where(m, out, prev_out)
            new_states = [np.where(m, n, s) for n, s in zip(new_states, states)]
        states, prev_out = new_states, out
        outputs.append(out)
    return np.stack(outputs, axis=1), states
