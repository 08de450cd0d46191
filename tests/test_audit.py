"""The audit log in process: what a row keeps, which routes leave one, and what a failed write does."""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from video_emotions import audit
from video_emotions.api.app import create_app
from video_emotions.config import Settings
from video_emotions.storage.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 've.db'}")
    database.create_tables(interviewz=True)
    yield database
    database.dispose()


def test_every_api_route_is_audited_or_said_not_to_be(tmp_path: Path) -> None:
    document = create_app(Settings(data_dir=tmp_path)).openapi()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    unclassified = operations - set(audit.ROUTES) - set(audit.NOT_AUDITED)
    assert not unclassified, (
        f"say in audit.ROUTES or audit.NOT_AUDITED what these leave: {sorted(unclassified)}"
    )
    assert not set(audit.ROUTES) & set(audit.NOT_AUDITED)
    for method, path in [("POST", "/analyse_video"), ("POST", "/v1/analyses"), ("GET", "/v1/audit")]:
        assert (method, path) in operations and (method, path) in audit.ROUTES


def test_a_row_keeps_what_both_databases_take(db: Database) -> None:
    assert audit.record(
        db,
        actor="ci",
        action="analysis_requested",
        outcome=202,
        interview_id=7,
        job_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        model_type="x\x00" * 100,
        engine="default",
        parameters={"interval": float("nan"), "note": "a\x00b", "big": 2**70, "nested": {"n": [1, "\ud800"]}},
        client="127.0.0.1",
    )
    assert audit.record(
        db, actor="ops", action="results_read", outcome=200, interview_id=2**64, job_id="nope"
    )
    (first, second), total = db.audit_entries()
    assert total == 2 and first["id"] < second["id"]
    assert first["model_type"] == "x" * 64
    assert first["parameters"] == {
        "interval": None,
        "note": "ab",
        "big": str(2**70),
        "nested": {"n": [1, "?"]},
    }
    assert (first["outcome"], first["interview_id"], first["client"]) == ("202", 7, "127.0.0.1")
    assert (second["interview_id"], second["job_id"], second["parameters"]) == (None, None, {})


def test_the_embedded_database_refuses_to_update_or_delete_a_row(db: Database) -> None:
    audit.record(db, actor="ci", action="frame_read", outcome=200, interview_id=1)
    for statement in ("UPDATE ve_audit SET actor = 'someone else'", "DELETE FROM ve_audit"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    rows, total = db.audit_entries()
    assert total == 1 and rows[0]["actor"] == "ci"


def test_filters_compare_times_in_utc(db: Database) -> None:
    audit.record(db, actor="ci", action="results_read", outcome=200, interview_id=1)
    audit.record(db, actor="ops", action="frame_read", outcome=200, interview_id=2)
    (row, _), _ = db.audit_entries()
    at = audit.as_utc(row["at"])
    east = timezone(timedelta(hours=5))
    assert db.audit_entries(since=at.astimezone(east))[1] == 2
    assert db.audit_entries(until=(at - timedelta(seconds=1)).astimezone(east))[1] == 0
    assert db.audit_entries(since=at.replace(tzinfo=None) + timedelta(hours=1))[1] == 0
    assert [r["actor"] for r in db.audit_entries(action="frame_read")[0]] == ["ops"]
    assert [r["interview_id"] for r in db.audit_entries(actor="ci")[0]] == [1]
    assert db.audit_entries(interview_id=2, limit=1, offset=1) == ([], 1)


def test_times_beyond_what_utc_can_hold_are_its_first_or_last_moment() -> None:
    assert audit.as_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == datetime.min.replace(
        tzinfo=UTC
    )
    assert audit.as_utc(
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    ) == datetime.max.replace(tzinfo=UTC)
    assert audit.as_utc(datetime(2026, 12, 1)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_the_csv_export_quotes_what_a_spreadsheet_would_run() -> None:
    rows = [
        {
            "id": 1,
            "at": "2026-12-01T00:00:00+00:00",
            "actor": "ci",
            "action": "analysis_refused",
            "model_type": '=HYPERLINK("http://x")',
            "parameters": {"force": True},
            "outcome": "422",
        },
    ]
    parsed = list(csv.DictReader(io.StringIO("".join(audit.csv_lines(rows)))))
    assert parsed[0]["model_type"] == '\'=HYPERLINK("http://x")'
    assert parsed[0]["parameters"] == '{"force": true}' and parsed[0]["interview_id"] == ""
    assert "".join(audit.csv_lines([])) == ",".join(audit.COLUMNS) + "\n"


def test_the_cli_actor_names_the_login() -> None:
    assert audit.cli_actor().startswith("cli:")
    assert len(audit.cli_actor()) > len("cli:")


JOB = "0f8fad5b-d9cb-469f-a165-70867728950e"


class FailingDb:
    """A database that takes no audit row."""

    def append_audit(self, values: dict[str, Any]) -> int:
        raise DBAPIError("INSERT", {}, Exception("disk I/O error"))

    def job(self, _job_id: str) -> None:
        return None


def _app_with(db: Any) -> FastAPI:
    app = FastAPI()
    app.state.ctx = SimpleNamespace(db=db, settings=Settings(data_dir=Path("/nonexistent")))

    @app.post("/v1/analyses")
    async def queue(body: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"id": JOB}, status_code=202, headers={"Location": f"/v1/analyses/{JOB}"})

    @app.get("/v1/interviews/{interview_id}/emotions")
    async def read(interview_id: int) -> Response:
        return Response("a,b\n", media_type="text/csv")

    app.add_middleware(audit.AuditMiddleware)
    return app


def test_a_failed_write_fails_an_analysis_with_503_and_lets_a_read_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(_app_with(FailingDb()))
    with caplog.at_level(logging.ERROR, logger="video_emotions.audit"):
        queued = client.post("/v1/analyses", json={"session_id": 1, "interview_id": 3})
        read = client.get("/v1/interviews/3/emotions")
    assert queued.status_code == 503 and queued.headers["retry-after"] == str(audit.RETRY_S)
    assert (
        "audit log could not record" in queued.json()["detail"] and "answered 202" in queued.json()["detail"]
    )
    assert "location" not in queued.headers
    assert (read.status_code, read.text) == (200, "a,b\n")
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"could not record analysis_requested by open (interview 3, job {JOB}" in m for m in logged)
    assert any("could not record results_read by open (interview 3" in m for m in logged), logged


def test_a_request_the_route_fails_on_is_recorded_with_500(db: Database) -> None:
    app = FastAPI()
    app.state.ctx = SimpleNamespace(db=db, settings=Settings(data_dir=Path("/nonexistent")))

    @app.get("/v1/interviews/{interview_id}/frames/{time}.jpg")
    async def broken(interview_id: int, time: float) -> Response:
        raise RuntimeError("boom")

    app.add_middleware(audit.AuditMiddleware)
    answer = TestClient(app, raise_server_exceptions=False).get("/v1/interviews/4/frames/1.5.jpg")
    assert answer.status_code == 500
    [row], _ = db.audit_entries()
    assert (row["action"], row["interview_id"], row["parameters"], row["outcome"]) == (
        "frame_read",
        4,
        {"time": "1.5"},
        "500",
    )
