"""recurrent_stack: bidirectional merge modes, residual connections, masking, serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers import Recurrent, recurrent_stack
from tests.layers.helpers import randomize

MERGES = {
    "concat": lambda f, b: np.concatenate([f, b], -1),
    "sum": lambda f, b: f + b,
    "ave": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}


@pytest.mark.parametrize("merge_mode", sorted(MERGES))
def test_bidirectional_merge_modes(merge_mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    inp = keras.Input((None, 3))
    out = recurrent_stack(inp, cell="gru", units=4, bidirectional=True, merge_mode=merge_mode,
                          implementation="generic", name="s")
    model = keras.Model(inp, out)
    bi = model.get_layer("s_bidirectional_0")
    for layer in (bi.forward_layer, bi.backward_layer):
        assert isinstance(layer, Recurrent)
        randomize(layer.cell, rng)
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards
    got = model(x)
    assert tuple(got.shape) == (2, 5, 8 if merge_mode == "concat" else 4)
    fwd = np.asarray(bi.forward_layer(x))
    bwd = np.asarray(bi.backward_layer(x))[:, ::-1]  # processing order -> time order
    np.testing.assert_allclose(np.asarray(got), MERGES[merge_mode](fwd, bwd), atol=1e-6)
    # go_backwards == running the reversed sequence forwards with the same weights
    reversed_fwd = Recurrent.from_config({**bi.backward_layer.get_config(), "go_backwards": False})
    reversed_fwd.build(x.shape)
    reversed_fwd.set_weights(bi.backward_layer.get_weights())
    np.testing.assert_allclose(np.asarray(reversed_fwd(x[:, ::-1])), bwd[:, ::-1], atol=1e-6)


def test_residual_adds_layer_input_when_widths_match():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 6)).astype("float32")
    inp = keras.Input((None, 6))
    out = recurrent_stack(inp, cell="lstm", units=6, num_layers=2, residual=True,
                          implementation="generic", name="r")
    model = keras.Model(inp, out)
    l0, l1 = model.get_layer("r_0"), model.get_layer("r_1")
    names = [layer.name for layer in model.layers]
    assert "r_residual_0" in names and "r_residual_1" in names
    h0 = x + np.asarray(l0(x))
    h1 = h0 + np.asarray(l1(h0))
    np.testing.assert_allclose(np.asarray(model(x)), h1, atol=1e-6)
    # widths differ (3 -> 6): no residual on the first layer, one on the second
    inp = keras.Input((None, 3))
    names = [layer.name for layer in keras.Model(inp, recurrent_stack(
        inp, cell="lstm", units=6, num_layers=2, residual=True, name="q")).layers]
    assert "q_residual_0" not in names and "q_residual_1" in names


@pytest.mark.parametrize("bidirectional", [False, True])
def test_mask_flows_through_the_stack(bidirectional):
    """Padded and unpadded sequences give the same outputs on the valid steps."""
    keras.utils.set_random_seed(2)
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(9, 3, mask_zero=True)(tokens)
    y = recurrent_stack(x, cell="peephole_lstm", units=4, num_layers=3, bidirectional=bidirectional,
                        merge_mode="sum", residual=True, dropout_between=0.3,
                        implementation="generic", name="m")
    model = keras.Model(tokens, y)
    seq = np.array([[3, 1, 4, 1, 5]], "int32")
    padded = np.concatenate([seq, np.zeros((1, 3), "int32")], 1)
    np.testing.assert_allclose(
        np.asarray(model(padded))[:, :5], np.asarray(model(seq)), atol=1e-5
    )


def test_last_output_and_stack_save_load(tmp_path):
    rng = np.random.default_rng(3)
    inp = keras.Input((None, 3))
    out = recurrent_stack(inp, cell={"name": "gru_cho", "dropout": 0.1}, units=4, num_layers=2,
                          bidirectional=True, return_sequences=False, dropout_between=0.2,
                          name="c")
    head = keras.layers.Dense(1)(out)
    model = keras.Model(inp, head)
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    assert tuple(model(x).shape) == (2, 1)
    assert tuple(out.shape) == (None, 8)
    path = tmp_path / "stack.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert loaded.get_layer("c_bidirectional_1").forward_layer.cell.reset_after is False
