"""Searches end to end on the tiny preset: pruning, resume, workers sharing a study."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from seqlab.search.config import load
from seqlab.search.driver import run_search
from seqlab.search.study import INTERRUPTED_ATTR, PID_ATTR, RUN_ATTR
from tests.e2e.helpers import all_runs, store_client


def _args(tmp_path, *extra):
    return ["hparams_search=tiny", f"tracking.store_dir={tmp_path / 'mlruns'}",
            f"output_dir={tmp_path / 'out'}", *extra]


def _study(tmp_path, name="tiny"):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "mlruns" / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _states(study):
    """Trial states, less the enqueued trials still waiting for a worker."""
    return [t.state for t in study.trials if t.state != TrialState.WAITING]


def _split(runs):
    parents = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.mark.slow
def test_a_hopeless_trial_is_pruned(tmp_path, data_dir):
    start = time.perf_counter()
    summary = run_search(load(_args(tmp_path)))
    study = _study(tmp_path)
    client = store_client(tmp_path)
    parents, children = _split(all_runs(client))
    curves = {c.data.tags["seqlab.search.trial"]: [(m.step, round(m.value, 4)) for m in
                                                   client.get_metric_history(c.info.run_id, "val_loss")]
              for c in children}
    print(f"search of 4 trials: {time.perf_counter() - start:.1f}s; val_loss per trial: {curves}")

    # The enqueued trials: two that learn, the hopeless one (lr 1e-6), one that learns.
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE,
                                               TrialState.PRUNED, TrialState.COMPLETE], curves
    hopeless = study.trials[2]
    assert hopeless.params["optimizer.learning_rate"] == 1e-6
    assert list(hopeless.intermediate_values) == [1]  # stopped after epoch 1 of 2
    assert summary.best_trial in (0, 3) and summary.n_finished == 4

    (parent,) = parents
    assert len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_trial = {int(c.data.tags["seqlab.search.trial"]): c for c in children}
    pruned = by_trial[2]
    assert pruned.info.status == "KILLED"
    assert pruned.data.tags["seqlab.search.pruned"] == "true"
    assert "failure_reason" not in pruned.data.tags
    assert "pruned at epoch 1" in pruned.data.tags["seqlab.search.pruned_reason"]
    assert len(curves["2"]) == 1  # the epoch that decided it is recorded
    assert all(by_trial[n].info.status == "FINISHED" for n in (0, 1, 3))
    assert by_trial[2].info.run_name == "tiny #2 optimizer.learning_rate=1e-06,model.hidden_size=32"
    assert by_trial[0].data.tags["seqlab.search.param.optimizer.learning_rate"] == "0.01"
    assert all(study.trials[n].user_attrs[RUN_ATTR] == by_trial[n].info.run_id for n in range(4))

    assert parent.info.run_name == "search tiny" and parent.info.status == "FINISHED"
    assert parent.data.tags["seqlab.search.trials.pruned"] == "1"
    assert parent.data.tags["seqlab.search.best_run_id"] == by_trial[summary.best_trial].info.run_id
    assert parent.data.tags["seqlab.best_child"] == by_trial[summary.best_trial].info.run_id
    assert parent.data.tags["seqlab.primary_metric"] == "val_loss"
    assert parent.data.tags["seqlab.sweep.keys"] == "optimizer.learning_rate,model.hidden_size"
    assert by_trial[0].data.tags["seqlab.sweep.keys"] == "optimizer.learning_rate,model.hidden_size"
    assert by_trial[0].data.tags["seqlab.primary_metric"] == "val_loss"
    assert parent.data.metrics["best_val_loss"] == pytest.approx(summary.best_value)
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "search")] == ["search/trials.csv"]
    report = [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    assert any(p.endswith(".html") for p in report), report  # seqlab-report's page of the study


def _fake_run(calls, interrupt_at=None):
    """seqlab.experiment.run without training: one real MLflow child run whose
    val_loss is a function of the trial's values."""
    from omegaconf import OmegaConf

    from seqlab.tracking import TrackedRun

    def run(cfg, output_dir=None):
        calls.append(cfg.tracking.run_name)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        with TrackedRun(resolved["tracking"], config=None) as tracker:
            if len(calls) == interrupt_at:
                raise KeyboardInterrupt
            loss = abs(cfg.optimizer.learning_rate - 0.01) + cfg.model.hidden_size / 1000
            tracker.log_metrics({"val_loss": loss}, step=1)
            return {"val_loss": loss, "run_id": tracker.run_id}

    return run


def test_an_interrupted_study_resumes_and_continues_its_trial_count(tmp_path, monkeypatch):
    import seqlab.experiment

    calls: list[str] = []
    monkeypatch.setattr(seqlab.experiment, "run", _fake_run(calls, interrupt_at=3))
    with pytest.raises(KeyboardInterrupt):
        run_search(load(_args(tmp_path, "hparams_search.pruner=null")))
    study = _study(tmp_path)
    assert _states(study) == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[2].user_attrs[INTERRUPTED_ATTR] == "Ctrl-C"
    (parent,) = _split(all_runs(store_client(tmp_path)))[0]
    assert parent.info.status == "KILLED"

    # The same command again: the interrupted trial does not count, numbering goes on.
    monkeypatch.setattr(seqlab.experiment, "run", _fake_run(calls))
    summary = run_search(load(_args(tmp_path, "hparams_search.pruner=null")))
    study = _study(tmp_path)
    assert _states(study) == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert [o.number for o in summary.outcomes] == [3, 4] and summary.n_finished == 4
    assert len(calls) == 5 and calls[3].startswith("tiny #3 ")
    parents, children = _split(all_runs(store_client(tmp_path)))
    assert [p.info.run_id for p in parents] == [parent.info.run_id]  # one parent, reopened
    assert parents[0].info.status == "FINISHED"
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 4 + ["KILLED"]

    # Asked for more, it runs only the difference.
    summary = run_search(load(_args(tmp_path, "hparams_search.pruner=null", "n_trials=5")))
    assert [o.number for o in summary.outcomes] == [5]


def test_a_trial_left_running_by_a_dead_worker_runs_again(tmp_path, monkeypatch):
    import seqlab.experiment

    search = load(_args(tmp_path, "n_trials=1"))
    from seqlab.search.study import SharedStudy

    shared = SharedStudy(search)
    orphan = shared.study.ask()
    orphan.set_user_attr("seqlab.host", os.uname().nodename)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan.set_user_attr(PID_ATTR, dead.pid)
    monkeypatch.setattr(seqlab.experiment, "run", _fake_run([]))
    summary = run_search(search)
    study = _study(tmp_path)
    assert _states(study) == [TrialState.FAIL, TrialState.COMPLETE]
    assert "is gone" in study.trials[0].user_attrs[INTERRUPTED_ATTR]
    assert summary.n_finished == 1


@pytest.mark.soak  # two real worker processes: ~23 s of the 2-core suite's budget
def test_two_worker_processes_share_one_study(tmp_path, data_dir):
    """The same command started twice at once: one study, one parent, no trial
    run twice, none beyond n_trials (``workers=2`` starts such processes)."""
    start = time.perf_counter()
    script = os.path.join(os.path.dirname(sys.executable), "seqlab-search")
    command = [script, *_args(tmp_path, "n_trials=2", "trainer.epochs=1")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    print(f"2 workers, 2 trials: {time.perf_counter() - start:.1f}s")
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outputs]
    study = _study(tmp_path)
    assert _states(study) == [TrialState.COMPLETE, TrialState.COMPLETE]
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({t.params["optimizer.learning_rate"] for t in finished}) == 2  # each enqueued trial once
    print("trials per worker pid:", [t.user_attrs[PID_ATTR] for t in finished])
    parents, children = _split(all_runs(store_client(tmp_path)))
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert parents[0].info.status == "FINISHED"
    # The worker that finished last saw the whole study.
    assert any("study 'tiny': 2 trials finished" in out for out, _ in outputs), outputs


def test_workers_n_starts_n_processes_of_the_same_command(tmp_path, monkeypatch, capsys):
    """``workers=2``: the study and its parent are made once, then two worker
    processes (here run in turn, in-process, on a stubbed run()) share them."""
    import seqlab.cli.search as cli
    import seqlab.experiment

    monkeypatch.setattr(seqlab.experiment, "run", _fake_run([]))
    started = []

    class FakeWorker:
        def __init__(self, command, env):
            started.append((command, env[cli.WORKER_ENV]))
            assert command[:3] == [sys.executable, "-m", "seqlab.cli.search"]
            monkeypatch.setenv(cli.WORKER_ENV, env[cli.WORKER_ENV])
            self.code = cli.main(command[3:])
            monkeypatch.delenv(cli.WORKER_ENV)

        def wait(self):
            return self.code

    monkeypatch.setattr(cli, "_start_worker", FakeWorker)
    assert cli.main(_args(tmp_path, "workers=2", "hparams_search.pruner=null")) == 0
    assert [index for _, index in started] == ["0", "1"]
    assert all(command[-1] == "workers=1" and "workers=2" not in command for command, _ in started)
    out = capsys.readouterr().out
    assert "2 workers" in out and out.count("study 'tiny': 4 trials finished") == 1
    parents, children = _split(all_runs(store_client(tmp_path)))
    assert len(parents) == 1 and len(children) == 4 and parents[0].info.status == "FINISHED"
