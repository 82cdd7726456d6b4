"""Mean and standard deviation of a metric over the folds of a cross-validation sweep.

    seqlab-train -m experiment=sentiment_rnn data.fold=range(10)
    python experiments/sequence_tasks/cv_mean.py                     # latest sweep of sequence_tasks
    python experiments/sequence_tasks/cv_mean.py --parent <run id> --metric test_f1 --log

Reads the sweep from the MLflow store (as seqlab-report does) and prints one
line per fold and the mean +- sample standard deviation over the FINISHED
children, one mean per setting of the other swept keys (``model/cell=lstm,gru``
gives two); ``--log`` also logs ``cv_mean/<metric>`` and ``cv_std/<metric>``
(suffixed ``/<key>_<value>`` per setting when other keys are swept) on the
sweep's parent run. (seqlab-report averages over ``trainer.seed``
sweeps only; a fold sweep gets its per-fold table there.)
"""

from __future__ import annotations

import argparse
import statistics
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="sequence_tasks")
    parser.add_argument("--parent", default=None, help="the sweep's parent run id (default: the latest)")
    parser.add_argument("--store-dir", default="mlruns")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--metric", default="test_accuracy")
    parser.add_argument("--fold-key", default="data.fold", help="the swept key that numbers the folds")
    parser.add_argument("--log", action="store_true", help="log the mean and std on the parent run")
    args = parser.parse_args(argv)

    from mlflow.tracking import MlflowClient

    from seqlab.report.collect import ReportError, collect
    from seqlab.tracking.store import resolve_tracking_uri

    uri = args.tracking_uri or resolve_tracking_uri({"store_dir": args.store_dir, "tracking_uri": None},
                                                    use_env=False)
    try:
        sweep = collect(uri, parent_id=args.parent, experiment=args.experiment, metrics=[args.metric])
    except ReportError as err:
        print(f"cv_mean: {err}", file=sys.stderr)
        return 2
    rows = sorted(
        (c for c in sweep.children if c.status == "FINISHED" and args.metric in c.metrics),
        key=lambda c: [c.values.get(k, "") for k in sweep.keys],
    )
    for c in rows:
        print(f"{' '.join(f'{k}={c.values[k]}' for k in sweep.keys)}  {args.metric}={c.metrics[args.metric]:.4f}")
    if not rows:
        print(f"cv_mean: no finished child of {sweep.parent_name} logged {args.metric}", file=sys.stderr)
        return 2
    # One mean per setting of the other swept keys (e.g. model/cell=lstm,gru x data.fold=range(10)).
    others = [k for k in sweep.keys if k != args.fold_key]
    groups: dict[tuple, list[float]] = {}
    for c in rows:
        groups.setdefault(tuple(c.values.get(k, "") for k in others), []).append(c.metrics[args.metric])
    client = MlflowClient(uri) if args.log and sweep.parent_id else None
    for setting, values in groups.items():
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        label = " ".join(f"{k}={v}" for k, v in zip(others, setting))
        print(f"{sweep.parent_name}{' ' + label if label else ''}: {args.metric} = {mean:.4f} +- {std:.4f} "
              f"over {len(values)} folds")
        if client:
            suffix = "".join(f"/{k.replace('=', '_')}_{v}" for k, v in zip(others, setting))
            client.log_metric(sweep.parent_id, f"cv_mean/{args.metric}{suffix}", mean)
            client.log_metric(sweep.parent_id, f"cv_std/{args.metric}{suffix}", std)
    skipped = len(sweep.children) - len(rows)
    if skipped:
        print(f"({skipped} children not finished or without {args.metric})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
