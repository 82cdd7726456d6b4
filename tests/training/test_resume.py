"""Exact resume (``seqlab-train resume=<run_id>``): an interrupted run,
resumed, ends where an uninterrupted one does; the errors name the run and
the fix; the data position and random states are restored."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import open_dict

from seqlab.data.windows import lm_dataset
from seqlab.errors import ConfigError
from seqlab.experiment import run
from seqlab.training.resume import (
    OUTPUT_DIR_TAG,
    RESUMED_TAG,
    capture_state,
    fast_forward,
    find_resume_point,
    restore_random_state,
    resume_config,
)
from tests.e2e.helpers import compose_cfg, store_client

# The tiny char LM on 6,000 characters: 12 steps an epoch (the last batch
# partial), 3 epochs, dropout (random masks to restore), op determinism on.
SMALL = ["data.limit_chars=6000", "trainer.epochs=3", "model.dropout=0.2", "trainer.deterministic=true"]
STEPS_PER_EPOCH = 12


class InterruptAtStep(keras.callbacks.Callback):
    """Test-only: one Ctrl-C after optimizer step ``step``. The callback is in
    the run's config.yaml, so the resumed run builds it again: ``once`` (a
    file it creates) keeps it from interrupting twice."""

    def __init__(self, step: int, once: str):
        super().__init__()
        self.step = int(step)
        self.once = Path(once)

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step >= self.step and not self.once.exists():
            self.once.touch()
            raise KeyboardInterrupt


def _interrupted_cfg(tmp_path, step: int, *overrides: str):
    cfg = compose_cfg(tmp_path, *SMALL, *overrides)
    with open_dict(cfg):
        cfg.callbacks.interrupt = {"_target_": f"{__name__}.InterruptAtStep", "step": step,
                                   "once": str(tmp_path / "interrupted")}
    return cfg


def _resume(tmp_path, run_id: str, *overrides: str):
    """What ``seqlab-train resume=<id> [overrides]`` runs."""
    given = [f"resume={run_id}", *overrides]
    return resume_config(compose_cfg(tmp_path, *given, debug=None), given)


@pytest.mark.slow
def test_interrupted_then_resumed_run_ends_like_an_uninterrupted_one(tmp_path, data_dir):
    client = store_client(tmp_path)
    full = run(compose_cfg(tmp_path, *SMALL), output_dir=tmp_path / "full")

    # Ctrl-C in epoch 2, three steps after the epoch-1 checkpoint (also logged as artifacts).
    with pytest.raises(KeyboardInterrupt):
        run(_interrupted_cfg(tmp_path, STEPS_PER_EPOCH + 3, "+callbacks.checkpoint.log_artifacts=true"),
            output_dir=tmp_path / "cut")
    (cut,) = [r for r in client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
              if r.info.run_id != full["run_id"]]
    assert cut.info.status == "KILLED"
    assert cut.data.tags[OUTPUT_DIR_TAG] == str((tmp_path / "cut").resolve())
    state = json.loads((tmp_path / "cut" / "checkpoints" / "last.json").read_text())
    assert (state["epoch"], state["global_step"]) == (1, STEPS_PER_EPOCH)

    # Without the run's folder, the checkpoint comes from the run's artifacts.
    (tmp_path / "cut").rename(tmp_path / "moved")
    point = find_resume_point(cut.info.run_id, {"store_dir": str(tmp_path / "mlruns")}, epochs=3, seed=0,
                              output_dir=tmp_path / "fresh")
    assert (point.checkpoint, point.epoch, point.global_step) == (
        tmp_path / "fresh" / "checkpoints" / "last.keras", 1, STEPS_PER_EPOCH)
    assert point.checkpoint.read_bytes() == (tmp_path / "moved" / "checkpoints" / "last.keras").read_bytes()
    (tmp_path / "moved").rename(tmp_path / "cut")

    # Resumed from another folder: the checkpoint is found through the tag.
    resumed = run(_resume(tmp_path, cut.info.run_id), output_dir=tmp_path / "elsewhere")
    assert resumed["run_id"] == cut.info.run_id
    for key, value in full.items():
        if key.startswith(("val_", "test_")) or key in ("loss", "perplexity"):
            assert resumed[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key

    r = client.get_run(cut.info.run_id)
    assert r.info.status == "FINISHED"
    assert r.info.run_name == cut.info.run_name
    assert "failure_reason" not in r.data.tags
    assert r.data.tags[RESUMED_TAG].startswith(f"from epoch 1 (step {STEPS_PER_EPOCH}) after KILLED, to epoch 3 (KeyboardInterrupt")
    # Epoch metrics continue at the optimizer step, each epoch once.
    history = client.get_metric_history(cut.info.run_id, "val_loss")
    reference = client.get_metric_history(full["run_id"], "val_loss")
    assert [m.step for m in history] == [m.step for m in reference] == [12, 24, 36]
    np.testing.assert_allclose([m.value for m in history], [m.value for m in reference], rtol=1e-6)

    # Resuming a run that finished all its epochs says how to train it longer.
    with pytest.raises(ConfigError, match=rf"run {full['run_id']} finished all its 3 epochs .*trainer.epochs=N"):
        run(_resume(tmp_path, full["run_id"]), output_dir=tmp_path / "again")


@pytest.mark.slow
def test_resume_errors_name_the_run_and_the_fix(tmp_path, data_dir):
    # Ctrl-C before the first epoch ended: nothing to resume from.
    with pytest.raises(KeyboardInterrupt):
        run(_interrupted_cfg(tmp_path, 2), output_dir=tmp_path / "cut")
    client = store_client(tmp_path)
    (cut,) = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
    with pytest.raises(ConfigError, match=rf"run {cut.info.run_id} has no checkpoint to resume from.*start a new run"):
        run(_resume(tmp_path, cut.info.run_id), output_dir=tmp_path / "again")
    assert client.get_run(cut.info.run_id).info.status == "KILLED"  # untouched

    with pytest.raises(ConfigError, match="resume=0123abcd: no such run in sqlite.*tracking.store_dir"):
        _resume(tmp_path, "0123abcd")
    with pytest.raises(ConfigError, match="accepts only trainer.epochs.*got model.hidden_size=8 debug=tiny"):
        _resume(tmp_path, cut.info.run_id, "model.hidden_size=8", "debug=tiny")


def _recording_fit(epochs_done: int, epochs: int, *, steps_per_epoch: int | None = None, unknown_length=False):
    """The batches (window ids) a ``fit`` from ``epochs_done`` to ``epochs``
    trains on, in order, on a shuffled ``lm_dataset`` fast-forwarded by
    ``epochs_done`` (plus what it read ahead)."""
    seen = []

    def record(x):
        seen.append(tuple(x.numpy()[:, 0].tolist()))
        return x

    keras.utils.set_random_seed(5)
    train = lm_dataset(np.arange(2000, dtype=np.int32), 10, 16, shuffle=True, seed=5)  # 13 batches
    if unknown_length:
        train = train.filter(lambda x, y: True)
    train = fast_forward(train, epochs_done=epochs_done, global_step=epochs_done * (steps_per_epoch or 13),
                         steps_per_epoch=steps_per_epoch)
    if steps_per_epoch is not None and epochs_done == 0:
        train = train.repeat()
    train = train.map(lambda x, y: (tf.ensure_shape(tf.py_function(record, [x], tf.int32), x.shape), y))
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(train, initial_epoch=epochs_done, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0)
    return seen


@pytest.mark.parametrize(
    "steps_per_epoch, unknown_length",
    [(None, False), (None, True), (5, False)],
    ids=["one-pass-per-epoch", "unknown-length", "steps_per_epoch"],
)
def test_fast_forward_gives_what_the_interrupted_fit_would_have_read(steps_per_epoch, unknown_length):
    full = _recording_fit(0, 6, steps_per_epoch=steps_per_epoch, unknown_length=unknown_length)
    resumed = _recording_fit(3, 6, steps_per_epoch=steps_per_epoch, unknown_length=unknown_length)
    per_epoch = steps_per_epoch or 13  # 5 a epoch: the resumed stream starts in the second pass
    # What epochs 4 to 6 train on; a fit may read a batch or two ahead.
    assert resumed[: 3 * per_epoch] == full[3 * per_epoch : 6 * per_epoch]
    assert full[: 3 * per_epoch] != full[3 * per_epoch : 6 * per_epoch]  # epochs differ


def test_random_states_round_trip_through_the_checkpoint_state():
    from seqlab.models import build_rnn_lm
    from seqlab.training.resume import seed_generator_states

    keras.utils.set_random_seed(0)
    model = build_rnn_lm(vocab_size=12, embedding_dim=4, hidden_size=8, cell="lstm", dropout=0.3)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.randint(0, 12, (8, 6))
    model.fit(x, x, batch_size=4, verbose=0)

    def generators():
        return [keras.ops.convert_to_numpy(v).tolist() for v in seed_generator_states(model)]

    state = json.loads(json.dumps(capture_state(model, epoch=1, seed=0)))
    assert state["global_step"] == 2 and state["seed_generators"] == generators() != []
    expected = (generators(), np.random.rand())
    model.fit(x, x, batch_size=4, verbose=0)  # moves every generator
    np.random.rand(5)
    assert generators() != expected[0]
    restore_random_state(model, state)
    assert (generators(), np.random.rand()) == expected
