"""A dataset's local files: its folder under ``$SEQLAB_DATA_DIR`` and its lines.

:func:`data_folder` takes ``data.path`` or ``$SEQLAB_DATA_DIR/<name>`` and
checks that it holds the files a builder needs, failing with a message that
names the folder and the fix; :func:`read_lines` decodes a file line by line
and names the line and byte that do not decode. Shared by the
labelled-sequence builders (:mod:`seqlab.data.sentiment`,
:mod:`seqlab.data.spam`, :mod:`seqlab.data.names`), :mod:`seqlab.data.tagging`
and :mod:`seqlab.data.timeseries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seqlab.data.corpora import resolve_data_dir
from seqlab.errors import DataError, DataNotFoundError


def data_folder(name: str, path: str | None, files: Sequence[str]) -> Path:
    """``path`` if given, else ``$SEQLAB_DATA_DIR/<name>``, checked to hold ``files``.

    Raises:
        DataNotFoundError: naming ``SEQLAB_DATA_DIR``, the folder tried and the
            missing files.
    """
    root = resolve_data_dir()
    if path:
        folder = Path(path).expanduser().resolve()
    elif root is not None:
        folder = root / name
    else:
        raise DataNotFoundError(
            f"dataset {name!r}: data.path and $SEQLAB_DATA_DIR are both unset. Fix: set "
            f"SEQLAB_DATA_DIR to a folder holding {name}/ (e.g. SEQLAB_DATA_DIR=../shared/data) "
            f"or pass data.path=<folder with {', '.join(files)}>"
        )
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"dataset {name!r}: {folder} lacks {', '.join(missing)}. Fix: set SEQLAB_DATA_DIR to "
            f"a folder holding {name}/ (see shared/data/README.md) or pass data.path=<folder>"
        )
    return folder


def read_lines(path: Path, encoding: str) -> list[str]:
    """The lines of ``path`` decoded with ``encoding``, line ends removed.

    Raises:
        DataError: naming the file, the line number and the offending byte
            when a line is not valid ``encoding``.
    """
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode(encoding).rstrip("\r"))
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}, line {number}: not valid {encoding} (byte {line[err.start]:#04x} at "
                f"column {err.start + 1}: {err.reason}); the file is corrupt or in another encoding"
            ) from None
    return out
