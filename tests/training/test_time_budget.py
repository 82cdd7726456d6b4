"""trainer.max_train_time_s: stop at the step that crosses the budget, then score as usual."""

import time

import keras
import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.experiment import run
from seqlab.training.time_budget import TrainTimeBudget
from tests.e2e.helpers import all_runs, compose_cfg, store_client


class _SlowValidation(keras.callbacks.Callback):
    def on_test_begin(self, logs=None):
        time.sleep(0.4)


def _fit(budget, epochs=2, **kwargs):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((16, 2), "float32"), np.ones((16, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=[budget, *kwargs.get("extra", [])],
              validation_data=kwargs.get("validation"))
    return model


def test_validation_passes_are_not_training_time():
    budget = TrainTimeBudget(None)
    start = time.perf_counter()
    x, y = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
    _fit(budget, epochs=2, validation=(x, y), extra=[_SlowValidation()])
    total = time.perf_counter() - start
    # 2 validation passes x 0.4 s of sleeping are outside the budget's clock.
    assert total > 0.8
    assert budget.train_time_s < total - 0.75
    assert not budget.stopped


def test_budget_stops_at_the_end_of_the_crossing_step():
    budget = TrainTimeBudget(1e-9)
    model = _fit(budget, epochs=5)
    assert budget.stopped
    assert int(model.optimizer.iterations) == 1


@pytest.mark.parametrize("bad", [0, -3.0, float("nan")])
def test_callback_rejects_a_non_positive_budget(bad):
    with pytest.raises(ValueError, match="trainer.max_train_time_s must be a positive number"):
        TrainTimeBudget(bad)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "true"])
def test_bad_budget_fails_before_a_run_opens(tmp_path, bad):
    with pytest.raises(ConfigError, match="max_train_time_s"):
        run(compose_cfg(tmp_path, f"trainer.max_train_time_s={bad}"), output_dir=tmp_path / "out")
    assert all_runs(store_client(tmp_path)) == []


@pytest.mark.slow
def test_budgeted_run_stops_early_and_is_still_validated_and_tested(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, "trainer.max_train_time_s=0.000001", "trainer.epochs=3")
    results = run(cfg, output_dir=tmp_path / "out")
    (r,) = all_runs(store_client(tmp_path))
    assert r.info.status == "FINISHED"
    # The first step crosses the budget: one optimizer step, then validation and test.
    assert [m.step for m in store_client(tmp_path).get_metric_history(r.info.run_id, "val_loss")] == [1]
    assert {"val_loss", "test_loss", "train_time_s", "wall_time_s"} <= set(r.data.metrics)
    assert 0 < r.data.metrics["train_time_s"] < results["wall_time_s"]
