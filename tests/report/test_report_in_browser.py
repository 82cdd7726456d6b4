"""The HTML report in a real browser: headless Chromium renders the page, and
the DOM it dumps shows every child's row, the best row highlighted and the
plots decoded to their pixel size."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from seqlab.report import build_sweep_report
from tests.report.sweeps import make_sweep, store_uri

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no headless browser: install Debian's chromium (apt-get install -y chromium)",
)

# Appended to a copy of the page: after load, what the browser decoded and
# the best row's computed background go into the DOM that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  document.body.dataset.images = [...document.images]
    .map(i => i.complete && i.naturalWidth > 0 ? i.naturalWidth + "x" + i.naturalHeight : "broken").join(" ");
  const best = document.querySelectorAll("tr.best");
  document.body.dataset.bestRows = best.length;
  document.body.dataset.bestBackground = best.length ? getComputedStyle(best[0].cells[1]).backgroundColor : "";
});
</script>"""


def _png_size(path) -> str:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return f"{width}x{height}"


def test_html_report_renders_every_child_and_the_plots_in_chromium(tmp_path):
    client = MlflowClient(store_uri(tmp_path))
    cells = (("lstm", 1.40, 0.95), ("gru", 1.45, 0.9), ("simple_rnn", 1.90, 0.5))
    children = [
        {
            "name": f"model/cell={cell}",
            "params": {"model.cell.name": cell},
            "curves": {
                "val_loss": [2.2, 1.8, loss],
                "step/loss": [2.5, 2.1, 1.9, 1.7, loss],
                "grad_time/rnn": [decay**t for t in range(32)],
            },
        }
        for cell, loss, decay in cells
    ]
    parent, ids = make_sweep(client, "model/cell=lstm,gru,simple_rnn", children)
    out = tmp_path / "out"
    build_sweep_report(store_uri(tmp_path), parent, out)
    page = out / "report.html"
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))

    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = result.stdout
    assert result.returncode == 0 and "<table>" in dom, result.stderr[-2000:]

    rows = re.findall(r'<tr(?: class="(\w+)")? data-run-ids="([0-9a-f]+)">(.*?)</tr>', dom)
    assert sorted(r[1] for r in rows) == sorted(ids)  # every child, once
    assert [r[1] for r in rows if r[0] == "best"] == [ids[0]]  # lstm: the lowest val_loss
    for cell, *_ in cells:
        assert any(f"<td>{cell}</td>" in r[2] for r in rows)

    body = re.search(r"<body([^>]*)>", dom).group(1)
    decoded = re.search(r'data-images="([^"]*)"', body).group(1).split()
    assert decoded == [_png_size(out / "learning_curves.png"), _png_size(out / "grad_time.png")]
    assert 'data-best-rows="1"' in body
    assert 'data-best-background="rgb(218, 251, 225)"' in body  # the highlight applies
