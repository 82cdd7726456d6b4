"""Results table and gradient-flow plots of the study, read back from MLflow.

    python experiments/vanishing_gradients/summarize.py [--store experiments/vanishing_gradients/mlruns]

Writes ``results.md`` (the table) and ``plots/*.png`` next to this file.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

HERE = Path(__file__).resolve().parent
BASELINE = 1.0 / 6.0  # adding problem: always predict 1.0
CELL_ORDER = ["simple_rnn", "lstm", "gru", "peephole_lstm"]


def _runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment {experiment!r} in the store")
    rows = []
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        p = r.data.params
        if not p.get("data._target_", "").endswith("build_adding_data") or "model.cell.name" not in p:
            continue
        rows.append(r)
    return rows


def _history(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _curves(client, run_id, tmp):
    path = client.download_artifacts(run_id, "grad_time/rnn_0.csv", str(tmp / run_id))
    data = np.genfromtxt(path, delimiter=",", names=True)
    cols = [c for c in data.dtype.names if c.startswith("step")]
    return {int(c[4:]): np.asarray(data[c], dtype=np.float64) for c in cols}


def _flow_text(g: np.ndarray | None, fallback: float) -> str:
    """log10(g_0 / g_{T-1}); where float32 underflowed to exactly 0, say from where."""
    if g is None:
        return f"{fallback:.2f}"
    if g[0] > 0:
        return f"{math.log10(g[0] / g[-1]):.2f}"
    k = int(np.argmax(g > 0))
    return f"-inf (0 for t<{k}; log10 g{k}/gT-1 = {math.log10(g[k] / g[-1]):.1f})"


def _frac(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=str(HERE / "mlruns"))
    ap.add_argument("--experiment", default="vanishing_gradients")
    args = ap.parse_args()
    client = MlflowClient(f"sqlite:///{Path(args.store).resolve() / 'mlflow.db'}")
    tmp = Path(tempfile.mkdtemp())
    table, curves = [], {}
    for r in _runs(client, args.experiment):
        p, m = r.data.params, r.data.metrics
        cell, T = p["model.cell.name"], int(p["data.length"])
        clip = p.get("trainer.clipnorm", "None")
        clip = "off" if clip in ("None", "null") else clip
        flow = _history(client, r.info.run_id, "grad_flow/rnn_0")
        norms = [v for _, v in _history(client, r.info.run_id, "grad_norm/global")]
        frac = [v for _, v in _history(client, r.info.run_id, "grad_norm/clipped_fraction")]
        rho = _history(client, r.info.run_id, "spectral_radius/rnn_0")
        steps = int(m.get("global_step", 0)) or (flow[-1][0] if flow else 0)
        try:
            curves[(cell, T, clip)] = _curves(client, r.info.run_id, tmp)
        except Exception as err:  # a failed or running run may have no CSV
            print(f"no curves for {r.info.run_name}: {err}")
        c = curves.get((cell, T, clip))
        table.append({
            "cell": cell, "T": T, "clip": clip, "status": r.info.status, "steps": steps,
            "test_loss": m.get("test_loss", math.nan),
            "flow0": _flow_text(c[min(c)] if c else None, flow[0][1] if flow else math.nan),
            "flow_end": _flow_text(c[max(c)] if c else None, flow[-1][1] if flow else math.nan),
            "max_norm": max(norms) if norms else math.nan,
            "clipped": float(np.mean(frac)) if frac and clip != "off" else math.nan,
            "rho0": rho[0][1] if rho else math.nan, "rho_end": rho[-1][1] if rho else math.nan,
        })
    table.sort(key=lambda d: (d["T"], CELL_ORDER.index(d["cell"]) if d["cell"] in CELL_ORDER else 9, d["clip"]))

    lines = [
        "| T | cell | clip | steps | test MSE | / baseline | log10 g0/gT-1 at init | at end | max grad norm | clipped frac | spectral radius init -> end | status |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for d in table:
        lines.append(
            f"| {d['T']} | {d['cell']} | {d['clip']} | {d['steps']} | {d['test_loss']:.4f} | "
            f"{d['test_loss'] / BASELINE:.2f} | {d['flow0']} | {d['flow_end']} | {d['max_norm']:.3g} | "
            f"{_frac(d['clipped'])} | "
            f"{d['rho0']:.2f} -> {d['rho_end']:.2f} | {d['status']} |"
        )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    plots = HERE / "plots"
    plots.mkdir(exist_ok=True)
    lengths = sorted({T for (_, T, _) in curves})
    cells = [c for c in CELL_ORDER if any(k[0] == c for k in curves)]
    colors = dict(zip(CELL_ORDER, ["tab:red", "tab:blue", "tab:green", "tab:purple"], strict=True))
    for T in lengths:
        fig = Figure(figsize=(10, 3.8), dpi=90)
        FigureCanvasAgg(fig)
        for i, which in enumerate(("init", "end")):
            ax = fig.add_subplot(1, 2, i + 1)
            for cell in cells:
                for clip, style in (("1.0", "-"), ("off", ":")):
                    c = curves.get((cell, T, clip))
                    if not c:
                        continue
                    if which == "init" and clip == "off":
                        continue  # same seed, same initial weights: identical to clip 1.0
                    k = min(c) if which == "init" else max(c)
                    g = np.where(c[k] > 0, c[k], np.nan)
                    label = cell if which == "init" else f"{cell}, clip {clip}"
                    ax.plot(np.arange(g.size), g, style, color=colors[cell], label=label, linewidth=1.2)
            ax.set_yscale("log")
            ax.set_xlabel("time step t")
            ax.set_ylabel(r"mean$_b$ $\|\partial L_b/\partial h_t\|$")
            ax.set_title(f"adding, T={T}: {'untrained (step 0)' if which == 'init' else 'after training'}",
                         fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plots / f"grad_time_T{T}.png")
    for cell in cells:
        fig = Figure(figsize=(6.4, 4.0), dpi=90)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for T in lengths:
            c = curves.get((cell, T, "1.0")) or curves.get((cell, T, "off"))
            if not c:
                continue
            g = c[min(c)][::-1]  # distance from the last step
            ax.plot(np.arange(g.size), np.where(g > 0, g, np.nan), label=f"T={T}, step 0", linewidth=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("steps back from the last step (T-1-t)")
        ax.set_ylabel(r"mean$_b$ $\|\partial L_b/\partial h_t\|$")
        ax.set_title(f"{cell}: gradient flow at initialisation (adding problem)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plots / f"grad_time_{cell}.png")
    print("plots:", sorted(p.name for p in plots.glob("*.png")))


if __name__ == "__main__":
    main()
