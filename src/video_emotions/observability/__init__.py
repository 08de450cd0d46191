"""Observability: log lines as text or JSON with the job they belong to, and Prometheus metrics.

``logs`` holds what logging needs (``configure_logging``, ``job_context``) and never imports
prometheus_client; ``metrics`` holds the metrics, which must be imported only after
``PROMETHEUS_MULTIPROC_DIR`` is settled (prometheus_client reads it when first imported).
"""

from video_emotions.observability.logs import configure_logging, current_job, job_context

__all__ = ["configure_logging", "current_job", "job_context"]
