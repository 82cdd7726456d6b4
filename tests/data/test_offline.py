"""Offline, a missing corpus is a clear error in seconds, not minutes of TFDS
download retries. The network is made unreachable for the probe by pointing
it at a closed port on 127.0.0.1: no traffic leaves the machine."""

from __future__ import annotations

import socket
import time

import pytest

from seqlab.data import corpora
from seqlab.data.corpora import load_corpus, probe_download_host
from seqlab.errors import DataNotFoundError


def _closed_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", f"127.0.0.1:{_closed_local_port()}")


@pytest.fixture
def no_tfds_download(monkeypatch):
    """Were the catalog tried anyway, fail the test instead of touching the network."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"TFDS was called offline: {args} {kwargs}")

    monkeypatch.setattr(corpora, "_read_tfds_text", refuse)


def test_a_missing_corpus_fails_in_seconds_offline_and_says_why(tmp_path, monkeypatch, offline, no_tfds_download):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "data"))
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as err:
        load_corpus("tiny_shakespeare", cache_dir=str(tmp_path / "cache"), download=True)
    seconds = time.perf_counter() - start
    message = str(err.value)
    print(f"offline error after {seconds:.2f} s: {message}")
    assert seconds < 10
    assert "SEQLAB_DATA_DIR" in message and str(tmp_path / "data" / "tiny_shakespeare") in message
    assert "TFDS catalog 'tiny_shakespeare' (not tried: offline, the download host 127.0.0.1:" in message
    assert "ConnectionRefusedError" in message and "once with network access" in message


def test_a_silent_host_is_given_up_after_the_timeout(monkeypatch):
    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", "127.0.0.1:9")

    def hang(*args, **kwargs):  # a DNS lookup or a connect that never answers
        time.sleep(5)

    monkeypatch.setattr(corpora.socket, "create_connection", hang)
    start = time.perf_counter()
    assert probe_download_host(timeout=0.5) == "127.0.0.1:9 did not answer within 0.5 s"
    assert time.perf_counter() - start < 2


def test_the_probe_passes_when_the_host_answers(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", f"127.0.0.1:{server.getsockname()[1]}")
        assert probe_download_host() is None


def test_the_probe_can_be_switched_off_or_follow_a_proxy(monkeypatch):
    monkeypatch.setenv("SEQLAB_DOWNLOAD_PROBE", "off")
    assert probe_download_host() is None
    monkeypatch.delenv("SEQLAB_DOWNLOAD_PROBE")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert corpora._probe_address() == ("proxy.example", 3128)


def test_offline_a_prepared_tfds_copy_is_read_without_downloading(tmp_path, monkeypatch, offline):
    (tmp_path / "cache" / "tiny_shakespeare").mkdir(parents=True)
    calls = []

    def read(name, split, **kwargs):
        calls.append(kwargs["download"])
        return f"{split} text\n"

    monkeypatch.setattr(corpora, "_read_tfds_text", read)
    corpus = load_corpus("tiny_shakespeare", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    assert corpus.source == "TFDS tiny_shakespeare" and calls == [False, False, False]
