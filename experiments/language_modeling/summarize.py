"""Print the per-epoch curve and final figures of language-modeling runs.

    python experiments/language_modeling/summarize.py --store /work/lm_runs/mlruns [RUN_ID ...]

Without run ids, every run of the ``language_modeling`` experiment is listed.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from mlflow.tracking import MlflowClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="mlruns", help="store_dir of the runs (holds mlflow.db)")
    parser.add_argument("--experiment", default="language_modeling")
    parser.add_argument("run_ids", nargs="*")
    args = parser.parse_args()
    client = MlflowClient(f"sqlite:///{Path(args.store).resolve() / 'mlflow.db'}")
    if args.run_ids:
        runs = [client.get_run(r) for r in args.run_ids]
    else:
        exp = client.get_experiment_by_name(args.experiment)
        runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time"]) if exp else []
    for run in runs:
        info, params = run.info, run.data.params
        start = dt.datetime.fromtimestamp(info.start_time / 1000, dt.timezone.utc)
        end = dt.datetime.fromtimestamp(info.end_time / 1000, dt.timezone.utc) if info.end_time else None
        wall = (end - start).total_seconds() if end else None
        print(f"run {info.run_id} model={params.get('model.name')} status={info.status} "
              f"start={start:%Y-%m-%d %H:%M}Z wall={f'{wall:.0f} s' if wall else 'running'}")
        history = {
            key: {m.step: m.value for m in client.get_metric_history(info.run_id, key)}
            for key in ("perplexity", "val_perplexity", "lr", "epoch_time_s")
        }
        for epoch in sorted(history["val_perplexity"]):
            row = {k: v.get(epoch) for k, v in history.items()}
            if row["epoch_time_s"] is None:
                continue
            print(f"  epoch {epoch:3d}  train ppl {row['perplexity']:9.2f}  val ppl {row['val_perplexity']:9.2f}"
                  f"  lr(next) {row['lr']:.4g}  {row['epoch_time_s']:.0f} s")
        metrics = run.data.metrics
        if "test_perplexity" in metrics:
            print(f"  final: val ppl {metrics.get('val_perplexity'):.2f}  test ppl {metrics['test_perplexity']:.2f}")
        rescored = {k: v for k, v in sorted(metrics.items()) if k.endswith("streams")}
        if rescored:  # added by rescore.py --log
            print("  rescored: " + "  ".join(f"{k} {v:.2f}" for k, v in rescored.items()))


if __name__ == "__main__":
    main()
