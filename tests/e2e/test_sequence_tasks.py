"""Sequence-task presets end to end (debug=fast, tiny models): what MLflow recorded.

One classification fold, the CoNLL chunker and the airline forecaster run through
``seqlab.experiment.run`` unchanged; the test scores each task computes its own way
(F1, seqeval chunk F1, forecast errors beside the baselines) land in the run.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow

TINY = ["tracking.log_model=false", "trainer.test_steps=null"]


def _only_run(tmp_path):
    (r,) = all_runs(store_client(tmp_path), "sequence_tasks")
    assert r.info.status == "FINISHED"
    return r


def test_sentiment_fold_records_accuracy_and_f1(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, "experiment=sentiment_rnn", "data.fold=3", "model.embedding_dim=8",
                      "model.hidden_size=4", *TINY, debug="fast")
    run(cfg, output_dir=tmp_path / "out")
    r = _only_run(tmp_path)
    assert r.data.params["data.fold"] == "3" and r.data.params["data_info.fold"] == "3"
    assert r.data.params["model.bidirectional"] == "True"
    assert int(r.data.params["data_info.test_size"]) in (1066, 1067)
    for key in ("val_accuracy", "test_accuracy", "test_f1", "test_loss", "sequences_per_sec"):
        assert key in r.data.metrics, key
    assert 0.0 <= r.data.metrics["test_accuracy"] <= 1.0
    assert "vocab.json" in {a.path for a in store_client(tmp_path).list_artifacts(r.info.run_id)}


def test_chunker_records_seqeval_f1(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, "experiment=conll_tagger", "model.embedding_dim=8", "model.hidden_size=4",
                      *TINY, debug="fast")
    run(cfg, output_dir=tmp_path / "out")
    r = _only_run(tmp_path)
    assert r.data.params["data_info.input_pos"] == "True"
    assert r.data.params["data_info.test_sentences"] == "2012"
    for key in ("test_accuracy", "test_chunk_f1", "test_chunk_precision", "test_chunk_recall"):
        assert 0.0 <= r.data.metrics[key] <= 1.0, key
    artifacts = {a.path for a in store_client(tmp_path).list_artifacts(r.info.run_id)}
    assert {"vocab.json", "tags.json", "pos_vocab.json"} <= artifacts


def test_forecaster_records_its_errors_beside_the_baselines(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, "experiment=forecast_rnn", "data.series=airline", "model.hidden_size=4",
                      *TINY, debug="fast")
    run(cfg, output_dir=tmp_path / "out")
    r = _only_run(tmp_path)
    metrics = r.data.metrics
    for prefix in ("", "naive_", "seasonal_naive_", "ets_"):
        for error in ("mae", "rmse", "mase"):
            assert f"test_{prefix}{error}" in metrics, prefix + error
    # The seasonal-naive figure, recomputed from the CSV: the last 24 months, 13 origins x 12 steps.
    with open(data_dir / "timeseries" / "airline-passengers.csv") as f:
        y = np.array([float(row[1]) for row in list(csv.reader(f))[1:]])
    errors = [abs(y[o + h] - y[o + h - 12]) for o in range(120, 133) for h in range(12)]
    assert metrics["test_seasonal_naive_mae"] == pytest.approx(np.mean(errors), rel=1e-6)
    assert metrics["test_seasonal_naive_mase"] == pytest.approx(
        np.mean(errors) / np.mean(np.abs(y[12:108] - y[:96])), rel=1e-6)
