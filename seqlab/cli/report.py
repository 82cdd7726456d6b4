"""``seqlab-report``: compare the runs of an experiment as a table.

    seqlab-report                          # runs of experiment "seqlab" in ./mlruns
    seqlab-report --experiment adding --metric val_loss --parent <run id>
    seqlab-report --format markdown        # paste into an experiments/ README

Columns: the run name, the params that differ between the listed runs (so a
sweep shows exactly what it swept), and the chosen metrics.
"""

from __future__ import annotations

import argparse
import math
import sys

from seqlab.cli import quiet_tensorflow

DEFAULT_METRICS = ["val_loss", "val_perplexity", "test_perplexity", "tokens_per_sec", "wall_time_s"]


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def varying_params(runs) -> list[str]:
    keys = sorted({k for r in runs for k in r.data.params})
    varying = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]
    # Derived facts (data_info.*, model_info.*) follow from the swept params.
    return [k for k in varying if not k.startswith(("data_info.", "model_info.", "trainer_info.", "tracking."))]


def render(rows: list[list[str]], fmt: str) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row, widths)]
        lines.append(("| " + " | ".join(cells) + " |") if fmt == "markdown" else "  ".join(cells))
        if n == 0:
            sep = ["-" * w for w in widths]
            lines.append(("| " + " | ".join(sep) + " |") if fmt == "markdown" else "  ".join(sep))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()
    parser = argparse.ArgumentParser(prog="seqlab-report", description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="seqlab", help="MLflow experiment name (tracking.experiment_name)")
    parser.add_argument(
        "--store-dir", default=None, help="embedded store folder (tracking.store_dir); default: $MLFLOW_TRACKING_URI, else ./mlruns"
    )
    parser.add_argument("--tracking-uri", default=None, help="overrides --store-dir and MLFLOW_TRACKING_URI")
    parser.add_argument("--metric", action="append", help=f"metric column (repeatable); default {DEFAULT_METRICS}")
    parser.add_argument("--sort", default=None, help="sort by this metric (default: the first --metric)")
    parser.add_argument("--parent", default=None, help="only the children of this sweep parent run")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    args = parser.parse_args(argv)

    from mlflow.tracking import MlflowClient

    from seqlab.tracking.store import resolve_tracking_uri

    if args.tracking_uri:
        uri = args.tracking_uri
    elif args.store_dir:  # an explicit folder wins over the environment
        uri = resolve_tracking_uri({"store_dir": args.store_dir, "tracking_uri": None}, use_env=False)
    else:
        uri = resolve_tracking_uri({"store_dir": "mlruns"})
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        print(f"error: no experiment {args.experiment!r} in {uri}; experiments there: {names}", file=sys.stderr)
        return 2
    filter_string = f"tags.mlflow.parentRunId = '{args.parent}'" if args.parent else ""
    runs = [
        r
        for r in client.search_runs([experiment.experiment_id], filter_string=filter_string, max_results=1000)
        if r.data.tags.get("seqlab.sweep") != "parent"
    ]
    if not runs:
        print(f"no runs in experiment {args.experiment!r} ({uri})")
        return 0
    metrics = args.metric or DEFAULT_METRICS
    sort_key = args.sort or metrics[0]
    runs.sort(key=lambda r: r.data.metrics.get(sort_key, math.inf))
    params = varying_params(runs)
    rows = [["run", "status", *params, *metrics]]
    for r in runs:
        rows.append(
            [r.info.run_name or r.info.run_id[:8], r.info.status]
            + [r.data.params.get(p, "") for p in params]
            + [_fmt(r.data.metrics.get(m)) for m in metrics]
        )
    print(render(rows, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
