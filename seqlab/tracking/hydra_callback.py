"""Hydra callback: one MLflow parent run per multirun sweep.

Parallel sweep jobs racing on a fresh SQLite store (schema creation,
experiment creation) collide, so the store, the experiment and the parent
run are created here, once, before any job starts. Jobs find the parent run
id in ``$SEQLAB_MLFLOW_PARENT_RUN_ID`` (inherited by launcher subprocesses)
and attach to it as children.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seqlab.tracking.run import PARENT_RUN_ENV

log = logging.getLogger(__name__)

# The config keys a sweep varies, so each child run is named by just those.
SWEEP_KEYS_ENV = "SEQLAB_SWEEP_KEYS"


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
        name = tracking.get("run_name") or f"sweep {config.get('task_name', 'train')}"
        run = client.create_run(
            experiment_id,
            run_name=name,
            tags={**version_tags(), "seqlab.sweep": "parent", "seqlab.sweep.overrides": sweep},
        )
        self.parent_run_id = run.info.run_id
        if sweeper_params:
            client.log_param(self.parent_run_id, "sweeper.params", str(sweeper_params)[:500])
        os.environ[PARENT_RUN_ENV] = self.parent_run_id
        os.environ[SWEEP_KEYS_ENV] = json.dumps(swept_keys(config))
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
        client.set_terminated(self.parent_run_id, status="FAILED" if failed else "FINISHED")
        os.environ.pop(PARENT_RUN_ENV, None)
        os.environ.pop(SWEEP_KEYS_ENV, None)
