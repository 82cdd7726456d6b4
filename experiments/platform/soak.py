"""Soak: many parallel short jobs on one MLflow store; is every run complete?

Runs ``seqlab-train -m`` with Hydra's joblib launcher (``--jobs`` jobs,
``--parallel`` at a time) of the tiny char LM, all into one fresh SQLite
store and one fresh data cache (``$SEQLAB_CACHE_DIR``), then checks what the
store holds: one parent, ``--jobs`` children, all FINISHED, each with its
params, config.yaml, epoch metrics, test metrics and logged model; the
parent's best child is the child with the lowest val_loss.
Prints the figures (wall time, jobs/minute, failures). Not part of the test
suite (minutes of CPU); run on an otherwise idle machine:

    python experiments/platform/soak.py --jobs 20 --parallel 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    from mlflow.tracking import MlflowClient

    script = Path(sys.executable).with_name("seqlab-train")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlruns"
        seeds = ",".join(str(i) for i in range(args.jobs))
        cmd = [str(script), "-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.parallel}",
               "debug=tiny", f"trainer.steps_per_epoch={args.steps}", f"trainer.seed={seeds}",
               f"tracking.store_dir={store}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        # A fresh data cache too: every job then prepares the corpus's TFDS entry at the same
        # moment, the race that a warm ~/.cache/seqlab hides (10 of 20 jobs failed on it).
        env["SEQLAB_CACHE_DIR"] = str(Path(tmp) / "cache")
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        print(f"seqlab-train -m ... {args.jobs} jobs, {args.parallel} at a time: exit {proc.returncode}, "
              f"{wall:.0f} s ({args.jobs / wall * 60:.1f} jobs/min)")
        if proc.returncode:
            print(proc.stdout[-3000:], proc.stderr[-3000:])

        client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("seqlab")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        parents = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        problems = []
        if len(parents) != 1:
            problems.append(f"{len(parents)} parent runs")
        if len(children) != args.jobs:
            problems.append(f"{len(children)} children, expected {args.jobs}")
        models = {m.source_run_id for m in client.search_logged_models([experiment.experiment_id])}
        for child in children:
            name = child.info.run_name
            if child.info.status != "FINISHED":
                problems.append(f"{name}: {child.info.status}")
            if not {"val_loss", "test_loss", "loss", "wall_time_s"} <= set(child.data.metrics):
                problems.append(f"{name}: metrics {sorted(child.data.metrics)}")
            if "trainer.seed" not in child.data.params:
                problems.append(f"{name}: params missing")
            if "config.yaml" not in {a.path for a in client.list_artifacts(child.info.run_id)}:
                problems.append(f"{name}: no config.yaml")
            if child.info.run_id not in models:
                problems.append(f"{name}: no logged model")
        if parents and children:
            best = min(children, key=lambda c: c.data.metrics.get("val_loss", float("inf")))
            if parents[0].data.tags.get("seqlab.best_child") != best.info.run_id:
                problems.append("the parent's best child is not the lowest val_loss")
        print(f"{len(children)} children, {sum(c.info.status == 'FINISHED' for c in children)} FINISHED; "
              f"{len(problems)} problem(s)")
        for problem in problems:
            print("  -", problem)
        sys.exit(1 if problems or proc.returncode else 0)


if __name__ == "__main__":
    main()
