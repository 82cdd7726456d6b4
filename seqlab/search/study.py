"""Where a study lives, how workers share it, and its MLflow parent run.

The study is stored beside the MLflow store: by default a journal file
``<tracking.store_dir>/optuna.journal`` (Optuna's recommended storage for
several processes on one machine); ``storage=sqlite:///...`` or any Optuna
RDB URL, or a path (``*.journal`` / ``*.log``: journal, ``*.db``: SQLite),
picks another. Same name + same storage = the same study: a second worker
joins it, a new command after an interruption continues it.

``n_trials`` counts the study's finished trials: completed, pruned, and
failed by divergence (a NaN loss is an outcome of the hyper-parameters).
Trials that were interrupted (Ctrl-C, a killed worker) do not count and are
run again. Workers on one machine take trials under a file lock, so they
never overshoot ``n_trials``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from seqlab.errors import ConfigError
from seqlab.instantiate import build
from seqlab.search.config import SearchConfig

log = logging.getLogger(__name__)

PARENT_ATTR = "seqlab.mlflow_parent_run_id"
RUN_ATTR = "seqlab.mlflow_run_id"
COUNTED_ATTR = "seqlab.counted"  # a FAIL that counts towards n_trials (divergence)
INTERRUPTED_ATTR = "seqlab.interrupted"
HOST_ATTR, PID_ATTR = "seqlab.host", "seqlab.pid"


def storage_location(search: SearchConfig) -> tuple[str, Path | None]:
    """(Optuna storage URL or journal path, local file to lock or None)."""
    from seqlab.tracking.store import default_store_dir

    storage = search.storage
    if storage is None:
        store = default_store_dir(search.tracking.get("store_dir") or "mlruns")
        store.mkdir(parents=True, exist_ok=True)
        path = store / "optuna.journal"
        return str(path), path
    storage = str(storage)
    if storage.startswith("sqlite:///"):
        return storage, Path(storage[len("sqlite:///"):])
    if "://" in storage:
        return storage, None
    path = Path(storage).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".db":
        return f"sqlite:///{path}", path
    return str(path), path


def open_storage(location: str) -> optuna.storages.BaseStorage:
    if "://" in location:
        return optuna.storages.RDBStorage(location)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(location))


@contextlib.contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive lock beside the storage file (nothing for a remote storage)."""
    if path is None:
        yield
        return
    # Not "<path>.lock": Optuna's journal file backend locks with that name.
    with open(f"{path}.seqlab-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_or_none(node: Any, what: str, **kwargs: Any) -> Any:
    if node is None:
        return None
    try:
        return build(node, **kwargs)
    except Exception as err:  # noqa: BLE001 - any bad target or argument
        raise ConfigError(f"hparams_search.{what} cannot be built from {node!r}: {err}") from None


def make_pruner(search: SearchConfig) -> optuna.pruners.BasePruner:
    return _build_or_none(search.pruner, "pruner") or optuna.pruners.NopPruner()


def make_sampler(search: SearchConfig, worker_index: int = 0) -> optuna.samplers.BaseSampler | None:
    node = dict(search.sampler) if search.sampler else None
    if node and node.get("seed") is not None:
        # Workers of one study must not draw the same sequence.
        node["seed"] = int(node["seed"]) + worker_index
    return _build_or_none(node, "sampler")


class SharedStudy:
    """One process's handle on a study that other workers may share."""

    def __init__(self, search: SearchConfig, worker_index: int = 0):
        self.search = search
        self.location, self.lock_path = storage_location(search)
        self.storage = open_storage(self.location)
        with file_lock(self.lock_path):
            try:
                optuna.load_study(study_name=search.study_name, storage=self.storage)
                created = False
            except KeyError:
                created = True
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=search.study_name,
                direction=search.direction,
                pruner=make_pruner(search),
                sampler=make_sampler(search, worker_index),
                load_if_exists=True,
            )
            if self.study.direction.name.lower() != search.direction:
                raise ConfigError(
                    f"study {search.study_name!r} in {self.location} was created to "
                    f"{self.study.direction.name.lower()}, not {search.direction}: choose another study_name"
                )
            if created:
                for values in search.enqueue:
                    self.study.enqueue_trial(dict(values))
                self.study.set_user_attr("seqlab.preset", search.preset)
                self.study.set_user_attr("seqlab.space", json.dumps(search.keys))
        self.created = created
        self.study_id = self.storage.get_study_id_from_name(search.study_name)

    # -- counting and taking trials ---------------------------------------
    @staticmethod
    def counts(trial: FrozenTrial) -> bool:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return True
        return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(COUNTED_ATTR))

    def finished(self) -> list[FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False) if self.counts(t)]

    def running(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def fail_dead_trials(self) -> list[int]:
        """Trials left RUNNING by a worker on this machine that no longer exists
        (killed, crashed) are failed as interrupted, so they are run again."""
        host, failed = socket.gethostname(), []
        for trial in self.running():
            pid = trial.user_attrs.get(PID_ATTR)
            if trial.user_attrs.get(HOST_ATTR) != host or not isinstance(pid, int) or _alive(pid):
                continue
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
            self.storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, f"worker {pid} is gone")
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
        if failed:
            log.warning("trials %s were left running by a worker that is gone: failed, they run again", failed)
        return failed

    def ask(self, n_trials: int) -> optuna.Trial | None:
        """The next trial, or None when finished + running trials reach ``n_trials``."""
        with file_lock(self.lock_path):
            self.fail_dead_trials()
            if len(self.finished()) + len(self.running()) >= n_trials:
                return None
            trial = self.study.ask()
            trial.set_user_attr(HOST_ATTR, socket.gethostname())
            trial.set_user_attr(PID_ATTR, os.getpid())
            return trial

    # -- the MLflow parent run ------------------------------------------------
    def parent_run(self, client, experiment_id: str) -> str:
        """The study's parent run: created once (under the lock), then found
        again by every worker and every resumed search."""
        from seqlab.tracking.run import (
            DIRECTION_TAG,
            PRIMARY_METRIC_TAG,
            SWEEP_KEYS_TAG,
            version_tags,
        )

        with file_lock(self.lock_path):
            attrs = optuna.load_study(study_name=self.search.study_name, storage=self.storage).user_attrs
            run_id = attrs.get(PARENT_ATTR)
            if run_id:
                try:
                    run = client.get_run(run_id)
                    if run.info.experiment_id == experiment_id and run.info.lifecycle_stage == "active":
                        if run.info.status != "RUNNING":
                            client.update_run(run_id, status="RUNNING")
                        return run_id
                except Exception:  # noqa: BLE001 - gone from this store: make a new one
                    pass
            search = self.search
            run = client.create_run(
                experiment_id,
                run_name=f"search {search.study_name}",
                tags={
                    **version_tags(),
                    "seqlab.sweep": "parent",
                    "seqlab.sweep.kind": "optuna",
                    "seqlab.sweep.overrides": " ".join(search.command),
                    SWEEP_KEYS_TAG: ",".join(search.keys),
                    PRIMARY_METRIC_TAG: search.objective,
                    DIRECTION_TAG: "min" if search.direction == "minimize" else "max",
                    "seqlab.search.study": search.study_name,
                    "seqlab.search.preset": search.preset,
                    "seqlab.search.objective": search.objective,
                    "seqlab.search.direction": search.direction,
                    "seqlab.search.storage": self.location,
                },
            )
            self.study.set_user_attr(PARENT_ATTR, run.info.run_id)
            return run.info.run_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
