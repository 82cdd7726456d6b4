"""``seqlab-search``: hyper-parameter search with pruning (Optuna, driven by seqlab).

    seqlab-search hparams_search=char_lm                      # the preset's n_trials
    seqlab-search hparams_search=char_lm n_trials=40 workers=2
    seqlab-search hparams_search=tiny trainer.epochs=3        # train overrides: every trial

Search keys (conf/search.yaml): hparams_search, n_trials, workers, study_name,
storage, output_dir, hparams_search.*; every other override is a
seqlab-train override. Running the same command again continues the study.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from seqlab.cli import quiet_tensorflow
from seqlab.errors import SeqlabError

# Set in the worker processes workers=N starts: their index (sampler seeds).
WORKER_ENV = "SEQLAB_SEARCH_WORKER"


def _start_worker(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=env)


def _launch_workers(args: list[str], search) -> int:
    """Prepare the study and its parent once, then run ``workers`` processes on it."""
    from seqlab.search.driver import open_search, summarize, update_parent

    shared, client, parent = open_search(search)
    print(f"study {search.study_name!r} in {shared.location}: {search.workers} workers"
          + (f", MLflow parent run {parent}" if parent else ""), flush=True)
    rest = [a for a in args if a.split("=", 1)[0] != "workers"]
    procs = [
        _start_worker([sys.executable, "-m", "seqlab.cli.search", *rest, "workers=1"],
                      env={**os.environ, WORKER_ENV: str(i)})
        for i in range(search.workers)
    ]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reached the workers too; let them close their runs.
        codes = [p.wait() for p in procs]
        update_parent(shared, client, parent, final_status="KILLED")
        return 130
    update_parent(shared, client, parent, final_status="FINISHED" if not any(codes) else "FAILED")
    _print_summary(summarize(shared, parent, []), search.objective)
    return next((c for c in codes if c), 0)


def _print_summary(summary, objective: str) -> None:
    running = f" ({summary.n_running} still running in other workers)" if summary.n_running else ""
    head = f"study {summary.study_name!r}: {summary.n_finished} trials finished{running}"
    if summary.best_value is None:
        print(f"{head}, none completed")
        return
    print(f"{head}; best trial {summary.best_trial}: {objective}={summary.best_value:.4f} "
          f"{summary.best_values}")
    if summary.parent_run_id:
        print(f"MLflow parent run {summary.parent_run_id}")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    quiet_tensorflow()
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s")
    try:
        import optuna
    except ImportError:
        print("error: seqlab-search needs Optuna: pip install 'seqlab[search]'", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from seqlab.search.config import load
    from seqlab.search.driver import run_search

    try:
        search = load(args)
        if search.workers > 1 and WORKER_ENV not in os.environ:
            return _launch_workers(args, search)
        summary = run_search(search, worker_index=int(os.environ.get(WORKER_ENV, 0)))
    except SeqlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to continue the study", file=sys.stderr)
        return 130
    if WORKER_ENV not in os.environ:  # workers=N: the launching process prints it
        _print_summary(summary, search.objective)
    return 0


if __name__ == "__main__":
    sys.exit(main())
