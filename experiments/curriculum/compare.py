"""Fixed window length vs a sequence-length curriculum: seconds of training to a validation loss.

Runs the same preset twice through ``seqlab-train`` (fresh processes, one
after the other, one MLflow store): once at ``data.seq_len`` throughout, once
with ``data.seq_len_schedule``. Both train on ``batch_size x seq_len`` tokens
a step and the same steps an epoch (seqlab/data/curriculum.py), and both are
validated on the whole validation split at ``data.seq_len`` after every
epoch, so their ``val_loss`` curves compare point for point.

Training seconds per epoch come from what each run logged: the epoch's
tokens (steps x tokens per batch) over its ``tokens_per_sec``, which the
logger measures from the epoch's start to its last batch (tracing and the
retracing a new window length causes included, validation excluded). The
time to ``--target`` is interpolated linearly inside the epoch where the
validation loss first falls to it; with no ``--target``, the higher of the
two final validation losses (a level both runs reach).

    export SEQLAB_DATA_DIR=../shared/data
    python experiments/curriculum/compare.py                       # shakespeare_char, 6 epochs
    python experiments/curriculum/compare.py --target 1.60 \\
        --schedule "[[0,32],[2,64],[4,128]]" --epochs 8
    python experiments/curriculum/compare.py --preset experiment=shakespeare_transformer \\
        --schedule "[[0,16],[1,32],[2,64]]" --extra trainer.steps_per_epoch=null
    python experiments/curriculum/compare.py --smoke               # seconds: debug=tiny, 2 epochs
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="experiment=shakespeare_char",
                   help="the overrides both runs share (a preset), as one string")
    p.add_argument("--schedule", default="[[0,32],[1,64],[2,128]]", help="data.seq_len_schedule of the curriculum run")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--target", type=float, default=None, help="validation loss to reach (default: see above)")
    p.add_argument("--extra", default="", help="more overrides for both runs, as one string")
    p.add_argument("--store", default=None, help="MLflow store folder (default: a new temporary one)")
    p.add_argument("--smoke", action="store_true",
                   help="a check that the script works: debug=tiny, 2 epochs, schedule [[0,8],[1,32]]")
    args = p.parse_args(argv)
    if args.smoke:
        args.preset, args.schedule, args.epochs = "debug=tiny data.limit_chars=8000", "[[0,8],[1,32]]", 2
        args.extra = (args.extra + " trainer.test=false tracking.log_model=false").strip()
    return args


def train(args, store: Path, curriculum: bool) -> str:
    """One ``seqlab-train`` run; returns its MLflow run id."""
    script = Path(sys.executable).with_name("seqlab-train")
    overrides = [*shlex.split(args.preset), *shlex.split(args.extra), f"trainer.epochs={args.epochs}",
                 # one pass per epoch: the curriculum needs it, and the fixed run must match
                 "trainer.steps_per_epoch=null", f"tracking.store_dir={store}", "trainer.verbose=2"]
    if curriculum:
        overrides.append(f"data.seq_len_schedule={args.schedule}")
    name = "curriculum" if curriculum else "fixed"
    print(f"[{name}] seqlab-train {' '.join(overrides)}", flush=True)
    proc = subprocess.run([str(script), *overrides], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    found = re.search(r"MLflow run (\w+)", proc.stdout)
    if proc.returncode != 0 or not found:
        sys.exit(f"[{name}] failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return found.group(1)


def curve(client: MlflowClient, run_id: str) -> list[dict]:
    """Per epoch: cumulative training seconds, val_loss, the window length."""
    run = client.get_run(run_id)
    steps = int(run.data.params["trainer_info.steps_per_epoch"])
    tokens_per_step = int(run.data.params["trainer.batch_size"]) * int(run.data.params["data.seq_len"])

    def history(key):
        return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]

    rates, losses = history("tokens_per_sec"), history("val_loss")
    lengths = history("seq_len") or [float(run.data.params["data.seq_len"])] * len(losses)
    rows, seconds = [], 0.0
    for epoch, (rate, loss, length) in enumerate(zip(rates, losses, lengths)):
        seconds += steps * tokens_per_step / rate
        rows.append({"epoch": epoch, "seconds": seconds, "val_loss": loss, "seq_len": int(length)})
    return rows


def time_to(rows: list[dict], target: float) -> float:
    """Training seconds until ``val_loss <= target``, linear inside the epoch
    where it is first reached (the start of training counts as no progress)."""
    before_s, before_loss = 0.0, None
    for row in rows:
        if row["val_loss"] <= target:
            if before_loss is None or before_loss == row["val_loss"]:
                return row["seconds"]
            share = (before_loss - target) / (before_loss - row["val_loss"])
            return before_s + share * (row["seconds"] - before_s)
        before_s, before_loss = row["seconds"], row["val_loss"]
    return float("nan")


def main(argv=None):
    args = parse_args(argv)
    store = Path(args.store or tempfile.mkdtemp(prefix="seqlab-curriculum-")).resolve()
    runs = {name: train(args, store, curriculum=name == "curriculum") for name in ("fixed", "curriculum")}
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    curves = {name: curve(client, run_id) for name, run_id in runs.items()}
    target = args.target
    if target is None:
        target = max(rows[-1]["val_loss"] for rows in curves.values())

    print(f"\npreset: {args.preset} {args.extra}".rstrip() + f"; curriculum data.seq_len_schedule={args.schedule}")
    print(f"{'epoch':>5} | {'fixed: T':>8} {'train s':>8} {'val_loss':>9} | "
          f"{'curric.: T':>10} {'train s':>8} {'val_loss':>9}")
    for a, b in zip(curves["fixed"], curves["curriculum"]):
        print(f"{a['epoch']:>5} | {a['seq_len']:>8} {a['seconds']:>8.1f} {a['val_loss']:>9.4f} | "
              f"{b['seq_len']:>10} {b['seconds']:>8.1f} {b['val_loss']:>9.4f}")
    fixed_s, curriculum_s = time_to(curves["fixed"], target), time_to(curves["curriculum"], target)
    print(f"\ntraining seconds to val_loss <= {target:.4f}: fixed {fixed_s:.1f}, curriculum {curriculum_s:.1f} "
          f"(curriculum / fixed = {curriculum_s / fixed_s:.2f})")
    print(f"final val_loss: fixed {curves['fixed'][-1]['val_loss']:.4f}, "
          f"curriculum {curves['curriculum'][-1]['val_loss']:.4f}; runs {runs} in {store}")
    return curves, target


if __name__ == "__main__":
    main()
