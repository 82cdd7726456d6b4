"""Save -> load -> identical predictions, and a compiled (XLA) training step, for every cell."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.layers import Recurrent, get_cell
from tests.layers.helpers import CELL_NAMES, randomize


def _model(name, cell_options=None, wrap_in_keras_rnn=False):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(11, 4, mask_zero=True)(tokens)
    cell = get_cell(name, 5, **(cell_options or {}))
    if wrap_in_keras_rnn:
        rnn = keras.layers.RNN(cell, return_sequences=True)
    else:
        rnn = Recurrent(cell, return_sequences=True, implementation="generic")
    y = keras.layers.Dense(11)(rnn(x))
    return keras.Model(tokens, y), cell


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("wrap_in_keras_rnn", [False, True])
def test_keras_save_load_roundtrip(name, wrap_in_keras_rnn, tmp_path):
    rng = np.random.default_rng(0)
    options = {"dropout": 0.1, "recurrent_dropout": 0.2}
    model, cell = _model(name, options, wrap_in_keras_rnn)
    randomize(cell, rng)
    x = rng.integers(1, 11, (3, 6)).astype("int32")
    x[1, 4:] = 0  # padding, masked by the embedding
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    rnn = loaded.layers[2]
    assert type(rnn.cell) is type(cell)
    cfg, loaded_cfg = cell.get_config(), rnn.cell.get_config()
    cfg.pop("name"), loaded_cfg.pop("name")
    assert loaded_cfg == cfg
    if not wrap_in_keras_rnn:
        assert rnn.implementation == "generic"


def test_jit_compiled_fit_step_every_cell():
    """One model holding every cell side by side (one XLA compilation instead of six)."""
    keras.utils.set_random_seed(1)
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(11, 4, mask_zero=True)(tokens)
    cells = [get_cell(name, 5, dropout=0.1, recurrent_dropout=0.1) for name in CELL_NAMES]
    branches = [Recurrent(c, return_sequences=True, implementation="generic")(x) for c in cells]
    y = keras.layers.Dense(11)(keras.layers.Concatenate()(branches))
    model = keras.Model(tokens, y)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    rng = np.random.default_rng(1)
    x = rng.integers(1, 11, (4, 5)).astype("int32")
    before = [[np.array(w) for w in c.get_weights()] for c in cells]
    history = model.fit(x, x, epochs=2, batch_size=4, verbose=0)
    assert model.jit_compile is True
    assert np.all(np.isfinite(history.history["loss"]))
    for cell, old in zip(cells, before):  # every weight of every cell trained
        for a, b in zip(old, cell.get_weights()):
            assert not np.allclose(a, b), f"{cell.name}: a weight did not change"
