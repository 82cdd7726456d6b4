"""End to end: the real config tree, a slice of real data, what MLflow recorded."""

import os
import subprocess
import sys

import pytest

from seqlab.errors import ConfigError, DataError, DataNotFoundError
from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow


SAMPLER = "data.sampler={prompt:'ROMEO:',length:20}"


def test_run_records_params_metrics_artifacts_and_tags(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, SAMPLER)
    results = run(cfg, output_dir=tmp_path / "out")

    client = store_client(tmp_path)
    (r,) = all_runs(client)
    assert r.info.status == "FINISHED"
    assert r.info.run_id == results["run_id"]
    vocab = int(r.data.params["data_info.vocab_size"])
    history = client.get_metric_history(r.info.run_id, "val_perplexity")
    assert history and 1.0 < history[-1].value < vocab
    for key in ("loss", "val_loss", "perplexity", "bpc", "val_bpc", "lr", "tokens_per_sec", "test_perplexity"):
        assert key in r.data.metrics, key
    # step-level curve every 5 steps
    assert len(client.get_metric_history(r.info.run_id, "step/loss")) >= 2
    assert r.data.params["model.hidden_size"] == "32"
    assert r.data.params["model.cell.name"] == "lstm"
    assert r.data.params["data.seq_len"] == "32"
    for tag in ("seqlab.version", "tensorflow.version", "keras.version"):
        assert tag in r.data.tags
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "tokenizer.json", "samples.txt"} <= artifacts
    # the model is an MLflow logged model (Keras flavour): runs:/<id>/model
    assert [m.source_run_id for m in client.search_logged_models([r.info.experiment_id])] == [r.info.run_id]
    # bpc is loss in bits
    assert r.data.metrics["val_bpc"] == pytest.approx(r.data.metrics["val_loss"] / 0.6931471805599453, rel=1e-3)


def test_saved_model_reloads_and_scores_the_same(tmp_path, data_dir):
    import keras

    from seqlab.instantiate import build

    cfg = compose_cfg(tmp_path, "tracking.enabled=false")
    results = run(cfg, output_dir=tmp_path / "out")
    model = keras.models.load_model(tmp_path / "out" / "checkpoints" / "last.keras")
    data = build(cfg.data, batch_size=cfg.trainer.batch_size, seed=cfg.trainer.seed)
    scores = model.evaluate(data.validation, verbose=0, return_dict=True)
    # The checkpoint holds the final weights: it scores what the run reported.
    assert scores["loss"] == pytest.approx(results["val_loss"], rel=1e-5)
    assert scores["perplexity"] == pytest.approx(results["val_perplexity"], rel=1e-5)


def _failed_run(tmp_path):
    (r,) = all_runs(store_client(tmp_path))
    assert r.info.status == "FAILED"
    return r


@pytest.mark.parametrize(
    "override, error, message",
    [
        ("model.cell.name=transistor", ConfigError, "unknown model.cell 'transistor'"),
        ("model.hidden_size=0", ConfigError, "model.hidden_size must be a positive integer, got 0"),
        ("data.tokenizer=morse", ConfigError, "unknown tokenizer 'morse'"),
    ],
)
def test_bad_model_values_fail_fast_and_the_run_ends_failed(tmp_path, data_dir, override, error, message):
    with pytest.raises(error, match=message):
        run(compose_cfg(tmp_path, override), output_dir=tmp_path / "out")
    r = _failed_run(tmp_path)
    assert message.split(" ")[0] in r.data.tags["failure_reason"]


def test_non_positive_trainer_value_fails_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="trainer.batch_size must be a positive integer, got -4"):
        run(compose_cfg(tmp_path, "trainer.batch_size=-4"), output_dir=tmp_path / "out")
    assert all_runs(store_client(tmp_path)) == []  # no MLflow run was opened


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.test_streams=0", "data.test_streams must be a positive integer or null, got 0"),
        ("data.test_streams=1", r"data.test_streams=1 scores a stateful model; it needs data.batching=streams, got data.batching='windows'"),
        ("data.seq_len=0", "data.seq_len must be a positive integer, got 0"),
    ],
)
def test_bad_data_values_fail_before_the_corpus_loads(tmp_path, monkeypatch, override, message):
    # No corpus where it would look: the error must come before any loading.
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=message):
        run(compose_cfg(tmp_path, override, "data.download=false"), output_dir=tmp_path / "out")
    assert override.split("=")[0] in _failed_run(tmp_path).data.tags["failure_reason"]


def test_missing_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="SEQLAB_DATA_DIR") as err:
        run(compose_cfg(tmp_path, "data.download=false"), output_dir=tmp_path / "out")
    assert str(tmp_path / "nowhere" / "tiny_shakespeare") in str(err.value)
    assert "tiny_shakespeare" in _failed_run(tmp_path).data.tags["failure_reason"]


def test_seq_len_longer_than_the_validation_split(tmp_path, monkeypatch):
    corpus = tmp_path / "data" / "tiny_shakespeare"
    corpus.mkdir(parents=True)
    (corpus / "input.txt").write_text(("All the world's a stage.\n" * 200)[:4000])  # val: 200 chars
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"validation split has 200 tokens.*data.seq_len"):
        run(
            compose_cfg(tmp_path, "data.seq_len=300", "data.limit_chars=null"),
            output_dir=tmp_path / "out",
        )
    _failed_run(tmp_path)


def _cli(tmp_path, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    script = os.path.join(os.path.dirname(sys.executable), "seqlab-train")
    overrides = [*compose_overrides(), f"tracking.store_dir={tmp_path / 'mlruns'}"]
    # Hydra's flags (-m) must come before the overrides.
    flags = [a for a in args if a.startswith("-")]
    args = [a for a in args if not a.startswith("-")]
    return subprocess.run(
        [script, *flags, *overrides, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def compose_overrides():
    from tests.e2e.helpers import TINY

    return TINY


def test_console_script_trains_and_logs(tmp_path, data_dir):
    proc = _cli(tmp_path, "data.sampler={prompt:'ROMEO:',length:40}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val_loss=" in proc.stdout and "MLflow run" in proc.stdout
    assert "--- sample ('ROMEO:' + 40 generated) ---" in proc.stdout
    (r,) = all_runs(store_client(tmp_path))
    assert r.info.status == "FINISHED"


def test_console_script_bad_value_is_one_line_without_traceback(tmp_path, data_dir):
    proc = _cli(tmp_path, "model.cell.name=transistor")
    assert proc.returncode == 2
    assert "error: unknown model.cell 'transistor'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_multirun_children_share_one_parent(tmp_path, data_dir):
    # Through Hydra's submitit launcher, as on a cluster: each job is its own
    # process started by submitit's local executor (the SLURM one, on a cluster).
    proc = _cli(tmp_path, "-m", "hydra/launcher=submitit_local", "model.hidden_size=8,16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = all_runs(store_client(tmp_path))
    parents = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.tags["mlflow.runName"] for c in children} == {"model.hidden_size=8", "model.hidden_size=16"}
    assert parents[0].info.status == "FINISHED"
    assert all(c.info.status == "FINISHED" for c in children)
    # The parent holds the sweep's answer: the best child and the one-page report.
    client = store_client(tmp_path)
    best = min(children, key=lambda c: c.data.metrics["val_loss"])
    parent = client.get_run(parents[0].info.run_id)
    assert parent.data.tags["seqlab.best_child"] == best.info.run_id
    assert parent.data.metrics["best_val_loss"] == pytest.approx(best.data.metrics["val_loss"])
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/runs.csv", "report/learning_curves.png"} <= report


def test_slurm_launcher_preset_composes():
    from hydra import compose, initialize_config_dir

    from seqlab.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=cpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.cpus_per_task, launcher.timeout_min) == ("cpu", 8, 120)


def test_multirun_with_a_bad_value_is_one_line_and_the_parent_ends_failed(tmp_path, data_dir):
    proc = _cli(tmp_path, "-m", "model.hidden_size=8,16", "+trainer.clipnrom=1.0")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: unknown key trainer.clipnrom=1.0; did you mean trainer.clipnorm?" in proc.stderr
    assert "Traceback" not in proc.stderr
    runs = all_runs(store_client(tmp_path))
    (parent,) = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    assert parent.info.status == "FAILED" and "clipnrom" in parent.data.tags["failure_reason"]
