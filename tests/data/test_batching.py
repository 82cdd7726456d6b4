"""Bucketed batching: every example in exactly one batch of one length bucket."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from seqlab.data.batching import bucket_batches


def test_bucket_batches_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(1, 40, size=103)
    for rng in (None, np.random.default_rng(1)):
        batches = bucket_batches(lengths, batch_size=8, bucket_width=8, rng=rng)
        assert sorted(np.concatenate(batches).tolist()) == list(range(103))
        assert all(len({math.ceil(n / 8) for n in lengths[b]}) == 1 for b in batches)
    keys = np.ceil(lengths / 8)
    assert len(batches) == sum(math.ceil(n / 8) for n in Counter(keys).values())
