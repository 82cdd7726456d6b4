"""The search space: distributions, bad entries, values as Hydra overrides."""

from __future__ import annotations

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from seqlab.errors import ConfigError
from seqlab.search.space import format_value, parse_param, parse_space


def test_distributions_are_drawn_within_their_ranges():
    space = parse_space("t", {
        "optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "model.num_layers": {"type": "int", "low": 1, "high": 3},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
        "model/cell": {"type": "categorical", "choices": ["lstm", "gru"]},
    })
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        values = {p.key: p.suggest(trial) for p in space}
        assert 1e-4 <= values["optimizer.learning_rate"] <= 1e-2
        assert values["model.num_layers"] in (1, 2, 3)
        assert round(values["model.dropout"] * 10, 6) % 1 == 0
        assert values["model/cell"] in ("lstm", "gru")
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "gaussian", "low": 0, "high": 1}, "unknown distribution type 'gaussian'"),
        ({"type": "float", "low": 0.1}, "needs 'high'"),
        ({"type": "float", "low": 1.0, "high": 0.1}, "low 1.0 is above high 0.1"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log: true needs low > 0"),
        ({"type": "int", "low": 1.5, "high": 3}, "integer low/high"),
        ({"type": "categorical", "choices": []}, "non-empty list 'choices'"),
        ({"type": "categorical", "choices": [[1, 2]]}, "not a scalar"),
        ({"type": "float", "low": 0, "high": 1, "lo": 3}, "unknown field(s) lo"),
        ("0.1..1", "must be a mapping"),
    ],
)
def test_a_bad_entry_names_the_key_and_the_value(spec, message):
    with pytest.raises(ConfigError) as err:
        parse_param("mine", "model.dropout", spec)
    assert "hparams_search=mine: params.model.dropout" in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize("value", [0.00123, 1e-06, 3, True, None, "lstm", "ROMEO:", "a b", "it's"])
def test_values_round_trip_through_hydras_override_grammar(value):
    (override,) = OverridesParser.create().parse_overrides([f"k={format_value(value)}"])
    assert override.value() == value
