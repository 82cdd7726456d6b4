"""Hydra callback: one MLflow parent run per multirun sweep.

On the sweep's end the parent run gets the best child's primary metric
(``best_<metric>``, tag ``seqlab.best_child``), the list of children
(``children.csv``) and, when :mod:`seqlab.report` is importable, the sweep
report under ``report/``.

Parallel sweep jobs racing on a fresh SQLite store (schema creation,
experiment creation) collide, so the store, the experiment and the parent
run are created here, once, before any job starts. Jobs find the parent run
id in ``$SEQLAB_MLFLOW_PARENT_RUN_ID`` (inherited by launcher subprocesses)
and attach to it as children.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seqlab.tracking.run import (
    DIRECTION_TAG,
    PARENT_RUN_ENV,
    PRIMARY_METRIC_TAG,
    SWEEP_KEYS_ENV,
    SWEEP_KEYS_TAG,
    primary_metric,
)

log = logging.getLogger(__name__)

__all__ = ["MLflowMultirunCallback", "SWEEP_KEYS_ENV", "swept_keys", "sweep_name"]
BEST_CHILD_TAG = "seqlab.best_child"
#: The sweep's comparison in the MLflow UI (a link relative to the UI root).
UI_VIEW_TAG = "seqlab.ui_view"


def swept_keys(config: DictConfig) -> list[str]:
    """Keys with a sweep on the command line (``a=1,2``, ``range(...)``) or in
    ``hydra.sweeper.params`` (e.g. an Optuna search space)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
    params = config.hydra.sweeper.get("params")
    if params:
        keys += [str(k) for k in params.keys() if str(k) not in keys]
    return keys


def sweep_name(config: DictConfig) -> str:
    """``sweep model/cell=lstm,gru``: the sweep overrides of the command line
    (else the keys of ``hydra.sweeper.params``, else the task name)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = [text for text, o in zip(overrides, parsed) if o.is_sweep_override()]
    if not swept:
        params = config.hydra.sweeper.get("params")
        swept = [",".join(str(k) for k in params.keys())] if params else [str(config.get("task_name", "train"))]
    return "sweep " + " ".join(swept)


def best_child(children, metric: str, direction: str):
    """The finished child with the best ``metric`` (None if none logged it)."""
    scored = [
        c for c in children
        if c.info.status == "FINISHED" and metric in c.data.metrics and math.isfinite(c.data.metrics[metric])
    ]
    if not scored:
        return None
    pick = min if direction == "min" else max
    return pick(scored, key=lambda c: c.data.metrics[metric])


def param_for_key(key: str, params) -> str:
    """The param a swept key shows up as: ``model.hidden_size`` itself; a
    config-group choice ``model/cell`` as ``model.cell.name`` when the group
    names itself, else the key unchanged."""
    if key in params or "/" not in key:
        return key
    named = key.replace("/", ".") + ".name"
    return named if named in params else key


def write_children_csv(children, keys: list[str], metric: str, path: Path) -> Path:
    """One row per child: run id, name, status, the swept params, the metric."""
    params = set().union(*(c.data.params for c in children)) if children else set()
    columns = [param_for_key(k, params) for k in keys]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run_id", "run_name", "status", *columns, metric])
        for c in sorted(children, key=lambda c: c.info.start_time or 0):
            writer.writerow([
                c.info.run_id, c.info.run_name, c.info.status,
                *(c.data.params.get(k, "") for k in columns), c.data.metrics.get(metric, ""),
            ])
    return path


class MLflowMultirunCallback(Callback):
    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.tracking_uri: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = OmegaConf.to_container(config.get("tracking", {}), resolve=True) or {}
        if not tracking.get("enabled", True):
            return
        from mlflow.tracking import MlflowClient

        from seqlab.tracking.run import version_tags
        from seqlab.tracking.store import ensure_experiment

        self.tracking_uri, experiment_id = ensure_experiment(tracking)
        client = MlflowClient(self.tracking_uri)
        sweep = " ".join(config.hydra.overrides.task) if config.hydra.overrides.task else ""
        params_node = config.hydra.sweeper.get("params")
        sweeper_params = OmegaConf.to_container(params_node, resolve=False) if params_node else {}
        name = tracking.get("run_name") or sweep_name(config)
        self.metric, self.direction = primary_metric(tracking)
        self.keys = swept_keys(config)
        run = client.create_run(
            experiment_id,
            run_name=name,
            tags={
                **version_tags(), "seqlab.sweep": "parent", "seqlab.sweep.overrides": sweep,
                SWEEP_KEYS_TAG: ",".join(self.keys), PRIMARY_METRIC_TAG: self.metric,
                DIRECTION_TAG: self.direction,
            },
        )
        self.parent_run_id = run.info.run_id
        if sweeper_params:
            client.log_param(self.parent_run_id, "sweeper.params", str(sweeper_params)[:500])
        os.environ[PARENT_RUN_ENV] = self.parent_run_id
        os.environ[SWEEP_KEYS_ENV] = json.dumps(self.keys)
        log.info("MLflow parent run %s for this sweep", self.parent_run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.parent_run_id:
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        children = client.search_runs(
            [client.get_run(self.parent_run_id).info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}'",
        )
        statuses = [c.info.status for c in children]
        failed = [s for s in statuses if s != "FINISHED"]
        client.set_tag(self.parent_run_id, "seqlab.sweep.children", str(len(statuses)))
        try:
            self._summarize(client, children)
        except Exception as err:  # the summary must never fail the sweep
            log.warning("sweep summary on parent run %s failed: %s", self.parent_run_id, err)
        client.set_terminated(self.parent_run_id, status="FAILED" if failed else "FINISHED")
        os.environ.pop(PARENT_RUN_ENV, None)
        os.environ.pop(SWEEP_KEYS_ENV, None)

    def _summarize(self, client, children) -> None:
        """Best child's metric, children.csv and the report on the parent."""
        best = best_child(children, self.metric, self.direction)
        if best is not None:
            client.log_metric(self.parent_run_id, f"best_{self.metric}", best.data.metrics[self.metric])
            client.set_tag(self.parent_run_id, BEST_CHILD_TAG, best.info.run_id)
            client.set_tag(self.parent_run_id, f"{BEST_CHILD_TAG}.name", best.info.run_name)
        self._save_view(client, children)
        with tempfile.TemporaryDirectory(prefix="seqlab-sweep-") as tmp:
            path = write_children_csv(children, self.keys, self.metric, Path(tmp) / "children.csv")
            client.log_artifact(self.parent_run_id, str(path))
            self._log_report(client, Path(tmp) / "report")

    def _save_view(self, client, children) -> None:
        """A runs-table view of just the children: the swept params and the
        primary metric as columns, best first."""
        from seqlab.tracking.store import save_runs_view, ui_url

        params = set().union(*(c.data.params for c in children)) if children else set()
        metrics = list(dict.fromkeys([self.metric, "val_loss", "loss", "wall_time_s"]))
        link = save_runs_view(
            client, client.get_run(self.parent_run_id).info.experiment_id, f"sweep-{self.parent_run_id}",
            [*(("params", param_for_key(k, params)) for k in self.keys), *(("metrics", m) for m in metrics)],
            search_filter=f"tags.mlflow.parentRunId = '{self.parent_run_id}'",
            order_by=("metrics", self.metric), ascending=self.direction == "min",
        )
        client.set_tag(self.parent_run_id, UI_VIEW_TAG, link)
        log.info("sweep compared in the MLflow UI: %s", ui_url(self.tracking_uri, link))

    def _log_report(self, client, out_dir: Path) -> None:
        try:
            from seqlab.report import build_sweep_report
        except ImportError:
            return
        try:
            files = build_sweep_report(self.tracking_uri, self.parent_run_id, out_dir)
            for path in files:
                path = Path(path)
                rel = path.parent.relative_to(out_dir) if path.is_relative_to(out_dir) else Path()
                client.log_artifact(self.parent_run_id, str(path), str(Path("report") / rel).rstrip("/."))
        except Exception as err:  # a report bug must not fail the sweep
            log.warning("sweep report for parent run %s failed: %s", self.parent_run_id, err)
