"""The report's files: Markdown (images beside it), one self-contained HTML
page (PNGs inlined as base64 data URIs) and CSV."""

from __future__ import annotations

import base64
import csv
import html
from pathlib import Path

from seqlab.report.collect import Sweep
from seqlab.report.table import Table, as_text

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.45rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 1.8rem; }
.meta { color: #57606a; font-size: .9rem; } .meta code { background: #f3f4f6; padding: 0 .25rem; border-radius: 3px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .88rem; margin: .5rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #dafbe1; font-weight: 600; }
tr.best td.mark { color: #1a7f37; }
td.status-FAILED, td.status-KILLED { color: #cf222e; }
img { max-width: 100%; height: auto; border: 1px solid #d0d7de; border-radius: 4px; margin: .5rem 0; }
"""


def _is_num(text: str) -> bool:
    head = text.split(" ± ")[0].replace(",", "")
    try:
        float(head)
    except ValueError:
        return False
    return True


def _html_table(table: Table, sweep: Sweep) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = []
    status_col = table.header.index("status") if "status" in table.header else None
    for i, row in enumerate(table.rows):
        cells = []
        for j, cell in enumerate(row):
            cls = []
            if j == 0:
                cls.append("mark")
            elif j == status_col:
                cls.append(f"status-{cell}")
            elif _is_num(cell):
                cls.append("num")
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{html.escape(cell)}</td>")
        runs = " ".join(table.run_ids[i]) if i < len(table.run_ids) else ""
        klass = ' class="best"' if i == table.best else ""
        body.append(f'<tr{klass} data-run-ids="{html.escape(runs)}">{"".join(cells)}</tr>')
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _summary(sweep: Sweep, table: Table) -> str:
    """One sentence: which run (or setting) is best, by what."""
    if table.best is None:
        return f"No run logged {sweep.primary}."
    best = table.records[table.best]
    what = ", ".join(f"{k}={best[k]}" for k in sweep.keys if k in best) or str(best.get("run"))
    value = table.rows[table.best][
        table.header.index(next(h for h in table.header if h.startswith(sweep.primary)))
    ]
    return f"Best: {what} ({sweep.primary} {value}, {'lowest' if sweep.direction == 'min' else 'highest'} wins)."


def _meta_lines(sweep: Sweep) -> list[tuple[str, str]]:
    lines = [("experiment", sweep.experiment)]
    if sweep.parent_id:
        lines.append(("parent run", f"{sweep.parent_name} ({sweep.parent_id})"))
    if sweep.overrides:
        lines.append(("overrides", sweep.overrides))
    lines.append(("swept keys", ", ".join(sweep.keys) or "(none)"))
    direction = "lower is better" if sweep.direction == "min" else "higher is better"
    lines.append(("primary metric", f"{sweep.primary} ({direction})"))
    lines.append(("runs", str(len(sweep.children))))
    lines.append(("store", sweep.tracking_uri))
    return lines


def title_of(sweep: Sweep) -> str:
    return (
        f"Sweep report: {sweep.parent_name}" if sweep.parent_id else f"Report: {sweep.parent_name}"
    )


def markdown(sweep: Sweep, tables: list[Table], images: list[Path]) -> str:
    out = [f"# {title_of(sweep)}", ""]
    out += [f"- {k}: `{v}`" for k, v in _meta_lines(sweep)]
    out += ["", _summary(sweep, tables[0]), ""]
    for table in tables:
        out += [f"## {table.title}", "", as_text(table, markdown=True), ""]
    for image in images:
        out += [f"![{image.stem}]({image.name})", ""]
    return "\n".join(out)


def html_page(sweep: Sweep, tables: list[Table], images: list[Path]) -> str:
    meta = "<br>".join(
        f"{html.escape(k)}: <code>{html.escape(v)}</code>" for k, v in _meta_lines(sweep)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title_of(sweep))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title_of(sweep))}</h1>",
        f'<p class="meta">{meta}</p>',
        f"<p><strong>{html.escape(_summary(sweep, tables[0]))}</strong></p>",
    ]
    for table in tables:
        parts += [f"<h2>{html.escape(table.title)}</h2>", _html_table(table, sweep)]
    if images:
        parts.append("<h2>Curves</h2>")
    for image in images:
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        parts.append(f'<img alt="{html.escape(image.stem)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_csv(table: Table, path: Path) -> Path:
    fields = list(dict.fromkeys(k for r in table.records for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for record in table.records:
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return path
