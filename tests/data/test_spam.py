"""SMS spam: counts equal shared/data/README.md, duplicates go before the split, a bad
line names file and line."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from seqlab.data.spam import build_sms_spam_data, read_sms_spam, sms_spam_splits
from seqlab.errors import DataError


def test_sms_counts_and_dedup_before_split(data_dir):
    rows = read_sms_spam(data_dir / "sms_spam" / "SMSSpamCollection")
    assert len(rows) == 5574
    assert Counter(label for label, _ in rows) == {"ham": 4827, "spam": 747}
    splits = sms_spam_splits(rows, (0.8, 0.1), seed=0)
    items = [set(part) for part in splits.values()]
    assert sum(map(len, items)) == 5171 == len(set(rows))
    assert not (items[0] & items[1] or items[0] & items[2] or items[1] & items[2])
    messages = [{m for _, m in part} for part in splits.values()]
    assert not messages[0] & messages[2]
    spam_share = [np.mean([lab == "spam" for lab, _ in part]) for part in splits.values()]
    assert max(spam_share) - min(spam_share) < 0.01
    bundle = build_sms_spam_data(batch_size=64)
    assert bundle.info["duplicates_removed"] == 403
    assert bundle.info["majority_all_lines"] == pytest.approx(0.866, abs=5e-4)
    assert bundle.model_kwargs["num_classes"] == 2


def test_sms_line_without_a_tab(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_text("ham\tok\nspam no tab here\n")
    with pytest.raises(DataError, match=r"SMSSpamCollection, line 2: expected 2 tab-separated fields"):
        read_sms_spam(path)
