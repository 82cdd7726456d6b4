"""One trial: draw its values, compose its config, ``seqlab.experiment.run`` it
as an MLflow child run of the study's parent, and tell Optuna how it ended.

How a trial ends, in Optuna and in MLflow:

- completed: ``COMPLETE`` with the objective's final value; run FINISHED;
- pruned (the callback raised ``optuna.TrialPruned``): ``PRUNED``; ``run()``
  closed the run FAILED, so it is set to KILLED, its ``failure_reason`` tag
  replaced by ``seqlab.search.pruned=true`` and ``seqlab.search.pruned_reason``;
- diverged (NaN loss, :class:`~seqlab.errors.TrainingDiverged`) or a
  non-finite objective: ``FAIL`` that counts towards ``n_trials``; run FAILED;
  the search goes on;
- interrupted (Ctrl-C): ``FAIL`` that does not count; run KILLED; re-raised;
- any other error (a bad value, missing data, a bug): ``FAIL``; run FAILED;
  re-raised, so the search stops with that error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import TrialState

from seqlab.errors import ConfigError, TrainingDiverged
from seqlab.search.pruning import PRUNED_TAG, active_trial
from seqlab.search.study import COUNTED_ATTR, INTERRUPTED_ATTR, RUN_ATTR, SharedStudy

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrialOutcome:
    number: int
    state: str  # complete | pruned | failed
    values: dict[str, Any]
    value: float | None = None
    run_id: str | None = None
    message: str = ""


@contextmanager
def _sweep_env(parent_run_id: str | None, keys: list[str]):
    """Children attach to the parent, and tag the searched keys, through the
    env vars TrackedRun reads (as in a Hydra sweep)."""
    from seqlab.tracking.run import PARENT_RUN_ENV, SWEEP_KEYS_ENV

    values = {PARENT_RUN_ENV: parent_run_id, SWEEP_KEYS_ENV: json.dumps(keys) if parent_run_id else None}
    old = {name: os.environ.get(name) for name in values}
    os.environ.update({name: value for name, value in values.items() if value})
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def find_child_run(client, parent_run_id: str | None, study_name: str, number: int) -> str | None:
    if client is None or parent_run_id is None:
        return None
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id],
        filter_string=(f"tags.mlflow.parentRunId = '{parent_run_id}' and "
                       f"tags.`seqlab.search.study` = '{study_name}' and tags.`seqlab.search.trial` = '{number}'"),
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def run_trial(shared: SharedStudy, trial: optuna.Trial, parent_run_id: str | None = None,
              client: Any = None) -> TrialOutcome:
    import keras

    from seqlab.experiment import run

    search = shared.search
    values = {param.key: param.suggest(trial) for param in search.space}
    outcome = TrialOutcome(trial.number, "failed", values)

    def attr(key: str, value: Any) -> None:
        trial.set_user_attr(key, value)

    def fail(message: str, counted: bool) -> None:
        attr("seqlab.failure", message[:2000])
        if counted:
            attr(COUNTED_ATTR, True)
        shared.study.tell(trial, state=TrialState.FAIL)
        outcome.message = message

    try:
        cfg = search.trial_config(trial.number, values, parent_run_id)
        attr("seqlab.overrides", " ".join(search.trial_overrides(values)))
        output_dir = search.output_dir / search.study_name / f"trial_{trial.number:04d}"
        with _sweep_env(parent_run_id, search.keys), active_trial(trial):
            results = run(cfg, output_dir=output_dir)
    except optuna.TrialPruned as pruned:
        outcome.state, outcome.message = "pruned", str(pruned)
        outcome.run_id = find_child_run(client, parent_run_id, search.study_name, trial.number)
        if outcome.run_id:
            attr(RUN_ATTR, outcome.run_id)
            client.set_tag(outcome.run_id, PRUNED_TAG, "true")
            client.set_tag(outcome.run_id, "seqlab.search.pruned_reason", str(pruned)[:4000])
            with _suppress():
                client.delete_tag(outcome.run_id, "failure_reason")
            client.set_terminated(outcome.run_id, status="KILLED")
        shared.study.tell(trial, state=TrialState.PRUNED)
        return outcome
    except TrainingDiverged as err:
        outcome.run_id = find_child_run(client, parent_run_id, search.study_name, trial.number)
        fail(f"diverged: {err}", counted=True)
        return outcome
    except KeyboardInterrupt:
        attr(INTERRUPTED_ATTR, "Ctrl-C")
        shared.study.tell(trial, state=TrialState.FAIL)
        raise
    except BaseException as err:
        fail(f"{type(err).__name__}: {err}", counted=False)
        raise
    finally:
        keras.backend.clear_session()

    outcome.run_id = results.get("run_id")
    if outcome.run_id:
        attr(RUN_ATTR, outcome.run_id)
    value = results.get(search.objective)
    if value is None:
        metrics = sorted(k for k in results if k != "run_id")
        fail(f"objective {search.objective!r} is not among the run's results", counted=False)
        raise ConfigError(
            f"hparams_search={search.preset}: objective {search.objective!r} is not among the run's results "
            f"({', '.join(metrics)}); set hparams_search.objective to one of them"
        )
    value = float(value)
    if not math.isfinite(value):
        fail(f"{search.objective}={value}", counted=True)
        return outcome
    shared.study.tell(trial, value)
    outcome.state, outcome.value = "complete", value
    return outcome


@contextmanager
def _suppress():
    try:
        yield
    except Exception:  # noqa: BLE001 - a missing tag is fine
        pass
