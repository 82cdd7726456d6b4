"""Composing a search: the command line -> the preset, the base config, each trial's config.

``seqlab-search hparams_search=char_lm n_trials=20 trainer.epochs=3`` mixes
two kinds of overrides: the search's own keys (:data:`SEARCH_KEYS`, from
``conf/search.yaml`` and the preset ``conf/hparams_search/<name>.yaml``) and
``seqlab-train`` overrides, which apply to every trial. A trial's config is
``hydra.compose("train", preset overrides + command-line overrides + the
trial's values)``: Hydra composes it exactly as it would for ``seqlab-train``.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from seqlab.cli import CONFIG_MODULE
from seqlab.errors import ConfigError
from seqlab.search.space import Param, parse_space, short, to_overrides

# Keys of conf/search.yaml (plus everything under hparams_search.*).
SEARCH_KEYS = ("hparams_search", "n_trials", "workers", "study_name", "storage", "output_dir")
PRUNING_TARGET = "seqlab.search.pruning.OptunaPruningCallback"


def available_presets() -> list[str]:
    """The files in conf/hparams_search/ and presets stored in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    folder = resources.files(CONFIG_MODULE) / "hparams_search"
    names = {p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")}
    stored = ConfigStore.instance().repo.get("hparams_search", {})
    names |= {name[: -len(".yaml")] if name.endswith(".yaml") else name for name in stored}
    return sorted(names)


def split_overrides(args: list[str]) -> tuple[list[str], list[str]]:
    """Command-line overrides -> (search overrides, train overrides)."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(args))
    except HydraException as err:
        raise ConfigError(f"cannot parse the overrides: {err}") from None
    search, train = [], []
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(
                f"{override.input_line!r} is a sweep: seqlab-search draws each trial's values from "
                "hparams_search.params; put the key into the search space instead"
            )
        key = override.key_or_group
        if key in SEARCH_KEYS or key.startswith("hparams_search."):
            search.append(override.input_line)
        else:
            train.append(override.input_line)
    return search, train


def _compose(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(name, overrides=overrides)


@dataclasses.dataclass
class SearchConfig:
    """Everything a search worker needs, composed and checked once."""

    preset: str
    study_name: str
    n_trials: int
    workers: int
    storage: str | None
    output_dir: Path
    objective: str
    direction: str
    space: list[Param]
    pruner: Any
    sampler: Any
    enqueue: list[dict[str, Any]]
    base_overrides: list[str]  # the preset's, then the command line's train overrides
    base: DictConfig  # the train config every trial starts from
    command: list[str]  # the search's command-line overrides, for the parent run

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.space]

    @property
    def tracking(self) -> dict[str, Any]:
        return OmegaConf.to_container(self.base.tracking, resolve=True) or {"enabled": False}

    def trial_overrides(self, values: dict[str, Any]) -> list[str]:
        return [*self.base_overrides, *to_overrides(values)]

    def trial_config(self, number: int, values: dict[str, Any], parent_run_id: str | None = None) -> DictConfig:
        """The config of trial ``number``: composed by Hydra, plus the pruning
        callback, the run name and the search tags."""
        cfg = compose_train(self.preset, self.trial_overrides(values))
        with open_dict(cfg):
            if self.pruner is not None:
                if cfg.get("callbacks") is None:
                    cfg.callbacks = {}
                cfg.callbacks.optuna_pruning = {"_target_": PRUNING_TARGET, "monitor": self.objective}
            # What decides the best run, for the runs table and seqlab-report.
            if "primary_metric" in cfg.tracking:
                cfg.tracking.primary_metric = self.objective
                cfg.tracking.primary_metric_direction = "min" if self.direction == "minimize" else "max"
            described = ",".join(f"{k}={short(v)}" for k, v in values.items())
            prefix = cfg.tracking.get("run_name") or self.study_name
            cfg.tracking.run_name = f"{prefix} #{number} {described}"
            node = cfg.tracking.get("tags")
            tags = dict(OmegaConf.to_container(node, resolve=True)) if node is not None else {}
            tags.update({
                "seqlab.search.study": self.study_name,
                "seqlab.search.trial": str(number),
                "seqlab.search.objective": self.objective,
                **{f"seqlab.search.param.{k}": str(v) for k, v in values.items()},
            })
            if parent_run_id:
                tags["seqlab.search.parent"] = parent_run_id
            cfg.tracking.tags = tags
        return cfg


def compose_train(preset: str, overrides: list[str]) -> DictConfig:
    try:
        return _compose("train", overrides)
    except HydraException as err:
        raise ConfigError(f"hparams_search={preset}: the trial config does not compose: {err}") from None


def load(args: list[str]) -> SearchConfig:
    """Compose the search from command-line overrides; every error names the bad value."""
    search_overrides, train_overrides = split_overrides(args)
    names = available_presets()
    chosen = [o.split("=", 1)[1] for o in search_overrides if o.split("=", 1)[0] == "hparams_search"]
    if not chosen or chosen[-1] in ("", "null"):
        raise ConfigError(f"choose a search space: hparams_search=<name>, one of {', '.join(names)}")
    preset = chosen[-1]
    if preset not in names:
        raise ConfigError(f"unknown hparams_search {preset!r}: choose one of {', '.join(names)} "
                          "(files in seqlab/conf/hparams_search/)")
    try:
        root = _compose("search", search_overrides)
    except HydraException as err:
        raise ConfigError(f"seqlab-search: {err}") from None
    node = OmegaConf.to_container(root.hparams_search, resolve=True)

    space = parse_space(preset, node.get("params"))
    objective = node.get("objective")
    if not isinstance(objective, str) or not objective:
        raise ConfigError(f"hparams_search={preset}: 'objective' must name a metric such as val_loss, got {objective!r}")
    direction = node.get("direction", "minimize")
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"hparams_search={preset}: direction must be minimize or maximize, got {direction!r}")
    n_trials = root.get("n_trials") if root.get("n_trials") is not None else node.get("n_trials")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials <= 0:
        raise ConfigError(f"n_trials must be a positive integer, got {n_trials!r}")
    workers = root.get("workers")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers <= 0:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    preset_overrides = [str(o) for o in node.get("overrides") or []]
    for source, overrides in (("hparams_search.overrides", preset_overrides), ("the command line", train_overrides)):
        for override in overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key in {p.key for p in space}:
                raise ConfigError(f"{key} is searched by hparams_search={preset}; drop {override!r} from {source}")
    base_overrides = [*preset_overrides, *train_overrides]
    base = compose_train(preset, base_overrides)
    _check_space(preset, space, base_overrides)

    enqueue = node.get("enqueue") or []
    for values in enqueue:
        unknown = sorted(set(values) - {p.key for p in space}) if isinstance(values, dict) else [repr(values)]
        if unknown:
            raise ConfigError(f"hparams_search={preset}: enqueue entry {values!r} sets {', '.join(unknown)}, "
                              "which is not in params")
    return SearchConfig(
        preset=preset,
        study_name=str(root.get("study_name") or preset),
        n_trials=n_trials,
        workers=workers,
        storage=root.get("storage"),
        output_dir=Path(root.get("output_dir") or "outputs/search").expanduser().resolve(),
        objective=objective,
        direction=direction,
        space=space,
        pruner=node.get("pruner"),
        sampler=node.get("sampler"),
        enqueue=list(enqueue),
        base_overrides=base_overrides,
        base=base,
        command=list(args),
    )


def _check_space(preset: str, space: list[Param], base_overrides: list[str]) -> None:
    """Every searched key must exist in the composed config (or be a config
    group), and every range end and choice must compose."""
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        for param in space:
            for value in param.probe_values():
                try:
                    compose("train", overrides=[*base_overrides, *to_overrides({param.key: value})])
                except HydraException as err:
                    first = str(err).strip().splitlines()[0]
                    raise ConfigError(
                        f"hparams_search={preset}: param {param.key!r} (value {value!r}) does not fit the "
                        f"config: {first}"
                    ) from None
