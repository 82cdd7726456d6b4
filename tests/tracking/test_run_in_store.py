"""What one tiny run leaves in the store, read back through the tracking client:
its name, params, tags, step axes, artifacts and the logged model."""

import numpy as np
import pytest

from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow

# Two epochs of 6 steps, a step log every 5 steps: the second window crosses
# the epoch boundary.
OVERRIDES = ("trainer.epochs=2", "trainer.steps_per_epoch=6", "trainer.verbose=0")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, _empty_mlflow_db):
    import os
    import shutil
    from pathlib import Path

    if not (Path(os.environ.get("SEQLAB_DATA_DIR", "/nonexistent")) / "tiny_shakespeare" / "input.txt").is_file():
        pytest.skip("real data not found; set SEQLAB_DATA_DIR")
    tmp_path = tmp_path_factory.mktemp("tiny-run")
    (tmp_path / "mlruns").mkdir()
    shutil.copy(_empty_mlflow_db, tmp_path / "mlruns" / "mlflow.db")
    cfg = compose_cfg(tmp_path, *OVERRIDES)
    try:
        results = run(cfg, output_dir=tmp_path / "out")
    finally:
        import mlflow

        mlflow.set_tracking_uri(None)
    client = store_client(tmp_path)
    (r,) = all_runs(client)
    return tmp_path, client, r, results


def test_run_name_params_and_tags(tiny_run, data_dir):
    _, client, r, results = tiny_run
    assert r.info.run_id == results["run_id"] and r.info.status == "FINISHED"
    assert r.info.run_name == "rnn_lm/lstm"  # the model, never a random name
    params = r.data.params
    assert params["model.hidden_size"] == "32" and params["optimizer.name"] == "Adam"
    bad = [k for k in params if "_target_" in k or "_convert_" in k or k.startswith("tracking.")]
    assert bad == [] and "trainer.verbose" not in params
    assert "null" not in params.values() and "None" not in params.values()
    assert r.data.tags["seqlab.primary_metric"] == "val_loss"
    assert r.data.tags["seqlab.primary_metric.direction"] == "min"
    experiment = client.get_experiment(r.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_one_step_axis_and_no_double_logging(tiny_run, data_dir):
    _, client, r, _ = tiny_run
    run_id = r.info.run_id

    def history(key):
        return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]

    # Epoch values at the optimizer step that ended the epoch, with `epoch` beside them.
    assert history("epoch") == [(6, 1.0), (12, 2.0)]
    assert [s for s, _ in history("val_loss")] == [6, 12]  # once per epoch, not again at the end
    assert [s for s, _ in history("loss")] == [6, 12]
    assert [s for s, _ in history("step/loss")] == [5, 10]
    assert [s for s, _ in history("test_loss")] == [12]
    assert [s for s, _ in history("wall_time_s")] == [12]
    # The window across the epoch boundary (4 batches of epoch 2) is not a
    # spike against epoch 2's own rate (epoch 1 pays for tracing).
    crossing, epoch_2 = history("step/tokens_per_sec")[1][1], history("tokens_per_sec")[1][1]
    assert crossing < 2 * epoch_2


def test_artifacts_and_learning_curves(tiny_run, data_dir):
    _, client, r, _ = tiny_run
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "tokenizer.json", "plots"} <= artifacts
    assert "plots/learning_curves.png" in {a.path for a in client.list_artifacts(r.info.run_id, "plots")}


def test_logged_model_loads_and_predicts_as_the_saved_keras(tiny_run, data_dir):
    import keras
    import mlflow.keras

    from seqlab.tracking.run import load_logged_model, seqlab_custom_objects

    tmp_path, client, r, _ = tiny_run
    (logged,) = client.search_logged_models([r.info.experiment_id])  # the "Logged models" view
    assert logged.source_run_id == r.info.run_id and logged.name == "model"
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    model = load_logged_model(f"runs:/{r.info.run_id}/model", tracking_uri=uri)
    # The checkpoint holds the final weights as a .keras file.
    saved = keras.saving.load_model(tmp_path / "out" / "checkpoints" / "last.keras", compile=False)
    x = np.random.default_rng(0).integers(0, 20, size=(2, 32)).astype("int32")
    np.testing.assert_allclose(model.predict(x, verbose=0), saved.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    # The flavour's own loader, given seqlab's custom objects.
    mlflow.set_tracking_uri(uri)
    try:
        flavour = mlflow.keras.load_model(f"runs:/{r.info.run_id}/model", custom_objects=seqlab_custom_objects())
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_allclose(flavour.predict(x, verbose=0), saved.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    local = mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location, dst_path=str(tmp_path / "dl"))
    signature = mlflow.models.Model.load(local).signature
    assert signature is not None and signature.inputs.inputs[0].shape[0] == -1
