"""End to end: the Transformer LM through run() on a slice of Tiny Shakespeare,
sampled through its KV cache at the end, recorded in MLflow."""

from __future__ import annotations

import pytest

from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow


def test_transformer_lm_runs_and_is_tracked(tmp_path, data_dir):
    cfg = compose_cfg(
        tmp_path,
        "model=transformer_lm",
        "data.limit_chars=20000",
        "data.seq_len=32",
        "data.sampler={prompt:'ROMEO:',length:40}",
        "model.d_model=32",
        "model.num_layers=1",
        "trainer.batch_size=8",
        debug="fast",
    )
    results = run(cfg, output_dir=tmp_path / "out")

    client = store_client(tmp_path)
    (r,) = all_runs(client)
    assert r.info.status == "FINISHED" and r.info.run_id == results["run_id"]
    vocab = int(r.data.params["data_info.vocab_size"])
    for key in ("loss", "val_loss", "val_perplexity", "tokens_per_sec", "test_loss"):
        assert key in r.data.metrics, key
    assert 1.0 < r.data.metrics["val_perplexity"] < 2 * vocab
    # The context length reached the model from the data config.
    assert (
        r.data.params["model.max_length"] == "32" and r.data.params["model.position"] == "learned"
    )
    assert r.data.params["trainer_info.jit_compile"] == "False"  # auto: graph mode on a CPU
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "tokenizer.json", "samples.txt"} <= artifacts
    # The final sample: 6 + 40 characters, past the 32-token context (the cache window slid).
    sample = (tmp_path / "out" / "samples.txt").read_text()
    final = sample.split("=== final ===\nROMEO:", 1)[1]
    assert len(final) >= 40
    assert [m.source_run_id for m in client.search_logged_models([r.info.experiment_id])] == [
        r.info.run_id
    ]
