"""seqlab-report and build_sweep_report on sweeps made directly in a store."""

from __future__ import annotations

import csv
import math
import re

import pytest
from mlflow.tracking import MlflowClient

from seqlab.cli.report import main as report_main
from seqlab.report import build_sweep_report
from tests.report.sweeps import hidden_size_sweep, make_sweep, store_uri

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client(tmp_path):
    return MlflowClient(store_uri(tmp_path))


def _report(tmp_path, *args: str) -> int:
    return report_main(["--store-dir", str(tmp_path / "mlruns"), *args])


def _rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_latest_sweep_report_holds_both_runs_the_best_marked_and_a_png(tmp_path, client, capsys):
    hidden_size_sweep(client, parent_name="older sweep")
    parent, (small, large) = hidden_size_sweep(client)
    out = tmp_path / "report"
    assert _report(tmp_path, "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert printed.rstrip().endswith(str((out / "report.html").resolve()))

    md = (out / "report.md").read_text()
    assert parent in md and "older sweep" not in md  # the newest sweep by default
    table = [line for line in md.splitlines() if line.startswith("| ")]
    header, best_row, other_row = table[0], table[2], table[3]
    # Columns: the swept key and the metrics, not every param that varies.
    assert "model.hidden_size" in header and "val_loss" in header and "test_loss" in header
    assert "tokens_per_sec" in header
    assert "callbacks." not in md and "model.cell.name" not in header
    # No run-name column: the names (model.hidden_size=16) only repeat the values.
    assert re.sub(" +", " ", best_row).startswith("| ★ | 16 | FINISHED | 1.500 |")
    assert re.sub(" +", " ", other_row).startswith("| | 8 | FINISHED | 2.000 |")
    assert "![learning_curves](learning_curves.png)" in md

    assert (out / "learning_curves.png").read_bytes()[:8] == PNG
    runs = _rows(out / "runs.csv")
    assert [(r["run_id"], r["best"]) for r in runs] == [(large, "True"), (small, "False")]
    assert float(runs[0]["val_loss"]) == 1.5

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and 'class="best"' in page
    assert small in page and large in page


def test_seeds_are_aggregated_as_mean_and_sample_std(tmp_path, client):
    finals = {(8, 1): 2.0, (8, 2): 2.2, (8, 3): 2.4, (16, 1): 1.5, (16, 2): 1.6, (16, 3): 1.9}
    children = [
        {
            "name": f"model.hidden_size={units},trainer.seed={seed}",
            "params": {"model.hidden_size": units, "trainer.seed": seed},
            "final": {"val_loss": loss, "test_loss": 2 * loss},
        }
        for (units, seed), loss in finals.items()
    ]
    overrides = "debug=tiny model.hidden_size=8,16 trainer.seed=1,2,3"
    parent, _ = make_sweep(client, overrides, children)
    files = build_sweep_report(store_uri(tmp_path), parent, tmp_path / "out")
    assert {p.name for p in files} >= {"report.md", "report.html", "runs.csv", "seeds.csv"}

    # By hand: 8 -> 2.0, 2.2, 2.4: mean 2.2, std sqrt((0.04 + 0 + 0.04) / 2) = 0.2;
    # 16 -> 1.5, 1.6, 1.9: mean 5/3, std sqrt((1/36 + 1/225 + 49/900) / 2) = 0.208167.
    best, other = _rows(tmp_path / "out" / "seeds.csv")
    assert (best["model.hidden_size"], best["best"], best["n"], best["seeds"]) == (
        "16",
        "True",
        "3",
        "1,2,3",
    )
    assert math.isclose(float(best["val_loss_mean"]), 5 / 3, rel_tol=1e-9)
    assert math.isclose(float(best["val_loss_std"]), 0.2081666, rel_tol=1e-6)
    assert math.isclose(float(best["test_loss_mean"]), 10 / 3, rel_tol=1e-9)
    assert (other["model.hidden_size"], other["best"]) == ("8", "False")
    assert math.isclose(float(other["val_loss_mean"]), 2.2, rel_tol=1e-9)
    assert math.isclose(float(other["val_loss_std"]), 0.2, rel_tol=1e-9)

    md = (tmp_path / "out" / "report.md").read_text()
    assert "| ★ | 16 | 3 (1,2,3) | 1.667 ± 0.21 |" in re.sub(" +", " ", md)
    assert "2.200 ± 0.20" in md
    assert len(_rows(tmp_path / "out" / "runs.csv")) == 6  # every child still listed


def test_primary_metric_tag_and_its_direction_decide_the_best(tmp_path, client, capsys):
    children = [
        {
            "name": f"model/cell={cell}",
            "params": {"model.cell.name": cell},
            "final": {"val_loss": loss, "val_accuracy": acc},
        }
        for cell, loss, acc in (("lstm", 1.0, 0.50), ("gru", 1.2, 0.70))
    ]
    tags = {"seqlab.primary_metric": "val_accuracy"}
    make_sweep(client, "model/cell=lstm,gru", children, parent_tags=tags)
    assert _report(tmp_path, "--format", "markdown") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "model/cell" in lines[0] and lines[0].index("val_accuracy") < lines[0].index("val_loss")
    assert lines[2].startswith("| ★ ") and "| gru " in lines[2]  # the higher accuracy
    assert not (tmp_path / "reports").exists()  # --format alone prints, writes nothing
    # --metric picks the deciding metric (lowest val_loss: lstm).
    assert _report(tmp_path, "--metric", "val_loss", "--format", "text") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("★") and "lstm" in lines[2]


def test_without_a_keys_tag_the_columns_are_the_params_that_vary_in_the_sweep(
    tmp_path, client, capsys
):
    children = [
        {
            "name": f"job {i}",
            "params": {"optimizer.lr": lr, "trainer.epochs": 2, "tracking.run_name": f"r{i}"},
            "final": {"val_loss": loss},
        }
        for i, (lr, loss) in enumerate(((0.1, 3.0), (0.01, 2.0)))
    ]
    make_sweep(client, "", children)
    assert _report(tmp_path, "--format", "text") == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ["run", "optimizer.lr", "status", "val_loss"]


def test_gradient_flow_curves_side_by_side_and_log_on_the_parent(tmp_path, client, capsys):
    children = [
        {
            "name": f"model/cell={cell}",
            "params": {"model.cell.name": cell},
            "curves": {
                "val_loss": [2.0, loss],
                "grad_time/rnn": [decay**t for t in range(20)],
                "grad_time/rnn/step5": [1.0] * 20,
            },
        }
        for cell, loss, decay in (("simple_rnn", 1.9, 0.5), ("lstm", 1.4, 0.95))
    ]
    parent, _ = make_sweep(client, "model/cell=simple_rnn,lstm", children)
    out = tmp_path / "r"
    assert _report(tmp_path, "--parent", parent, "--out", str(out), "--log") == 0
    assert (out / "grad_time.png").read_bytes()[:8] == PNG
    page = (out / "report.html").read_text()
    assert page.count('<img alt="') == 2
    logged = {f.path for f in client.list_artifacts(parent, "report")}
    assert {
        "report/report.html",
        "report/report.md",
        "report/runs.csv",
        "report/grad_time.png",
    } <= logged


def test_chosen_metric_curves_overlaid_with_a_log_axis_for_norms(tmp_path, client, capsys):
    from seqlab.report import collect, plots

    children = [
        {
            "name": f"model={name}",
            "params": {"model.name": name},
            "curves": {
                "val_loss": [1.0, 0.5],
                "accuracy": [0.5, acc],
                "grad_norm/stem": [1e-4 * scale, 1e-1 * scale],
            },
        }
        for name, acc, scale in (("plain56", 0.7, 1.0), ("resnet56", 0.9, 3.0))
    ]
    parent, _ = make_sweep(client, "model=plain56,resnet56", children)
    out = tmp_path / "r"
    assert _report(tmp_path, "--parent", parent, "--out", str(out),
                   "--curve", "accuracy", "--curve", "grad_norm/stem") == 0
    assert (out / "curves.png").read_bytes()[:8] == PNG
    assert 'alt="curves' in (out / "report.html").read_text()

    # Every child is one line per panel; the norm panel (3 decades) is on a log axis.
    import matplotlib.pyplot as plt

    sweep = collect(store_uri(tmp_path), parent_id=parent)
    hist = {
        c.run_id: {k: list(enumerate(v, 1)) for k, v in child["curves"].items()}
        for c, child in zip(sorted(sweep.children, key=lambda c: c.name), children)
    }
    saved = []
    real_close = plt.close
    plt.close = lambda fig=None: saved.append(fig)
    try:
        plots.metric_curves(sweep, hist, ["accuracy", "grad_norm/stem"], tmp_path / "c.png")
    finally:
        plt.close = real_close
    accuracy, norms = saved[0].axes[:2]
    assert len(accuracy.lines) == len(norms.lines) == 2
    assert accuracy.get_yscale() == "linear" and norms.get_yscale() == "log"
    assert sorted(max(line.get_ydata()) for line in accuracy.lines) == [0.7, 0.9]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parent", "0123456789abcdef"], "no run '0123456789abcdef'"),
        (["--experiment", "nope"], "no experiment 'nope'"),
        (["--experiment", "plain"], "has no sweep"),
        (["--metric", "val_bleu"], "no run of sweep"),
        (["--curve", "grad_norm/stem"], "--curve 'grad_norm/stem': no run of"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_code_2(tmp_path, client, capsys, args, message):
    hidden_size_sweep(client)
    exp = client.create_experiment("plain")
    client.create_run(exp, run_name="single")
    assert _report(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_all_runs_of_an_experiment_without_sweeps(tmp_path, client, capsys):
    exp = client.create_experiment("plain")
    for units, loss in ((8, 2.0), (16, 1.5)):
        run = client.create_run(exp, run_name=f"h{units}").info.run_id
        client.log_param(run, "model.hidden_size", units)
        client.log_param(run, "model.cell", "lstm")
        client.log_metric(run, "val_loss", loss)
    assert _report(tmp_path, "--experiment", "plain", "--all", "--format", "markdown") == 0
    out = capsys.readouterr().out.splitlines()
    assert "model.hidden_size" in out[0] and "model.cell" not in out[0]
    assert "| 16 " in out[2] and "★" in out[2] and "| 8 " in out[3]


def test_keys_tag_of_a_search_and_long_float_values(tmp_path, client, capsys):
    children = [
        {
            "name": f"trial {i}",
            "params": {
                "optimizer.learning_rate": lr,
                "model.dropout": 0.1 * i,
                "trainer.epochs": 2,
            },
            "final": {"val_loss": loss},
        }
        for i, (lr, loss) in enumerate((("0.0012345678", 2.0), ("0.00031415926", 1.8)))
    ]
    # Optuna studies tag their keys as a JSON list; only those are columns.
    tags = {"seqlab.sweep.keys": '["optimizer.learning_rate"]'}
    make_sweep(client, "", children, parent_tags=tags)
    assert _report(tmp_path, "--format", "text") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "optimizer.learning_rate", "status", "val_loss"]
    assert lines[2].split()[:4] == ["★", "trial", "1", "0.0003142"]


def test_a_failed_child_is_listed_last_and_never_best(tmp_path, client):
    children = [
        {
            "name": "model.hidden_size=8",
            "params": {"model.hidden_size": 8},
            "final": {"val_loss": 2.0},
        },
        {"name": "model.hidden_size=16", "params": {"model.hidden_size": 16}, "status": "FAILED"},
    ]
    parent, (ok, failed) = make_sweep(client, "model.hidden_size=8,16", children)
    build_sweep_report(store_uri(tmp_path), parent, tmp_path / "out")
    rows = _rows(tmp_path / "out" / "runs.csv")
    assert [(r["run_id"], r["status"], r["best"], r["val_loss"]) for r in rows] == [
        (ok, "FINISHED", "True", "2.0"),
        (failed, "FAILED", "False", ""),
    ]
    assert '<td class="status-FAILED">FAILED</td>' in (tmp_path / "out" / "report.html").read_text()
