"""End to end on real Multi30k: the recurrent attention preset, shrunk, through
seqlab.experiment.run: it trains, decodes with the cached recurrent step (beam),
scores BLEU and logs the attention heat map."""

from __future__ import annotations

import pytest

from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow

TINY_RNN_TRANSLATION = [
    "experiment=multi30k_rnn_attention",
    "data.limit=48",
    "data.vocab_size=500",
    "data.batch_tokens=256",
    "data.decoding.strategy=beam",
    "data.decoding.beam_width=2",
    "data.decoding.max_new_tokens=10",
    "data.decoding.jit_compile=false",
    "model.embedding_dim=16",
    "model.hidden_size=16",
    "model.attention_units=8",
    "model.cell.compile_loops=false",
    "trainer.batch_size=16",
    "trainer.jit_compile=false",
    "lr_schedule.warmup_steps=2",
]


def test_rnn_attention_preset_trains_decodes_scores_and_logs_the_attention_map(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, *TINY_RNN_TRANSLATION, debug="fast")
    results = run(cfg, output_dir=tmp_path / "out")

    client = store_client(tmp_path)
    (r,) = all_runs(client, "translation")
    assert r.info.status == "FINISHED" and r.info.run_id == results["run_id"]
    params, metrics = r.data.params, r.data.metrics
    assert params["model.attention"] == "additive" and params["model.share_embeddings"] == "True"
    assert {"loss", "val_loss", "test_perplexity", "test_bleu", "test_bleu_lc"} <= set(metrics)
    assert 0.0 <= metrics["test_bleu"] < 5.0  # three steps of a tiny model
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"test_translations.tsv", "vocab.json", "config.yaml"} <= artifacts
    plots = {a.path for a in client.list_artifacts(r.info.run_id, "plots")}
    assert "plots/test_attention.png" in plots
    png = tmp_path / "out" / "plots" / "test_attention.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
