"""The sweep's tables: one row per child, and, when the sweep varied
``trainer.seed``, one row per setting of the other swept keys with each
metric as mean ± std over its seeds (sample standard deviation, ``ddof=1``).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

from seqlab.report.collect import SEED_KEY, Sweep, sort_value

BEST_MARK = "★"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]  # formatted cells
    records: list[dict[str, object]]  # raw values per row, for CSV
    best: int | None  # index of the best row
    run_ids: list[list[str]] = field(default_factory=list)  # the runs behind each row


def fmt(value) -> str:
    """Four significant digits (``1.500``), whole numbers from 1000 on
    (``16000``), scientific below 0.001."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:.0f}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:#.4g}".rstrip(".")
    return str(value)


def fmt_value(text: str) -> str:
    """A swept value as shown: long floats (an Optuna learning rate,
    ``0.0012345678``) to four significant digits, the rest as logged."""
    if len(text) > 8 and re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)", text):
        return f"{float(text):.4g}"
    return text


def fmt_mean_std(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return fmt(values[0])
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return f"{fmt(mean)} ± {fmt_std(std)}"


def fmt_std(std: float) -> str:
    """Two significant digits, not in scientific notation (``0.0012``, ``250``)."""
    if std == 0 or not math.isfinite(std):
        return fmt(std)
    digits = max(0, 1 - math.floor(math.log10(abs(std))))
    return f"{std:.{digits}f}"


def _name_says_only_the_values(child, keys: list[str]) -> bool:
    """A sweep child named ``model/cell=gru,trainer.seed=2`` says no more than
    its swept-key columns."""
    tokens = {t for t in re.split(r"[,\s]+", child.name) if t}
    return bool(keys) and tokens == {f"{k}={child.values[k]}" for k in keys}


def runs_table(sweep: Sweep) -> Table:
    """One row per child, best first (by the primary metric). The run-name
    column is left out when every name just repeats the swept values."""
    show_name = not all(_name_says_only_the_values(c, sweep.keys) for c in sweep.children)
    header = ["", *(["run"] if show_name else []), *sweep.keys, "status", *sweep.metrics]
    rows, records = [], []
    best = _best_index([c.metrics.get(sweep.primary) for c in sweep.children], sweep.direction)
    for i, c in enumerate(sweep.children):
        rows.append(
            [BEST_MARK if i == best else "", *([c.name] if show_name else [])]
            + [fmt_value(c.values[k]) for k in sweep.keys]
            + [c.status]
            + [fmt(c.metrics.get(m)) for m in sweep.metrics]
        )
        records.append(
            {"best": i == best, "run_id": c.run_id, "run": c.name, **c.values, "status": c.status}
            | {m: c.metrics.get(m) for m in sweep.metrics}
        )
    return Table("Runs", header, rows, records, best, [[c.run_id] for c in sweep.children])


def seeds_table(sweep: Sweep) -> Table | None:
    """Children grouped by the swept keys other than ``trainer.seed``; each
    metric as mean ± std over the group's seeds. None when no seed was swept."""
    if not sweep.seed_grouped:
        return None
    keys = [k for k in sweep.keys if k != SEED_KEY]
    groups: dict[tuple[str, ...], list] = {}
    for c in sweep.children:
        groups.setdefault(tuple(c.values[k] for k in keys), []).append(c)
    summary = []
    for values, members in groups.items():
        members = sorted(members, key=lambda c: _seed_order(c.values[SEED_KEY]))
        per_metric = {
            m: [c.metrics[m] for c in members if m in c.metrics and math.isfinite(c.metrics[m])]
            for m in sweep.metrics
        }
        summary.append((values, members, per_metric))
    primary_means = [
        statistics.fmean(p[sweep.primary]) if p[sweep.primary] else None for _, _, p in summary
    ]
    order = sorted(range(len(summary)), key=lambda i: sort_value(primary_means[i], sweep.direction))
    summary = [summary[i] for i in order]
    primary_means = [primary_means[i] for i in order]
    best = _best_index(primary_means, sweep.direction)
    header = ["", *keys, "seeds", *sweep.metrics]
    rows, records = [], []
    for i, (values, members, per_metric) in enumerate(summary):
        seeds = ",".join(c.values[SEED_KEY] for c in members)
        rows.append(
            [BEST_MARK if i == best else "", *map(fmt_value, values), f"{len(members)} ({seeds})"]
            + [fmt_mean_std(per_metric[m]) for m in sweep.metrics]
        )
        record: dict[str, object] = {
            "best": i == best,
            **dict(zip(keys, values)),
            "seeds": seeds,
            "n": len(members),
        }
        for m in sweep.metrics:
            vals = per_metric[m]
            record[f"{m}_mean"] = statistics.fmean(vals) if vals else None
            record[f"{m}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
        records.append(record)
    title = f"Over seeds ({SEED_KEY}): mean ± sample standard deviation"
    return Table(title, header, rows, records, best, [[c.run_id for c in m] for _, m, _ in summary])


def _seed_order(seed: str):
    try:
        return (0, float(seed), seed)
    except ValueError:
        return (1, 0.0, seed)


def _best_index(values: list[float | None], direction: str) -> int | None:
    scored = [(sort_value(v, direction), i) for i, v in enumerate(values)]
    finite = [s for s in scored if math.isfinite(s[0])]
    return min(finite)[1] if finite else None


def as_text(table: Table, markdown: bool = False) -> str:
    """Aligned columns (``markdown``: a pipe table)."""
    rows = [table.header, *table.rows]
    if markdown:
        rows = [[c.replace("|", "\\|") for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(table.header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row, widths)]
        lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells).rstrip())
        if n == 0:
            sep = ["-" * max(w, 1) for w in widths]
            lines.append(("| " + " | ".join(sep) + " |") if markdown else "  ".join(sep))
    return "\n".join(lines)
