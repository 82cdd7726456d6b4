"""A search worker: take trials from the shared study until it has ``n_trials``.

    search = seqlab.search.config.load(["hparams_search=tiny", "n_trials=4"])
    summary = run_search(search)

Several workers (``workers=N``, or the same command started twice) run this
loop on one study; each trial is one MLflow child run of the study's parent.
After each trial the parent gets the study's state: the best value as metric
``best_<objective>``, the best trial's run id and values as tags, the trial
counts, and ``search/trials.csv``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from seqlab.search.config import SearchConfig
from seqlab.search.objective import TrialOutcome, run_trial
from seqlab.search.space import short
from seqlab.search.study import RUN_ATTR, SharedStudy

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SearchSummary:
    study_name: str
    storage: str
    parent_run_id: str | None
    outcomes: list[TrialOutcome]  # the trials this worker ran
    n_finished: int
    n_running: int  # trials other workers are still running
    best_value: float | None
    best_values: dict[str, Any] | None
    best_trial: int | None


def _client_and_parent(shared: SharedStudy) -> tuple[Any, str | None]:
    tracking = shared.search.tracking
    if not tracking.get("enabled", True):
        return None, None
    from mlflow.tracking import MlflowClient

    from seqlab.tracking.store import ensure_experiment

    uri, experiment_id = ensure_experiment(tracking)
    client = MlflowClient(uri)
    return client, shared.parent_run(client, experiment_id)


def open_search(search: SearchConfig, worker_index: int = 0) -> tuple[SharedStudy, Any, str | None]:
    """The shared study and its MLflow parent run (created if new)."""
    shared = SharedStudy(search, worker_index)
    client, parent = _client_and_parent(shared)
    return shared, client, parent


def run_search(search: SearchConfig, worker_index: int = 0) -> SearchSummary:
    shared, client, parent = open_search(search, worker_index)
    done = len(shared.finished())
    if done:
        print(f"study {search.study_name!r} ({shared.location}): resuming with {done} of "
              f"{search.n_trials} trials finished", flush=True)
    outcomes: list[TrialOutcome] = []
    status = "FINISHED"
    try:
        while True:
            trial = shared.ask(search.n_trials)
            if trial is None:
                break
            outcome = run_trial(shared, trial, parent, client)
            outcomes.append(outcome)
            value = "" if outcome.value is None else f" {search.objective}={outcome.value:.4f}"
            extra = f" ({outcome.message})" if outcome.message and outcome.state != "complete" else ""
            print(f"trial {outcome.number} {outcome.state}{value}{extra}: "
                  + ", ".join(f"{k}={short(v)}" for k, v in outcome.values.items()), flush=True)
            update_parent(shared, client, parent)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        try:
            update_parent(shared, client, parent, final_status=status)
        except Exception as err:  # noqa: BLE001 - never hide the error that ended the search
            log.warning("could not update the parent run %s: %s", parent, err)
    return summarize(shared, parent, outcomes)


def summarize(shared: SharedStudy, parent: str | None, outcomes: list[TrialOutcome]) -> SearchSummary:
    best = _best(shared)
    return SearchSummary(
        study_name=shared.search.study_name,
        storage=shared.location,
        parent_run_id=parent,
        outcomes=outcomes,
        n_finished=len(shared.finished()),
        n_running=len(shared.running()),
        best_value=None if best is None else best.value,
        best_values=None if best is None else dict(best.params),
        best_trial=None if best is None else best.number,
    )


def _best(shared: SharedStudy):
    complete = shared.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    pick = min if shared.search.direction == "minimize" else max
    return pick(complete, key=lambda t: t.value)


def update_parent(shared: SharedStudy, client: Any, parent: str | None, final_status: str | None = None) -> None:
    """The study's state onto the parent run; with ``final_status``, close it
    when no trial is left to run (FINISHED), or mark how this worker stopped."""
    if client is None or parent is None:
        return
    search = shared.search
    trials = shared.study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    n_finished = len(shared.finished())
    for state, n in counts.items():
        client.set_tag(parent, f"seqlab.search.trials.{state.name.lower()}", str(n))
    client.set_tag(parent, "seqlab.search.n_trials", str(search.n_trials))
    best = _best(shared)
    if best is not None:
        client.log_metric(parent, f"best_{search.objective}", float(best.value), step=n_finished)
        client.set_tag(parent, "seqlab.search.best_trial", str(best.number))
        client.set_tag(parent, "seqlab.search.best_params", json.dumps(best.params))
        if best.user_attrs.get(RUN_ATTR):
            from seqlab.tracking.hydra_callback import BEST_CHILD_TAG

            client.set_tag(parent, "seqlab.search.best_run_id", best.user_attrs[RUN_ATTR])
            client.set_tag(parent, BEST_CHILD_TAG, best.user_attrs[RUN_ATTR])
    rows = ["number,state,value," + ",".join(search.keys) + ",mlflow_run_id"]
    for t in trials:
        rows.append(",".join([str(t.number), t.state.name, "" if t.value is None else repr(t.value),
                              *(str(t.params.get(k, "")) for k in search.keys),
                              str(t.user_attrs.get(RUN_ATTR, ""))]))
    with tempfile.TemporaryDirectory(prefix="seqlab-search-") as folder:
        path = Path(folder) / "trials.csv"
        path.write_text("\n".join(rows) + "\n")
        client.log_artifact(parent, str(path), artifact_path="search")
    if final_status is None:
        return
    if final_status == "FINISHED":
        done = counts[TrialState.RUNNING] == 0 and n_finished >= search.n_trials
        if done and client.get_run(parent).info.status != "FINISHED":  # another worker closed it
            _log_report(client, parent)
            client.set_terminated(parent, status="FINISHED")
    elif counts[TrialState.RUNNING] == 0:
        client.set_terminated(parent, status=final_status)


def _log_report(client: Any, parent: str) -> None:
    """seqlab-report's page of the finished study, under ``report/`` on the parent
    (as a Hydra sweep's parent gets it); a report error only warns."""
    try:
        from seqlab.report import build_sweep_report
    except ImportError:
        return
    try:
        with tempfile.TemporaryDirectory(prefix="seqlab-search-report-") as folder:
            out = Path(folder)
            for path in map(Path, build_sweep_report(client.tracking_uri, parent, out)):
                rel = path.parent.relative_to(out) if path.is_relative_to(out) else Path()
                client.log_artifact(parent, str(path), str(Path("report") / rel).rstrip("/."))
    except Exception as err:  # noqa: BLE001 - the study is done whatever the report does
        log.warning("search report for parent run %s failed: %s", parent, err)
