"""Sweeps made directly in an MLflow store (no training): a parent run tagged
``seqlab.sweep=parent`` and children with params, metric histories and the
``mlflow.parentRunId`` tag, as ``seqlab-train -m`` records them."""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient


def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def experiment_id(client: MlflowClient, name: str = "seqlab") -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name)


def make_sweep(
    client: MlflowClient,
    overrides: str,
    children: list[dict],
    experiment: str = "seqlab",
    parent_name: str = "sweep train",
    parent_tags: dict[str, str] | None = None,
) -> tuple[str, list[str]]:
    """``children``: dicts with ``name``, ``params``, ``final`` (metric -> value,
    logged once at the end) and ``curves`` (metric -> list of values, logged at
    steps 1..n). Returns the parent's run id and the children's."""
    exp = experiment_id(client, experiment)
    tags = {"seqlab.sweep": "parent", "seqlab.sweep.overrides": overrides, **(parent_tags or {})}
    parent = client.create_run(exp, run_name=parent_name, tags=tags).info.run_id
    ids = []
    now = int(time.time() * 1000)
    for child in children:
        run = client.create_run(exp, run_name=child["name"], tags={"mlflow.parentRunId": parent})
        run_id = run.info.run_id
        curves = child.get("curves", {})
        metrics = [
            Metric(k, float(v), now, 0)
            for k, v in child.get("final", {}).items()
            if k not in curves
        ]
        for key, values in curves.items():
            metrics += [Metric(key, float(v), now + i, i + 1) for i, v in enumerate(values)]
        params = [Param(k, str(v)) for k, v in child.get("params", {}).items()]
        client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag("t", "x")])
        client.set_terminated(run_id, child.get("status", "FINISHED"))
        ids.append(run_id)
    client.set_terminated(parent)
    return parent, ids


def hidden_size_sweep(client: MlflowClient, **kwargs) -> tuple[str, list[str]]:
    """``-m model.hidden_size=8,16``: 16 is better (val_loss 1.5 against 2.0)."""
    noise = {"callbacks.grad_norm.every_n_steps": "50", "model.cell.name": "lstm"}
    children = [
        {
            "name": f"model.hidden_size={units}",
            "params": {"model.hidden_size": units, "trainer.seed": 1, **noise},
            "final": {
                "val_loss": final,
                "test_loss": final + 0.1,
                "tokens_per_sec": 1000.0 * units,
            },
            "curves": {
                "val_loss": [final + 1.0, final + 0.4, final],
                "loss": [final + 1.2, final + 0.5, final - 0.1],
            },
        }
        for units, final in ((8, 2.0), (16, 1.5))
    ]
    return make_sweep(client, "debug=tiny model.hidden_size=8,16", children, **kwargs)
