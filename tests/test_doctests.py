"""The ``Example`` sections of every public layer and builder run as doctests.

Every module under ``seqlab.layers``, ``seqlab.models``, ``seqlab.data``,
``seqlab.training`` and ``seqlab.generation``, and ``seqlab.metrics``,
``seqlab.walk`` and ``seqlab.instantiate``, is collected; a module without
examples contributes no test, a failing example fails here with the module's
name.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import seqlab.data
import seqlab.generation
import seqlab.layers
import seqlab.models
import seqlab.training

PACKAGES = (seqlab.layers, seqlab.models, seqlab.data, seqlab.training, seqlab.generation)


def _modules() -> list[str]:
    names = ["seqlab.metrics", "seqlab.walk", "seqlab.instantiate"]
    for package in PACKAGES:
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            names.append(info.name)
    return sorted(set(names))


def _with_examples(name: str) -> bool:
    module = importlib.import_module(name)
    return bool(doctest.DocTestFinder().find(module)) and any(
        test.examples for test in doctest.DocTestFinder().find(module)
    )


MODULES = [name for name in _modules() if _with_examples(name)]


def test_public_builders_and_layers_have_examples():
    # The layers and builders packages must carry runnable examples at all.
    assert any(name.startswith("seqlab.layers") for name in MODULES), MODULES
    assert any(name.startswith("seqlab.models") for name in MODULES), MODULES


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see output)"
