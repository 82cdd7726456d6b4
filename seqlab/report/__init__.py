"""One page per sweep, from the MLflow store (offline).

:func:`build_sweep_report` reads a sweep's parent run and children and writes
into one folder:

- ``report.md``: the tables (best marked ★) and the plots beside it,
- ``report.html``: one self-contained page (CSS inline, PNGs as data URIs),
- ``runs.csv`` (one row per child) and, when ``trainer.seed`` was swept,
  ``seeds.csv`` (mean and std per setting),
- ``learning_curves.png``, ``curves.png`` (the ``curves`` chosen) and, for runs with gradient-flow diagnostics,
  ``grad_time.png``.

Console script: ``seqlab-report`` (:mod:`seqlab.cli.report`).
"""

from __future__ import annotations

import re
from pathlib import Path

from seqlab.report.collect import ReportError, Sweep, collect

__all__ = [
    "ReportError",
    "Sweep",
    "build_sweep_report",
    "collect",
    "default_out_dir",
    "write_report",
]


def default_out_dir(sweep: Sweep, root: str | Path = "reports") -> Path:
    """``reports/<parent run name>-<first 8 of its id>`` (names repeat across sweeps)."""
    name = re.sub(r"[^\w.=,+-]+", "_", sweep.parent_name).strip("_") or "sweep"
    suffix = f"-{sweep.parent_id[:8]}" if sweep.parent_id else ""
    return Path(root) / f"{name[:80]}{suffix}"


def write_report(sweep: Sweep, out_dir: Path, curves: list[str] | None = None) -> list[Path]:
    """Write the report's files for ``sweep`` into ``out_dir``; return their paths.

    ``curves``: metrics drawn in ``curves.png`` (one panel each) besides the
    learning curves.
    """
    from seqlab.report import plots, render
    from seqlab.report.collect import grad_time_keys, histories
    from seqlab.report.table import runs_table, seeds_table

    runs = runs_table(sweep)
    seeds = seeds_table(sweep)
    tables = [t for t in (seeds, runs) if t is not None]
    grad_keys = grad_time_keys(sweep.children)
    curve_keys = list(
        dict.fromkeys([sweep.primary, "val_loss", "loss", "step/loss", "global_step"])
    )
    curves = list(dict.fromkeys(curves or []))
    logged = {k for c in sweep.children for k in c.metrics}
    missing = [m for m in curves if m not in logged]
    if missing:  # before anything is written
        raise ReportError(
            f"--curve {missing[0]!r}: no run of {sweep.parent_name!r} logged it; pick one of "
            f"{', '.join(sorted(logged))}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hist = histories(
        sweep.tracking_uri, [c.run_id for c in sweep.children], curve_keys + curves + grad_keys
    )
    images = [
        p
        for p in (
            plots.learning_curves(sweep, hist, out_dir / "learning_curves.png"),
            plots.metric_curves(sweep, hist, curves, out_dir / "curves.png") if curves else None,
            plots.grad_time(sweep, hist, grad_keys, out_dir / "grad_time.png")
            if grad_keys
            else None,
        )
        if p is not None
    ]
    md = out_dir / "report.md"
    md.write_text(render.markdown(sweep, tables, images))
    page = out_dir / "report.html"
    page.write_text(render.html_page(sweep, tables, images))
    files = [md, page, render.write_csv(runs, out_dir / "runs.csv")]
    if seeds is not None:
        files.append(render.write_csv(seeds, out_dir / "seeds.csv"))
    return files + images


def build_sweep_report(
    tracking_uri: str, parent_run_id: str, out_dir: Path, metrics: list[str] | None = None
) -> list[Path]:
    """Write the report of sweep ``parent_run_id`` into ``out_dir`` and return
    the files written (Markdown, HTML, CSV, PNG). Logging them on the parent
    run is the caller's choice (``seqlab-report --log`` does it).

    Raises :class:`ReportError` (one line) for an unknown run, a run without
    children or a metric no child logged.
    """
    return write_report(
        collect(tracking_uri, parent_id=parent_run_id, metrics=metrics), Path(out_dir)
    )
