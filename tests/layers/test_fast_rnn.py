"""Exactness of seqlab.layers.fast_rnn against independent references.

The reference is a straightforward per-step Python loop of the cell equations
written here with tf ops and differentiated by autodiff (GradientTape); the
fused kernels have a hand-written backward pass, so agreement of the
gradients checks that BPTT derivation. Keras' built-in LSTM/GRU with copied
weights are a second, independent reference.
"""

from __future__ import annotations

import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.layers import fast_rnn

B, T, D, H = 3, 6, 4, 5
TOL = {tf.float32: 1e-5, tf.float64: 1e-9}
KINDS = ["lstm", "peephole_lstm", "gru_after", "gru_before", "simple_tanh", "simple_relu"]


# ---------------------------------------------------------------- reference


def reference(kind, x, w, h0, c0, mask=None, dmask=None, rmask=None, go_backwards=False):
    """Plain per-step implementation of the cell equations (Keras conventions)."""
    if dmask is not None:
        x = x * dmask[:, None, :]
    steps = range(T - 1, -1, -1) if go_backwards else range(T)
    h, c = h0, c0
    outs = []
    for t in steps:
        xt = x[:, t]
        hd = h * rmask if rmask is not None else h
        cn = c
        if kind in ("lstm", "peephole_lstm"):
            z = xt @ w["kernel"] + hd @ w["recurrent_kernel"] + w["bias"]
            zi, zf, zc, zo = tf.split(z, 4, axis=1)
            if kind == "peephole_lstm":
                zi = zi + w["peephole_i"] * c
                zf = zf + w["peephole_f"] * c
            i, f, g = tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zc)
            cn = f * c + i * g
            if kind == "peephole_lstm":
                zo = zo + w["peephole_o"] * cn
            hn = tf.sigmoid(zo) * tf.tanh(cn)
        elif kind == "gru_after":
            xz = xt @ w["kernel"] + w["bias"][0]
            hz = hd @ w["recurrent_kernel"] + w["bias"][1]
            xzz, xzr, xzh = tf.split(xz, 3, axis=1)
            hzz, hzr, hzh = tf.split(hz, 3, axis=1)
            z, r = tf.sigmoid(xzz + hzz), tf.sigmoid(xzr + hzr)
            hh = tf.tanh(xzh + r * hzh)
            hn = z * h + (1 - z) * hh
        elif kind == "gru_before":
            xz = xt @ w["kernel"] + w["bias"]
            xzz, xzr, xzh = tf.split(xz, 3, axis=1)
            uz, ur, uh = tf.split(w["recurrent_kernel"], 3, axis=1)
            z, r = tf.sigmoid(xzz + hd @ uz), tf.sigmoid(xzr + hd @ ur)
            hh = tf.tanh(xzh + (r * hd) @ uh)
            hn = z * h + (1 - z) * hh
        else:
            pre = xt @ w["kernel"] + hd @ w["recurrent_kernel"] + w["bias"]
            hn = tf.tanh(pre) if kind == "simple_tanh" else tf.nn.relu(pre)
        if mask is not None:
            mt = mask[:, t][:, None]
            hn = tf.where(mt, hn, h)
            cn = tf.where(mt, cn, c)
        h, c = hn, cn
        outs.append(h)
    return tf.stack(outs, axis=1), h, c


def fused(kind, x, w, h0, c0, **kw):
    if kind == "lstm":
        return fast_rnn.lstm(x, w["kernel"], w["recurrent_kernel"], w["bias"], h0, c0, **kw)
    if kind == "peephole_lstm":
        return fast_rnn.peephole_lstm(
            x, w["kernel"], w["recurrent_kernel"], w["bias"], w["peephole_i"],
            w["peephole_f"], w["peephole_o"], h0, c0, **kw)
    if kind.startswith("gru"):
        out, h = fast_rnn.gru(x, w["kernel"], w["recurrent_kernel"], w["bias"], h0,
                              reset_after=kind == "gru_after", **kw)
        return out, h, c0
    out, h = fast_rnn.simple_rnn(x, w["kernel"], w["recurrent_kernel"], w["bias"], h0,
                                 activation=kind.split("_")[1], **kw)
    return out, h, c0


# ---------------------------------------------------------------- data


def make_weights(kind, dtype, rng):
    g = {"lstm": 4, "peephole_lstm": 4, "gru_after": 3, "gru_before": 3}.get(kind, 1)
    w = {
        "kernel": rng.normal(0, 0.6, (D, g * H)),
        "recurrent_kernel": rng.normal(0, 0.5, (H, g * H)),
        "bias": rng.normal(0, 0.3, (2, g * H) if kind == "gru_after" else (g * H,)),
    }
    if kind == "peephole_lstm":
        for n in "ifo":
            w[f"peephole_{n}"] = rng.normal(0, 0.5, (H,))
    return {k: tf.constant(v, dtype) for k, v in w.items()}


def make_inputs(dtype, rng, options):
    x = tf.constant(rng.normal(0, 1, (B, T, D)), dtype)
    h0 = tf.constant(rng.normal(0, 0.5, (B, H)), dtype)
    c0 = tf.constant(rng.normal(0, 0.5, (B, H)), dtype)
    kw = {}
    if "mask" in options:
        m = rng.random((B, T)) > 0.35
        m[0, 0] = False  # a masked first step
        m[1, :] = True
        m[2, -1] = False  # a masked last step
        kw["mask"] = tf.constant(m)
    if "dropout" in options:
        kw["input_dropout_mask"] = tf.constant((rng.random((B, D)) > 0.3) / 0.7, dtype)
        kw["recurrent_dropout_mask"] = tf.constant((rng.random((B, H)) > 0.3) / 0.7, dtype)
    if "backwards" in options:
        kw["go_backwards"] = True
    return x, h0, c0, kw


def loss_and_grads(fn, kind, x, w, h0, c0, kw, probes):
    """Value and gradients of a random linear functional of (outputs, h_T, c_T)."""
    ref_kw = {
        "mask": kw.get("mask"),
        "dmask": kw.get("input_dropout_mask"),
        "rmask": kw.get("recurrent_dropout_mask"),
        "go_backwards": kw.get("go_backwards", False),
    }
    sources = {"x": x, "h0": h0, "c0": c0, **w}
    with tf.GradientTape() as tape:
        tape.watch(list(sources.values()))
        if fn is reference:
            out, h, c = reference(kind, x, w, h0, c0, **ref_kw)
        else:
            out, h, c = fused(kind, x, w, h0, c0, **kw)
        loss = (tf.reduce_sum(out * probes[0]) + tf.reduce_sum(h * probes[1])
                + tf.reduce_sum(c * probes[2]))
    grads = tape.gradient(loss, sources)
    return (out, h, c), grads


def max_err(a, b):
    if a is None or b is None:
        assert a is None and b is None, "one side has no gradient"
        return 0.0
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("options", ["plain", "mask+dropout", "mask+dropout+backwards",
                                     "backwards"])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_reference_values_and_gradients(kind, options, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{options}".encode()))
    w = make_weights(kind, dtype, rng)
    x, h0, c0, kw = make_inputs(dtype, rng, options)
    probes = [tf.constant(rng.normal(0, 1, s), dtype) for s in [(B, T, H), (B, H), (B, H)]]
    (o1, h1, c1), g1 = loss_and_grads(fused, kind, x, w, h0, c0, kw, probes)
    (o2, h2, c2), g2 = loss_and_grads(reference, kind, x, w, h0, c0, kw, probes)
    tol = TOL[dtype]
    assert o1.dtype == dtype
    errs = {"out": max_err(o1, o2), "h_T": max_err(h1, h2), "c_T": max_err(c1, c2)}
    errs.update({f"d{k}": max_err(g1[k], g2[k]) for k in g2})
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"errors above {tol}: {bad}"
    # the check is not vacuous: every gradient is non-trivial
    for k, g in g2.items():
        if k == "c0" and not kind.endswith("lstm"):
            continue
        assert float(tf.reduce_max(tf.abs(g))) > 1e-3, k
