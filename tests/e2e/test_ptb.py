"""End to end on real PTB: word tokenizer, stateful truncated BPTT, step decay, MLflow records.
And the BPE tokenizer through the whole experiment on Tiny Shakespeare."""

import json
import math

import pytest
from hydra import compose, initialize_config_dir

from seqlab.cli import CONFIG_DIR
from seqlab.data.tokenizers import BPETokenizer, load_tokenizer
from seqlab.experiment import run
from tests.e2e.helpers import all_runs, compose_cfg, store_client

pytestmark = pytest.mark.slow

# The published small configuration, shrunk: a slice of PTB, a tiny LSTM.
PTB_TINY = [
    "experiment=ptb_zaremba_small",
    "data.limit_chars=150000",
    "model.embedding_dim=32",
    "model.hidden_size=32",
    "trainer.batch_size=16",
    "data.seq_len=20",
    "trainer.epochs=2",
    "trainer.verbose=0",
    "lr_schedule.decay_after_epochs=1",
    "tracking.log_every_n_steps=50",
]


def test_short_stateful_ptb_run_lowers_validation_perplexity(tmp_path, data_dir):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*PTB_TINY, f"tracking.store_dir={tmp_path / 'mlruns'}",
                                          "tracking.log_model=false"])
    results = run(cfg, output_dir=tmp_path / "out")

    client = store_client(tmp_path)
    (r,) = all_runs(client, "language_modeling")
    assert r.info.status == "FINISHED"
    params = r.data.params
    vocab = int(params["data_info.vocab_size"])
    assert 1000 < vocab < 10000  # word types of the slice, capped by PTB's 10k
    # words of validation never seen in the training slice are counted as OOV
    assert 0.0 < float(params["data_info.validation_oov_rate"]) < 0.3
    assert params["data.batching"] == "streams" and params["data.tokenizer"] == "word"
    steps = int(params["trainer_info.steps_per_epoch"])
    assert steps == (int(params["data_info.train_tokens"]) // 16 - 1) // 20 > 50

    history = [m.value for m in client.get_metric_history(r.info.run_id, "val_perplexity")]
    # one point per epoch (the last epoch's value is not logged again at the end)
    assert len(history) == 2
    assert history[1] < history[0] < vocab  # learns, well below the uniform baseline
    assert history[1] < 0.2 * vocab
    # val_loss is the exact token-weighted mean over the padded streams: with the
    # time-summed loss it is T x ln(perplexity) (Keras alone would count the
    # padded last batch as a full one).
    val_loss = [m.value for m in client.get_metric_history(r.info.run_id, "val_loss")]
    assert val_loss[1] == pytest.approx(20 * math.log(history[1]), rel=1e-5)
    assert r.data.metrics["test_loss"] == pytest.approx(20 * math.log(r.data.metrics["test_perplexity"]), rel=1e-5)
    # scored as one stream over the whole test split (the preset's test_streams: 1)
    assert params["data.test_streams"] == "1"
    assert "test_perplexity" in r.data.metrics and 1.0 < r.data.metrics["test_perplexity"] < 0.2 * vocab
    assert results["val_perplexity"] == pytest.approx(history[-1], rel=1e-6)
    tok = json.loads((tmp_path / "out" / "tokenizer.json").read_text())
    assert tok["kind"] == "word" and tok["words"][:2] == ["<unk>", "<eos>"]


def test_bpe_tokenizer_runs_through_the_experiment(tmp_path, data_dir):
    cfg = compose_cfg(tmp_path, "data.tokenizer=bpe", "+data.tokenizer_options.vocab_size=300",
                      "trainer.steps_per_epoch=5", "tracking.log_model=false")
    run(cfg, output_dir=tmp_path / "out")
    (r,) = all_runs(store_client(tmp_path))
    assert r.info.status == "FINISHED"
    assert r.data.params["data_info.vocab_size"] == "300"
    # characters of validation unseen in the 20k-character training slice are <unk>
    assert 0.0 <= float(r.data.params["data_info.validation_oov_rate"]) < 0.05
    tok = load_tokenizer(tmp_path / "out" / "tokenizer.json")
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 300


@pytest.mark.parametrize(
    "experiment, parameters",
    [
        # embedding V*H + 2 LSTM layers 4H(2H)+4H + softmax H*V+V, V = 10,000
        ("ptb_zaremba_small", 10000 * 200 + 2 * (4 * 200 * 400 + 800) + 200 * 10000 + 10000),
        ("ptb_zaremba_medium", 10000 * 650 + 2 * (4 * 650 * 1300 + 2600) + 650 * 10000 + 10000),
        ("shakespeare_char", None),
    ],
)
def test_experiment_presets_build_the_published_models(experiment, parameters):
    from seqlab.instantiate import build

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    if experiment.startswith("ptb"):
        assert cfg.data.batching == "streams" and cfg.data.loss == "time_sum"
        assert cfg.data.tokenizer == "word" and cfg.optimizer.learning_rate == 1.0
        kwargs = {"vocab_size": 10000, "stateful": True, "batch_size": int(cfg.trainer.batch_size)}
    else:
        kwargs = {"vocab_size": 66}
    model = build(cfg.model, **kwargs)
    if parameters is not None:
        assert model.count_params() == parameters
        scale = float(cfg.model.init_scale)
        kernel = model.get_layer("rnn_0").weights[0].numpy()
        assert scale * 0.9 < abs(kernel).max() <= scale
        assert model.input_shape == (20, None)
