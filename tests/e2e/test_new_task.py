"""A new task and a new model family, defined here and nowhere under seqlab/:
selected by config, trained, scored and tracked by the unchanged core.

The task (which half of a sequence holds more ones) is one bundle builder;
the model is one builder function; both reach Hydra through its ConfigStore,
the way a user's own package would add a config group option.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra.core.config_store import ConfigStore

from seqlab.data.bundle import DataBundle
from seqlab.errors import ConfigError
from seqlab.experiment import run
from seqlab.training.context import RunCallback
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow

MODULE = __name__


class Announce(RunCallback):
    """A task callback that needs the run: counts epochs, writes a file, has the last word."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1

    def on_run_end(self):
        note = self.context.output_dir / "note.txt"
        note.write_text(f"{self.epochs} epochs\n")
        self.context.log_artifact(note, None)
        return f"the task says: {self.epochs} epochs"


def build_halves_data(*, batch_size: int, seed: int = 0, length: int = 12, size: int = 512) -> DataBundle:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(size, length)).astype("int32")
    y = (x[:, : length // 2].sum(1) > x[:, length // 2 :].sum(1)).astype("int32")

    def batches(lo, hi, shuffle=False):
        ds = tf.data.Dataset.from_tensor_slices((x[lo:hi], y[lo:hi]))
        return (ds.shuffle(hi - lo, seed=seed) if shuffle else ds).batch(batch_size)

    def evaluate_test(model):
        predictions = model.predict(x[448:], verbose=0).argmax(-1)
        return {"exact_accuracy": float((predictions == y[448:]).mean())}

    return DataBundle(
        train=batches(0, 384, shuffle=True),
        validation=batches(384, 448),
        test=batches(448, 512),
        model_kwargs={"length": length, "num_classes": 2},
        loss=lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_epoch=384 // batch_size,
        throughput_unit="widgets",
        items_per_batch=batch_size,
        callbacks=[Announce()],
        save_artifacts=lambda folder: [_write(folder / "task.txt", f"halves of {length}\n")],
        evaluate_test=evaluate_test,
        info={"task": "halves", "length": length},
    )


def _write(path, text):
    path.write_text(text)
    return path


def build_position_mlp(length: int, num_classes: int, hidden_size: int = 16) -> keras.Model:
    tokens = keras.Input((length,), dtype="int32")
    x = keras.layers.Dense(hidden_size, activation="relu")(keras.ops.cast(tokens, "float32"))
    return keras.Model(tokens, keras.layers.Dense(num_classes)(x), name="position_mlp")


@pytest.fixture(scope="module", autouse=True)
def _register_configs():
    store = ConfigStore.instance()
    store.store(group="data", name="halves", node={"_target_": f"{MODULE}.build_halves_data", "length": 12})
    store.store(group="model", name="position_mlp",
                node={"_target_": f"{MODULE}.build_position_mlp", "hidden_size": 16})


@pytest.fixture(autouse=True)
def _allow_this_package(monkeypatch):
    # How a user lets configs name their own package's builders.
    monkeypatch.setenv("SEQLAB_ALLOWED_TARGETS", "tests.e2e")


def test_a_package_not_allowed_is_refused_before_a_run_opens(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQLAB_ALLOWED_TARGETS")
    cfg = compose_cfg(tmp_path, "data=halves", "model=position_mlp", debug="fast")
    with pytest.raises(ConfigError, match=rf"data._target_='{MODULE}.build_halves_data' is not allowed"
                                          r".*SEQLAB_ALLOWED_TARGETS"):
        run(cfg, output_dir=tmp_path / "out")
    assert all_runs(store_client(tmp_path)) == []


def test_a_new_task_and_model_train_and_track_through_the_unchanged_core(tmp_path, capsys):
    cfg = compose_cfg(tmp_path, "data=halves", "model=position_mlp", "trainer.epochs=3",
                      "trainer.batch_size=32", "optimizer.learning_rate=0.01", "trainer.verbose=0",
                      "lr_schedule.warmup_steps=5", debug=None)
    results = run(cfg, output_dir=tmp_path / "out")

    assert "the task says: 3 epochs" in capsys.readouterr().out
    client = store_client(tmp_path)
    (r,) = all_runs(client)
    assert r.info.status == "FINISHED" and r.info.run_id == results["run_id"]
    assert r.data.params["data_info.task"] == "halves" and r.data.params["data.length"] == "12"
    assert {"loss", "val_loss", "val_accuracy", "widgets_per_sec", "test_exact_accuracy"} <= set(r.data.metrics)
    assert "tokens_per_sec" not in r.data.metrics
    assert r.data.metrics["test_exact_accuracy"] == results["test_exact_accuracy"] > 0.6  # learns something
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"task.txt", "note.txt", "config.yaml"} <= artifacts
    assert [m.source_run_id for m in client.search_logged_models([r.info.experiment_id])] == [r.info.run_id]


def test_debug_fast_limits_any_task_without_touching_it(tmp_path):
    cfg = compose_cfg(tmp_path, "data=halves", "model=position_mlp", debug="fast")
    run(cfg, output_dir=tmp_path / "out")
    (r,) = all_runs(store_client(tmp_path))
    assert r.info.status == "FINISHED"
    assert r.data.params["trainer_info.steps_per_epoch"] == "3"
    assert r.data.params["trainer.validation_steps"] == "2" and r.data.params["trainer.epochs"] == "1"
