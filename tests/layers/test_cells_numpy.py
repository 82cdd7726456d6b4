"""Every cell against the NumPy equations (tests/layers/numpy_cells.py), float32, 1e-5."""

from __future__ import annotations

import zlib

import keras
import numpy as np
import pytest

from tests.layers import numpy_cells as ref
from tests.layers.helpers import CELL_NAMES, make_layer, random_mask

ATOL = 1e-5


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("masking", ["none", "padded", "holes"])
def test_sequence_and_states_match_numpy(name, masking):
    rng = np.random.default_rng(zlib.crc32(f"{name}/{masking}".encode()))  # stable across runs
    B, T, D, H = 4, int(rng.integers(3, 9)), 5, 6
    x = rng.standard_normal((B, T, D)).astype("float32")
    mask = None if masking == "none" else random_mask(rng, B, T, holes=masking == "holes")
    layer, w = make_layer(name, H, x, rng, return_sequences=True, return_state=True)
    assert layer.execution_path == "generic"

    out, *states = layer(x, mask=mask)
    want_out, want_states = ref.run(name, x.astype("float64"), w, mask=mask)
    np.testing.assert_allclose(np.asarray(out), want_out, atol=ATOL)
    assert len(states) == len(want_states) == ref.NUM_STATES[name]
    for got, want in zip(states, want_states):
        np.testing.assert_allclose(np.asarray(got), want, atol=ATOL)

    # return_sequences=False gives the last (carried) output
    layer.return_sequences = False
    last = layer(x, mask=mask)[0]
    np.testing.assert_allclose(np.asarray(last), want_out[:, -1], atol=ATOL)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_initial_state_and_go_backwards_match_numpy(name):
    rng = np.random.default_rng(7)
    B, T, D, H = 3, 5, 4, 3
    x = rng.standard_normal((B, T, D)).astype("float32")
    init = [rng.standard_normal((B, H)).astype("float32") for _ in range(ref.NUM_STATES[name])]
    mask = random_mask(rng, B, T)
    layer, w = make_layer(
        name, H, x, rng, return_sequences=True, return_state=True, go_backwards=True
    )
    out, *states = layer(x, initial_state=init, mask=mask)
    want_out, want_states = ref.run(name, x, w, initial_state=init, mask=mask, go_backwards=True)
    np.testing.assert_allclose(np.asarray(out), want_out, atol=ATOL)
    for got, want in zip(states, want_states):
        np.testing.assert_allclose(np.asarray(got), want, atol=ATOL)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_cell_call_inside_keras_rnn_matches_numpy(name):
    """The standard cell API (cell.call per step) in plain keras.layers.RNN."""
    rng = np.random.default_rng(3)
    B, T, D, H = 3, 6, 4, 5
    x = rng.standard_normal((B, T, D)).astype("float32")
    mask = random_mask(rng, B, T)
    layer, w = make_layer(name, H, x, rng)
    rnn = keras.layers.RNN(layer.cell, return_sequences=True, return_state=True)
    out, *states = rnn(x, mask=mask)
    want_out, want_states = ref.run(name, x, w, mask=mask)
    np.testing.assert_allclose(np.asarray(out), want_out, atol=ATOL)
    for got, want in zip(states, want_states):
        np.testing.assert_allclose(np.asarray(got), want, atol=ATOL)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_split_api_composes_to_call(name):
    """input_projection + recurrent_step == call, and the projection is one matmul over [B, T, D]."""
    rng = np.random.default_rng(11)
    B, T, D, H = 2, 4, 3, 4
    x = rng.standard_normal((B, T, D)).astype("float32")
    layer, _ = make_layer(name, H, x, rng)
    cell = layer.cell
    proj = np.asarray(cell.input_projection(x))
    assert proj.shape == (B, T, cell.gates * H)
    states = cell.get_initial_state(batch_size=B)
    for t in range(T):
        np.testing.assert_allclose(proj[:, t], np.asarray(cell.input_projection(x[:, t])), atol=1e-6)
        out_a, states_a = cell(x[:, t], states)
        out_b, states_b = cell.recurrent_step(proj[:, t], states)
        np.testing.assert_allclose(np.asarray(out_a), np.asarray(out_b), atol=1e-6)
        states = states_b
