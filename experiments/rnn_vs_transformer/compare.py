"""Equal training wall time, side by side: seqlab runs against the plain Keras scripts.

Each seqlab configuration runs first (``seqlab-train`` with the given
overrides, into a private MLflow store); its ``train_time_s`` becomes the
budget of the plain scripts (``plain.py``), which run right after it on the
same machine. Every row is a fresh subprocess. The 2048^2 fp32 matmul figure
is measured before and after.

    python experiments/rnn_vs_transformer/compare.py                       # the main job
    python experiments/rnn_vs_transformer/compare.py --seqlab "experiment=shakespeare_transformer"
    python experiments/rnn_vs_transformer/compare.py --seqlab "trainer.max_train_time_s=60" --plain lstm,gpt
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n))
    tf.linalg.matmul(a, a).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, a).numpy()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


def run_seqlab(overrides: list[str], store: Path) -> dict:
    """One seqlab-train run; its final metrics read back from the store."""
    script = Path(sys.executable).with_name("seqlab-train")
    start = time.perf_counter()
    proc = subprocess.run([str(script), *overrides, f"tracking.store_dir={store}", "trainer.verbose=0",
                           "tracking.log_model=false"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"seqlab-train {' '.join(overrides)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time DESC"], max_results=1)
    m = runs[0].data.metrics
    sample = proc.stdout.strip().splitlines()
    return {"model": "seqlab " + (" ".join(overrides) or "(main job)"), "train_s": m.get("train_time_s"),
            "wall_s": wall, "val_loss": m.get("val_loss"), "test_loss": m.get("test_loss"),
            "params": int(float(runs[0].data.params.get("model_info.parameters", "nan"))),
            "chars_per_sec": m.get("tokens_per_sec"), "output": "\n".join(sample[-12:])}


def run_plain(model: str, budget: float) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / "plain.py"), "--model", model, "--budget", f"{budget:.1f}"],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"plain.py --model {model} failed:\n{proc.stderr[-3000:]}")
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqlab", action="append", default=None,
                        help="overrides of one seqlab run, space-separated (repeatable); default: the main job")
    parser.add_argument("--plain", default="lstm,gpt", help="plain scripts to run at each seqlab run's budget")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    before = matmul_gflops()
    print(f"# {os.cpu_count()} cores; 2048^2 fp32 matmul {before:.0f} GFLOP/s before", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(args.seqlab or [""]):
            overrides = spec.split()
            row = run_seqlab(overrides, Path(tmp) / f"store{i}")
            print(row.pop("output"), flush=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
            for model in [m for m in args.plain.split(",") if m]:
                plain = run_plain(model, row["train_s"])
                plain["budget_of"] = row["model"]
                rows.append(plain)
                print(json.dumps(plain), flush=True)
    after = matmul_gflops()
    print(f"# 2048^2 fp32 matmul {after:.0f} GFLOP/s after")
    print("\n| run | train s | params | chars/s | val loss (nats/char) |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['train_s']:.0f} | {row['params']:,} | {row['chars_per_sec'] or 0:,.0f} "
              f"| {row['val_loss']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps({"gflops": [before, after], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
