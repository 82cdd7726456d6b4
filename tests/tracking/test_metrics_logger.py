import numpy as np
import pytest

from seqlab.tracking.keras_callback import MetricsLogger


class _Opt:
    learning_rate = np.float32(0.01)


class _Model:
    optimizer = _Opt()


def test_step_loss_is_the_mean_over_the_window_not_the_running_mean():
    logged = []
    cb = MetricsLogger(lambda m, step: logged.append((step, m)), log_every_n_steps=2, items_per_batch=10, unit="tokens")
    cb.set_model(_Model())
    losses = [4.0, 3.0, 2.0, 1.0]
    cb.on_epoch_begin(0)
    for b in range(4):
        running = float(np.mean(losses[: b + 1]))  # what Keras reports
        cb.on_train_batch_end(b, {"loss": running})
    steps = [(s, m["step/loss"]) for s, m in logged]
    assert steps == [(2, pytest.approx(3.5)), (4, pytest.approx(1.5))]
    assert all(m["step/lr"] == pytest.approx(0.01) for _, m in logged)
    cb.on_epoch_end(0, {"loss": 2.5, "val_loss": 2.0, "nan_metric": float("nan")})
    step, epoch_metrics = logged[-1]
    assert step == 1 and epoch_metrics["val_loss"] == 2.0 and "nan_metric" not in epoch_metrics
    assert epoch_metrics["tokens_per_sec"] > 0 and epoch_metrics["global_step"] == 4
