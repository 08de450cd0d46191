"""Object storage: videos and run logs, under keys like ``{session}/{interview}/raw/raw.mp4``.

The embedded default is a local folder standing in for the bucket (``file://`` URL); production
uses any S3 API (``s3://`` URL): AWS S3, Supabase Storage's S3 protocol, MinIO, GCS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from video_emotions.errors import InputError, NotFoundError, ServiceUnavailableError

#: Attempts per S3 request (botocore "standard" retries: connection errors, 5xx, throttling).
S3_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class BlobInfo:
    """An object as a listing gives it: its key, size in bytes and when it was last written (UTC)."""

    key: str
    size: int
    modified: datetime


class BlobStore(Protocol):
    """What the service needs of a bucket."""

    def exists(self, key: str) -> bool: ...

    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes | Path) -> None: ...

    def delete(self, key: str) -> None:
        """Remove the object; nothing happens when there is none."""
        ...

    def list(self, prefix: str) -> list[BlobInfo]:
        """Every object whose key starts with ``prefix`` (``""``: the whole bucket), in key order."""
        ...

    def local_copy(self, key: str) -> Iterator[Path]:
        """A context manager giving a local file with the object's bytes, removed afterwards if temporary."""
        ...


def _checked_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise InputError(f"invalid storage key {key!r}")
    return key


def _checked_prefix(prefix: str) -> str:
    """A listing's prefix: empty, or a key's beginning (it may end in ``/``)."""
    if prefix:
        _checked_key(prefix.removesuffix("/") or "/")
    return prefix


class LocalBlobStore:
    """A bucket as a folder: ``ROOT/BUCKET/KEY``."""

    def __init__(self, root: Path, bucket: str) -> None:
        self.bucket = bucket
        self.folder = Path(root) / bucket

    def _path(self, key: str) -> Path:
        return self.folder / _checked_key(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return path.read_bytes()

    def _missing(self, key: str) -> NotFoundError:
        # The bucket's name, not its folder: messages reach callers, server paths must not.
        return NotFoundError(f"no object {key!r} in bucket {self.bucket}")

    def put(self, key: str, data: bytes | Path) -> None:
        path = self._path(key)
        partial = path.with_name(path.name + ".part")
        for attempt in range(3):  # a delete may prune the folder between mkdir and write
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                if isinstance(data, Path):
                    shutil.copyfile(data, partial)
                else:
                    partial.write_bytes(data)
                partial.replace(path)
                return
            except FileNotFoundError:
                if attempt == 2 or (isinstance(data, Path) and not data.exists()):
                    raise

    def delete(self, key: str) -> None:
        """Remove the file, and the folders it leaves empty up to the bucket's."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        for folder in path.parents:
            if folder == self.folder or self.folder not in folder.parents:
                break
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone already)
                break

    def list(self, prefix: str) -> list[BlobInfo]:
        """The files under the bucket's folder whose keys start with ``prefix``; a file being written
        (``.part``) is not an object yet."""
        _checked_prefix(prefix)
        base = self.folder / prefix.rpartition("/")[0] if "/" in prefix else self.folder
        found = []
        for path in base.rglob("*") if base.is_dir() else ():
            key = path.relative_to(self.folder).as_posix()
            if not key.startswith(prefix) or path.name.endswith(".part"):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed while listed
                continue
            if path.is_file():
                found.append(BlobInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
        return sorted(found, key=lambda info: info.key)

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        yield path


class S3BlobStore:
    """A bucket behind an S3 API; credentials come from boto3's default chain (``AWS_*`` variables).

    Transient faults (connection errors, 5xx, throttling) are retried by botocore with backoff,
    ``S3_MAX_ATTEMPTS`` attempts per request; anything else fails at once with S3's message.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size_mb: int = 64,
    ) -> None:
        self.bucket = bucket
        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise InputError(
                f"no S3 credentials for s3://{bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(for Supabase Storage: an S3 access key pair from the dashboard's Storage settings; "
                "the SUPABASE_KEY API key does not sign S3 requests)"
            )
        compatible = endpoint_url is not None
        config = Config(
            retries={"mode": "standard", "total_max_attempts": S3_MAX_ATTEMPTS},
            # S3-compatible servers (Supabase, MinIO) want bucket names in the path, not the host
            # name, and not all of them take the streamed checksums boto3 sends by default to AWS.
            s3={"addressing_style": "path" if compatible else "auto"},
            request_checksum_calculation="when_required" if compatible else "when_supported",
            response_checksum_validation="when_required" if compatible else "when_supported",
            connect_timeout=10,
            read_timeout=60,
        )
        self.client = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        part = part_size_mb * 1024 * 1024
        self.transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part)

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(f"no object {key!r} in s3://{self.bucket}")

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """The store unreachable (after botocore's retries), or answering 5xx: try again later."""
        try:
            yield
        except (BotoConnectionError, HTTPClientError, S3UploadFailedError) as exc:
            raise ServiceUnavailableError(f"storage s3://{self.bucket} does not answer: {exc}") from exc
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise ServiceUnavailableError(f"storage s3://{self.bucket} fails: {exc}") from exc
            raise

    def exists(self, key: str) -> bool:
        with self._answering():
            try:
                self.client.head_object(Bucket=self.bucket, Key=_checked_key(key))
            except ClientError as exc:
                if _not_found(exc):
                    return False
                raise
        return True

    def get(self, key: str) -> bytes:
        with self._answering():
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=_checked_key(key))
            except ClientError as exc:
                if _not_found(exc):
                    raise self._missing(key) from exc
                raise
            return response["Body"].read()

    def put(self, key: str, data: bytes | Path) -> None:
        """Store bytes, or a file (multipart above the part size, streamed from disk)."""
        key = _checked_key(key)
        with self._answering():
            if isinstance(data, Path):
                self.client.upload_file(str(data), self.bucket, key, Config=self.transfer)
            else:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, key: str) -> None:
        with self._answering():
            self.client.delete_object(Bucket=self.bucket, Key=_checked_key(key))

    def list(self, prefix: str) -> list[BlobInfo]:
        """ListObjectsV2, page by page (1,000 keys a request)."""
        found = []
        with self._answering():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=_checked_prefix(prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(BlobInfo(item["Key"], item["Size"], item["LastModified"].astimezone(UTC)))
        return sorted(found, key=lambda info: info.key)

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Stream the object into a temporary file (in ``TMPDIR``) that is removed afterwards.

        The bytes go from the socket to the file in small chunks, so a video of any size needs a
        few megabytes of memory, and disk space for one copy.
        """
        key = _checked_key(key)
        handle, name = tempfile.mkstemp(prefix="video-emotions-", suffix=Path(key).suffix)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out, self._answering():
                try:
                    self.client.download_fileobj(self.bucket, key, out, Config=self.transfer)
                except ClientError as exc:
                    if _not_found(exc):
                        raise self._missing(key) from exc
                    raise
            yield path
        finally:
            path.unlink(missing_ok=True)


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def open_blob_store(
    url: str,
    bucket: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    part_size_mb: int = 64,
) -> BlobStore:
    """``file://FOLDER`` (FOLDER/BUCKET/KEY) or ``s3://`` (bucket ``bucket``) or ``s3://BUCKET``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(unquote(parsed.netloc + parsed.path)), bucket)
    if parsed.scheme == "s3":
        if parsed.path.strip("/"):
            raise InputError(f"storage URL {url!r}: give the bucket only, as s3://BUCKET")
        return S3BlobStore(
            parsed.netloc or bucket, endpoint_url=endpoint_url, region=region, part_size_mb=part_size_mb
        )
    raise InputError(f"storage URL {url!r} is not supported: use file://FOLDER or s3://BUCKET")


def video_key(session_id: int, interview_id: int, filename: str) -> str:
    return f"{session_id}/{interview_id}/raw/{filename}"


def log_key(session_id: int, interview_id: int, stamp: datetime) -> str:
    return f"{session_id}/{interview_id}/logs/videoLog_{stamp:%Y_%m_%d_%H.%M.%S}"
