"""Re-score a finished stateful language-model run with N parallel streams.

    python experiments/language_modeling/rescore.py --store mlruns RUN_ID [--streams 1 20] [--log]

Loads the run's ``model.keras`` and ``config.yaml`` artifacts, re-encodes its
corpus (``seqlab.data.text.encode_corpus``: the same tokenizer fit, so the
same ids), and scores validation and test
with ``seqlab.training.stateful.evaluate_streams``: ``--streams 1`` is one
pass over each split in order, as the TensorFlow PTB tutorial scores test
(its published 115.91 for the small configuration). With ``--log`` the
figures are added to the run as ``{split}_perplexity_{N}streams``.

Runs trained with ``data.test_streams`` already log the one-stream test
perplexity as ``test_perplexity``; this is for runs that predate it.
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
from pathlib import Path

import keras
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

import seqlab.models  # noqa: F401  (registers seqlab layers for load_model)
from seqlab.data.text import LOSSES, encode_corpus, lm_metrics
from seqlab.training.stateful import evaluate_streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="mlruns", help="store_dir of the run (holds mlflow.db)")
    parser.add_argument("run_id")
    parser.add_argument("--streams", type=int, nargs="+", default=[1])
    parser.add_argument("--splits", nargs="+", default=["validation", "test"])
    parser.add_argument("--log", action="store_true", help="log the figures to the run")
    args = parser.parse_args()

    client = MlflowClient(f"sqlite:///{Path(args.store).resolve() / 'mlflow.db'}")
    with tempfile.TemporaryDirectory() as tmp:
        config = OmegaConf.load(client.download_artifacts(args.run_id, "config.yaml", tmp))
        model = keras.models.load_model(client.download_artifacts(args.run_id, "model.keras", tmp), compile=False)
    data = OmegaConf.to_container(config.data, resolve=True)
    if data.get("_target_") != "seqlab.data.text.build_text_lm_data":
        raise SystemExit(f"run {args.run_id}: its data ({data.get('_target_')}) is no text corpus to re-score")
    # Runs before the task-agnostic core kept the window length in trainer.seq_len.
    seq_len = int(data.get("seq_len") or config.trainer.seq_len)
    accepted = inspect.signature(encode_corpus).parameters
    _, _, ids = encode_corpus(**{k: v for k, v in data.items() if k in accepted})
    loss = LOSSES[data.get("loss", "token_mean")]
    figures = {}
    for streams in args.streams:
        for split in args.splits:
            scores = evaluate_streams(
                model, ids[split], streams=streams, seq_len=seq_len, loss=loss(), metrics=lm_metrics(),
            )
            name = "val" if split == "validation" else split
            figures[f"{name}_perplexity_{streams}streams"] = scores["perplexity"]
            print(f"{split:10s} {streams:3d} stream(s): perplexity {scores['perplexity']:.2f}  "
                  f"({ids[split].size - 1} predictions)")
    if args.log:
        for key, value in figures.items():
            client.log_metric(args.run_id, key, float(value))
        print(f"logged {sorted(figures)} to run {args.run_id}")


if __name__ == "__main__":
    main()
