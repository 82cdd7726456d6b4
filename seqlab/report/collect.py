"""Read one sweep from the MLflow store: the parent run, its children, the
swept keys, the metrics to show and their histories.

Works offline: everything comes through :class:`mlflow.tracking.MlflowClient`
on the store's tracking URI (an embedded SQLite file or a server).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

SWEEP_TAG = "seqlab.sweep"
OVERRIDES_TAG = "seqlab.sweep.overrides"
KEYS_TAG = "seqlab.sweep.keys"
PRIMARY_TAG = "seqlab.primary_metric"
TRAILING_METRICS = ("wall_time_s",)
# Params that follow from the swept ones (or describe the store), never a column.
DERIVED_PREFIXES = ("data_info.", "model_info.", "trainer_info.", "tracking.", "hydra.")
SEED_KEY = "trainer.seed"
MAXIMIZED = (
    "accuracy",
    "acc",
    "iou",
    "dice",
    "bleu",
    "auc",
    "f1",
    "precision",
    "recall",
    "per_sec",
    "r2",
)


class ReportError(Exception):
    """Bad input (unknown run, no sweep, unknown metric): one line for the user."""


@dataclass
class Child:
    run_id: str
    name: str
    status: str
    values: dict[str, str]  # swept key -> the value this child ran with
    metrics: dict[str, float]
    params: dict[str, str] = field(repr=False, default_factory=dict)


@dataclass
class Sweep:
    tracking_uri: str
    experiment: str
    parent_id: str | None  # None: all runs of an experiment (--all)
    parent_name: str
    overrides: str
    keys: list[str]
    children: list[Child]
    primary: str
    direction: str  # "min" or "max"
    metrics: list[str]  # the columns, the primary first

    @property
    def seed_grouped(self) -> bool:
        return SEED_KEY in self.keys and len(self.children) > 1


def direction_of(metric: str, tags: dict[str, str] | None = None) -> str:
    """``min`` for losses, perplexities, times; ``max`` for accuracies and
    other scores. A ``seqlab.primary_metric.direction`` (or ``..._direction``)
    tag wins."""
    tags = tags or {}
    for key in (f"{PRIMARY_TAG}.direction", f"{PRIMARY_TAG}_direction", "seqlab.direction"):
        value = str(tags.get(key, "")).lower()
        if value in ("min", "minimize"):
            return "min"
        if value in ("max", "maximize"):
            return "max"
    name = metric.rsplit("/", 1)[-1].lower()
    return "max" if any(part in name for part in MAXIMIZED) else "min"


def client_for(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def find_parent(client, tracking_uri: str, experiment: str | None, parent_id: str | None):
    """The parent run: ``parent_id`` if given, else the newest run tagged
    ``seqlab.sweep=parent`` in ``experiment``."""
    from mlflow.exceptions import MlflowException

    if parent_id:
        try:
            return client.get_run(parent_id)
        except MlflowException:
            raise ReportError(f"no run {parent_id!r} in {tracking_uri}") from None
    exp = experiment_by_name(client, tracking_uri, experiment)
    parents = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{SWEEP_TAG}` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not parents:
        raise ReportError(
            f"experiment {experiment!r} has no sweep (no run tagged {SWEEP_TAG}=parent) in {tracking_uri}; "
            "run one with `seqlab-train -m key=a,b`, or compare all its runs with --all"
        )
    return parents[0]


def experiment_by_name(client, tracking_uri: str, experiment: str | None):
    exp = client.get_experiment_by_name(experiment or "seqlab")
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"no experiment {experiment!r} in {tracking_uri}; experiments there: {names}"
        )
    return exp


def swept_keys_from_tags(tags: dict[str, str]) -> list[str]:
    """``seqlab.sweep.keys`` (a JSON list or comma-separated), else the sweep
    overrides of ``seqlab.sweep.overrides`` (``a=1,2 b=x`` -> ``["a"]``)."""
    raw = tags.get(KEYS_TAG)
    if raw:
        try:
            keys = json.loads(raw)
            if isinstance(keys, list):
                return [str(k) for k in keys]
        except json.JSONDecodeError:
            pass
        return [k.strip() for k in raw.split(",") if k.strip()]
    overrides = tags.get(OVERRIDES_TAG, "").strip()
    if not overrides:
        return []
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(overrides.split())
        return [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
    except Exception:  # an odd tag: fall back on the params that vary
        return [
            o.split("=", 1)[0].lstrip("+~") for o in overrides.split() if "," in o.split("=", 1)[-1]
        ]


def varying_params(params: list[dict[str, str]]) -> list[str]:
    keys = sorted({k for p in params for k in p})
    varying = [k for k in keys if len({p.get(k) for p in params}) > 1]
    return [k for k in varying if not k.startswith(DERIVED_PREFIXES)]


def value_of(key: str, run_name: str, params: dict[str, str], tags: dict[str, str]) -> str:
    """What a child ran with for swept ``key``: its params (``model.hidden_size``),
    a config group's choice (``model/cell=gru`` in the run name, or the group's
    ``name`` param), else ``?``."""
    values = tags.get("seqlab.sweep.values")
    if values:
        try:
            found = json.loads(values).get(key)
            if found is not None:
                return str(found)
        except (json.JSONDecodeError, AttributeError):
            pass
    dotted = key.replace("/", ".")
    if key in params:
        return params[key]
    if "/" not in key and dotted in params:
        return params[dotted]
    # Run names of sweep children are their swept overrides: "a=1,model/cell=gru".
    match = re.search(
        rf"(?:^|[,\s]){re.escape(key)}=(.*?)(?=,[+~]?[\w./@-]+=|\s|$)", run_name or ""
    )
    if match:
        return match.group(1)
    for suffix in (".name", "._name_", ".kind"):
        if dotted + suffix in params:
            return params[dotted + suffix]
    return "?"


def _metric_names(runs) -> set[str]:
    return {k for r in runs for k in r.data.metrics}


def choose_metrics(
    requested: list[str] | None, primary: str, available: set[str], where: str
) -> list[str]:
    if requested:
        missing = [m for m in requested if m not in available]
        if missing:
            shown = sorted(m for m in available if "/" not in m)
            raise ReportError(
                f"no run of {where} logged metric {missing[0]!r}; metrics there: {shown}"
            )
        return list(dict.fromkeys(requested))
    if primary not in available:
        shown = sorted(m for m in available if "/" not in m)
        raise ReportError(
            f"no run of {where} logged the primary metric {primary!r}; pick one with --metric from {shown}"
        )
    # The primary metric, the validation loss and one quality figure (the
    # perplexity of a language model, else the accuracy), their test
    # counterparts, the throughput and the wall time: what decides, not all
    # of what was logged (bpc follows from the loss).
    metrics = [primary, "val_loss"]
    metrics += ["val_perplexity"] if "val_perplexity" in available else ["val_accuracy"]
    metrics += [f"test_{m[4:]}" for m in list(metrics) if m.startswith("val_")]
    metrics += sorted(m for m in available if m.endswith("_per_sec") and "/" not in m)
    metrics += list(TRAILING_METRICS)
    metrics = [m for m in metrics if m in available]
    return list(dict.fromkeys(metrics))


def collect(
    tracking_uri: str,
    parent_id: str | None = None,
    experiment: str | None = "seqlab",
    metrics: list[str] | None = None,
    all_runs: bool = False,
    primary: str | None = None,
) -> Sweep:
    """Read a sweep (or, with ``all_runs``, every non-parent run of the
    experiment) and decide its columns.

    The primary metric, which decides the best run, is ``primary``, else the
    first of ``metrics``, else the ``seqlab.primary_metric`` tag, else
    ``val_loss``."""
    client = client_for(tracking_uri)
    if all_runs:
        exp = experiment_by_name(client, tracking_uri, experiment)
        runs = [
            r
            for r in client.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get(SWEEP_TAG) != "parent"
        ]
        if not runs:
            raise ReportError(f"no runs in experiment {experiment!r} ({tracking_uri})")
        parent_tags: dict[str, str] = {}
        parent_id_, parent_name, exp_name, overrides = None, f"all runs of {exp.name}", exp.name, ""
        keys: list[str] = []
    else:
        parent = find_parent(client, tracking_uri, experiment, parent_id)
        parent_tags = parent.data.tags
        parent_id_ = parent.info.run_id
        parent_name = parent.info.run_name or parent_id_
        exp_name = client.get_experiment(parent.info.experiment_id).name
        overrides = parent_tags.get(OVERRIDES_TAG, "")
        runs = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id_}'",
            max_results=5000,
        )
        if not runs:
            kind = (
                "a sweep parent" if parent_tags.get(SWEEP_TAG) == "parent" else "not a sweep parent"
            )
            raise ReportError(
                f"run {parent_id_} ({parent_name}) has no child runs ({kind}); nothing to compare"
            )
        keys = swept_keys_from_tags(parent_tags)
    if not keys:
        keys = varying_params([r.data.params for r in runs])
    where = f"sweep {parent_id_}" if parent_id_ else f"experiment {exp_name!r}"
    primary_tag = parent_tags.get(PRIMARY_TAG) or next(
        (r.data.tags[PRIMARY_TAG] for r in runs if r.data.tags.get(PRIMARY_TAG)), None
    )
    available = _metric_names(runs)
    primary = primary or (metrics[0] if metrics else None) or primary_tag or "val_loss"
    columns = choose_metrics([primary, *metrics] if metrics else None, primary, available, where)
    if primary == primary_tag:
        tags = {
            **next((r.data.tags for r in runs if r.data.tags.get(PRIMARY_TAG) == primary), {}),
            **parent_tags,
        }
        direction = direction_of(primary, tags)
    else:
        direction = direction_of(primary)
    children = [
        Child(
            run_id=r.info.run_id,
            name=r.info.run_name or r.info.run_id[:8],
            status=r.info.status,
            values={k: value_of(k, r.info.run_name, r.data.params, r.data.tags) for k in keys},
            metrics=dict(r.data.metrics),
            params=dict(r.data.params),
        )
        for r in runs
    ]
    children.sort(key=lambda c: sort_value(c.metrics.get(primary), direction))
    return Sweep(
        tracking_uri=tracking_uri,
        experiment=exp_name,
        parent_id=parent_id_,
        parent_name=parent_name,
        overrides=overrides,
        keys=keys,
        children=children,
        primary=primary,
        direction=direction,
        metrics=columns,
    )


def sort_value(value: float | None, direction: str) -> float:
    """Best first, runs without the metric (failed) last."""
    if value is None or not math.isfinite(value):
        return math.inf
    return value if direction == "min" else -value


def histories(
    tracking_uri: str, run_ids: list[str], keys: list[str]
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{run_id: {metric: [(step, value), ...]}}`` for the metrics each run has."""
    client = client_for(tracking_uri)
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run_id in run_ids:
        out[run_id] = {}
        for key in keys:
            points = client.get_metric_history(run_id, key)
            if points:
                by_step = {}
                for p in sorted(points, key=lambda p: (p.step, p.timestamp)):
                    by_step[p.step] = p.value  # a value logged twice at one step: the last
                out[run_id][key] = sorted(by_step.items())
    return out


GRAD_TIME = re.compile(r"^grad_time/(?!.*/step\d+$).+$")


def grad_time_keys(children: list[Child]) -> list[str]:
    return sorted({k for c in children for k in c.metrics if GRAD_TIME.match(k)})
