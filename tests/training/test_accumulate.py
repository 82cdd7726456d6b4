"""trainer.accumulate_steps: k micro-batches = one k-times larger batch; the
schedule counts optimizer updates."""

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from seqlab.errors import ConfigError
from seqlab.experiment import run
from seqlab.training.optim import PerUpdate, build_optimizer
from tests.e2e.helpers import all_runs, compose_cfg, store_client

ADAM = OmegaConf.create({"_target_": "keras.optimizers.Adam", "learning_rate": 0.01})
COSINE = OmegaConf.create({"_target_": "seqlab.training.schedules.WarmupCosine", "warmup_steps": 3,
                           "final_fraction": 0.1})


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    # No batch statistics: the mean loss of a big batch is the mean of its k parts.
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])


def _train(batch_size, accumulate, updates, clipnorm):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(updates * 16, 5)).astype("float32")
    y = rng.normal(size=(updates * 16, 3)).astype("float32")
    model = _model()
    optimizer = build_optimizer(ADAM, COSINE, clipnorm=clipnorm, total_steps=updates * 16 // batch_size,
                                accumulate_steps=accumulate)
    model.compile(optimizer, "mse")
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("clipnorm", [None, 0.05])
def test_four_micro_batches_equal_one_four_times_larger_batch(clipnorm):
    big = _train(batch_size=16, accumulate=None, updates=6, clipnorm=clipnorm)
    small = _train(batch_size=4, accumulate=4, updates=6, clipnorm=clipnorm)
    assert int(small.optimizer.iterations) == int(big.optimizer.iterations) == 6
    for a, b in zip(big.get_weights(), small.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # and they moved: the comparison is not of two untouched models
    assert not np.allclose(big.get_weights()[0], _model().get_weights()[0], atol=1e-3)


def test_the_schedule_sees_updates_not_micro_batches():
    optimizer = build_optimizer(ADAM, COSINE, clipnorm=None, total_steps=40, accumulate_steps=4)
    assert isinstance(optimizer._learning_rate, PerUpdate)
    inner = optimizer._learning_rate.schedule
    assert inner.total_steps == 10  # 40 micro-batches = 10 updates
    for micro in (0, 3, 4, 11, 12, 39):
        expected = float(inner(micro // 4))
        assert float(optimizer._learning_rate(micro)) == pytest.approx(expected)
    # warmup ends after 3 updates = 12 micro-batches
    assert float(optimizer._learning_rate(12)) == pytest.approx(0.01)
    assert float(optimizer._learning_rate(8)) < 0.01


def test_per_update_schedule_round_trips_through_keras_serialization():
    optimizer = build_optimizer(ADAM, COSINE, clipnorm=None, total_steps=40, accumulate_steps=4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored._learning_rate, PerUpdate)
    assert restored.gradient_accumulation_steps == 4
    for micro in (0, 9, 30):
        assert float(restored._learning_rate(micro)) == pytest.approx(float(optimizer._learning_rate(micro)))


@pytest.mark.parametrize("bad", ["0", "-2", "1.5", "abc"])
def test_bad_accumulate_steps_fail_before_a_run_opens(tmp_path, bad):
    with pytest.raises(ConfigError, match="trainer.accumulate_steps"):
        run(compose_cfg(tmp_path, f"trainer.accumulate_steps={bad}"), output_dir=tmp_path / "out")
    assert all_runs(store_client(tmp_path)) == []


@pytest.mark.slow
def test_an_accumulating_run_logs_optimizer_updates(tmp_path, data_dir):
    # debug=tiny: one epoch of 35 batches -> 7 updates of 5 accumulated batches.
    run(compose_cfg(tmp_path, "trainer.accumulate_steps=5"), output_dir=tmp_path / "out")
    client = store_client(tmp_path)
    (r,) = all_runs(client)
    assert r.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(r.info.run_id, "val_loss")] == [7]
