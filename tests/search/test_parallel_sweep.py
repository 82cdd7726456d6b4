"""Parallel local sweeps with Hydra's joblib launcher: N jobs on one store,
every child under one parent, none lost, every time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import TINY, all_runs, store_client

# Jobs as small as a run gets: what is tested is the store, not the training.
MINIMAL = ["trainer.steps_per_epoch=1", "trainer.validation_steps=1", "trainer.test=false",
           "tracking.log_model=false", "callbacks.checkpoint=null", "model.cell.compile_loops=false"]
# The suite runs 1 repetition (a store made from nothing: the racy case; more
# repetitions also start from an empty schema): each sweep costs ~30 s of
# TensorFlow imports in fresh joblib workers, and the suite must stay under
# 10 minutes on 2 cores. The issue's
# soak of 5 (or more) runs with SEQLAB_SWEEP_REPETITIONS=5; it passed 5 of 5
# in every try recorded in experiments/search/README.md.
REPETITIONS = int(os.environ.get("SEQLAB_SWEEP_REPETITIONS", "1"))


@pytest.mark.soak
def test_a_joblib_multirun_of_4_jobs_gives_4_children_and_1_parent_every_time(tmp_path, data_dir, _empty_mlflow_db):
    script = os.path.join(os.path.dirname(sys.executable), "seqlab-train")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    times = []
    for rep in range(REPETITIONS):
        folder = tmp_path / f"rep{rep}"
        store = folder / "mlruns"
        store.mkdir(parents=True)
        if rep:
            # A store with MLflow's schema and no experiment: the schema
            # migrations cost seconds; repetition 0 starts from nothing at all.
            shutil.copy(_empty_mlflow_db, store / "mlflow.db")
        start = time.perf_counter()
        proc = subprocess.run(
            [script, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, *MINIMAL,
             f"tracking.store_dir={store}", "model.hidden_size=8,12,16,24"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=300,
        )
        times.append(round(time.perf_counter() - start, 1))
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs = all_runs(store_client(folder))
        parents = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert (len(parents), len(children), len(runs)) == (1, 4, 5), f"repetition {rep}"
        assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
        assert sorted(c.data.params["model.hidden_size"] for c in children) == ["12", "16", "24", "8"]
        assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    print(f"{REPETITIONS} joblib sweeps of 4 jobs (n_jobs=2): {times} s")
