"""A job's record as the API, the CLI and webhooks show it: one document, built in one place."""

from __future__ import annotations

from typing import Any

from video_emotions.storage.db import Database


def job_document(db: Database, job_id: str, *, deliveries: bool = True) -> dict[str, Any] | None:
    """The job with its progress, stages, attempts (and the worker of each) and webhook deliveries;
    None when there is no such job. Times are ``datetime`` objects (JSON encoders write ISO 8601)."""
    job = db.job(job_id)
    if job is None:
        return None
    chunks = db.chunks(job_id)
    attempts = db.attempts(job_id)
    samples_done = sum(c["samples_done"] for c in chunks)
    samples_expected = sum(c["samples_expected"] for c in chunks)
    if job.status == "succeeded":
        progress = 1.0
    else:
        progress = min(1.0, samples_done / samples_expected) if samples_expected else 0.0
    document: dict[str, Any] = {
        "id": job.id,
        "session_id": job.session_id,
        "interview_id": job.interview_id,
        "model_type": job.model_type,
        "engine": job.engine,
        "note": job.note,
        "model_file": job.model_file,
        "model_sha256": job.model_sha256,
        "parameters": {
            "interval": job.interval,
            "classifier": job.classifier,
            "fingerprint": job.fingerprint,
        },
        "state": job.status,
        "progress": round(progress, 4),
        "samples": {"done": samples_done, "expected": samples_expected},
        "segments": {
            "done": sum(c["segments_done"] for c in chunks),
            "total": sum(c["segments_total"] for c in chunks),
        },
        "chunks": len(chunks),
        "stages": job.stages or {},
        "error": {"kind": job.error_kind, "message": job.error} if job.status == "failed" else None,
        "warnings": job.warnings or [],
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "caller_left_at": job.caller_left_at,
        "attempt_count": len(attempts),
        "workers": sorted({a["worker"] for a in attempts}),
        "attempts": [
            {key: a[key] for key in ("chunk", "number", "worker", "outcome", "error_kind", "error")}
            | {"started_at": a["started_at"], "finished_at": a["finished_at"]}
            for a in attempts
        ],
        "callback_url": job.callback_url,
        "log_key": job.log_key,
    }
    if deliveries:
        document["deliveries"] = db.deliveries(job_id)
    return document


def interview_document(db: Database, interview_id: int, *, frames: bool) -> dict[str, Any] | None:
    """An interview's stored results as ``GET /v1/interviews/{id}/emotions`` gives them: per segment
    the legacy JSON, the summary, the engine and (with ``frames``) per-frame detail; the segments
    without a face; what the newest run could not cover. None when there is no such interview."""
    interview = db.interview(interview_id)
    if interview is None:
        return None
    stored = db.segment_results(interview_id)
    rows = {row["id"]: row for row in db.results_rows(interview_id)}
    segments = []
    for item in stored:
        segment = {
            key: item[key]
            for key in ("result_id", "start_ms", "end_ms", "engine", "model_file", "model_sha256", "job_id")
        }
        segment["summary"] = item["summary"]
        segment["video_emotions"] = rows.get(item["result_id"], {}).get("video_emotions")
        if frames:
            segment["frames"] = item["frames"]
        segments.append(segment)
    newest = max(stored, key=lambda item: item["written_at"], default=None)
    job = db.job(newest["job_id"]) if newest is not None else None
    return {
        "interview_id": interview_id,
        "session_id": interview["session_id"],
        "video_ok": bool(interview["video_ok"]),
        "segments": segments,
        "segments_without_face": [s["result_id"] for s in segments if s["summary"]["frames_with_face"] == 0],
        # What the newest run could not cover (a recording cut short): segments, samples, why.
        "warnings": (job.warnings or []) if job is not None else [],
    }
