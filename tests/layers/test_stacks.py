"""layers/stacks.py: cell specs, recurrent_layer, and recurrent_stack (bidirectional merge modes,
residual connections, dropout, masking, serialization)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.layers import (
    LockedDropout,
    Recurrent,
    recurrent_layer,
    recurrent_stack,
    split_cell_spec,
    stacks,
)
from seqlab.layers.stacks import LAYER_OPTIONS
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


def test_split_cell_spec():
    assert split_cell_spec("lstm") == ("lstm", {})
    spec = {"name": "gru", "dropout": 0.1, "chunks": 4}
    assert split_cell_spec(spec) == ("gru", {"dropout": 0.1, "chunks": 4})
    assert spec == {"name": "gru", "dropout": 0.1, "chunks": 4}  # not mutated
    assert split_cell_spec("keras_gru") == ("keras_gru", {})
    with pytest.raises(ConfigError, match="model.cell must be a cell name or a mapping"):
        split_cell_spec({"units": 3}, "model.cell")
    with pytest.raises(ConfigError, match=r"unknown cell 'lstmm'; choose one of .*'gru'.*'keras_lstm'"):
        split_cell_spec("lstmm")


@pytest.mark.parametrize("option", LAYER_OPTIONS)
def test_layer_options_go_to_the_recurrent_layer(monkeypatch, option):
    """Every sequence-layer option in a spec reaches Recurrent, not the cell."""
    seen = {}

    class FakeRecurrent:
        def __init__(self, cell, name=None, **kwargs):
            seen.update(cell=cell, name=name, **kwargs)

    monkeypatch.setattr(stacks, "Recurrent", FakeRecurrent)
    recurrent_layer({"name": "lstm", option: "value", "forget_bias": 0.5}, 3, name="r")
    assert seen[option] == "value" and seen["name"] == "r"
    assert seen["cell"].forget_bias == 0.5
    assert seen.get("return_sequences", True) == ("value" if option == "return_sequences" else True)


def test_keras_builtins_in_a_stack():
    inp = keras.Input((None, 3))
    out = recurrent_stack(inp, cell="keras_gru", units=4, num_layers=2, return_sequences=False)
    model = keras.Model(inp, out)
    assert [type(layer) for layer in model.layers[1:]] == [keras.layers.GRU, keras.layers.GRU]
    assert tuple(out.shape) == (None, 4)


def test_dropout_names_kinds_and_residual_input():
    """Input / between-layer dropout, LockedDropout, name formats; residual adds the undropped input."""
    inp = keras.Input((None, 4))
    out = recurrent_stack(inp, cell="gru", units=4, num_layers=2, residual=True, input_dropout=0.2,
                          dropout_between=0.3, variational_dropout=True, name="s",
                          layer_names={"dropout": "drop_{i}", "residual": "{name}_res{i}"})
    model = keras.Model(inp, out)
    assert [layer.name for layer in model.layers[1:]] == [
        "drop_0", "s_0", "s_res0", "drop_1", "s_1", "s_res1"]
    assert [model.get_layer(f"drop_{i}").rate for i in range(2)] == [0.2, 0.3]
    assert all(isinstance(model.get_layer(f"drop_{i}"), LockedDropout) for i in range(2))
    # the skip path carries the layer's input, not its dropped-out copy
    assert model.get_layer("s_res0").input[0] is inp
    assert model.get_layer("s_res1").input[0] is model.get_layer("s_res0").output
    # default names; plain Dropout; no dropout layer where the rate is 0
    plain = keras.Model(inp, recurrent_stack(inp, units=4, num_layers=2, dropout_between=0.3, name="p"))
    assert [layer.name for layer in plain.layers[1:]] == ["p_0", "p_dropout_1", "p_1"]
    assert type(plain.get_layer("p_dropout_1")) is keras.layers.Dropout


def test_per_layer_options_are_called_in_order_just_before_each_layer():
    calls = []

    def options(i):
        calls.append(i)
        return {"kernel_initializer": keras.initializers.RandomUniform(-0.1, 0.1)}

    inp = keras.Input((None, 3))
    model = keras.Model(inp, recurrent_stack(inp, cell="lstm", units=3, num_layers=3, cell_options=options))
    assert calls == [0, 1, 2]
    inits = [model.get_layer(f"rnn_{i}").cell.kernel_initializer for i in range(3)]
    assert len({id(init) for init in inits}) == 3  # a fresh instance per layer
    # fresh instances draw distinct seeds: the square layers get different kernels
    assert not np.array_equal(model.get_layer("rnn_1").cell.kernel.numpy(),
                              model.get_layer("rnn_2").cell.kernel.numpy())
