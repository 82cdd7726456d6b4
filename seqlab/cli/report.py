"""``seqlab-report``: one page per sweep, from the MLflow store (offline).

    seqlab-report                              # the latest sweep of experiment "seqlab" in ./mlruns
    seqlab-report --parent <run id> --out reports/cells
    seqlab-report --experiment adding --metric val_loss --metric test_loss
    seqlab-report --format markdown            # just the table, on stdout (paste into a README)
    seqlab-report --log                        # also log the files on the sweep's parent run
    seqlab-report --all                        # every run of the experiment, not one sweep
    seqlab-report --curve accuracy --curve grad_norm/stem   # also curves.png: these metrics, runs overlaid

Columns: the swept keys and the chosen metrics; the best run (by the primary
metric: the first --metric, else the run's seqlab.primary_metric tag, else
val_loss) is marked ★. A sweep over trainer.seed adds a table of mean ± std
per setting of the other keys. Writes report.md, report.html (self-contained),
runs.csv and the learning-curve PNGs to --out (default reports/<parent run>/).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from seqlab.cli import quiet_tensorflow


def _tracking_uri(args) -> str:
    from seqlab.tracking.store import resolve_tracking_uri

    if args.tracking_uri:
        return args.tracking_uri
    if args.store_dir:  # an explicit folder wins over the environment
        return resolve_tracking_uri(
            {"store_dir": args.store_dir, "tracking_uri": None}, use_env=False
        )
    return resolve_tracking_uri({"store_dir": "mlruns"})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seqlab-report",
        description="seqlab-report: one page per sweep, from the MLflow store (offline).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]),
    )
    p.add_argument(
        "--experiment", default="seqlab", help="MLflow experiment name (tracking.experiment_name)"
    )
    p.add_argument(
        "--parent", default=None, help="the sweep's parent run id (default: the latest sweep)"
    )
    p.add_argument(
        "--all", action="store_true", help="every run of the experiment instead of one sweep"
    )
    p.add_argument(
        "--store-dir",
        default=None,
        help="embedded store folder (tracking.store_dir); default: $MLFLOW_TRACKING_URI, else ./mlruns",
    )
    p.add_argument(
        "--tracking-uri", default=None, help="overrides --store-dir and MLFLOW_TRACKING_URI"
    )
    p.add_argument(
        "--metric",
        action="append",
        help="metric column (repeatable); the first decides the best run",
    )
    p.add_argument(
        "--curve",
        action="append",
        help="a metric drawn against the step in curves.png, every run overlaid (repeatable)",
    )
    p.add_argument(
        "--sort",
        default=None,
        help="the metric that decides the best run and the order (default: the first --metric)",
    )
    p.add_argument(
        "--format",
        choices=["text", "markdown"],
        default=None,
        help="print the table to stdout only (no files)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for the report files (default: reports/<parent run name>-<id>/)",
    )
    p.add_argument(
        "--log",
        action="store_true",
        help="log the report files on the parent run (artifact folder report/)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """The console script; a closed pipe (``seqlab-report | head``) ends quietly."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # Python's recipe: point stdout at devnull so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(argv: list[str] | None) -> int:
    quiet_tensorflow()
    args = parser().parse_args(argv)

    from seqlab.report import ReportError, collect, default_out_dir, write_report
    from seqlab.report.table import as_text, runs_table, seeds_table

    uri = _tracking_uri(args)
    try:
        if args.log and args.all:
            raise ReportError("--log needs one sweep (its parent run keeps the files); drop --all")
        sweep = collect(
            uri,
            parent_id=args.parent,
            experiment=args.experiment,
            metrics=args.metric,
            all_runs=args.all,
            primary=args.sort,
        )
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    tables = [t for t in (seeds_table(sweep), runs_table(sweep)) if t is not None]
    markdown = args.format == "markdown"
    text = "\n\n".join(
        (f"{t.title}:\n" if len(tables) > 1 else "") + as_text(t, markdown) for t in tables
    )
    if args.format and not args.out and not args.log:  # a quick look, as before
        print(text)
        return 0
    out = Path(args.out) if args.out else default_out_dir(sweep)
    try:
        files = write_report(sweep, out, curves=args.curve)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    direction = "lowest" if sweep.direction == "min" else "highest"
    print(
        f"{sweep.parent_name}: {len(sweep.children)} runs, best ★ = {direction} {sweep.primary}\n"
    )
    print(text)
    if args.log:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        for path in files:
            client.log_artifact(sweep.parent_id, str(path), artifact_path="report")
        print(f"\nlogged {len(files)} files on run {sweep.parent_id} (artifacts report/)")
    print(f"\nreport: {(out / 'report.html').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
