"""Text corpora through TensorFlow Datasets, online or from a local copy.

A corpus is found, in this order:

1. a local copy under ``$SEQLAB_DATA_DIR/<name>/`` (or ``data.path``), which
   seqlab's own TFDS builder (:class:`LocalTextCorpus`, reading its
   ``manual_dir``) prepares once into the TFDS cache;
2. the TensorFlow Datasets catalog entry (``data.tfds_name``), downloaded,
   when ``data.download`` is true.

Both give the same three splits as plain strings. Where the dataset defines
its split (PTB's files, TFDS's 90/5/5 cut of Tiny Shakespeare), that split is
used, so figures compare with the literature.

``text_files`` is any folder of ``*.txt`` (or ``*.txt.gz``) files
(``data.path``), prepared by the same TFDS builder: files named
``train``/``valid`` (or ``validation``)/``test`` are the splits when all
three exist; otherwise all files, in name order, are concatenated and cut
by ``split_fractions``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import logging
import os
import socket
import threading
import zlib
from pathlib import Path
from urllib.parse import urlsplit

from seqlab.errors import DataError, DataNotFoundError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")

# Offline the TFDS catalog would try to reach metadata and download servers
# for minutes before failing; a local copy must never wait on that.
os.environ.setdefault("NO_GCE_CHECK", "true")


#: What a TFDS download of a seqlab corpus reaches first: the corpora's source
#: files live on GitHub's raw host. ``$SEQLAB_DOWNLOAD_PROBE`` (``host:port``)
#: names another, ``off`` skips the probe; with ``$HTTPS_PROXY`` set, the
#: proxy is probed instead.
DOWNLOAD_PROBE = ("raw.githubusercontent.com", 443)
#: Seconds the probe (DNS lookup and TCP connect together) may take. Offline,
#: TFDS would otherwise spend minutes in download retries.
PROBE_TIMEOUT_S = 3.0


def _probe_address() -> tuple[str, int] | None:
    setting = os.environ.get("SEQLAB_DOWNLOAD_PROBE", "").strip()
    if setting.lower() in ("off", "none", "false", "0"):
        return None
    if setting:
        host, _, port = setting.rpartition(":")
        return (host or setting, int(port) if host and port.isdigit() else 443)
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.hostname:
            return (parts.hostname, parts.port or 80)
    return DOWNLOAD_PROBE


def probe_download_host(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the download host accepts a TCP connection within ``timeout``
    seconds (DNS lookup included), else why not, e.g.
    ``"raw.githubusercontent.com:443 unreachable within 3 s (gaierror: ...)"``."""
    address = _probe_address()
    if address is None:
        return None
    outcome: list[Exception | None] = []

    def connect() -> None:
        try:
            # getaddrinfo has no timeout of its own: the thread bounds it.
            with socket.create_connection(address, timeout=timeout):
                outcome.append(None)
        except Exception as err:  # reported, not raised
            outcome.append(err)

    thread = threading.Thread(target=connect, name="seqlab-download-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    where = f"{address[0]}:{address[1]}"
    if not outcome:
        return f"{where} did not answer within {timeout:g} s"
    if outcome[0] is not None:
        err = outcome[0]
        return f"{where} unreachable ({type(err).__name__}: {err})"
    return None


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """Where a corpus lives and how its splits are defined.

    ``split_files`` maps each split to file names inside the corpus folder
    (``.gz`` is read transparently). ``split_fractions`` instead cuts one
    file, in order, into contiguous train/validation/test parts.
    """

    name: str
    tfds_name: str | None = None
    split_files: dict[str, tuple[str, ...]] | None = None
    source_file: str | None = None
    split_fractions: tuple[float, float] | None = None  # (train, validation of the rest)
    # text_files without named splits: every file, concatenated in this order.
    all_files: tuple[str, ...] = ()

    def required_files(self) -> list[str]:
        if self.split_files is not None:
            return [f for files in self.split_files.values() for f in files]
        if self.all_files:
            return list(self.all_files)
        return [self.source_file] if self.source_file else []


TEXT_SUFFIXES = (".txt", ".txt.gz")
# File stems that name a split in a text_files folder.
SPLIT_STEMS = {"train": ("train",), "validation": ("valid", "validation", "val"), "test": ("test",)}


def _check_fractions(split_fractions) -> tuple[float, float]:
    try:
        train, validation = (float(v) for v in split_fractions)
    except (TypeError, ValueError):
        raise DataError(
            f"data.split_fractions must be two numbers [train, validation], got {split_fractions!r}"
        ) from None
    if not (0.0 < train < 1.0 and 0.0 <= validation and train + validation <= 1.0):
        raise DataError(
            f"data.split_fractions={list(split_fractions)!r} must be [train, validation] with "
            "0 < train < 1 and train + validation <= 1 (the test split gets the rest), e.g. [0.9, 0.05]"
        )
    # CorpusSpec cuts train first, then validation as a share of the rest.
    rest = 1.0 - train
    return train, (validation / rest if rest > 0 else 0.0)


def text_files_spec(folder: Path, split_fractions=(0.9, 0.05)) -> CorpusSpec:
    """A :class:`CorpusSpec` for a folder of text files (``data=text_files``)."""
    if not folder.is_dir():
        raise DataNotFoundError(
            f"data.path={str(folder)!r} is not a folder; point data.path at a folder of *.txt files"
        )
    files = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(TEXT_SUFFIXES)
    )
    if not files:
        raise DataError(
            f"data.path={str(folder)!r} holds no text files (*.txt or *.txt.gz); put the corpus "
            "there as .txt files (optionally train.txt / valid.txt / test.txt) or fix data.path"
        )
    by_stem = {}
    for f in files:
        stem = f[: -len(".gz")] if f.endswith(".gz") else f
        by_stem[stem[: -len(".txt")]] = f
    named = {
        split: next((by_stem[s] for s in stems if s in by_stem), None)
        for split, stems in SPLIT_STEMS.items()
    }
    if all(named.values()):
        return CorpusSpec(
            name="text_files", split_files={split: (f,) for split, f in named.items()}
        )
    return CorpusSpec(
        name="text_files",
        split_fractions=_check_fractions(split_fractions),
        all_files=tuple(files),
    )


CORPORA: dict[str, CorpusSpec] = {
    # TFDS's tiny_shakespeare cuts input.txt 90 / 5 / 5 (int(0.9 n), then half
    # of the rest); the local builder cuts it the same way.
    "tiny_shakespeare": CorpusSpec(
        name="tiny_shakespeare",
        tfds_name="tiny_shakespeare",
        source_file="input.txt",
        split_fractions=(0.9, 0.5),
    ),
    # Mikolov's PTB splits, the files every PTB perplexity is measured on.
    "ptb": CorpusSpec(
        name="ptb",
        tfds_name="ptb_text_only",
        split_files={
            "train": ("ptb.train.txt.gz",),
            "validation": ("ptb.valid.txt.gz",),
            "test": ("ptb.test.txt.gz",),
        },
    ),
}


@dataclasses.dataclass
class TextCorpus:
    """The three splits of a corpus as strings, and where they came from."""

    name: str
    train: str
    validation: str
    test: str
    source: str

    def split(self, name: str) -> str:
        return getattr(self, name)

    def truncated(self, max_chars: int | None) -> TextCorpus:
        """Each split cut to its first ``max_chars`` characters (quick runs, tests)."""
        if not max_chars:
            return self
        return dataclasses.replace(
            self,
            train=self.train[:max_chars],
            validation=self.validation[:max_chars],
            test=self.test[:max_chars],
            source=f"{self.source} (first {max_chars} characters of each split)",
        )


def read_text(path: Path) -> str:
    """Read a UTF-8 text file, transparently gunzipping ``*.gz``.

    Raises :class:`DataError` naming the file (and, for bad UTF-8, the line
    and byte) for a binary or non-UTF-8 file and for a truncated or corrupt
    ``.gz``, rather than a bare ``UnicodeDecodeError`` / ``EOFError``.
    """
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                data = f.read()
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise DataError(
                f"{path}: not a complete gzip file ({type(err).__name__}: {err}); the file is truncated or "
                f"corrupt: download or copy it again (check with `gzip -t {path.name}`), or remove it"
            ) from err
    else:
        data = path.read_bytes()
    nul = data.find(b"\0")
    if nul >= 0:  # valid UTF-8 all the same, but no text corpus holds NUL bytes
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(
            f"{path}: a binary file (a NUL byte at line {line}, byte offset {nul}), "
            f"not text; move it out of the folder (data.path must hold only *.txt / *.txt.gz text)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}, byte offset {err.start}); "
            f"corpora are read as UTF-8: convert the file (e.g. `iconv -f latin1 -t utf-8`) or move it "
            f"out of the folder"
        ) from err


def split_local_files(spec: CorpusSpec, folder: Path) -> dict[str, str]:
    """The three split texts of a local copy, following ``spec``."""
    if spec.split_files is not None:
        return {
            split: "".join(read_text(folder / f) for f in spec.split_files[split])
            for split in SPLITS
        }
    if spec.source_file is None:  # text_files without named splits: all files, in order
        parts = [read_text(folder / f) for f in spec.all_files]
        text = "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)
    else:
        text = read_text(folder / spec.source_file)
    train_frac, val_frac = spec.split_fractions
    i = int(len(text) * train_frac)
    train, rest = text[:i], text[i:]
    j = int(len(rest) * val_frac)
    return {"train": train, "validation": rest[:j], "test": rest[j:]}


# --------------------------------------------------------------------------
# TFDS builder for a local copy
# --------------------------------------------------------------------------
def _make_builder_class():
    import tensorflow_datasets as tfds

    class LocalTextCorpusConfig(tfds.core.BuilderConfig):
        def __init__(self, *, spec: CorpusSpec, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec

    class LocalTextCorpus(tfds.core.GeneratorBasedBuilder):
        """A seqlab corpus prepared from files already on disk (``manual_dir``)."""

        VERSION = tfds.core.Version("1.0.0")
        MANUAL_DOWNLOAD_INSTRUCTIONS = (
            "Place the corpus files in $SEQLAB_DATA_DIR/<name>/ (see shared/data/README.md)."
        )

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
                supervised_keys=None,
            )

        def _split_generators(self, dl_manager):
            texts = split_local_files(self.builder_config.spec, Path(dl_manager.manual_dir))
            return {split: self._generate_examples(split, texts[split]) for split in SPLITS}

        def _generate_examples(self, split, text):
            # One example per split: the split is one contiguous text stream.
            yield split, {"text": text}

    return LocalTextCorpusConfig, LocalTextCorpus


_BUILDER = None


def _builder_classes():
    global _BUILDER
    if _BUILDER is None:
        _BUILDER = _make_builder_class()
    return _BUILDER


def _fingerprint(folder: Path, files: list[str], spec: CorpusSpec | None = None) -> str:
    """Short hash of the files' names, sizes and mtimes (and, for a folder of
    text files, the folder and how it is split): a changed copy re-prepares."""
    h = hashlib.sha1()
    if spec is not None and (spec.name == "text_files" or spec != CORPORA.get(spec.name)):
        h.update(f"{folder}|{spec!r}".encode())
    for f in sorted(files):
        st = (folder / f).stat()
        h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:10]


def _read_tfds_text(builder_or_name, split: str, **load_kwargs) -> str:
    import tensorflow_datasets as tfds

    if isinstance(builder_or_name, str):
        ds = tfds.load(builder_or_name, split=split, **load_kwargs)
    else:
        ds = builder_or_name.as_dataset(split=split)
    parts = [ex["text"].decode("utf-8") for ex in tfds.as_numpy(ds)]
    # Line-per-example datasets (ptb_text_only) lose their newlines.
    joiner = "" if len(parts) <= 1 else "\n"
    return joiner.join(parts) + ("\n" if joiner else "")


@contextlib.contextmanager
def prepare_lock(cache_dir: str | Path, name: str):
    """Hold an exclusive lock on ``cache_dir/.<name>.lock`` while preparing a cache entry.

    Parallel jobs (a joblib or SLURM sweep) that prepare the same TFDS entry
    at once race on TFDS's final rename of ``incomplete.*`` to the version
    folder, and all but one fail with ``FileExistsError`` (found by
    ``experiments/platform/soak.py``: 10 of 20 parallel jobs). Under the lock
    one job prepares and the others wait, then find the entry prepared.
    ``fcntl.flock``: POSIX; where it is missing (Windows) no lock is taken.
    The lock is per open file, so threads of one process exclude each other too.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_local(spec: CorpusSpec, folder: Path, cache_dir: Path) -> TextCorpus:
    """Prepare (once, one process at a time) and read a local copy through :class:`LocalTextCorpus`."""
    config_cls, builder_cls = _builder_classes()
    fingerprint = _fingerprint(folder, spec.required_files(), spec)
    config = config_cls(name=f"{spec.name}_{fingerprint}", spec=spec)
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    with prepare_lock(cache_dir, config.name):
        # built under the lock: a builder made before another job finished would not see its data
        builder = builder_cls(config=config, data_dir=str(cache_dir))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(folder)),
        )
    texts = {split: _read_tfds_text(builder, split) for split in SPLITS}
    return TextCorpus(name=spec.name, source=f"local copy {folder}", **texts)


def resolve_data_dir(data_dir: str | None = None) -> Path | None:
    """``data_dir`` if given, else ``$SEQLAB_DATA_DIR``, else None."""
    value = data_dir or os.environ.get("SEQLAB_DATA_DIR")
    return Path(value).expanduser().resolve() if value else None


def load_corpus(
    name: str,
    *,
    path: str | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    tfds_name: str | None = None,
    download: bool = True,
    split_fractions=None,
) -> TextCorpus:
    """Load the corpus ``name`` (a key of :data:`CORPORA`, or ``text_files``) as three text splits.

    ``name="text_files"`` needs ``path`` (a folder of ``*.txt`` files) and
    cuts it by ``split_fractions`` = ``[train, validation]`` (test gets the
    rest; default ``[0.9, 0.05]``) unless train/valid/test files exist.

    Raises :class:`DataNotFoundError` naming ``SEQLAB_DATA_DIR``, every path
    tried and the TFDS name when no copy is found, and :class:`DataError`
    when the training split is empty.
    """
    if name == "text_files":
        if not path:
            raise DataError(
                "data=text_files needs data.path, a folder of *.txt files (e.g. data.path=/data/my_corpus)"
            )
        folder = Path(path).expanduser().resolve()
        spec = text_files_spec(folder, split_fractions if split_fractions is not None else (0.9, 0.05))
        cache = Path(cache_dir or default_cache_dir()).expanduser().resolve()
        return _check_nonempty(load_local(spec, folder, cache))
    if name not in CORPORA:
        raise DataError(
            f"unknown corpus data.name={name!r}; known corpora: {sorted(CORPORA)} "
            "(or data=text_files data.path=<folder of .txt files>)"
        )
    spec = CORPORA[name]
    if split_fractions is not None:
        if spec.split_fractions is None:
            raise DataError(
                f"corpus {name!r} has fixed split files; data.split_fractions must be null for it"
            )
        spec = dataclasses.replace(spec, split_fractions=_check_fractions(split_fractions))
    tfds_name = tfds_name or spec.tfds_name
    cache = Path(cache_dir or default_cache_dir()).expanduser().resolve()

    tried: list[str] = []
    offline = None
    root = resolve_data_dir(data_dir)
    folder = Path(path).expanduser().resolve() if path else (root / name if root else None)
    if folder is not None:
        missing = [f for f in spec.required_files() if not (folder / f).is_file()]
        if not missing:
            corpus = load_local(spec, folder, cache)
            return _check_nonempty(corpus)
        tried.append(f"{folder} (missing {', '.join(missing)})")
    else:
        tried.append("no local folder: data.path and $SEQLAB_DATA_DIR are both unset")

    if download and tfds_name:
        # Offline, TFDS retries its downloads for minutes: probe the host first
        # (seconds), and without the network read only an already prepared copy.
        offline = probe_download_host()
        prepared = (cache / tfds_name).is_dir()
        if offline and not prepared:
            tried.append(
                f"TFDS catalog {tfds_name!r} (not tried: offline, the download host {offline}; "
                f"nothing prepared in {cache})"
            )
        else:
            log.info("no local copy of %s; trying the TFDS catalog entry %r", name, tfds_name)
            try:
                texts = {
                    split: _read_tfds_text(tfds_name, split, data_dir=str(cache), download=not offline)
                    for split in SPLITS
                }
            except Exception as err:  # network, checksum, missing split...
                # TFDS errors can list the whole catalog: keep the first line.
                first = (str(err).strip().splitlines() or [""])[0][:300]
                why = f"offline, the download host {offline}; " if offline else ""
                tried.append(f"TFDS catalog {tfds_name!r} ({why}{type(err).__name__}: {first})")
            else:
                return _check_nonempty(TextCorpus(name=name, source=f"TFDS {tfds_name}", **texts))
    elif tfds_name:
        tried.append(f"TFDS catalog {tfds_name!r} (not tried: data.download=false)")

    raise DataNotFoundError(
        f"corpus {name!r} not found. Tried: {'; '.join(tried)}. "
        f"Fix: set SEQLAB_DATA_DIR to a folder holding {name}/"
        f"{'/'.join(spec.required_files())} (e.g. SEQLAB_DATA_DIR=../shared/data), "
        f"pass data.path=..., or "
        + (f"download TFDS dataset {tfds_name!r} once with network access (or through $HTTPS_PROXY)."
           if offline else f"allow the download of TFDS dataset {tfds_name!r}.")
    )


def _check_nonempty(corpus: TextCorpus) -> TextCorpus:
    if not corpus.train.strip():
        raise DataError(f"corpus {corpus.name!r} from {corpus.source}: the training split is empty")
    return corpus


def default_cache_dir() -> Path:
    """Where TFDS keeps prepared corpora: ``$SEQLAB_CACHE_DIR`` or ~/.cache/seqlab."""
    base = os.environ.get("SEQLAB_CACHE_DIR") or Path.home() / ".cache" / "seqlab"
    return Path(base) / "tfds"
