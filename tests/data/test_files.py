"""Dataset files: a missing file names the folder and SEQLAB_DATA_DIR."""

from __future__ import annotations

import pytest

from seqlab.data.files import data_folder
from seqlab.errors import DataNotFoundError


def test_missing_data_names_the_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match="lacks rt-polarity.pos.*SEQLAB_DATA_DIR"):
        data_folder("rt_polarity", str(tmp_path), ["rt-polarity.pos"])
