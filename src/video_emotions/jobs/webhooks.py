"""Webhooks: a finished job's record POSTed to its ``callback_url``, signed as Standard Webhooks says.

Headers ``webhook-id`` (the same on every attempt of one message), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` (``v1,`` and base64 of HMAC-SHA256 under the secret, over
``id.timestamp.body``). A network error or a 5xx is retried with backoff; a 2xx ends it; any other
answer is the receiver's refusal and is not retried. Every attempt is recorded on the job.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from video_emotions import __version__
from video_emotions.context import ServiceContext
from video_emotions.errors import InputError
from video_emotions.jobs.records import job_document
from video_emotions.observability.logs import job_context
from video_emotions.outbound import UnresolvedHostError, check_outbound_url

logger = logging.getLogger(__name__)

#: Seconds before the second POST of a webhook; doubled for each one after.
BACKOFF_S = 1.0


def secret_problem(secret: str | None) -> str | None:
    """Why ``secret`` cannot sign webhooks (never quoting it), or None when it can."""
    if not secret:
        return "VE_WEBHOOK_SECRET is not set"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        key = b""
    if not 24 <= len(key) <= 64:
        return "VE_WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 random bytes"
    return None


def signed_headers(secret: str, webhook_id: str, body: str, at: datetime) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
        "content-type": "application/json",
        "user-agent": f"video-emotions/{__version__}",
    }


def deliver_webhook(ctx: ServiceContext, job_id: str) -> bool:
    """POST the job's record to its callback_url until it is taken or the attempts run out;
    returns whether the receiver took it (False too when the job has no callback_url)."""
    with job_context(job_id):
        return _deliver_webhook(ctx, job_id)


def _deliver_webhook(ctx: ServiceContext, job_id: str) -> bool:
    job = ctx.db.job(job_id)
    if job is None or not job.callback_url:
        return False
    secret = ctx.settings.webhook_secret
    webhook_id = f"msg_{job_id}"
    problem = secret_problem(secret)
    if problem is not None or secret is None:
        ctx.db.record_delivery(job_id, webhook_id=webhook_id, attempt=1, status_code=None, error=problem)
        return False
    body = json.dumps(job_document(ctx.db, job_id, deliveries=False), default=_iso)
    attempts = ctx.settings.webhook_attempts
    for attempt in range(1, attempts + 1):
        status, error = None, None
        try:
            # Before each POST: the host's DNS answer may have changed since the job was queued.
            check_outbound_url(job.callback_url, ctx.settings.outbound_allow, what="callback_url")
            response = httpx.post(
                job.callback_url,
                content=body,
                headers=signed_headers(secret, webhook_id, body, datetime.now(UTC)),
                timeout=ctx.settings.webhook_timeout,
            )
            status = response.status_code
        except UnresolvedHostError as exc:
            error = str(exc)  # DNS did not answer: a network error, tried again
        except InputError as exc:
            # The host now resolves where the service must not send: refused, not tried again.
            ctx.db.record_delivery(
                job_id, webhook_id=webhook_id, attempt=attempt, status_code=None, error=f"not sent: {exc}"
            )
            logger.warning("webhook of job %s not sent: %s", job_id, exc)
            return False
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ctx.db.record_delivery(
            job_id, webhook_id=webhook_id, attempt=attempt, status_code=status, error=error
        )
        if status is not None and status < 500:
            if status >= 300:
                logger.warning(
                    "webhook of job %s: %s answered %d; not retried", job_id, job.callback_url, status
                )
            return status < 300
        if attempt < attempts:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
    logger.warning("webhook of job %s: %d attempts to %s failed", job_id, attempts, job.callback_url)
    return False


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
