"""Real servers for the storage tests: a fresh PostgreSQL database per test, moto's S3 server.

Neither is mocked in process: PostgreSQL is the server at 127.0.0.1:5432 (``VE_TEST_POSTGRES_URL``
names another maintenance database), S3 is ``moto.server`` started here on a free loopback port.
Without them the tests skip, unless REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.service import free_port
from video_emotions.storage.db import Database

INTERVIEWZ_DDL = Path(__file__).with_name("interviewz_schema.sql")
POSTGRES_URL = os.environ.get("VE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def unavailable(message: str) -> None:
    """Skip a test whose server is missing, or fail it in CI (REQUIRE_SERVICES=1)."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (REQUIRE_SERVICES=1)")
    pytest.skip(message)


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The maintenance database's URL, once the server answers."""
    try:
        psycopg.connect(libpq_dsn(POSTGRES_URL), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def pg_database(postgres_admin: str) -> Iterator[Callable[..., str]]:
    """Factory: a new empty database (with the Interviewz tables when ``interviewz``), dropped at
    the end of the test run; returns its SQLAlchemy URL. Our own tables are the test's to migrate."""
    created: list[str] = []

    def create(*, interviewz: bool = True) -> str:
        name = f"ve_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(libpq_dsn(postgres_admin), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        url = make_url(postgres_admin).set(database=name).render_as_string(hide_password=False)
        if interviewz:
            with psycopg.connect(libpq_dsn(url)) as conn:
                conn.execute(INTERVIEWZ_DDL.read_text())
        return url

    yield create
    with psycopg.connect(libpq_dsn(postgres_admin), autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 API server in a subprocess; returns its endpoint URL. The AWS variables are set
    for this process and the services it starts (moto accepts any credentials)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                unavailable(f"moto's S3 server did not start:\n{log.read_text()}")
            time.sleep(0.2)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "test-key")
        env.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        try:
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


def create_bucket(endpoint_url: str) -> str:
    """A new, empty bucket in the S3 server; returns its name."""
    name = f"ve-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    return create_bucket(s3_server)


def production_env(database_url: str, s3_endpoint: str, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "VE_DATABASE_URL": database_url,
        "VE_STORAGE_URL": f"s3://{bucket}",
        "VE_S3_ENDPOINT_URL": s3_endpoint,
        "VE_S3_REGION": "us-east-1",
        **extra,
    }


def upgraded_database(pg_database: Callable[..., str], data_dir: Path) -> str:
    """A database with the Interviewz DDL, then ours through the command operators run."""
    url = pg_database()
    done = subprocess.run(
        [sys.executable, "-m", "video_emotions", "db", "upgrade"],
        env={"VE_DATABASE_URL": url, "VE_DATA_DIR": str(data_dir), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return url


@pytest.fixture
def pg_db(pg_database: Callable[..., str]) -> Iterator[Database]:
    """PostgreSQL as production has it: the Interviewz tables from their DDL, ours migrated."""
    database = Database(pg_database())
    database.upgrade()
    yield database
    database.dispose()
