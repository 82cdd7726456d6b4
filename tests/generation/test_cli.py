"""seqlab-generate: the .keras route, the MLflow run-id route and bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.cli.generate import run
from seqlab.data.tokenizers import load_tokenizer
from seqlab.generation import beam_search_text, generate_texts

from .conftest import tiny_lm

SCRIPT = Path(sys.executable).with_name("seqlab-generate")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from seqlab.data.tokenizers import CharTokenizer

    folder = tmp_path_factory.mktemp("saved")
    tokenizer = CharTokenizer.fit("the cat sits on the mat.\nROMEO: a dog!")
    model = tiny_lm("lstm", vocab=tokenizer.vocab_size)
    model.save(folder / "model.keras")
    tokenizer.save(folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def logged_run(saved, tmp_path_factory):
    """A run in a fresh SQLite store holding model.keras and tokenizer.json."""
    import mlflow

    store = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment(
            "gen", artifact_location=(store / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment) as active:
            mlflow.log_artifact(str(saved / "model.keras"))
            mlflow.log_artifact(str(saved / "tokenizer.json"))
    finally:
        mlflow.set_tracking_uri(previous)
    return store, uri, active.info.run_id


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=list(overrides))


def run_in_process(*overrides):
    out, err = io.StringIO(), io.StringIO()
    status = run(config(*overrides), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def cli(*args, cwd, env=None):
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "seqlab.cli.generate"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    environment.pop("MLFLOW_RUN_ID", None)
    return subprocess.run(
        command + list(args), cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def test_in_process_greedy_with_the_next_token_view(saved):
    status, out, err = run_in_process(
        f"model_path={saved / 'model.keras'}",
        "prompt=the",
        "strategy=greedy",
        "num_samples=1",
        "max_new_tokens=15",
        "show_distribution=3",
    )
    assert status == 0, err
    model, tokenizer = None, load_tokenizer(saved / "tokenizer.json")
    import keras

    model = keras.saving.load_model(saved / "model.keras", compile=False)
    (want,) = generate_texts(model, tokenizer, "the", 15, strategy="greedy")
    lines = out.splitlines()
    assert lines[0].startswith("next token: 'the' -> ") and lines[0].count(", ") == 2
    assert lines[1] == "=== sample 1/1 (strategy=greedy, seed=0) ==="
    assert out.split("===\n", 1)[1] == "the" + want + "\n"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["strategy=foo"],
            "error: unknown strategy 'foo'; choose one of greedy, temperature, top_k, top_p, beam",
        ),
        (["strategy=top_k", "k=0"], "error: k must be a positive integer, got 0; set e.g. k=40"),
        (["strategy=top_p", "p=1.5"], "error: p must be in (0, 1], got 1.5; set e.g. p=0.9"),
        (["strategy=top_p", "p=0"], "error: p must be in (0, 1], got 0"),
        (["temperature=0"], "error: temperature must be a number > 0, got 0"),
        (["strategy=beam", "beam_width=0"], "error: beam_width must be a positive integer, got 0"),
        (["prompt=''"], "error: the prompt is empty"),
        (
            ["prompt='thé'", "on_unknown=error"],
            "error: prompt 'thé' has symbols outside the vocabulary: 'é'",
        ),
        (
            ["model_path=/nonexistent/model.keras"],
            "error: model_path='/nonexistent/model.keras' does not exist",
        ),
        (["model_path=null"], "error: no model given; pass model_path="),
    ],
)
def test_bad_input_is_one_error_line_and_status_2(saved, overrides, message):
    status, out, err = run_in_process(f"model_path={saved / 'model.keras'}", *overrides)
    assert status == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1 and out == ""


def test_unknown_characters_warn_once_by_default(saved):
    status, out, err = run_in_process(
        f"model_path={saved / 'model.keras'}", "prompt='thé'", "max_new_tokens=5", "num_samples=1"
    )
    assert status == 0
    assert err.splitlines() == [
        "warning: prompt 'thé' has symbols outside the vocabulary: 'é'; they map to <unk>, "
        "which the model rarely saw (set on_unknown=error to refuse such prompts)"
    ]


def test_unknown_run_id_names_the_store(logged_run, monkeypatch):
    store, _, _ = logged_run
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    status, _, err = run_in_process("run_id=0123456789abcdef", f"tracking.store_dir={store}")
    assert status == 2
    assert err.startswith(
        f"error: MLflow run_id='0123456789abcdef' not found in sqlite:///{store}/mlflow.db"
    )
    status, _, err = run_in_process(
        "run_id=0123456789abcdef", f"tracking.store_dir={store}/missing"
    )
    assert status == 2 and err.startswith(f"error: no MLflow store at {store}/missing/mlflow.db")


def test_cli_subprocess_from_a_keras_file(saved, tmp_path):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    result = cli(
        f"model_path={saved / 'model.keras'}",
        "prompt=ROMEO:",
        "strategy=top_k",
        "k=5",
        "num_samples=2",
        "max_new_tokens=20",
        "seed=3",
        "show_distribution=0",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import keras

    model = keras.saving.load_model(saved / "model.keras", compile=False)
    want = generate_texts(
        model,
        load_tokenizer(saved / "tokenizer.json"),
        "ROMEO:",
        20,
        num_samples=2,
        seed=3,
        strategy="top_k",
        top_k=5,
        temperature=0.8,
    )
    expected = "".join(
        f"=== sample {i}/2 (strategy=top_k, k=5, temperature=0.8, seed=3) ===\nROMEO:{text}\n"
        for i, text in enumerate(want, 1)
    )
    assert result.stdout == expected
    # The command ran in workdir: it leaves no outputs/, .hydra/ or log file there.
    assert list(workdir.iterdir()) == []


def test_cli_subprocess_from_an_mlflow_run(logged_run, saved, tmp_path):
    _, uri, run_id = logged_run
    result = cli(
        f"run_id={run_id}",
        "prompt=the",
        "strategy=beam",
        "beam_width=3",
        "max_new_tokens=8",
        "show_distribution=0",
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import keras

    model = keras.saving.load_model(saved / "model.keras", compile=False)
    beams = beam_search_text(
        model, load_tokenizer(saved / "tokenizer.json"), "the", 8, beam_width=3
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    for i, beam in enumerate(beams):
        assert lines[2 * i] == (
            f"=== beam {i + 1}/3  log_prob={beam.log_prob:.4f}  score={beam.score:.4f} ==="
        )
        assert lines[2 * i + 1] == "the" + beam.text

    bad = cli("run_id=nosuchrun", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert (
        bad.stderr.strip().splitlines()[-1].startswith("error: MLflow run_id='nosuchrun' not found")
    )
