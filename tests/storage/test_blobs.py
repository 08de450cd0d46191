"""Object storage: the same tests on the local folder and on a real S3 API server (moto's)."""

import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.retries import standard

from video_emotions.config import Settings
from video_emotions.errors import InputError, NotFoundError, ServiceUnavailableError
from video_emotions.storage.blobs import (
    S3_MAX_ATTEMPTS,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    log_key,
    open_blob_store,
    video_key,
)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path, "interviews")
    endpoint = request.getfixturevalue("s3_server")
    return S3BlobStore(request.getfixturevalue("s3_bucket"), endpoint_url=endpoint, part_size_mb=5)


def test_keys_follow_the_interviewz_layout() -> None:
    assert video_key(3, 9, "raw.mp4") == "3/9/raw/raw.mp4"
    assert log_key(3, 9, datetime(2026, 1, 2, 3, 4, 5)) == "3/9/logs/videoLog_2026_01_02_03.04.05"


def test_put_get_exists_and_local_copy(store: BlobStore, tmp_path: Path) -> None:
    assert not store.exists("3/9/raw/raw.mp4")
    store.put("3/9/logs/log", b"hello")
    assert store.get("3/9/logs/log") == b"hello"
    source = tmp_path / "video.bin"
    source.write_bytes(b"\x00" * 1000)
    store.put("3/9/raw/raw.mp4", source)
    assert store.exists("3/9/raw/raw.mp4")
    with store.local_copy("3/9/raw/raw.mp4") as local:
        assert local.read_bytes() == b"\x00" * 1000
    assert store.exists("3/9/raw/raw.mp4")
    if isinstance(store, S3BlobStore):
        assert not local.exists(), "the temporary copy must be removed"


def test_missing_objects_and_unsafe_keys(store: BlobStore) -> None:
    with pytest.raises(NotFoundError, match=r"no object '1/2/raw/raw\.mp4'"):
        store.get("1/2/raw/raw.mp4")
    with pytest.raises(NotFoundError), store.local_copy("1/2/raw/raw.mp4"):
        pass
    for key in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(InputError):
            store.put(key, b"x")


def test_large_objects_go_up_and_down_in_parts(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    store = S3BlobStore(s3_bucket, endpoint_url=s3_server, part_size_mb=5)
    data = os.urandom(11 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    store.put("1/1/raw/raw.mp4", tmp_path / "big.bin")
    head = store.client.head_object(Bucket=s3_bucket, Key="1/1/raw/raw.mp4")
    assert head["ETag"].endswith('-3"'), "a multipart upload of three parts"
    with store.local_copy("1/1/raw/raw.mp4") as local:
        assert local.read_bytes() == data


def test_open_blob_store_understands_file_and_s3_urls(tmp_path: Path, s3_server: str) -> None:
    store = open_blob_store(f"file://{tmp_path}", "bucket")
    store.put("k/v", b"1")
    assert (tmp_path / "bucket" / "k" / "v").read_bytes() == b"1"
    assert open_blob_store("s3://videos", "interviews", endpoint_url=s3_server).bucket == "videos"
    assert open_blob_store("s3://", "interviews", endpoint_url=s3_server).bucket == "interviews"
    with pytest.raises(InputError, match="give the bucket only"):
        open_blob_store("s3://videos/prefix", "interviews")
    with pytest.raises(InputError, match="not supported"):
        open_blob_store("ftp://host/x", "bucket")


@pytest.fixture
def no_env_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings from this test's environment only: no VE_* variables, .env or seed ini around."""
    for name in list(os.environ):
        if name.startswith(("VE_", "SUPABASE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_seed_supabase_url_means_supabase_storage_over_s3(
    no_env_config: None, monkeypatch: pytest.MonkeyPatch, s3_server: str
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://abcd.supabase.co/")
    monkeypatch.setenv("VE_S3_REGION", "eu-central-1")
    settings = Settings()
    assert settings.resolved_storage_url == "s3://interviews"
    assert settings.resolved_s3_endpoint_url == "https://abcd.supabase.co/storage/v1/s3"
    store = open_blob_store(
        settings.resolved_storage_url,
        settings.bucket,
        endpoint_url=settings.resolved_s3_endpoint_url,
        region=settings.s3_region,
    )
    assert isinstance(store, S3BlobStore) and store.bucket == "interviews"
    assert store.client.meta.endpoint_url == "https://abcd.supabase.co/storage/v1/s3"
    assert store.client.meta.region_name == "eu-central-1"
    assert store.client.meta.config.s3["addressing_style"] == "path"
    monkeypatch.setenv("VE_STORAGE_URL", "s3://videos")
    monkeypatch.setenv("VE_S3_ENDPOINT_URL", "http://minio:9000")
    settings = Settings()
    assert (settings.resolved_storage_url, settings.resolved_s3_endpoint_url) == (
        "s3://videos",
        "http://minio:9000",
    )


def test_s3_without_credentials_says_which_keys_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(InputError, match=r"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.*Storage settings"):
        S3BlobStore("interviews", endpoint_url="https://abcd.supabase.co/storage/v1/s3")


class FlakyS3:
    """An S3 endpoint that answers each request with the next (status, error code) of a script,
    then with the object ``b"video"``; it counts the requests it got."""

    def __init__(self, script: list[tuple[int, str]]) -> None:
        self.script = list(script)
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if outer.script:
                    status, code = outer.script.pop(0)
                    body = f"<Error><Code>{code}</Code><Message>{code} here</Message></Error>".encode()
                else:
                    status, body = 200, b"video"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def flaky_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[tuple[int, str]]], FlakyS3]]:
    """FlakyS3 servers, with botocore's backoff pauses cut to zero to keep the test fast."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    servers: list[FlakyS3] = []

    def start(script: list[tuple[int, str]]) -> FlakyS3:
        servers.append(FlakyS3(script))
        return servers[-1]

    yield start
    for server in servers:
        server.server.shutdown()


def test_s3_server_errors_and_throttling_are_retried(
    flaky_s3: Callable[[list[tuple[int, str]]], FlakyS3],
) -> None:
    server = flaky_s3([(503, "SlowDown"), (500, "InternalError")])
    store = S3BlobStore("interviews", endpoint_url=server.url, region="us-east-1")
    assert store.get("1/1/logs/log") == b"video"
    assert server.requests == 3


def test_s3_faults_that_persist_or_are_permanent_fail_with_the_cause(
    flaky_s3: Callable[[list[tuple[int, str]]], FlakyS3],
) -> None:
    server = flaky_s3([(503, "SlowDown")] * 10)
    store = S3BlobStore("interviews", endpoint_url=server.url, region="us-east-1")
    # A store that keeps failing is unavailable (503 for a request, a retried run for a job).
    with pytest.raises(
        ServiceUnavailableError, match=r"storage s3://interviews fails: .*SlowDown.*max retries"
    ):
        store.get("1/1/logs/log")
    assert server.requests == S3_MAX_ATTEMPTS

    server = flaky_s3([(403, "AccessDenied")])
    store = S3BlobStore("interviews", endpoint_url=server.url, region="us-east-1")
    with pytest.raises(ClientError, match="AccessDenied"):
        store.get("1/1/logs/log")
    assert server.requests == 1


def test_the_s3_server_fixture_is_a_real_s3_api(s3_server: str, s3_bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_server)
    assert s3_bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
