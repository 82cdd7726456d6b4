"""seqlab.layers.Recurrent: the fused path (seqlab.layers.fused) equals the generic path.

For each seqlab cell, two ``Recurrent`` layers with the same weights, one
``implementation="fast"`` and one ``"generic"`` (Keras' RNN loop over
``cell.recurrent_step``, differentiated by autodiff), give equal outputs,
final states and gradients (with a mask, an initial state, go_backwards and
variational dropout drawn from equal seeds), and the same 20-step Adam
training trajectory.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab import layers
from seqlab.layers import Recurrent
from tests.layers.helpers import xla_function_calls

B, T, D, H = 3, 7, 4, 6
TOL = 1e-5

CELLS = {
    "simple_rnn": lambda **kw: layers.SimpleRNNCell(H, **kw),
    "lstm": lambda **kw: layers.LSTMCell(H, **kw),
    "gru_after": lambda **kw: layers.GRUCell(H, reset_after=True, **kw),
    "gru_before": lambda **kw: layers.GRUCell(H, reset_after=False, **kw),
    "peephole_lstm": lambda **kw: layers.PeepholeLSTMCell(H, **kw),
}


def err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def pair(kind, **cell_kw):
    """A fast and a generic Recurrent over equal cells with equal weights."""
    made = []
    for impl in ("fast", "generic"):
        layer = Recurrent(CELLS[kind](seed=4, **cell_kw), return_sequences=True,
                          return_state=True, go_backwards=True, implementation=impl)
        layer.build((B, T, D))
        made.append(layer)
    fast, generic = made
    rng = np.random.default_rng(0)
    for vf, vg in zip(fast.cell.weights, generic.cell.weights):
        assert vf.path.split("/")[-1] == vg.path.split("/")[-1]
        value = rng.normal(0, 0.5, vf.shape).astype("float32")
        vf.assign(value)
        vg.assign(value)
    return fast, generic


def data(rng):
    x = tf.constant(rng.normal(0, 1, (B, T, D)), tf.float32)
    mask = rng.random((B, T)) > 0.3
    mask[0, -1] = False  # masked first processed step (go_backwards)
    mask[1, :] = True
    return x, tf.constant(mask)


@pytest.mark.parametrize("dropout", [0.0, 0.25], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("kind", list(CELLS))
def test_fast_equals_generic_outputs_and_gradients(kind, dropout):
    fast, generic = pair(kind, dropout=dropout, recurrent_dropout=dropout)
    rng = np.random.default_rng(1)
    x, mask = data(rng)
    n_states = 2 if kind.endswith("lstm") else 1
    init = [tf.constant(rng.normal(0, 0.5, (B, H)), tf.float32) for _ in range(n_states)]
    probe = tf.constant(rng.normal(0, 1, (B, T, H)), tf.float32)
    results = []
    for layer in (fast, generic):
        with tf.GradientTape() as tape:
            tape.watch([x] + init)
            out, *states = layer(x, initial_state=init, mask=mask, training=dropout > 0)
            loss = tf.reduce_sum(out * probe) + sum(tf.reduce_sum(s * s) for s in states)
        grads = tape.gradient(loss, [x] + init + layer.trainable_weights)
        results.append((out, states, grads))
    assert fast.execution_path == "fast", fast.execution_reason
    assert generic.execution_path == "generic"
    (out_f, st_f, g_f), (out_g, st_g, g_g) = results
    assert err(out_f, out_g) <= TOL
    for a, b in zip(st_f, st_g):
        assert err(a, b) <= TOL
    assert len(g_f) == len(g_g)
    for a, b in zip(g_f, g_g):
        assert a is not None and b is not None
        assert err(a, b) <= TOL


@pytest.mark.parametrize("kind", ["lstm", "gru_after", "peephole_lstm"])
def test_same_training_trajectory(kind):
    """20 Adam steps of a small sequence regressor: equal losses and weights."""
    rng = np.random.default_rng(2)
    x, mask = data(rng)
    y = tf.constant(rng.normal(0, 1, (B, T, 1)), tf.float32)
    trajectories = []
    for impl in ("fast", "generic"):
        keras.utils.set_random_seed(0)
        rnn = Recurrent(CELLS[kind](), return_sequences=True, implementation=impl)
        head = keras.layers.Dense(1)
        inputs = keras.Input((T, D))
        model = keras.Model(inputs, head(rnn(inputs)))
        opt = keras.optimizers.Adam(0.02)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(x, training=True) - y) ** 2)  # noqa: B023 (used within this iteration)
            grads = tape.gradient(loss, model.trainable_variables)  # noqa: B023
            opt.apply(grads, model.trainable_variables)  # noqa: B023
            return loss

        losses = [float(step()) for _ in range(20)]
        assert rnn.execution_path == impl
        if impl == "fast":  # the step is a graph, so the kernel's loops were XLA-compiled
            assert "XLA-compiled" in rnn.execution_reason, rnn.execution_reason
        trajectories.append((losses, [np.asarray(v) for v in model.trainable_variables]))
    (lf, wf), (lg, wg) = trajectories
    assert lf[-1] < lf[0]
    np.testing.assert_allclose(lf, lg, atol=1e-4, rtol=1e-4)
    for a, b in zip(wf, wg):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


# three XLA functions for the LSTM: the forward loop, the backward loop and the
# recomputation of a chunk's cell states
@pytest.mark.parametrize("compile_loops, n_compiled", [(True, 3), (False, 0)])
def test_compile_loops_option(compile_loops, n_compiled):
    """``Recurrent(compile_loops=...)`` picks the fast path's loop kind per layer,
    says so in its reason, survives a config round trip, and both kinds give
    the generic path's gradients."""
    rng = np.random.default_rng(4)
    x, mask = data(rng)
    keras.utils.set_random_seed(0)
    layer = Recurrent(layers.LSTMCell(H), return_sequences=True, compile_loops=compile_loops)
    generic = Recurrent(layers.LSTMCell(H), return_sequences=True, implementation="generic")
    layer.build(x.shape)
    generic.build(x.shape)
    for src, dst in zip(layer.weights, generic.weights):
        dst.assign(src)
    expected = "XLA-compiled" if n_compiled else "plain time loops"
    assert layer.execution_path == "fast" and expected in layer.execution_reason

    def grads_of(rnn):
        @tf.function
        def f(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(rnn(x, mask=mask) ** 2)
            return tape.gradient(loss, rnn.trainable_weights)
        return f

    fast = grads_of(layer)
    assert len(xla_function_calls(fast.get_concrete_function(x))) == n_compiled
    for a, b in zip(fast(x), grads_of(generic)(x)):
        assert err(a, b) <= TOL
    clone = Recurrent.from_config(layer.get_config())
    assert clone.compile_loops is compile_loops


def test_compile_loops_rejects_a_non_boolean():
    with pytest.raises(ValueError, match="compile_loops must be true or false.*'yes'"):
        Recurrent(layers.LSTMCell(H), compile_loops="yes")
    # null, as configs saved before it was a plain flag have it, is the default
    assert Recurrent(layers.LSTMCell(H), compile_loops=None).compile_loops is True


@pytest.mark.parametrize("chunks", [1, 2])
def test_chunks_option(chunks):
    """``Recurrent(chunks=...)`` reaches the kernel (the reason says how many;
    one chunk and two give the generic path's values), survives a config
    round trip, and only positive integers are accepted."""
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(0, 1, (B, 16, D)), tf.float32)
    layer = Recurrent(layers.GRUCell(H), return_sequences=True, chunks=chunks)
    generic = Recurrent(layers.GRUCell(H), return_sequences=True, implementation="generic")
    layer.build(x.shape)
    generic.build(x.shape)
    for src, dst in zip(layer.weights, generic.weights):
        dst.assign(src)
    assert f"{chunks} time chunk(s)" in layer.execution_reason
    assert err(layer(x), generic(x)) <= TOL
    assert Recurrent.from_config(layer.get_config()).chunks == chunks
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match=f"chunks must be a positive integer.*{bad!r}"):
            Recurrent(layers.LSTMCell(H), chunks=bad)


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
def test_fully_masked_row_with_an_initial_state(kind, go_backwards):
    """A row with no valid step keeps its (non-zero) initial state, and its
    last output is that final h state on both paths; its sequence output is
    0 (Keras' previous output before a valid step). Gradients agree too."""
    rng = np.random.default_rng(8)
    x, mask = data(rng)
    mask = mask.numpy()
    mask[2, :] = False  # the fully masked row
    mask = tf.constant(mask)
    n_states = 2 if kind.endswith("lstm") else 1
    init = [tf.constant(rng.normal(0, 0.5, (B, H)), tf.float32) for _ in range(n_states)]
    results = {}
    for seqs in (False, True):
        made = []
        for impl in ("fast", "generic"):
            layer = Recurrent(CELLS[kind](seed=4), return_sequences=seqs, return_state=True,
                              go_backwards=go_backwards, implementation=impl)
            layer.build((B, T, D))
            made.append(layer)
        for vf, vg in zip(made[0].cell.weights, made[1].cell.weights):
            vg.assign(vf)
        for layer in made:
            with tf.GradientTape() as tape:
                tape.watch([x] + init)
                out, *states = layer(x, initial_state=init, mask=mask)
                loss = tf.reduce_sum(out * out) + sum(tf.reduce_sum(s) for s in states)
            grads = tape.gradient(loss, [x] + init + layer.trainable_weights)
            results[seqs, layer.execution_path] = (out, states, grads)
    for seqs in (False, True):
        (out_f, st_f, g_f), (out_g, st_g, g_g) = results[seqs, "fast"], results[seqs, "generic"]
        assert err(out_f, out_g) <= TOL
        for a, b in zip(st_f + g_f, st_g + g_g):
            assert err(a, b) <= TOL
        for s, s0 in zip(st_f, init):
            np.testing.assert_array_equal(s[2], s0[2])  # carried through every step
    last, states, _ = results[False, "fast"]
    np.testing.assert_array_equal(last[2], init[0][2])  # the final h state, not 0
    np.testing.assert_array_equal(last, states[0])
    sequence = results[True, "fast"][0]
    np.testing.assert_array_equal(sequence[2], np.zeros((T, H), "float32"))
