"""``seqlab-train``: the Hydra app around :func:`seqlab.experiment.run`.

    seqlab-train                                   # the main job (char LSTM, Tiny Shakespeare)
    seqlab-train model.hidden_size=128 trainer.epochs=2
    seqlab-train -m model/cell=lstm,gru            # a sweep: one MLflow parent run
    seqlab-train resume=<run_id>                   # continue an interrupted run (same MLflow run)

Ctrl-C or SIGTERM while training stops at the next batch boundary, writes a
checkpoint, closes the MLflow run KILLED and exits 130 / 143; a second one
exits at once (:mod:`seqlab.training.signals`).
"""

from __future__ import annotations

import json
import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from seqlab.cli import quiet_tensorflow
from seqlab.errors import SeqlabError
from seqlab.tracking.hydra_callback import SWEEP_KEYS_ENV

log = logging.getLogger("seqlab")


def _job_name() -> str | None:
    """In a sweep, a child run is named by the overrides the sweep varies
    (``model.hidden_size=128``), not by every fixed override beside them."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    swept = set(json.loads(os.environ.get(SWEEP_KEYS_ENV, "[]")))
    overrides = list(hc.overrides.task)
    named = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept] or overrides
    return ",".join(named) or f"job {hc.job.num}"


def _resume_config(cfg: DictConfig) -> DictConfig:
    """``resume=<run_id>``: the run's own config, plus the few overrides
    :data:`seqlab.training.resume.RESUME_OVERRIDES` allows."""
    from seqlab.errors import ConfigError
    from seqlab.training.resume import resume_config

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        raise ConfigError(f"resume={cfg.resume} continues one run; drop -m/--multirun")
    return resume_config(cfg, list(hc.overrides.task))


@hydra.main(version_base="1.3", config_path="pkg://seqlab.conf", config_name="train")
def _app(cfg: DictConfig) -> float | None:
    from seqlab.experiment import run
    from seqlab.training.signals import StopRequested, raise_on_signals

    name = _job_name()
    if name and not cfg.tracking.get("run_name"):
        with open_dict(cfg):
            cfg.tracking.run_name = name
    try:
        if cfg.get("resume"):
            cfg = _resume_config(cfg)
        # SIGINT/SIGTERM: StopRequested (KILLED) wherever the run is; inside
        # fit, run() stops at the next batch boundary with a checkpoint.
        with raise_on_signals():
            results = run(cfg, output_dir=HydraConfig.get().runtime.output_dir)
    except StopRequested as stop:
        # SIGINT/SIGTERM: the run is closed KILLED, the checkpoint written;
        # exit as a shell reports a process the signal ended (130, 143).
        run_id = getattr(stop, "run_id", None) or "<run_id>"
        print(f"{stop}; continue with: seqlab-train resume={run_id}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except SeqlabError as err:
        # One line the user can act on; the MLflow run is already closed FAILED.
        print(f"error: {err}", file=sys.stderr)
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            # The sweep stops here and Hydra will not call on_multirun_end:
            # close the parent run FAILED with the reason.
            _fail_sweep_parent(cfg, err)
            if "BasicLauncher" not in str(hc.launcher.get("_target_", "")):
                raise  # a worker process of a parallel launcher: let the launcher report it
        sys.exit(2)
    # The return value is what an Optuna sweeper optimizes.
    return results.get("val_loss")


def _fail_sweep_parent(cfg: DictConfig, err: Exception) -> None:
    from omegaconf import OmegaConf

    from seqlab.tracking.run import PARENT_RUN_ENV

    parent = os.environ.get(PARENT_RUN_ENV)
    if not parent or not cfg.tracking.get("enabled", True):
        return
    from mlflow.tracking import MlflowClient

    from seqlab.tracking.store import resolve_tracking_uri

    client = MlflowClient(resolve_tracking_uri(OmegaConf.to_container(cfg.tracking, resolve=True)))
    client.set_tag(parent, "failure_reason", f"{type(err).__name__}: {err}"[:4000])
    client.set_terminated(parent, status="FAILED")


def main() -> None:
    quiet_tensorflow()
    _app()


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    main()
