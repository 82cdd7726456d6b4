import numpy as np
import pytest

from seqlab.tracking import keras_callback
from seqlab.tracking.keras_callback import MetricsLogger


class _Opt:
    def __init__(self, iterations: int = 0):
        self.learning_rate = np.float32(0.01)
        self.iterations = np.int64(iterations)


class _Model:
    def __init__(self, iterations: int = 0):
        self.optimizer = _Opt(iterations)


class _Clock:
    """A fake time.perf_counter the test advances."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _train(cb, model, clock, batches, logs_fn=lambda b: {"loss": 1.0}, batch_s=0.1):
    for b in range(batches):
        clock.now += batch_s
        model.optimizer.iterations += 1  # Keras increments before the callback
        cb.on_train_batch_end(b, logs_fn(b))


def test_step_loss_is_the_mean_over_the_window_not_the_running_mean(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(keras_callback.time, "perf_counter", clock)
    logged = []
    cb = MetricsLogger(lambda m, step: logged.append((step, m)), log_every_n_steps=2, items_per_batch=10, unit="tokens")
    model = _Model()
    cb.set_model(model)
    losses = [4.0, 3.0, 2.0, 1.0]
    cb.on_epoch_begin(0)
    _train(cb, model, clock, 4, lambda b: {"loss": float(np.mean(losses[: b + 1]))})  # Keras' running mean
    steps = [(s, m["step/loss"]) for s, m in logged]
    assert steps == [(2, pytest.approx(3.5)), (4, pytest.approx(1.5))]
    assert all(m["step/lr"] == pytest.approx(0.01) for _, m in logged)
    cb.on_epoch_end(0, {"loss": 2.5, "val_loss": 2.0, "nan_metric": float("nan")})
    step, epoch_metrics = logged[-1]
    # Epoch values share the step axis (the optimizer step) and say their epoch.
    assert step == 4 and epoch_metrics["epoch"] == 1.0 and epoch_metrics["global_step"] == 4
    assert epoch_metrics["val_loss"] == 2.0 and "nan_metric" not in epoch_metrics
    assert epoch_metrics["tokens_per_sec"] == pytest.approx(4 * 10 / 0.4)


def test_throughput_window_after_an_epoch_boundary_counts_its_own_batches(monkeypatch):
    """5 batches an epoch, a log every 4 steps: the window that ends at step 8
    holds 3 batches of epoch 2 (the window restarts at the epoch, after
    validation). Counting it as 4 batches overstated tokens/sec; the issue's
    spikes (~1.2 M against ~100 k) were windows of a few batches counted as 50."""
    clock = _Clock()
    monkeypatch.setattr(keras_callback.time, "perf_counter", clock)
    logged = []
    cb = MetricsLogger(lambda m, step: logged.append((step, m)), log_every_n_steps=4, items_per_batch=100, unit="tokens")
    model = _Model()
    cb.set_model(model)
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        _train(cb, model, clock, 5)
        clock.now += 2.0  # validation
        cb.on_epoch_end(epoch, {"loss": 1.0})
    per_step = [(s, m["step/tokens_per_sec"]) for s, m in logged if "step/tokens_per_sec" in m]
    assert [s for s, _ in per_step] == [4, 8]
    # 100 tokens per 0.1 s batch = 1000 tokens/s, every window.
    assert [v for _, v in per_step] == [pytest.approx(1000.0), pytest.approx(1000.0)]


def test_a_window_of_one_batch_after_the_boundary_logs_no_throughput(monkeypatch):
    """5 batches an epoch, a log every 3 steps: step 6 is epoch 2's first
    batch, mostly the time its input pipeline takes to start."""
    clock = _Clock()
    monkeypatch.setattr(keras_callback.time, "perf_counter", clock)
    logged = []
    cb = MetricsLogger(lambda m, step: logged.append((step, m)), log_every_n_steps=3, items_per_batch=100, unit="tokens")
    model = _Model()
    cb.set_model(model)
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        _train(cb, model, clock, 5)
        cb.on_epoch_end(epoch, {"loss": 1.0})
    step_logs = {s: m for s, m in logged if "step/lr" in m}
    assert sorted(step_logs) == [3, 6, 9]
    assert "step/tokens_per_sec" not in step_logs[6] and "step/loss" in step_logs[6]
    assert step_logs[9]["step/tokens_per_sec"] == pytest.approx(1000.0)
    epochs = [(s, m["epoch"]) for s, m in logged if "epoch" in m]
    assert epochs == [(5, 1.0), (10, 2.0)]


def test_a_resumed_run_continues_its_step_axis(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(keras_callback.time, "perf_counter", clock)
    logged = []
    cb = MetricsLogger(lambda m, step: logged.append((step, m)), log_every_n_steps=5)
    model = _Model(iterations=120)  # restored optimizer
    cb.set_model(model)
    cb.on_epoch_begin(3)
    _train(cb, model, clock, 10)
    cb.on_epoch_end(3, {"loss": 1.0})
    assert [s for s, _ in logged] == [125, 130, 130]
    assert logged[-1][1]["epoch"] == 4.0
