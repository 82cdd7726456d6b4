"""seqlab.config_check: a typo or a wrongly typed value is one clear ConfigError
before anything runs; no packaged preset raises a false alarm."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.config_check import check_config, config_problems
from seqlab.errors import ConfigError
from seqlab.experiment import run
from tests.e2e.helpers import all_runs, store_client

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
DEBUGS = sorted(p.stem for p in (CONFIG_DIR / "debug").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        ("+trainer.clipnrom=1.0", "unknown key trainer.clipnrom=1.0; did you mean trainer.clipnorm?"),
        ("optimizer.learning_rate=abc", "optimizer.learning_rate='abc': expected a number, got a string"),
        ("model.dropout=abc", "model.dropout='abc': expected a number, got a string"),
        ("trainer.seed=abc", "trainer.seed='abc': expected an integer, got a string"),
        ("data.limit_chars=abc", "data.limit_chars='abc': expected an integer or null, got a string"),
        ("+model.cell.foget_bias=0.0", "unknown key model.cell.foget_bias=0.0; did you mean model.cell.forget_bias?"),
        ("trainer.deterministic=1", "trainer.deterministic=1: expected true or false, got an integer"),
        ("+tracking.log_modle=false", "unknown key tracking.log_modle=false; did you mean tracking.log_model?"),
        ("+optimizer.beta1=0.8", "unknown key optimizer.beta1=0.8; did you mean optimizer.beta_1?"),
        ("+callbacks.checkpoint.filenme=x.keras",
         "unknown key callbacks.checkpoint.filenme=x.keras; did you mean callbacks.checkpoint.filename?"),
    ],
)
def test_one_clear_error_names_the_key_the_value_and_the_type(override, message):
    with pytest.raises(ConfigError) as err:
        check_config(_compose(override))
    assert str(err.value) == message


def test_every_problem_in_one_message():
    cfg = _compose("+trainer.clipnrom=1.0", "optimizer.learning_rate=abc", "data.limit_chars=abc")
    with pytest.raises(ConfigError, match="^3 config problems: ") as err:
        check_config(cfg)
    for part in ("trainer.clipnrom=1.0", "optimizer.learning_rate='abc'", "data.limit_chars='abc'"):
        assert part in str(err.value)


def test_a_typo_fails_before_the_run_opens_or_data_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "nowhere"))  # loading would fail differently
    cfg = _compose(f"tracking.store_dir={tmp_path / 'mlruns'}", "+trainer.clipnrom=1.0")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="did you mean trainer.clipnorm"):
        run(cfg, output_dir=tmp_path / "out")
    assert time.perf_counter() - start < 1.0
    assert all_runs(store_client(tmp_path)) == []  # no MLflow run was opened
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        *[[f"experiment={e}"] for e in EXPERIMENTS],
        *[[f"debug={d}"] for d in DEBUGS],
        *[[f"experiment={e}", "debug=fast"] for e in EXPERIMENTS],
        *[[f"model/cell={p.stem}"] for p in sorted((CONFIG_DIR / "model" / "cell").glob("*.yaml"))],
        *[[f"{group}={p.stem}"] for group in ("optimizer", "lr_schedule", "tracking", "callbacks")
          for p in sorted((CONFIG_DIR / group).glob("*.yaml"))],
        ["data=ptb"], ["data=text_files", "data.path=/tmp"],
        ["experiment=adding", "model/cell=simple_rnn", "+model.cell.recurrent_initializer=identity"],
        ["data.tokenizer=bpe", "+data.tokenizer_options.vocab_size=300", "+tracking.tags.owner=me",
         "data.sampler=null", "callbacks.stop_on_nonfinite=null", "trainer.clipnorm=null", "trainer.jit_compile=true",
         "+callbacks.checkpoint.log_artifacts=true", "+model.cell.implementation=generic"],
    ],
    ids=lambda o: " ".join(o) or "default",
)
def test_packaged_presets_pass(overrides):
    assert config_problems(_compose(*overrides)) == []


@pytest.mark.parametrize("preset", SEARCHES)
def test_search_presets_pass(preset):
    from omegaconf import OmegaConf

    search = OmegaConf.load(CONFIG_DIR / "hparams_search" / f"{preset}.yaml")
    assert config_problems(_compose(*search.overrides)) == []


def test_it_takes_well_under_a_second():
    cfg = _compose("experiment=adding", "debug=fast")
    config_problems(cfg)  # imports the targets' modules once
    start = time.perf_counter()
    for _ in range(10):
        config_problems(_compose("experiment=ptb_zaremba_small"))
    assert (time.perf_counter() - start) / 10 < 0.5


def test_the_console_script_prints_one_error_line_and_exits_2(tmp_path):
    script = Path(sys.executable).parent / "seqlab-train"
    env = {**os.environ, "SEQLAB_DATA_DIR": str(tmp_path / "nowhere"), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [str(script), f"tracking.store_dir={tmp_path / 'mlruns'}", "+trainer.clipnrom=1.0",
         "optimizer.learning_rate=abc"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: 2 config problems: ")
    assert "unknown key trainer.clipnrom=1.0; did you mean trainer.clipnorm?" in errors[0]
    assert "optimizer.learning_rate='abc': expected a number, got a string" in errors[0]
    assert "Traceback" not in proc.stderr
