"""Object storage: videos and run logs, under keys like ``{session}/{interview}/raw/raw.mp4``.

The embedded default is a local folder standing in for the bucket (``file://`` URL).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from video_emotions.errors import InputError, NotFoundError


class BlobStore(Protocol):
    """What the service needs of a bucket."""

    def exists(self, key: str) -> bool: ...

    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes | Path) -> None: ...

    def local_copy(self, key: str) -> Iterator[Path]:
        """A context manager giving a local file with the object's bytes, removed afterwards if temporary."""
        ...


def _checked_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise InputError(f"invalid storage key {key!r}")
    return key


class LocalBlobStore:
    """A bucket as a folder: ``ROOT/BUCKET/KEY``."""

    def __init__(self, root: Path, bucket: str) -> None:
        self.folder = Path(root) / bucket

    def _path(self, key: str) -> Path:
        return self.folder / _checked_key(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError(f"no object {key!r} in {self.folder}")
        return path.read_bytes()

    def put(self, key: str, data: bytes | Path) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        if isinstance(data, Path):
            shutil.copyfile(data, partial)
        else:
            partial.write_bytes(data)
        partial.replace(path)

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError(f"no object {key!r} in {self.folder}")
        yield path


def open_blob_store(url: str, bucket: str) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(unquote(parsed.netloc + parsed.path)), bucket)
    raise InputError(f"storage URL {url!r} is not supported: use file://FOLDER")


def video_key(session_id: int, interview_id: int, filename: str) -> str:
    return f"{session_id}/{interview_id}/raw/{filename}"


def log_key(session_id: int, interview_id: int, stamp: datetime) -> str:
    return f"{session_id}/{interview_id}/logs/videoLog_{stamp:%Y_%m_%d_%H.%M.%S}"
