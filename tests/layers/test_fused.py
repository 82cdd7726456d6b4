"""Exactness of seqlab.layers.fused against independent references.

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

from seqlab.layers import fused
from seqlab.layers.fused import chunks as chunk_schedule
from seqlab.layers.fused.loops import time_loop
from tests.layers.helpers import xla_function_calls

B, T, D, H = 3, 6, 4, 5
TOL = {tf.float32: 1e-5, tf.float64: 1e-9}
KINDS = ["lstm", "peephole_lstm", "gru_after", "gru_before", "simple_tanh", "simple_relu"]
# Every test here runs the kernels in three time chunks of two steps (unless
# it sets its own ``chunks``), so that the hand-over of the carried states
# and gradients between chunks is part of every check; the default (8 chunks
# of at least MIN_CHUNK_STEPS steps) would run the tests' six steps as one.
CHUNKS = 3


# ---------------------------------------------------------------- reference


def reference(kind, x, w, h0, c0, mask=None, dmask=None, rmask=None, go_backwards=False):
    """Plain per-step implementation of the cell equations (Keras conventions)."""
    if dmask is not None:
        x = x * dmask[:, None, :]
    steps = range(T - 1, -1, -1) if go_backwards else range(T)
    h, c = h0, c0
    out = tf.zeros_like(h0)  # Keras: the "previous output" of a masked step starts at 0
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
            out = tf.where(mt, hn, out)
            hn = tf.where(mt, hn, h)
            cn = tf.where(mt, cn, c)
        else:
            out = hn
        h, c = hn, cn
        outs.append(out)
    return tf.stack(outs, axis=1), h, c


def fused_call(kind, x, w, h0, c0, **kw):
    kw.setdefault("chunks", CHUNKS)
    if kind == "lstm":
        return fused.lstm(x, w["kernel"], w["recurrent_kernel"], w["bias"], h0, c0, **kw)
    if kind == "peephole_lstm":
        return fused.peephole_lstm(
            x, w["kernel"], w["recurrent_kernel"], w["bias"], w["peephole_i"],
            w["peephole_f"], w["peephole_o"], h0, c0, **kw)
    if kind.startswith("gru"):
        out, h = fused.gru(x, w["kernel"], w["recurrent_kernel"], w["bias"], h0,
                              reset_after=kind == "gru_after", **kw)
        return out, h, c0
    out, h = fused.simple_rnn(x, w["kernel"], w["recurrent_kernel"], w["bias"], h0,
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
            out, h, c = fused_call(kind, x, w, h0, c0, **kw)
        loss = (tf.reduce_sum(out * probes[0]) + tf.reduce_sum(h * probes[1])
                + tf.reduce_sum(c * probes[2]))
    grads = tape.gradient(loss, sources)
    return (out, h, c), grads


def max_err(a, b):
    """Max abs difference, scaled down by the reference's magnitude where it exceeds 1.

    (float32 rounding grows with the size of the numbers: a gradient entry of
    size 10 is compared to 1e-4 absolute when the tolerance is 1e-5.)
    """
    if a is None or b is None:
        assert a is None and b is None, "one side has no gradient"
        return 0.0
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


# ---------------------------------------------------------------- tests


def in_mode(mode, fn, *args):
    """Call ``fn`` eagerly or traced into a graph: in a graph the kernels' time
    loops run as XLA-compiled functions (``compile_loops=True``), eagerly
    as plain loops, so both paths meet the same references."""
    if mode == "eager":
        return fn(*args)
    return tf.function(lambda: fn(*args), autograph=False)()


@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("options", ["plain", "mask+dropout", "mask+dropout+backwards",
                                     "backwards"])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_reference_values_and_gradients(kind, options, dtype, mode):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{options}".encode()))
    w = make_weights(kind, dtype, rng)
    x, h0, c0, kw = make_inputs(dtype, rng, options)
    probes = [tf.constant(rng.normal(0, 1, s), dtype) for s in [(B, T, H), (B, H), (B, H)]]
    (o1, h1, c1), g1 = in_mode(mode, loss_and_grads, fused_call, kind, x, w, h0, c0, kw, probes)
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


@pytest.fixture(autouse=True)
def short_chunks(monkeypatch):
    """Chunks of any length here (see CHUNKS)."""
    monkeypatch.setattr(chunk_schedule, "MIN_CHUNK_STEPS", 1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunks", [1, 2, 6])
def test_every_chunking_matches_reference(kind, chunks):
    """One chunk (projection and weight gradients over all T*B rows), two,
    and one step per chunk are as exact as the default three, in float64."""
    assert len(chunk_schedule.chunk_bounds(T, chunks)) == chunks
    rng = np.random.default_rng(7)
    w = make_weights(kind, tf.float64, rng)
    x, h0, c0, kw = make_inputs(tf.float64, rng, "mask+dropout+backwards")
    kw["chunks"] = chunks
    probes = [tf.constant(rng.normal(0, 1, s), tf.float64) for s in [(B, T, H), (B, H), (B, H)]]
    (o1, h1, c1), g1 = in_mode("graph", loss_and_grads, fused_call, kind, x, w, h0, c0, kw, probes)
    (o2, h2, c2), g2 = loss_and_grads(reference, kind, x, w, h0, c0, kw, probes)
    assert max(max_err(o1, o2), max_err(h1, h2), max_err(c1, c2)) <= 1e-9
    assert max(max_err(g1[k], g2[k]) for k in g2) <= 1e-9


@pytest.mark.parametrize("n, chunks, min_steps, expected", [
    (128, 4, 8, (4, 32)),   # the benchmark's sequence
    (100, 4, 8, (4, 25)),
    (50, 4, 8, (5, 10)),    # the divisor nearest to CHUNKS
    (20, 4, 8, (2, 10)),    # 4 chunks would have 5 steps, fewer than MIN_CHUNK_STEPS
    (127, 4, 8, (1, 127)),  # a prime: one chunk
    (10, 4, 8, (1, 10)),
    (128, 1, 8, (1, 128)),
])
def test_chunking_rule(n, chunks, min_steps, expected, monkeypatch):
    monkeypatch.setattr(chunk_schedule, "MIN_CHUNK_STEPS", min_steps)
    assert chunk_schedule.chunking(n, chunks) == expected
    nc, k = expected
    assert chunk_schedule.chunk_bounds(n, chunks) == [(j * k, (j + 1) * k) for j in range(nc)]
    # a dynamic length: one chunk
    assert chunk_schedule.chunk_bounds(tf.constant(n), chunks) == [(0, None)]


# ---------------------------------------------------------------- vs Keras built-ins


def keras_layer(kind):
    if kind == "lstm":
        return keras.layers.LSTM(H, return_sequences=True, return_state=True)
    return keras.layers.GRU(H, return_sequences=True, return_state=True,
                            reset_after=kind == "gru_after")


@pytest.mark.parametrize("options", ["plain", "mask+backwards"])
@pytest.mark.parametrize("kind", ["lstm", "gru_after", "gru_before"])
def test_matches_keras_builtin_with_copied_weights(kind, options):
    rng = np.random.default_rng(zlib.crc32(f"keras{kind}{options}".encode()))
    w = make_weights(kind, tf.float32, rng)
    x, h0, c0, kw = make_inputs(tf.float32, rng, options)
    layer = keras_layer(kind)
    layer.build((B, T, D))
    layer.cell.kernel.assign(w["kernel"])
    layer.cell.recurrent_kernel.assign(w["recurrent_kernel"])
    layer.cell.bias.assign(w["bias"])
    layer.go_backwards = kw.get("go_backwards", False)
    cell = layer.cell
    states = [h0, c0] if kind == "lstm" else [h0]
    probe = tf.constant(rng.normal(0, 1, (B, T, H)), tf.float32)
    probe_h = tf.constant(rng.normal(0, 1, (B, H)), tf.float32)

    def run_both(use_keras):
        with tf.GradientTape() as tape:
            tape.watch([x] + states)
            if use_keras:
                out, h, *_ = layer(x, initial_state=states, mask=kw.get("mask"))
            else:
                out, h, _ = fused_call(kind, x, {"kernel": cell.kernel,
                                            "recurrent_kernel": cell.recurrent_kernel,
                                            "bias": cell.bias}, h0, c0, **kw)
            loss = tf.reduce_sum(out * probe) + tf.reduce_sum(h * probe_h)
        srcs = [x] + states + [cell.kernel, cell.recurrent_kernel, cell.bias]
        return out, tape.gradient(loss, srcs)

    out_k, g_k = run_both(True)
    out_f, g_f = run_both(False)
    assert max_err(out_f, out_k) <= 1e-5
    for a, b in zip(g_f, g_k):
        assert max_err(a, b) <= 1e-5


# ---------------------------------------------------------------- compiled train step


@pytest.mark.parametrize("kind", ["lstm", "peephole_lstm", "gru_before"])
def test_xla_compiled_train_step(kind):
    """jit_compile=True: gradients equal the reference; SGD steps lower the loss."""
    rng = np.random.default_rng(3)
    w = {k: tf.Variable(v) for k, v in make_weights(kind, tf.float32, rng).items()}
    x, h0, c0, kw = make_inputs(tf.float32, rng, "mask+dropout")
    target = tf.constant(rng.normal(0, 0.5, (B, T, H)), tf.float32)

    @tf.function(jit_compile=True)
    def train_step():
        with tf.GradientTape() as tape:
            out, _, _ = fused_call(kind, x, w, h0, c0, **kw)
            loss = tf.reduce_mean((out - target) ** 2)
        grads = tape.gradient(loss, list(w.values()))
        for v, g in zip(w.values(), grads):
            v.assign_sub(0.5 * g)
        return loss, grads

    with tf.GradientTape() as tape:
        ref_out, _, _ = reference(kind, x, {k: v for k, v in w.items()}, h0, c0,
                                  mask=kw["mask"], dmask=kw["input_dropout_mask"],
                                  rmask=kw["recurrent_dropout_mask"])
        ref_loss = tf.reduce_mean((ref_out - target) ** 2)
    ref_grads = tape.gradient(ref_loss, list(w.values()))
    loss0, grads = train_step()
    assert abs(float(loss0) - float(ref_loss)) <= 1e-5
    for a, b in zip(grads, ref_grads):
        assert max_err(a, b) <= 1e-5
    losses = [float(train_step()[0]) for _ in range(5)]
    assert losses[-1] < float(loss0)


@pytest.mark.parametrize("construct", ["eager", "while", "while+xla"])
@pytest.mark.parametrize("reverse", [False, True])
def test_loop_prev_reads_the_previous_step(construct, reverse):
    """``_time_loop(prev=...)`` hands each step ``seq[t-1]`` (the initial value
    at t = 0), in either direction and in every loop construct; the backward
    kernels read c_{t-1} and h_{t-1} this way instead of from shifted copies."""
    rng = np.random.default_rng(3)
    xs = tf.constant(rng.normal(size=(5, 2, 3)))
    x0 = tf.constant(rng.normal(size=(2, 3)))

    def step(el, carry):
        (acc,) = carry
        now, before = el
        # the carry sees every step once, whatever the direction
        return (acc + now - 10.0 * before,), [now, before]

    def run():
        loop = time_loop(step, [x0, x0], construct == "while+xla", reverse=reverse,
                         prev=(0,))
        return loop([xs], (tf.zeros_like(x0),), [x0])

    if construct == "eager":
        (acc,), (now, before) = run()
    else:
        (acc,), (now, before) = tf.function(run)()
    expected_before = np.concatenate([x0.numpy()[None], xs.numpy()[:-1]])
    np.testing.assert_allclose(now.numpy(), xs.numpy())
    np.testing.assert_allclose(before.numpy(), expected_before)
    np.testing.assert_allclose(acc.numpy(), (xs.numpy() - 10 * expected_before).sum(0))


@pytest.mark.parametrize("compile_loops", [True, False])
def test_graph_loops_are_xla_compiled_with_dynamic_shapes(compile_loops):
    """In a graph, the LSTM's forward loop, backward loop and cell-state
    recomputation are three XLA functions (none with compile_loops off), each
    shared by the chunks; unknown batch and time dimensions compile per shape
    (one chunk), and several shapes give the reference's values and
    gradients."""
    rng = np.random.default_rng(5)
    w = make_weights("lstm", tf.float64, rng)

    @tf.function(input_signature=[tf.TensorSpec([None, None, D], tf.float64)], autograph=False)
    def value_and_grads(x):
        with tf.GradientTape() as tape:
            tape.watch([x, w["recurrent_kernel"]])
            out, h, c = fused.lstm(x, w["kernel"], w["recurrent_kernel"], w["bias"],
                                   chunks=CHUNKS, compile_loops=compile_loops)
            loss = tf.reduce_sum(out * out) + tf.reduce_sum(c)
        return loss, tape.gradient(loss, [x, w["recurrent_kernel"]])

    concrete = value_and_grads.get_concrete_function()
    assert len(xla_function_calls(concrete)) == (3 if compile_loops else 0)
    loss_short, _ = value_and_grads(tf.ones([4, 2, D], tf.float64))  # another T and B
    assert np.isfinite(float(loss_short))
    for b in (3, 2):  # (the reference runs the module's T steps)
        x = tf.constant(rng.normal(0, 1, (b, T, D)))
        loss, grads = value_and_grads(x)
        with tf.GradientTape() as tape:
            tape.watch([x, w["recurrent_kernel"]])
            out, h, c = reference("lstm", x, w, tf.zeros([b, H], tf.float64),
                                  tf.zeros([b, H], tf.float64))
            ref_loss = tf.reduce_sum(out * out) + tf.reduce_sum(c)
        ref_grads = tape.gradient(ref_loss, [x, w["recurrent_kernel"]])
        assert abs(float(loss) - float(ref_loss)) <= 1e-9
        assert max(max_err(a, b_) for a, b_ in zip(grads, ref_grads)) <= 1e-9


# ---------------------------------------------------------------- supports / run


FUSED_KINDS = {"LSTMCell": "lstm", "PeepholeLSTMCell": "peephole_lstm", "GRUCell": "gru",
               "SimpleRNNCell": "simple_rnn"}


def _fake_cell(class_name, kind, dtype=tf.float64, **attrs):
    """A duck-typed stand-in for a seqlab cell that declares the fused kind of
    ``class_name`` and carries weights of ``kind``."""
    cls = type(class_name, (), {"__module__": "seqlab.layers.fake_cells",
                                "fused_kind": FUSED_KINDS[class_name]})
    cell = cls()
    w = make_weights(kind, dtype, np.random.default_rng(11))
    cell.kernel, cell.recurrent_kernel, cell.bias = w["kernel"], w["recurrent_kernel"], w["bias"]
    cell.use_bias = True
    cell.activation = keras.activations.tanh
    cell.recurrent_activation = keras.activations.sigmoid
    if kind == "peephole_lstm":
        cell.input_gate_peephole_weights = w["peephole_i"]
        cell.forget_gate_peephole_weights = w["peephole_f"]
        cell.output_gate_peephole_weights = w["peephole_o"]
    for k, v in attrs.items():
        setattr(cell, k, v)
    return cell, w


@pytest.mark.parametrize("class_name,kind", [
    ("LSTMCell", "lstm"), ("PeepholeLSTMCell", "peephole_lstm"),
    ("GRUCell", "gru_before"), ("SimpleRNNCell", "simple_tanh"),
])
def test_run_dispatches_on_cell_kind(class_name, kind):
    extra = {"reset_after": False} if kind == "gru_before" else {}
    cell, w = _fake_cell(class_name, kind, **extra)
    assert fused.supports(cell) == (True, "")
    rng = np.random.default_rng(5)
    x, h0, c0, kw = make_inputs(tf.float64, rng, "mask+dropout+backwards")
    init = [h0, c0] if kind.endswith("lstm") else [h0]
    out, states = fused.run(cell, x, init, chunks=CHUNKS, **kw)
    ref_out, ref_h, ref_c = reference(
        kind, x, w, h0, c0, mask=kw["mask"], dmask=kw["input_dropout_mask"],
        rmask=kw["recurrent_dropout_mask"], go_backwards=True)
    assert len(states) == len(init)
    assert max_err(out, ref_out) <= 1e-9
    assert max_err(states[0], ref_h) <= 1e-9
    if kind.endswith("lstm"):
        assert max_err(states[1], ref_c) <= 1e-9


def test_supports_refuses_what_it_cannot_run():
    class MyCell(keras.layers.Layer):
        pass

    ok, why = fused.supports(MyCell())
    assert not ok and "MyCell declares no fused kernel" in why
    ok, why = fused.supports(keras.layers.LSTMCell(4))
    assert not ok and "declares no fused kernel" in why
    cell, _ = _fake_cell("LSTMCell", "lstm", activation=keras.activations.relu)
    ok, why = fused.supports(cell)
    assert not ok and "activation" in why
    cell, _ = _fake_cell("GRUCell", "gru_after", recurrent_activation=keras.activations.hard_sigmoid)
    ok, why = fused.supports(cell)
    assert not ok and "recurrent_activation" in why
    cell, _ = _fake_cell("SimpleRNNCell", "simple_relu", activation=keras.activations.relu)
    assert fused.supports(cell) == (True, "")
    cell, _ = _fake_cell("SimpleRNNCell", "simple_tanh", activation=lambda v: v * 2)
    assert not fused.supports(cell)[0]
    cell, _ = _fake_cell("PeepholeLSTMCell", "lstm")
    assert not fused.supports(cell)[0]
    with pytest.raises(ValueError, match="cannot run"):
        fused.run(MyCell(), tf.zeros([1, 2, 3]), None)


def test_use_bias_false_and_default_states():
    rng = np.random.default_rng(9)
    w = make_weights("lstm", tf.float64, rng)
    w["bias"] = tf.zeros_like(w["bias"])
    x, _, _, _ = make_inputs(tf.float64, rng, "plain")
    zeros = tf.zeros([B, H], tf.float64)
    out, h, c = fused.lstm(x, w["kernel"], w["recurrent_kernel"], None, chunks=CHUNKS)
    ref_out, ref_h, ref_c = reference("lstm", x, w, zeros, zeros)
    assert max_err(out, ref_out) <= 1e-12 and max_err(c, ref_c) <= 1e-12
    out, h = fused.gru(x, w["kernel"][:, : 3 * H], w["recurrent_kernel"][:, : 3 * H], None,
                       chunks=CHUNKS)
    w3 = {"kernel": w["kernel"][:, : 3 * H], "recurrent_kernel": w["recurrent_kernel"][:, : 3 * H],
          "bias": tf.zeros([2, 3 * H], tf.float64)}
    ref_out, _, _ = reference("gru_after", x, w3, zeros, zeros)
    assert max_err(out, ref_out) <= 1e-12


def test_cells_declare_their_fused_kind():
    """A cell names its kernel in ``fused_kind``; a cell without one
    (LayerNormLSTMCell), or a subclass that changes the step of a cell with
    one, runs the generic path."""
    from seqlab.layers import GRUCell, LayerNormLSTMCell, LSTMCell, PeepholeLSTMCell, SimpleRNNCell

    for cls, kind in ((LSTMCell, "lstm"), (PeepholeLSTMCell, "peephole_lstm"), (GRUCell, "gru"),
                      (SimpleRNNCell, "simple_rnn"), (LayerNormLSTMCell, None)):
        cell = cls(3)
        cell.build((None, 2))
        assert cell.fused_kind == kind
        assert fused.supports(cell)[0] is (kind is not None)

    class ScaledLSTMCell(LSTMCell):
        def recurrent_step(self, projected, states, recurrent_dropout_mask=None):
            return super().recurrent_step(2.0 * projected, states, recurrent_dropout_mask)

    class NamedLSTMCell(LSTMCell):  # same computation: keeps the kernel
        pass

    scaled, named = ScaledLSTMCell(3), NamedLSTMCell(3)
    scaled.build((None, 2))
    named.build((None, 2))
    ok, why = fused.supports(scaled)
    assert not ok and "ScaledLSTMCell overrides recurrent_step" in why
    assert fused.supports(named) == (True, "")
    with pytest.raises(ValueError, match="chunks must be a positive integer"):
        fused.run(named, tf.zeros([1, 2, 2]), None, chunks=0)
