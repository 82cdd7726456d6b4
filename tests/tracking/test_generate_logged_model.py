"""seqlab-generate run_id=<id> on a run whose model is an MLflow logged model
(the Keras flavour, as seqlab-train logs it now), in process."""

from __future__ import annotations

import io

from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.cli.generate import run as generate
from seqlab.generation import beam_search_text
from seqlab.tracking.run import TrackedRun
from tests.generation.conftest import tiny_lm


def test_generate_loads_the_logged_model_of_a_run(tmp_path):
    from seqlab.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.fit("the cat sits on the mat.\nROMEO: a dog!")
    tokenizer.save(tmp_path / "tokenizer.json")
    model = tiny_lm("gru", vocab=tokenizer.vocab_size)
    tracking = {"enabled": True, "store_dir": str(tmp_path / "mlruns"), "experiment_name": "gen"}
    with TrackedRun(tracking, run_name="logged") as tracked:
        tracked.log_artifact(tmp_path / "tokenizer.json")
        assert tracked.log_model(model) == f"runs:/{tracked.run_id}/model"

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=[
            f"run_id={tracked.run_id}", f"tracking.store_dir={tmp_path / 'mlruns'}", "prompt=the",
            "strategy=beam", "beam_width=2", "max_new_tokens=6", "show_distribution=0",
        ])
    out, err = io.StringIO(), io.StringIO()
    assert generate(cfg, out=out, err=err) == 0, err.getvalue()
    (beam, *_) = beam_search_text(model, tokenizer, "the", 6, beam_width=2)
    assert out.getvalue().splitlines()[1] == "the" + beam.text  # the same model answered
