"""Only callables of allowed packages may be instantiated from a config."""

import pytest
from omegaconf import OmegaConf

from seqlab.errors import ConfigError
from seqlab.instantiate import build, check_targets


@pytest.mark.parametrize(
    "node, key, target",
    [
        ({"data": {"_target_": "os.system", "command": "true"}}, "data._target_", "os.system"),
        ({"callbacks": {"x": {"_target_": "subprocess.run"}}}, "callbacks.x._target_", "subprocess.run"),
        ({"a": [{"_target_": "builtins.eval"}]}, r"a\[0\]._target_", "builtins.eval"),
        # a prefix is a package, not a string prefix
        ({"m": {"_target_": "kerasx.evil"}}, "m._target_", "kerasx.evil"),
    ],
)
def test_a_target_outside_the_allowed_packages_is_refused_naming_its_key(node, key, target):
    with pytest.raises(ConfigError, match=rf"{key}='{target}' is not allowed"):
        check_targets(OmegaConf.create(node))


def test_build_refuses_before_calling_anything(tmp_path):
    marker = tmp_path / "ran"
    node = OmegaConf.create({"opt": {"_target_": "pathlib.Path.touch", "self": str(marker)}})
    with pytest.raises(ConfigError, match=r"opt._target_='pathlib.Path.touch' is not allowed"):
        build(node.opt)
    assert not marker.exists()


def test_allowed_packages_build_and_the_environment_adds_more(monkeypatch):
    import keras

    optimizer = build(OmegaConf.create({"_target_": "keras.optimizers.SGD", "learning_rate": 0.1}))
    assert isinstance(optimizer, keras.optimizers.SGD)
    node = OmegaConf.create({"_target_": "fractions.Fraction", "numerator": 1, "denominator": 3})
    with pytest.raises(ConfigError, match="SEQLAB_ALLOWED_TARGETS"):
        build(node)
    monkeypatch.setenv("SEQLAB_ALLOWED_TARGETS", "json, fractions")
    assert str(build(node)) == "1/3"


def test_every_packaged_config_names_allowed_targets():
    from seqlab.cli import CONFIG_DIR

    for path in CONFIG_DIR.rglob("*.yaml"):
        check_targets(OmegaConf.load(path), path=path.stem)
