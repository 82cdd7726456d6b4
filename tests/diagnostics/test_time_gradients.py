"""||dL/dh_t|| from the probe loop vs independent references:
hand-written BPTT in NumPy (vanilla RNN) and central finite differences of a
NumPy LSTM (float64), plus the textbook decay / growth of a linear-regime RNN."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqlab.diagnostics import TimeGradientMonitor, time_step_gradients
from seqlab.models.rnn_sequence import build_rnn_regressor, build_rnn_tagger


def _weights(layer):
    cell = layer.cell
    return (np.asarray(cell.kernel, np.float64), np.asarray(cell.recurrent_kernel, np.float64),
            np.asarray(cell.bias, np.float64))


def _numpy_simple_rnn_bptt(x, y, W, U, b, V, c):
    """Forward + backward through time by hand; returns mean_b ||dL_b/dh_t||, t = 0..T-1."""
    B, T, _ = x.shape
    h = np.zeros((B, U.shape[0]))
    hs = []
    for t in range(T):
        h = np.tanh(x[:, t] @ W + h @ U + b)
        hs.append(h)
    pred = hs[-1] @ V + c  # [B, 1]
    delta = 2.0 * (pred - y) @ V.T  # dL_b/dh_{T-1}, L_b = (pred - y)^2
    deltas = [delta]
    for t in range(T - 1, 0, -1):
        delta = (delta * (1.0 - hs[t] ** 2)) @ U.T
        deltas.append(delta)
    deltas = deltas[::-1]
    return np.array([np.linalg.norm(d, axis=1).mean() for d in deltas])


@pytest.mark.parametrize("compiled", [False, True])
def test_simple_rnn_matches_numpy_bptt(compiled):
    keras.utils.set_random_seed(1)
    model = build_rnn_regressor(input_dim=2, hidden_size=5, cell="simple_rnn")
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 9, 2)).astype("float32")
    y = rng.normal(size=(4, 1)).astype("float32")
    got = time_step_gradients(model, "rnn_0", x, y, compiled=compiled)
    W, U, b = _weights(model.get_layer("rnn_0"))
    dense = model.get_layer("output")
    want = _numpy_simple_rnn_bptt(x.astype(np.float64), y.astype(np.float64), W, U, b,
                                  np.asarray(dense.kernel, np.float64), np.asarray(dense.bias, np.float64))
    assert got.shape == (9,)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-7)


def _numpy_lstm_tagger_loss(tokens, targets, W, U, b, V, c, eps, loss_at):
    """Per-example losses of a one-hot LSTM tagger with perturbations eps [T, B, H] added to h_t."""
    B, T = tokens.shape
    H = U.shape[0]
    x = np.eye(W.shape[0])[tokens]
    h = np.zeros((B, H))
    cs = np.zeros((B, H))
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    losses = np.zeros((B, T))
    for t in range(T):
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
        cs = f * cs + i * g
        h = o * np.tanh(cs) + eps[t]
        logits = h @ V + c
        logits = logits - logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        losses[:, t] = -logp[np.arange(B), targets[:, t]]
    return losses[:, -1] if loss_at == "last" else losses.sum(axis=1)


@pytest.mark.parametrize("loss_at", ["last", "sum"])
def test_lstm_matches_finite_differences(loss_at):
    keras.utils.set_random_seed(2)
    model = build_rnn_tagger(num_classes=4, vocab_size=4, hidden_size=3, cell="lstm")
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(3)
    B, T, H = 2, 6, 3
    tokens = rng.integers(0, 4, size=(B, T)).astype("int32")
    targets = rng.integers(0, 4, size=(B, T)).astype("int32")
    got = time_step_gradients(model, "rnn_0", tokens, targets, loss_at=loss_at)

    W, U, b = _weights(model.get_layer("rnn_0"))
    dense = model.get_layer("logits")
    V, c = np.asarray(dense.kernel, np.float64), np.asarray(dense.bias, np.float64)
    step = 1e-6
    grads = np.zeros((T, B, H))
    for t in range(T):
        for k in range(H):
            e = np.zeros((T, B, H))
            e[t, :, k] = step
            up = _numpy_lstm_tagger_loss(tokens, targets, W, U, b, V, c, e, loss_at)
            down = _numpy_lstm_tagger_loss(tokens, targets, W, U, b, V, c, -e, loss_at)
            grads[t, :, k] = (up - down) / (2 * step)  # example b's loss moves with its own h only
    want = np.linalg.norm(grads, axis=2).mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-7)
    if loss_at == "last":
        # the last step's gradient reaches t only through the recurrence: it is not trivially equal
        assert not np.allclose(got[:-1], got[-1])


def _scaled_rnn(radius: float, units: int = 8):
    """An untrained tanh RNN whose recurrent kernel is orthogonal x radius (all |eig| = radius)."""
    keras.utils.set_random_seed(4)
    model = build_rnn_regressor(input_dim=1, hidden_size=units, cell="simple_rnn")
    model.compile(optimizer="sgd", loss="mse")
    cell = model.get_layer("rnn_0").cell
    q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(units, units)))
    cell.recurrent_kernel.assign((radius * q).astype("float32"))
    cell.bias.assign(np.zeros(units, "float32"))
    assert np.isclose(np.max(np.abs(np.linalg.eigvals(radius * q))), radius)
    return model


@pytest.mark.parametrize("radius", [0.5, 1.5])
def test_vanilla_rnn_decays_or_grows_with_spectral_radius(radius):
    T = 12
    model = _scaled_rnn(radius)
    rng = np.random.default_rng(6)
    # tiny inputs keep tanh in its linear regime (|h| < 1e-2 even at 1.5^12)
    x = (1e-5 * rng.normal(size=(8, T, 1))).astype("float32")
    y = np.ones((8, 1), "float32")
    g = time_step_gradients(model, "rnn_0", x, y)
    backwards = g[::-1]  # from the last step towards the first
    if radius < 1:
        assert np.all(np.diff(backwards) < 0), g
    else:
        assert np.all(np.diff(backwards) > 0), g
    # linear regime, orthogonal U: ||dL/dh_t|| = radius^(T-1-t) ||dL/dh_{T-1}||
    np.testing.assert_allclose(g / g[-1], radius ** np.arange(T - 1, -1, -1.0), rtol=1e-3)


def test_monitor_probes_logs_and_plots(tmp_path):
    from seqlab.data.synthetic import build_adding_data
    from seqlab.training.context import RunContext

    bundle = build_adding_data(16, batch_size=8, seed=0, train_size=32, validation_size=8, test_size=8)
    model = build_rnn_regressor(**bundle.model_kwargs, hidden_size=4, cell="gru")
    model.compile(optimizer="adam", loss=bundle.loss())
    logged, artifacts = [], []
    monitor = TimeGradientMonitor(steps=[0, 2], probe_size=4)
    monitor.bind(RunContext(bundle=bundle, output_dir=tmp_path,
                            log_metrics=lambda m, s: logged.append((s, m)),
                            log_artifact=lambda p, d: artifacts.append((p.name, d))))
    model.fit(bundle.train, epochs=1, callbacks=[monitor], verbose=0)  # 4 steps
    assert sorted(monitor.curves) == [("rnn_0", 0), ("rnn_0", 2), ("rnn_0", 4)]
    # the logged final curve is grad_time/rnn_0 with step = t, for every t
    final = {s: m["grad_time/rnn_0"] for s, m in logged if "grad_time/rnn_0" in m}
    assert sorted(final) == list(range(16))
    np.testing.assert_allclose([final[t] for t in range(16)], monitor.curves[("rnn_0", 4)], rtol=1e-6)
    # and it is the gradient of that probe batch, recomputed independently of the callback
    x, y = monitor.probe
    np.testing.assert_allclose(time_step_gradients(model, "rnn_0", x, y), monitor.curves[("rnn_0", 4)],
                               rtol=1e-4)
    flows = [(s, m["grad_flow/rnn_0"]) for s, m in logged if "grad_flow/rnn_0" in m]
    assert [s for s, _ in flows] == [0, 2, 4]
    for name in ("grad_time_rnn_0_step0.png", "grad_time_rnn_0_step2.png", "grad_time_rnn_0.png"):
        png = tmp_path / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (name, "plots") in artifacts
    rows = (tmp_path / "grad_time" / "rnn_0.csv").read_text().splitlines()
    assert rows[0] == "t,step0,step2,step4" and len(rows) == 17


def test_tiny_gradients_are_measured_not_flushed_to_zero():
    """0.5^79 ~ 2e-24: the squares of such components underflow in float32; the norm must not."""
    T = 80
    model = _scaled_rnn(0.5)
    x = (1e-5 * np.random.default_rng(7).normal(size=(4, T, 1))).astype("float32")
    g = time_step_gradients(model, "rnn_0", x, np.ones((4, 1), "float32"))
    assert (g > 0).all()
    np.testing.assert_allclose(g[0] / g[-1], 0.5 ** (T - 1), rtol=1e-3)
