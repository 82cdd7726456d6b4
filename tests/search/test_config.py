"""seqlab-search's command line: one clear error per bad input, before any training."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra.core.config_store import ConfigStore

from seqlab.cli.search import main
from seqlab.errors import ConfigError
from seqlab.search.config import load

SPACE = {"optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
BASE = {"objective": "val_loss", "direction": "minimize", "n_trials": 2, "overrides": ["debug=tiny"]}
ConfigStore.instance().store(group="hparams_search", name="test_bad_key",
                             node={**BASE, "params": {**SPACE, "model.hiden_size": {"type": "int", "low": 8, "high": 16}}})
ConfigStore.instance().store(group="hparams_search", name="test_bad_type",
                             node={**BASE, "params": {"model.dropout": {"type": "normal", "low": 0, "high": 1}}})
ConfigStore.instance().store(group="hparams_search", name="test_bad_choice",
                             node={**BASE, "params": {"model/cell": {"type": "categorical", "choices": ["lstm", "transistor"]}}})


def test_the_tiny_preset_composes(tmp_path):
    search = load(["hparams_search=tiny", f"tracking.store_dir={tmp_path / 'mlruns'}", "n_trials=3"])
    assert search.study_name == "tiny" and search.n_trials == 3 and search.keys == [
        "optimizer.learning_rate", "model.hidden_size"]
    cfg = search.trial_config(7, {"optimizer.learning_rate": 0.01, "model.hidden_size": 16})
    assert cfg.optimizer.learning_rate == 0.01 and cfg.model.hidden_size == 16
    assert cfg.trainer.epochs == 2 and cfg.tracking.store_dir == str(tmp_path / "mlruns")
    assert cfg.callbacks.optuna_pruning._target_ == "seqlab.search.pruning.OptunaPruningCallback"
    assert cfg.tracking.run_name == "tiny #7 optimizer.learning_rate=0.01,model.hidden_size=16"
    assert cfg.tracking.tags["seqlab.search.trial"] == "7"


def test_char_lm_preset_composes():
    search = load(["hparams_search=char_lm"])
    assert search.keys == ["optimizer.learning_rate", "model.hidden_size", "model.dropout"]
    assert search.base.data.seq_len == 128 and search.base.trainer.epochs == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hparams_search=charlm"], "unknown hparams_search 'charlm': choose one of char_lm"),
        ([], "choose a search space: hparams_search=<name>"),
        (["hparams_search=test_bad_key"], "param 'model.hiden_size' (value 8) does not fit the config: "
                                          "Could not override 'model.hiden_size'"),
        (["hparams_search=test_bad_type"], "params.model.dropout: unknown distribution type 'normal'"),
        (["hparams_search=test_bad_choice"], "param 'model/cell' (value 'transistor')"),
        (["hparams_search=tiny", "n_trials=0"], "n_trials must be a positive integer, got 0"),
        (["hparams_search=tiny", "model.hidden_size=64"], "model.hidden_size is searched by hparams_search=tiny"),
        (["hparams_search=tiny", "model.hidden_size=8,16"], "'model.hidden_size=8,16' is a sweep"),
        (["hparams_search=tiny", "trainer.epoch=3"], "Could not override 'trainer.epoch'"),
    ],
)
def test_bad_input_is_one_clear_error(args, message):
    with pytest.raises(ConfigError) as err:
        load(args)
    assert message in str(err.value)


def test_the_console_script_prints_one_line(tmp_path, capsys):
    assert main(["hparams_search=charlm", f"tracking.store_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("error: unknown hparams_search 'charlm': choose one of char_lm, test_bad_choice, "
                           "test_bad_key, test_bad_type, tiny (files in seqlab/conf/hparams_search/)")


@pytest.mark.slow
def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "seqlab-search")
    proc = subprocess.run([script, "hparams_search=tiny", "model.dropout=0.1,0.2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: 'model.dropout=0.1,0.2' is a sweep" in proc.stderr
    assert "Traceback" not in proc.stderr
