"""The ``Example`` sections of the data modules that have them run as doctests."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("module", ["splits", "vocabulary", "spam", "tagging", "timeseries", "baselines"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"seqlab.data.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
