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
