"""End to end: the vision presets on real images (tiny sizes), what MLflow recorded."""

from __future__ import annotations

import socket
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.errors import DataNotFoundError
from seqlab.experiment import run, validate
from seqlab.instantiate import build
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow

QUIET = ["tracking.log_model=false"]


def _artifacts(client, run_id, path=None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_fashion_cnn_trains_and_logs_accuracy_and_a_confusion_matrix(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, "experiment=fashion_cnn", *QUIET, debug="fast")
    results = run(cfg, output_dir=tmp_path / "out")

    client = store_client(tmp_path)
    (r,) = all_runs(client, "vision")
    assert r.info.status == "FINISHED" and r.info.run_id == results["run_id"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy", "test_loss", "images_per_sec"):
        assert key in r.data.metrics, key
    assert 0.0 <= r.data.metrics["test_accuracy"] <= 1.0
    params = r.data.params
    assert (params["data_info.train_images"], params["data_info.validation_images"]) == ("54000", "6000")
    assert params["data_info.test_images"] == "10000" and params["data_info.image_shape"] == "28x28x1"
    assert params["model.filters"] == "[32, 64, 128]" and params["trainer_info.jit_compile"] == "False"
    assert {"plots/confusion_matrix.png", "plots/learning_curves.png"} <= _artifacts(client, r.info.run_id, "plots")
    png = tmp_path / "out" / "plots" / "confusion_matrix.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def _reference_scores(logits: np.ndarray, masks: np.ndarray) -> tuple[float, float, float]:
    predicted = logits[..., 0] > 0
    truth = masks[..., 0] == 1
    tp = np.sum(predicted & truth)
    fp = np.sum(predicted & ~truth)
    fn = np.sum(~predicted & truth)
    return float(np.mean(predicted == truth)), tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def test_membrane_unet_tiny_logs_pixel_accuracy_iou_dice_and_mask_previews(tmp_path, data_dir):
    tiny = ["data.image_size=64", "data.crop_size=32", "data.patches_per_epoch=16", "data.mask_preview=2",
            "model.base_filters=4", "model.depth=2", "trainer.batch_size=4"]
    cfg = compose_cfg(tmp_path, "experiment=membrane_unet", *tiny, *QUIET, debug="fast")
    results = run(cfg, output_dir=tmp_path / "out")

    client = store_client(tmp_path)
    (r,) = all_runs(client, "vision")
    assert r.info.status == "FINISHED"
    metrics = r.data.metrics
    for key in ("pixel_accuracy", "iou", "dice", "val_pixel_accuracy", "val_iou", "val_dice",
                "test_pixel_accuracy", "test_iou", "test_dice", "images_per_sec"):
        assert key in metrics, key
    assert r.data.params["data_info.holdout_slices"] == "24-29"
    assert r.data.params["data_info.patch_size"] == "32x32"
    assert "plots/masks.png" in _artifacts(client, r.info.run_id, "plots")

    # the test scores equal NumPy's on the checkpoint's predictions of the tiles the run scored
    model = keras.models.load_model(tmp_path / "out" / "checkpoints" / "last.keras")
    data = build(cfg.data, batch_size=cfg.trainer.batch_size, seed=cfg.trainer.seed)
    batches = list(data.test.take(cfg.trainer.test_steps))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    expected = _reference_scores(model.predict(x, verbose=0), y)
    got = (results["test_pixel_accuracy"], results["test_iou"], results["test_dice"])
    assert got == pytest.approx(expected, abs=1e-5)
    assert metrics["test_dice"] == pytest.approx(results["test_dice"], abs=1e-6)


def _closed_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cifar10_resnet20_composes_and_offline_fails_fast_with_the_run_closed(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", f"127.0.0.1:{_closed_local_port()}")
    monkeypatch.setenv("SEQLAB_CACHE_DIR", str(tmp_path / "cache"))
    cfg = compose_cfg(tmp_path, "experiment=cifar10_resnet20", debug="fast")
    validate(cfg)
    assert cfg.data.name == "cifar10" and cfg.model.depth == 20
    # the builder this preset names, on the shapes cifar10 gives: ResNet-20's 0.27 M parameters
    model = build(cfg.model, input_shape=(32, 32, 3), num_classes=10)
    assert round(model.count_params() / 1e6, 2) == 0.27
    with pytest.raises(DataNotFoundError, match="TFDS image dataset 'cifar10' is not available"):
        run(cfg, output_dir=tmp_path / "out")
    (r,) = all_runs(store_client(tmp_path), "vision")
    assert r.info.status == "FAILED" and "cifar10" in r.data.tags["failure_reason"]


def test_cifar10_resnet20_trains_on_tfds_mock_data(tmp_path, monkeypatch):
    """The whole TFDS path without a download: tfds.testing.mock_data serves random CIFAR-shaped examples."""
    import tensorflow_datasets as tfds

    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", "off")
    monkeypatch.setenv("SEQLAB_CACHE_DIR", str(tmp_path / "cache"))
    # ResNet-8 (6n+2, n=1): the preset's family at the smallest depth, to keep the test short
    cfg = compose_cfg(tmp_path, "experiment=cifar10_resnet20", "model.depth=8", "trainer.batch_size=8", *QUIET,
                      debug="fast")
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        run(cfg, output_dir=tmp_path / "out")
    client = store_client(tmp_path)
    (r,) = all_runs(client, "vision")
    assert r.info.status == "FINISHED"
    assert r.data.params["data_info.image_shape"] == "32x32x3" and r.data.params["model_info.parameters"] == str(
        build(cfg.model, input_shape=(32, 32, 3), num_classes=10).count_params())
    assert {"test_accuracy", "val_accuracy"} <= set(r.data.metrics)
    assert "plots/confusion_matrix.png" in _artifacts(client, r.info.run_id, "plots")


@pytest.mark.parametrize("preset", ["fashion_resnet", "mnist_cnn"])
def test_the_other_presets_compose_and_validate(tmp_path, preset):
    validate(compose_cfg(tmp_path, f"experiment={preset}", debug=None))


def test_the_shortcut_study_sweeps_plain_and_residual_at_two_depths(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=shortcut_study"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert (params["model"], str(params["model.depth"])) == ("plain_net,resnet", "20,56")
    models = set()
    for model in params["model"].split(","):
        for depth in params["model.depth"].split(","):
            job = compose_cfg(tmp_path, "experiment=shortcut_study", f"model={model}", f"model.depth={depth}",
                              debug=None)
            validate(job)
            assert job.data.validate_on_test and job.callbacks.grad_norms is not None
            assert job.callbacks.spectrum is None and job.callbacks.grad_time is None
            built = build(job.model, input_shape=(28, 28, 1), num_classes=10)
            models.add(built.name)
            assert "stem" in [layer.name for layer in built.layers]  # grad_norm/stem: the first layer
    assert models == {"plain20", "plain56", "resnet20", "resnet56"}


def test_every_vision_preset_is_listed_in_the_vision_readme():
    readme = Path(__file__).resolve().parents[2] / "experiments" / "vision" / "README.md"
    text = readme.read_text()
    for preset in ("fashion_cnn", "fashion_resnet", "mnist_cnn", "membrane_unet", "cifar10_resnet20"):
        assert f"experiment={preset}" in text, preset
