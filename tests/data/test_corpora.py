import pytest

from seqlab.data.corpora import load_corpus
from seqlab.errors import DataError, DataNotFoundError


def test_tiny_shakespeare_local_copy_has_the_tfds_90_5_5_split(data_dir):
    corpus = load_corpus("tiny_shakespeare", data_dir=str(data_dir), download=False)
    assert (len(corpus.train), len(corpus.validation), len(corpus.test)) == (1003854, 55770, 55770)
    text = (data_dir / "tiny_shakespeare" / "input.txt").read_text()
    assert corpus.train + corpus.validation + corpus.test == text
    assert len(set(corpus.train)) == 65


def test_missing_data_names_the_env_var_the_path_and_the_tfds_name(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_corpus("tiny_shakespeare", data_dir=str(tmp_path), download=False)
    message = str(err.value)
    assert "SEQLAB_DATA_DIR" in message
    assert str(tmp_path / "tiny_shakespeare") in message
    assert "'tiny_shakespeare'" in message and "input.txt" in message


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "tiny_shakespeare").mkdir()
    (tmp_path / "tiny_shakespeare" / "input.txt").write_text("")
    with pytest.raises(DataError, match="training split is empty"):
        load_corpus("tiny_shakespeare", data_dir=str(tmp_path), download=False)


def test_unknown_corpus_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown corpus.*tiny_shakespeare"):
        load_corpus("wikitext-3000")


def _text_files(folder, **files):
    folder.mkdir()
    (folder / "a.txt").write_text("to be or not to be\n" * 50)
    for name, data in files.items():
        (folder / name.replace("_", ".")).write_bytes(data)
    return str(folder)


def test_a_binary_file_in_text_files_names_the_file(tmp_path):
    path = _text_files(tmp_path / "corpus", b_txt=b"PK\x03\x04\x00\x00binary")
    with pytest.raises(DataError, match=r"b.txt: a binary file \(a NUL byte at line 1.*move it out"):
        load_corpus("text_files", path=path, cache_dir=str(tmp_path / "cache"))


def test_a_non_utf8_file_names_the_file_line_and_byte(tmp_path):
    path = _text_files(tmp_path / "corpus", b_txt="first line\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"b.txt: not UTF-8 text \(byte 0xe9 at line 2.*iconv"):
        load_corpus("text_files", path=path, cache_dir=str(tmp_path / "cache"))


def test_a_truncated_gz_names_the_file(tmp_path):
    import gzip

    whole = gzip.compress(b"some text\n" * 2000)
    path = _text_files(tmp_path / "corpus", b_txt_gz=whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"b.txt.gz: not a complete gzip file.*truncated or corrupt"):
        load_corpus("text_files", path=path, cache_dir=str(tmp_path / "cache"))


def test_prepare_lock_makes_a_second_holder_wait(tmp_path):
    import threading
    import time

    from seqlab.data.corpora import prepare_lock

    held, order = threading.Event(), []

    def first():
        with prepare_lock(tmp_path, "entry"):
            held.set()
            time.sleep(0.4)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with prepare_lock(tmp_path, "entry"):
        order.append("second in")
    thread.join()
    assert order == ["first out", "second in"]
    with prepare_lock(tmp_path, "other"):  # another entry's lock is independent
        pass


def test_parallel_preparations_of_one_cache_entry_all_succeed(tmp_path):
    # Found by experiments/platform/soak.py: 20 parallel jobs preparing one fresh TFDS entry
    # raced on its final rename and 10 failed with FileExistsError. Threads share nothing here
    # but the cache folder, as processes do (the lock is per open file).
    from concurrent.futures import ThreadPoolExecutor

    path = _text_files(tmp_path / "corpus")
    cache = str(tmp_path / "cache")
    with ThreadPoolExecutor(4) as pool:
        corpora = list(pool.map(lambda _: load_corpus("text_files", path=path, cache_dir=cache), range(4)))
    assert len({(c.train, c.validation, c.test) for c in corpora}) == 1
    assert corpora[0].train.startswith("to be or not to be")
