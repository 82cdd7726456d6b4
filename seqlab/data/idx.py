"""The IDX file format (LeCun's; MNIST and Fashion-MNIST are stored in it): a reader.

:func:`read_idx` returns the array one file holds; :func:`read_idx_pair`
reads an images file and a labels file and checks that they pair up (the
local copies of :mod:`seqlab.data.images`).

Pitfalls: the values are big-endian (:data:`IDX_DTYPES`) and come back in
native byte order; ``.gz`` files are decompressed transparently; a file whose
size disagrees with its header (truncated, or with extra bytes) is refused,
not reshaped, with a :class:`DataError` naming the file (and, for a damaged
copy, ``$SEQLAB_DATA_DIR/MANIFEST.sha256``). :func:`read_idx_pair` decodes
each file once per process (cached by path, size and mtime) and hands back
the shared images array read-only.
"""

from __future__ import annotations

import functools
import gzip
import math
from pathlib import Path

import numpy as np

from seqlab.errors import DataError

#: IDX type codes (LeCun's format): numpy dtypes, big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` is decompressed transparently).

    Header: two zero bytes, a type code (:data:`IDX_DTYPES`), the number of
    dimensions ``d``, then ``d`` big-endian uint32 sizes; the data follows.
    The size the header promises (``4 + 4 d + prod(sizes) * itemsize``
    bytes) must be the size of the (decompressed) file.

    Raises:
        DataError: naming the file, when it is not IDX, is truncated or has
            extra bytes, or is a broken gzip stream.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(
            f"{path}: cannot read it ({type(err).__name__}: {err}); the file is damaged, "
            "copy it again (its sha256 is in $SEQLAB_DATA_DIR/MANIFEST.sha256)"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (its first bytes are {raw[:4].hex() or 'missing'}, expected "
            "00 00 <type code> <dimensions>); point data.path at the folder of IDX files"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: the IDX header is cut short ({len(raw)} bytes, expected {header})")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: the IDX header says {'x'.join(map(str, shape))} values of {dtype.name} "
            f"({expected:,} bytes with the header) but the file holds {len(raw):,} bytes"
            f"{' decompressed' if path.suffix == '.gz' else ''}; it is truncated or corrupt, "
            "copy it again (its sha256 is in $SEQLAB_DATA_DIR/MANIFEST.sha256)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(stamp: tuple) -> np.ndarray:
    array = read_idx(stamp[0])
    array.setflags(write=False)
    return array


def read_idx_pair(images_file: Path, labels_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, H, W] uint8, labels [N] int32)`` from two IDX files, checked to pair up.

    Read once per process (cached by path, size and mtime): a multirun's
    jobs share the decoded arrays.
    """
    images = _read_idx_cached(_stamp(images_file))
    labels = _read_idx_cached(_stamp(labels_file))
    if images.ndim != 3:
        raise DataError(f"{images_file}: expected images [N, H, W], the IDX header gives {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_file}: expected labels [N], the IDX header gives {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_file} holds {len(images):,} images but {labels_file} {len(labels):,} labels; "
            "the two files must come from the same split"
        )
    return images, labels.astype(np.int32)
