"""Spectral radius / largest singular value vs numpy.linalg on known and random matrices."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.diagnostics import (
    RecurrentSpectrumMonitor,
    gate_blocks,
    recurrent_spectrum,
    spectral_radius,
)
from seqlab.models.rnn_sequence import build_rnn_regressor


def test_known_spectra():
    theta = 0.3
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert spectral_radius(0.7 * rotation) == pytest.approx(0.7)  # complex pair 0.7 e^{+-i theta}
    jordan = np.array([[0.5, 10.0], [0.0, 0.5]])  # radius 0.5, but a large singular value
    out = recurrent_spectrum(jordan, "rnn")
    assert out["spectral_radius/rnn"] == pytest.approx(0.5)
    assert out["max_singular/rnn"] == pytest.approx(np.linalg.svd(jordan, compute_uv=False)[0])
    assert out["max_singular/rnn"] > 10


def test_gate_blocks_match_numpy_eigvals():
    rng = np.random.default_rng(0)
    H = 5
    kernel = rng.normal(size=(H, 4 * H))
    out = recurrent_spectrum(kernel, "lstm")
    for k, gate in enumerate("ifco"):
        block = kernel[:, k * H:(k + 1) * H]
        assert out[f"spectral_radius/lstm/{gate}"] == pytest.approx(np.abs(np.linalg.eigvals(block)).max())
        assert out[f"max_singular/lstm/{gate}"] == pytest.approx(np.linalg.svd(block, compute_uv=False)[0])
    assert out["spectral_radius/lstm"] == pytest.approx(max(out[f"spectral_radius/lstm/{g}"] for g in "ifco"))
    assert out["max_singular/lstm"] == pytest.approx(np.linalg.svd(kernel, compute_uv=False)[0])
    assert list(gate_blocks(rng.normal(size=(3, 9)))) == ["z", "r", "h"]


@pytest.mark.parametrize("cell", ["simple_rnn", "gru"])
def test_monitor_reads_the_layer_kernel(cell):
    keras.utils.set_random_seed(0)
    model = build_rnn_regressor(input_dim=2, hidden_size=6, cell=cell)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    monitor = RecurrentSpectrumMonitor(every_n_steps=2)
    x = np.random.default_rng(1).normal(size=(8, 4, 2)).astype("float32")
    model.fit(x, np.ones((8, 1), "float32"), batch_size=2, epochs=1, shuffle=False, callbacks=[monitor],
              verbose=0)
    assert [s for s, _ in monitor.history] == [0, 2, 4]
    U = np.asarray(model.get_layer("rnn_0").cell.recurrent_kernel)
    final = monitor.history[-1][1]
    blocks = [U] if cell == "simple_rnn" else np.split(U, 3, axis=1)
    want = max(np.abs(np.linalg.eigvals(b)).max() for b in blocks)
    assert final["spectral_radius/rnn_0"] == pytest.approx(want, rel=1e-6)
    assert final["max_singular/rnn_0"] == pytest.approx(np.linalg.svd(U, compute_uv=False)[0], rel=1e-6)
    # training changed the kernel, and the logged values followed it
    assert monitor.history[0][1]["max_singular/rnn_0"] != final["max_singular/rnn_0"]
