"""Config node -> object, with seqlab's own errors kept readable."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from seqlab.errors import SeqlabError


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, but a seqlab error raised by the builder
    reaches the user as itself, not wrapped in Hydra's InstantiationException."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, SeqlabError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
