import mlflow
import pytest

from seqlab.tracking.params import MAX_PARAM_LENGTH, flatten, to_params
from seqlab.tracking.run import TrackedRun


def test_flatten_gives_dotted_keys_and_short_strings():
    config = {"model": {"cell": {"name": "lstm", "units": 8}, "dropout": 0.0}, "x": None, "long": "a" * 9000}
    assert flatten(config) == {"model.cell.name": "lstm", "model.cell.units": 8, "model.dropout": 0.0, "x": None, "long": "a" * 9000}
    params = to_params(config)
    assert params["model.cell.units"] == "8" and "x" not in params  # no nulls
    assert len(params["long"]) == MAX_PARAM_LENGTH


def test_params_are_the_user_facing_values_only():
    config = {
        "model": {"_target_": "seqlab.models.build_rnn_lm", "_convert_": "all", "name": "rnn_lm",
                  "hidden_size": 32, "cell": {"name": "lstm", "init_scale": None}},
        "optimizer": {"_target_": "keras.optimizers.Adam", "learning_rate": 0.003},
        "callbacks": {"checkpoint": {"_target_": "seqlab.training.callbacks.LastGoodCheckpoint", "_recursive_": False}},
        "trainer": {"epochs": 2, "verbose": 1},
        "tracking": {"enabled": True, "store_dir": "mlruns"},
        "tags": {},
    }
    assert to_params(config) == {
        "model.name": "rnn_lm", "model.hidden_size": "32", "model.cell.name": "lstm",
        # which class ran, said as a name, not a class path
        "optimizer.name": "Adam", "optimizer.learning_rate": "0.003", "trainer.epochs": "2",
    }


def test_default_run_name_says_what_the_run_is(monkeypatch):
    from seqlab.tracking import run as run_module

    config = {"task_name": "train", "model": {"_target_": "seqlab.models.build_rnn_lm", "cell": {"name": "gru"}}}
    monkeypatch.setattr(run_module, "_hydra_overrides_and_preset", lambda: ([], None))
    assert run_module.default_run_name(config) == "rnn_lm/gru"
    # inside seqlab-train: the overrides that define the run, not where it is recorded
    overrides = ["debug=tiny", "model.hidden_size=64", "tracking.store_dir=/tmp/x", "trainer.verbose=0"]
    monkeypatch.setattr(run_module, "_hydra_overrides_and_preset", lambda: (overrides, None))
    assert run_module.default_run_name(config) == "rnn_lm/gru debug=tiny model.hidden_size=64"
    # a preset names the run
    monkeypatch.setattr(run_module, "_hydra_overrides_and_preset",
                        lambda: (["experiment=adding", "data.length=200"], "adding"))
    assert run_module.default_run_name({**config, "task_name": "adding"}) == "adding data.length=200"
    assert run_module.default_run_name({**config, "task_name": "shakespeare_char"}).startswith("adding")
    monkeypatch.setattr(run_module, "_hydra_overrides_and_preset", lambda: ([], None))
    assert run_module.default_run_name({**config, "task_name": "copy_memory"}) == "copy_memory"


def _tracking(tmp_path, **extra):
    return {"enabled": True, "store_dir": str(tmp_path / "mlruns"), "experiment_name": "t", **extra}


def test_run_ends_failed_with_reason_and_keeps_what_was_logged(tmp_path):
    with pytest.raises(RuntimeError):
        with TrackedRun(_tracking(tmp_path), config={"a": {"b": 1}}) as run:
            run.log_metrics({"loss": 2.5}, step=1)
            raise RuntimeError("boom")
    r = mlflow.tracking.MlflowClient(run.tracking_uri).get_run(run.run_id)
    assert r.info.status == "FAILED"
    assert r.data.tags["failure_reason"] == "RuntimeError: boom"
    assert r.data.metrics["loss"] == 2.5 and r.data.params["a.b"] == "1"


def test_keyboard_interrupt_marks_the_run_killed(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with TrackedRun(_tracking(tmp_path)) as run:
            raise KeyboardInterrupt
    r = mlflow.tracking.MlflowClient(run.tracking_uri).get_run(run.run_id)
    assert r.info.status == "KILLED"


def test_stray_mlflow_run_id_is_not_resumed(tmp_path, monkeypatch):
    with TrackedRun(_tracking(tmp_path)) as first:
        pass
    monkeypatch.setenv("MLFLOW_RUN_ID", first.run_id)
    with TrackedRun(_tracking(tmp_path)) as second:
        pass
    assert second.run_id != first.run_id


def test_disabled_tracking_is_a_no_op(tmp_path):
    with TrackedRun({"enabled": False, "store_dir": str(tmp_path / "m")}) as run:
        run.log_metrics({"x": 1.0}, step=0)
        run.set_tag("a", "b")
    assert run.run_id is None and not (tmp_path / "m").exists()
