"""Recurrent layer behaviour: stepping with states, stateful, dropout masks, path choice."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

import seqlab
from seqlab.layers import Recurrent, SimpleRNNCell, get_cell
from tests.layers.helpers import CELL_NAMES, make_layer


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_step_by_step_with_states_equals_full_sequence(name):
    """A generation loop calls the layer one step at a time, feeding the states back."""
    rng = np.random.default_rng(0)
    B, T, D, H = 2, 6, 3, 4
    x = rng.standard_normal((B, T, D)).astype("float32")
    layer, _ = make_layer(name, H, x, rng, return_sequences=True, return_state=True)
    full, *full_states = layer(x)
    states = None
    steps = []
    for t in range(T):
        out, *states = layer(x[:, t : t + 1], initial_state=states)
        steps.append(np.asarray(out)[:, 0])
    np.testing.assert_allclose(np.stack(steps, 1), np.asarray(full), atol=1e-6)
    for a, b in zip(states, full_states):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_return_flags_shapes_like_keras_rnn():
    x = np.zeros((2, 5, 3), "float32")
    for seqs in (False, True):
        for state in (False, True):
            ours = Recurrent(get_cell("lstm", 4), return_sequences=seqs, return_state=state)
            ref = keras.layers.RNN(keras.layers.LSTMCell(4), return_sequences=seqs,
                                   return_state=state)
            got, want = ours(x), ref(x)
            if state:
                assert [tuple(g.shape) for g in got] == [tuple(w.shape) for w in want]
            else:
                assert tuple(got.shape) == tuple(want.shape)
            sym = keras.Input((None, 3))
            sym_out = ours(sym)
            assert [tuple(s.shape) for s in (sym_out if state else [sym_out])] == [
                ((None, None, 4) if (seqs and i == 0) else (None, 4))
                for i in range(3 if state else 1)
            ]


def test_stateful_carries_states_between_batches():
    rng = np.random.default_rng(1)
    B, T, D, H = 2, 8, 3, 4
    x = rng.standard_normal((B, T, D)).astype("float32")
    full, _ = make_layer("lstm", H, x, rng, return_sequences=True)
    stateful = Recurrent(get_cell("lstm", H), return_sequences=True, stateful=True,
                         implementation="generic")
    stateful.build((B, 4, D))
    stateful.set_weights(full.get_weights())
    first = stateful(x[:, :4])
    second = stateful(x[:, 4:])
    np.testing.assert_allclose(
        np.concatenate([first, second], 1), np.asarray(full(x)), atol=1e-6
    )
    stateful.reset_state()
    np.testing.assert_allclose(np.asarray(stateful(x[:, :4])), np.asarray(first), atol=1e-6)


def _identity_simple_rnn(units, **kwargs):
    """Linear SimpleRNN with W = U = I and no bias: h_t = x_t * m + h_{t-1} * m_rec."""
    cell = SimpleRNNCell(units, activation=None, use_bias=False, seed=3, **kwargs)
    layer = Recurrent(cell, return_sequences=True, implementation="generic")
    layer.build((None, None, units))
    cell.kernel.assign(np.eye(units, dtype="float32"))
    cell.recurrent_kernel.assign(np.eye(units, dtype="float32"))
    return layer


def test_input_dropout_uses_one_mask_per_sequence():
    rate, H = 0.5, 64
    layer = _identity_simple_rnn(H, dropout=rate)
    layer.cell.recurrent_kernel.assign(np.zeros((H, H), "float32"))
    x = np.ones((3, 5, H), "float32")
    out = np.asarray(layer(x, training=True))  # h_t = x_t * m
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1], out.shape))  # same every step
    assert set(np.unique(out)) == {0.0, 1.0 / (1.0 - rate)}
    assert not np.array_equal(out[0, 0], out[1, 0])  # one mask per sequence, not per batch
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_recurrent_dropout_uses_one_mask_per_sequence():
    rate, H = 0.5, 64
    layer = _identity_simple_rnn(H, recurrent_dropout=rate)
    x = np.zeros((2, 4, H), "float32")
    x[:, 0] = 1.0  # h_0 = 1, then h_t = h_{t-1} * m  =>  h_t = m^t if m is the same each step
    out = np.asarray(layer(x, training=True))
    m = out[:, 1]  # = 1 * m
    assert set(np.unique(m)) == {0.0, 2.0}
    for t in range(1, 4):
        np.testing.assert_allclose(out[:, t], m**t, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), np.ones_like(x) * (x[:, :1] > 0))


def test_generic_path_is_recorded_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="seqlab.layers"):
        layer = Recurrent(get_cell("gru", 3), implementation="generic", name="my_rnn")
        layer.build((None, None, 2))
    assert layer.execution_path == "generic"
    assert "requested" in layer.execution_reason
    assert any("my_rnn" in r.message and "generic" in r.message for r in caplog.records)


def test_cell_without_fused_kernel_runs_generic_or_raises_in_fast_mode():
    auto = Recurrent(get_cell("layernorm_lstm", 3))
    auto.build((None, None, 2))
    assert auto.execution_path == "generic"
    assert "LayerNormLSTMCell declares no fused kernel" in auto.execution_reason
    with pytest.raises(ValueError, match="implementation='fast'.*declares no fused kernel"):
        Recurrent(get_cell("layernorm_lstm", 3), implementation="fast").build((None, None, 2))


def test_fast_path_defaults_are_the_cell_configs():
    """``chunks`` and ``compile_loops`` of every cell YAML with a fused kernel
    equal the defaults of ``Recurrent`` and of the kernel functions (conf/ is
    the single home of defaults)."""
    from seqlab.layers import fused

    conf = Path(seqlab.__file__).parent / "conf" / "model" / "cell"
    layer_defaults = inspect.signature(Recurrent).parameters
    checked = []
    for path in sorted(conf.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        cell = get_cell(spec["name"], 2)
        if cell.fused_kind is None:
            assert "chunks" not in spec and "compile_loops" not in spec, path.name
            continue
        kernel = getattr(fused, cell.fused_kind)
        for key in ("chunks", "compile_loops"):
            assert spec[key] == layer_defaults[key].default, (path.name, key)
            assert spec[key] == inspect.signature(kernel).parameters[key].default, (path.name, key)
        checked.append(spec["name"])
    assert {"lstm", "gru", "gru_cho", "peephole_lstm", "simple_rnn"} <= set(checked)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_auto_path_matches_generic(name):
    """Whatever path "auto" picks (fused where supported), it computes the same function."""
    rng = np.random.default_rng(4)
    B, T, D, H = 3, 6, 4, 5
    x = rng.standard_normal((B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 4:] = False
    for backwards in (False, True):
        generic, w = make_layer(name, H, x, rng, return_sequences=True, return_state=True,
                                go_backwards=backwards)
        auto = Recurrent(get_cell(name, H), return_sequences=True, return_state=True,
                         go_backwards=backwards)
        auto.build(x.shape)
        auto.set_weights(generic.get_weights())
        for a, b in zip(auto(x, mask=mask), generic(x, mask=mask)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
