"""Learning-rate schedules against their formulas, and as the configs compose them."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.errors import ConfigError
from seqlab.instantiate import build
from seqlab.training.schedules import StepDecay, WarmupCosine, WarmupLinear


def _values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_step_decay_is_zaremba_small_halving_from_epoch_5():
    spe = 7
    schedule = StepDecay(1.0, total_steps=13 * spe, factor=0.5, decay_after_epochs=4, epochs=13)
    assert schedule.steps_per_epoch == spe
    steps = np.arange(13 * spe)
    epoch = steps // spe + 1  # epochs counted from 1
    expected = 1.0 * 0.5 ** np.maximum(0, epoch - 4)
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=1e-6)
    # spot checks: epochs 1-4 at 1.0, epoch 5 at 0.5, epoch 13 at 0.5**9
    assert float(schedule(4 * spe - 1)) == 1.0
    assert float(schedule(4 * spe)) == 0.5
    assert float(schedule(13 * spe - 1)) == pytest.approx(0.5**9)


def test_step_decay_medium_factor_and_explicit_steps_per_epoch():
    schedule = StepDecay(1.0, factor=1 / 1.2, decay_after_epochs=6, steps_per_epoch=10)
    steps = np.array([0, 59, 60, 69, 70, 385])
    epoch = steps // 10 + 1
    np.testing.assert_allclose(_values(schedule, steps), (1 / 1.2) ** np.maximum(0, epoch - 6), rtol=1e-6)


def test_warmup_linear_values():
    schedule = WarmupLinear(2.0, total_steps=110, warmup_steps=10, final_fraction=0.1)
    np.testing.assert_allclose(_values(schedule, [0, 4, 9]), [0.2, 1.0, 2.0], rtol=1e-6)
    # after warmup: 2 * (1 - 0.9 * (s - 10) / 100)
    np.testing.assert_allclose(_values(schedule, [10, 60, 110, 500]), [2.0, 1.1, 0.2, 0.2], rtol=1e-6)


def test_warmup_cosine_values():
    # The default schedule (conf/lr_schedule/cosine.yaml). Peak 3e-3, 10 warmup
    # steps, 110 in all, down to 5 %; values worked out by hand from
    # lr * (0.05 + 0.95 * (1 + cos(pi p)) / 2), p = (s - 10) / 100.
    schedule = WarmupCosine(3e-3, total_steps=110, warmup_steps=10, final_fraction=0.05)
    np.testing.assert_allclose(_values(schedule, [0, 4, 9]), [3e-4, 1.5e-3, 3e-3], rtol=1e-6)
    # p = 0, 1/2, 1 and beyond: the peak, the midpoint 3e-3 * 0.525, the floor
    np.testing.assert_allclose(_values(schedule, [10, 60, 110, 1000]), [3e-3, 1.575e-3, 1.5e-4, 1.5e-4],
                               rtol=1e-6)
    # p = 1/4: 0.05 + 0.95 * (1 + sqrt(2)/2) / 2 = 0.86088...
    np.testing.assert_allclose(float(schedule(35)), 3e-3 * 0.8608757, rtol=1e-6)
    values = _values(schedule, range(10, 111))
    assert (np.diff(values) <= 0).all()  # never rises after the warmup


def test_bad_schedule_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="steps_per_epoch, or total_steps and lr_schedule.epochs"):
        StepDecay(1.0)
    with pytest.raises(ConfigError, match="factor must be in"):
        StepDecay(1.0, steps_per_epoch=5, factor=1.5)


def test_experiment_configs_compose_into_the_published_schedules():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        small = compose("train", overrides=["experiment=ptb_zaremba_small"])
        medium = compose("train", overrides=["experiment=ptb_zaremba_medium"])
    for cfg, factor, after in ((small, 0.5, 4), (medium, 1 / 1.2, 6)):
        spe = 100
        schedule = build(cfg.lr_schedule, learning_rate=float(cfg.optimizer.learning_rate),
                         total_steps=spe * int(cfg.trainer.epochs))
        assert schedule.steps_per_epoch == spe
        epochs = np.arange(1, int(cfg.trainer.epochs) + 1)
        np.testing.assert_allclose(
            _values(schedule, (epochs - 1) * spe), factor ** np.maximum(0, epochs - after), rtol=1e-5
        )
    assert (small.trainer.epochs, medium.trainer.epochs) == (13, 39)
    assert small.trainer.clipnorm == medium.trainer.clipnorm == 5.0
