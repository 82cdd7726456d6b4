"""The sweep parent's summary and the UI views, on a store filled by hand (no training)."""

import csv
import json
import sys
import types
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from seqlab.tracking.hydra_callback import (
    BEST_CHILD_TAG,
    MLflowMultirunCallback,
    best_child,
    param_for_key,
)
from seqlab.tracking.store import (
    DEFAULT_VIEW,
    EXPERIMENT_KIND_TAG,
    SHARED_VIEW_PREFIX,
    ensure_experiment,
    ui_url,
)


def _fake_report_module(monkeypatch, build_sweep_report):
    """seqlab.report as the callback imports it, whatever its state."""
    module = types.ModuleType("seqlab.report")
    module.build_sweep_report = build_sweep_report
    monkeypatch.setitem(sys.modules, "seqlab.report", module)


def _tracking(tmp_path):
    return {"enabled": True, "store_dir": str(tmp_path / "mlruns"), "experiment_name": "t"}


def test_param_for_key_maps_a_config_group_to_its_name():
    params = {"model.cell.name": "gru", "model.hidden_size": "8"}
    assert param_for_key("model/cell", params) == "model.cell.name"
    assert param_for_key("model.hidden_size", params) == "model.hidden_size"
    assert param_for_key("optimizer", params) == "optimizer"


def test_best_child_skips_failed_and_unscored_children():
    def child(run_id, status, **metrics):
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id, status=status), data=SimpleNamespace(metrics=metrics))

    children = [child("a", "FINISHED", val_loss=2.0), child("b", "FAILED", val_loss=0.1),
                child("c", "FINISHED", val_loss=1.5), child("d", "FINISHED")]
    assert best_child(children, "val_loss", "min").info.run_id == "c"
    assert best_child(children, "val_loss", "max").info.run_id == "a"
    assert best_child(children[1:2], "val_loss", "min") is None


def test_experiment_kind_and_default_view(tmp_path):
    uri, experiment_id = ensure_experiment(_tracking(tmp_path))
    tags = MlflowClient(uri).get_experiment(experiment_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    view = json.loads(tags[SHARED_VIEW_PREFIX + DEFAULT_VIEW])
    assert "metrics.`val_loss`" in view["selectedColumns"] and "params.`model.hidden_size`" in view["selectedColumns"]
    assert ui_url("http://h:1", "#/x") == "http://h:1/#/x"


def test_parent_gets_best_child_children_csv_view_and_report(tmp_path, monkeypatch):
    uri, experiment_id = ensure_experiment(_tracking(tmp_path))
    client = MlflowClient(uri)
    parent = client.create_run(experiment_id, run_name="sweep model/cell=lstm,gru").info.run_id
    for cell, loss in (("lstm", 2.0), ("gru", 1.5)):
        run_id = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
        client.log_param(run_id, "model.cell.name", cell)
        client.log_metric(run_id, "val_loss", loss, step=10)
        client.set_terminated(run_id)

    reported = []

    def fake_report(tracking_uri, parent_run_id, out_dir):
        out_dir.mkdir(parents=True)
        (out_dir / "report.md").write_text("# sweep")
        reported.append(parent_run_id)
        return [out_dir / "report.md"]

    _fake_report_module(monkeypatch, fake_report)
    callback = MLflowMultirunCallback()
    callback.parent_run_id, callback.tracking_uri = parent, uri
    callback.metric, callback.direction, callback.keys = "val_loss", "min", ["model/cell"]
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    callback._summarize(client, children)

    run = client.get_run(parent)
    assert run.data.metrics["best_val_loss"] == pytest.approx(1.5)
    best = next(c for c in children if c.data.params["model.cell.name"] == "gru")
    assert run.data.tags[BEST_CHILD_TAG] == best.info.run_id
    assert reported == [parent]
    assert {a.path for a in client.list_artifacts(parent, "report")} == {"report/report.md"}
    rows = list(csv.DictReader(open(client.download_artifacts(parent, "children.csv", str(tmp_path)))))
    assert sorted(r["model.cell.name"] for r in rows) == ["gru", "lstm"]
    # the sweep's view: its children, the swept param and the metric, best first
    link = run.data.tags["seqlab.ui_view"]
    assert link.endswith(f"viewStateShareKey=sweep-{parent}") and "workflowType=machine_learning" in link
    view = json.loads(client.get_experiment(experiment_id).tags[f"{SHARED_VIEW_PREFIX}sweep-{parent}"])
    assert view["searchFilter"] == f"tags.mlflow.parentRunId = '{parent}'"
    assert view["orderByKey"] == "metrics.`val_loss`" and view["orderByAsc"] is True
    assert "params.`model.cell.name`" in view["selectedColumns"]


def test_a_failing_report_does_not_fail_the_summary(tmp_path, monkeypatch, caplog):
    uri, experiment_id = ensure_experiment(_tracking(tmp_path))
    client = MlflowClient(uri)
    parent = client.create_run(experiment_id).info.run_id

    def broken(*args):
        raise RuntimeError("report bug")

    _fake_report_module(monkeypatch, broken)
    callback = MLflowMultirunCallback()
    callback.parent_run_id, callback.tracking_uri = parent, uri
    callback.metric, callback.direction, callback.keys = "val_loss", "min", []
    callback._summarize(client, [])
    assert "report bug" in caplog.text
    assert "children.csv" in {a.path for a in client.list_artifacts(parent)}
