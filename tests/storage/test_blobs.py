from datetime import datetime
from pathlib import Path

import pytest

from video_emotions.errors import InputError, NotFoundError
from video_emotions.storage.blobs import LocalBlobStore, log_key, open_blob_store, video_key


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path, "interviews")


def test_keys_follow_the_interviewz_layout() -> None:
    assert video_key(3, 9, "raw.mp4") == "3/9/raw/raw.mp4"
    assert log_key(3, 9, datetime(2026, 1, 2, 3, 4, 5)) == "3/9/logs/videoLog_2026_01_02_03.04.05"


def test_put_get_exists_and_local_copy(store: LocalBlobStore, tmp_path: Path) -> None:
    assert not store.exists("3/9/raw/raw.mp4")
    store.put("3/9/logs/log", b"hello")
    assert store.get("3/9/logs/log") == b"hello"
    source = tmp_path / "video.bin"
    source.write_bytes(b"\x00" * 1000)
    store.put("3/9/raw/raw.mp4", source)
    assert store.exists("3/9/raw/raw.mp4")
    with store.local_copy("3/9/raw/raw.mp4") as local:
        assert local.read_bytes() == b"\x00" * 1000
    assert (tmp_path / "interviews" / "3" / "9" / "raw" / "raw.mp4").is_file()


def test_missing_objects_and_unsafe_keys(store: LocalBlobStore) -> None:
    with pytest.raises(NotFoundError, match=r"no object '1/2/raw/raw\.mp4'"):
        store.get("1/2/raw/raw.mp4")
    with pytest.raises(NotFoundError), store.local_copy("1/2/raw/raw.mp4"):
        pass
    for key in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(InputError):
            store.put(key, b"x")


def test_open_blob_store_understands_file_urls_only(tmp_path: Path) -> None:
    store = open_blob_store(f"file://{tmp_path}", "bucket")
    store.put("k/v", b"1")
    assert (tmp_path / "bucket" / "k" / "v").read_bytes() == b"1"
    with pytest.raises(InputError, match="not supported"):
        open_blob_store("ftp://host/x", "bucket")
