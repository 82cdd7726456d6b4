"""End to end on real Multi30k: the translation preset, shrunk, through seqlab.experiment.run;
what MLflow recorded (BLEU metrics, sacreBLEU signature tags, translations, vocabulary)."""

from __future__ import annotations

import pytest

from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow

TINY_TRANSLATION = [
    "experiment=multi30k_transformer",
    "data.limit=48",
    "data.vocab_size=500",
    "data.batch_tokens=256",
    "data.decoding.strategy=beam",
    "data.decoding.beam_width=2",
    "data.decoding.max_new_tokens=10",
    "data.decoding.jit_compile=false",
    "model.d_model=16",
    "model.num_heads=2",
    "model.num_layers=1",
    "model.ff_dim=16",
    "trainer.batch_size=16",
    "trainer.jit_compile=false",
    "lr_schedule.warmup_steps=2",
]


def test_translation_preset_trains_decodes_scores_and_tracks(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, *TINY_TRANSLATION, debug="fast")
    results = run(cfg, output_dir=tmp_path / "out")

    client = store_client(tmp_path)
    (r,) = all_runs(client, "translation")
    assert r.info.status == "FINISHED" and r.info.run_id == results["run_id"]
    params, metrics, tags = r.data.params, r.data.metrics, r.data.tags
    assert params["data_info.train_pairs"] == "48" and params["data_info.test_pairs"] == "48"
    assert params["data_info.target_vocab_size"] == "500" and params["data.vocabulary"] == "shared"
    assert params["model.share_embeddings"] == "True" and params["trainer_info.steps_per_epoch"] == "3"
    expected = {"loss", "val_loss", "val_perplexity", "val_accuracy", "tokens_per_sec", "test_loss",
                "test_perplexity", "test_word_perplexity", "test_accuracy", "test_bleu", "test_bleu_lc"}
    assert expected <= set(metrics)
    assert metrics["test_bleu"] == pytest.approx(results["test_bleu"])
    assert 0.0 <= metrics["test_bleu"] < 5.0  # three steps of a tiny model
    assert 1.0 < metrics["test_perplexity"] <= 2 * 500
    assert tags["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert tags["sacrebleu_signature_lc"].startswith("nrefs:1|case:lc|eff:no|tok:13a|smooth:none")
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"test_translations.tsv", "vocab.json", "config.yaml"} <= artifacts
    lines = (tmp_path / "out" / "test_translations.tsv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 49 and lines[0] == "source\treference\thypothesis"
