"""build_rnn_lm / recurrent_layer with the seqlab cell library and conf/model/cell/*.yaml."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from seqlab.errors import ConfigError
from seqlab.layers import CELLS, Recurrent, recurrent_layer
from seqlab.layers.stacks import LAYER_OPTIONS
from seqlab.models import build_rnn_lm

CELL_CONF = Path(__file__).resolve().parents[2] / "seqlab" / "conf" / "model" / "cell"


def test_every_registered_cell_has_a_config():
    assert sorted(p.stem for p in CELL_CONF.glob("*.yaml")) == sorted(CELLS)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_config_builds_lm_with_that_cell(name):
    spec = OmegaConf.to_container(OmegaConf.load(CELL_CONF / f"{name}.yaml"))
    assert spec["name"] == name
    model = build_rnn_lm(vocab_size=7, embedding_dim=3, hidden_size=4, num_layers=2, cell=spec)
    for i in range(2):
        layer = model.get_layer(f"rnn_{i}")
        assert isinstance(layer, Recurrent) and isinstance(layer.cell, CELLS[name][0])
        cell_config, layer_config = layer.cell.get_config(), layer.get_config()
        for key, value in spec.items():
            if key != "name":
                # sequence-layer options (chunks, compile_loops, ...) go to Recurrent
                got = layer_config[key] if key in LAYER_OPTIONS else cell_config[key]
                assert (got == value) or (isinstance(got, dict) and got.get("class_name", "").lower() == str(value).replace("_", "").lower()), key
    tokens = np.array([[1, 2, 3, 4], [5, 6, 0, 1]], "int32")
    assert model(tokens).shape == (2, 4, 7)


def test_string_names_and_keras_builtins():
    lm = build_rnn_lm(11, 4, 5, 1, "gru_cho", 0.0, "lm")  # positional: backward compatible
    assert lm.get_layer("rnn_0").cell.reset_after is False
    for name, cls in (("keras_lstm", keras.layers.LSTM), ("keras_gru", keras.layers.GRU),
                      ("keras_simple_rnn", keras.layers.SimpleRNN)):
        layer = recurrent_layer(name, 3, name="r")
        assert type(layer) is cls and layer.return_sequences


def test_keras_builtin_and_seqlab_lstm_give_the_same_lm():
    ours = build_rnn_lm(9, 4, 5, cell="lstm")
    ref = build_rnn_lm(9, 4, 5, cell="keras_lstm")
    ours.set_weights(ref.get_weights())
    tokens = np.array([[1, 2, 3, 8, 0]], "int32")
    np.testing.assert_allclose(ours(tokens), ref(tokens), atol=1e-5)


def test_layer_options_go_to_the_layer_and_cell_options_to_the_cell():
    layer = recurrent_layer({"name": "lstm", "forget_bias": 0.0, "implementation": "generic"}, 3,
                            go_backwards=True)
    assert layer.go_backwards and layer.implementation == "generic" and layer.return_sequences
    # the fast path's loop kind is a layer option too (`+model.cell.compile_loops=false`)
    assert recurrent_layer({"name": "gru", "compile_loops": False}, 3).compile_loops is False
    assert layer.cell.forget_bias == 0.0
    lm = build_rnn_lm(9, 4, 5, cell="peephole_lstm", stateful=True, batch_size=2, init_scale=0.1)
    assert lm.get_layer("rnn_0").stateful
    assert isinstance(lm.get_layer("rnn_0").cell.kernel_initializer, keras.initializers.RandomUniform)


def test_bad_cell_specs_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model.cell 'lstmm'.*layernorm_lstm.*keras_lstm"):
        build_rnn_lm(9, cell="lstmm")
    with pytest.raises(ConfigError, match=r"model.cell 'gru'.*dropout must be a float in \[0, 1\)"):
        build_rnn_lm(9, cell={"name": "gru", "dropout": 1.5})


def test_residual_option():
    lm = build_rnn_lm(9, embedding_dim=4, hidden_size=5, num_layers=3, cell="gru", residual=True)
    names = {layer.name for layer in lm.layers}
    assert "residual_0" not in names and {"residual_1", "residual_2"} <= names
    lm = build_rnn_lm(9, embedding_dim=5, hidden_size=5, num_layers=1, cell="gru", residual=True)
    tokens = np.array([[1, 2, 3]], "int32")
    emb = lm.get_layer("embedding")(tokens)
    want = lm.get_layer("logits")(emb + lm.get_layer("rnn_0")(emb))
    np.testing.assert_allclose(lm(tokens), want, atol=1e-6)


def test_lm_save_load(tmp_path):
    lm = build_rnn_lm(9, 4, 5, num_layers=2, cell="layernorm_lstm", residual=True)
    tokens = np.array([[1, 2, 3, 4]], "int32")
    lm.save(tmp_path / "lm.keras")
    loaded = keras.models.load_model(tmp_path / "lm.keras")
    np.testing.assert_allclose(loaded.predict(tokens, verbose=0), lm.predict(tokens, verbose=0), atol=1e-6)
