"""Re-score a finished stateful language-model run with N parallel streams.

    python experiments/language_modeling/rescore.py --store mlruns RUN_ID [--streams 1 20] [--log]

Loads the run's ``model.keras`` and ``config.yaml`` artifacts, rebuilds its
data (same tokenizer fit, so the same ids), and scores validation and test
with ``seqlab.training.stateful.evaluate_streams``: ``--streams 1`` is one
pass over each split in order, as the TensorFlow PTB tutorial scores test
(its published 115.91 for the small configuration). With ``--log`` the
figures are added to the run as ``{split}_perplexity_{N}streams``.

Runs trained with ``trainer.test_streams`` already log the one-stream test
perplexity as ``test_perplexity``; this is for runs that predate it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import keras
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

import seqlab.models  # noqa: F401  (registers seqlab layers for load_model)
from seqlab.instantiate import build
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
    trainer = config.trainer
    data = build(config.data, batch_size=trainer.batch_size, seq_len=trainer.seq_len, seed=trainer.seed)
    if data.split_ids is None:
        raise SystemExit(f"run {args.run_id}: its data ({config.data.name}) has no token ids to re-score")
    figures = {}
    for streams in args.streams:
        for split in args.splits:
            scores = evaluate_streams(
                model, data.split_ids[split], streams=streams, seq_len=int(trainer.seq_len),
                loss=data.loss(), metrics=data.metrics(),
            )
            name = "val" if split == "validation" else split
            figures[f"{name}_perplexity_{streams}streams"] = scores["perplexity"]
            print(f"{split:10s} {streams:3d} stream(s): perplexity {scores['perplexity']:.2f}  "
                  f"({data.split_ids[split].size - 1} predictions)")
    if args.log:
        for key, value in figures.items():
            client.log_metric(args.run_id, key, float(value))
        print(f"logged {sorted(figures)} to run {args.run_id}")


if __name__ == "__main__":
    main()
