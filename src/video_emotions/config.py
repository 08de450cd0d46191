"""Settings from ``VE_*`` environment variables, a ``.env`` file and the seed's ``videoConfig.ini``.

Precedence, highest first: environment, ``.env``, ``videoConfig.ini``, defaults. The ini file
is looked up at ``VE_CONFIG_INI`` (default ``config/videoConfig.ini``) so an existing seed
deployment keeps its settings when it moves over.
"""

from __future__ import annotations

import configparser
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

#: Seed ini (section, key) → our setting name.
SEED_INI_KEYS: dict[tuple[str, str], str] = {
    ("GENERAL", "Filename"): "video_filename",
    ("VIDEOEMOTION", "Interval"): "interval",
    ("SUPABASE", "InputBucket"): "bucket",
    ("SUPABASE", "Url"): "supabase_url",
}


#: How a segment's per-frame probabilities are combined (see :func:`video_emotions.results.aggregate`).
Aggregation = Literal["mean", "log_mean", "trimmed_mean", "score_weighted", "size_weighted"]


def default_model_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "video-emotions" / "models"


class SeedIniSource(PydanticBaseSettingsSource):
    """Reads the seed's ``config/videoConfig.ini`` keys that map onto our settings."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = Path(os.environ.get("VE_CONFIG_INI", "config/videoConfig.ini"))
        parser = configparser.ConfigParser()
        parser.optionxform = str  # keep the seed's key case
        if path.is_file():
            parser.read(path)
        self._values: dict[str, Any] = {}
        for (section, key), name in SEED_INI_KEYS.items():
            if parser.has_option(section, key):
                self._values[name] = parser.get(section, key).strip().strip('"')

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class Settings(BaseSettings):
    """Every setting of the service. See the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="VE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Folder for the embedded database and storage.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    storage_url: str | None = Field(None, description="file://FOLDER; default: data_dir/storage.")
    bucket: str = Field("interviews", description="Bucket holding the interview videos and logs.")
    video_filename: str = Field("raw.mp4", description="File name of an interview's video.")
    interval: float = Field(1.0, gt=0, description="Seconds between sampled frames.")
    model_dir: Path = Field(default_factory=default_model_dir, description="Model file cache.")
    default_model: str = Field("default", description="Engine used when a request names none.")
    model_aliases: str = Field(
        "", description="Operator's name mapping, e.g. 'deepface=default,yolo=default'."
    )
    strict_models: bool = Field(
        False,
        description="Refuse (422) a model_type whose engine cannot run here instead of serving it "
        "with the default engine.",
    )
    crop_margin: float = Field(
        0.2, ge=0, description="Face crop: box side enlarged by this share (chosen in docs/accuracy.md)."
    )
    detector_threshold: float = Field(0.5, gt=0, lt=1, description="BlazeFace score threshold.")
    align_faces: bool = Field(
        False, description="Face crop: turn it so the eyes (BlazeFace's eye keypoints) lie level."
    )
    classifier: str = Field(
        "mini-xception",
        description="Expression classifier of the default engine: a name registered in "
        "video_emotions.vision.classifier_registry, '+flip' appended to average a mirrored view.",
    )
    aggregation: Aggregation = Field(
        "mean",
        description="How a segment's frames make its summary (mean, dominant): mean of probabilities, "
        "log_mean (mean of log-probabilities), trimmed_mean (per class, a fifth cut at each end), "
        "score_weighted (by detector score) or size_weighted (by face area).",
    )
    deepface_detector: str = Field(
        "opencv", description="deepface: DeepFace's face detector backend (opencv as the seed, or skip)."
    )
    yolo_model_path: Path | None = Field(
        None, description="yolo_local: an ultralytics YOLO classification model, .onnx (or .pt: [yolo])."
    )
    yolo_crop_face: bool = Field(
        True, description="yolo_local, yolo_cloud: classify the face BlazeFace finds; false: the whole frame."
    )
    remote_url: str | None = Field(
        None, description="yolo_cloud: a prediction endpoint speaking Vertex AI's JSON (:predict URL)."
    )
    remote_token: str | None = Field(
        None, description="yolo_cloud: bearer token; default: Google credentials for a Vertex URL."
    )
    remote_timeout: float = Field(30.0, gt=0, description="yolo_cloud: seconds per request.")
    remote_retries: int = Field(
        2, ge=0, description="yolo_cloud: retries after a 5xx or a connection error, with backoff."
    )
    remote_batch: int = Field(32, ge=1, description="yolo_cloud: face images per request.")
    api_keys: str | None = Field(
        None,
        description="API keys the service accepts, as KEY_ID:SHA256_HEX pairs separated by commas "
        "(`video-emotions keys new` makes one); when set, every route but /health needs a key.",
    )
    allow_open: bool = Field(
        False, description="Serve on a non-loopback address without API keys (behind a private network)."
    )
    cors_origins: str = Field("", description="Origins allowed by CORS, comma-separated; none by default.")
    outbound_allow: str = Field(
        "",
        description="Hosts or networks (CIDR) that callback_url and VE_REMOTE_URL may reach besides "
        "public addresses, comma-separated, e.g. '127.0.0.1,10.0.0.0/8'.",
    )
    policy_file: Path | None = Field(
        None,
        description="TOML file of policy rules (config/policy.example.toml): per interview context and "
        "region, prohibit, require_consent or allow; none: every analysis is allowed.",
    )
    max_request_mb: float = Field(32.0, gt=0, description="Largest request body accepted, in MB.")
    max_upload_mb: float = Field(
        2048.0, gt=0, description="Largest video upload (POST /v1/interviews) accepted, in MB."
    )
    max_video_pixels: int = Field(
        4096 * 2304, ge=1, description="Largest frame (width x height) a video may declare; more is refused."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text, or as JSON objects (with the job id on a job's lines)."
    )
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8003, description="Port the API listens on.")
    workers: int = Field(1, ge=1, description="local executor: analyses that run at the same time.")
    executor: Literal["local", "celery"] = Field(
        "local",
        description="Where jobs run: local (a thread pool in the service; jobs left unfinished are "
        "picked up again at start) or celery (workers started by `video-emotions worker`).",
    )
    broker_url: str | None = Field(
        None, description="celery: the broker, redis://HOST:6379/0 or amqp://USER:PASSWORD@HOST:5672//."
    )
    queue: str = Field("video-emotions", description="celery: the queue jobs are sent to.")
    chunk_seconds: float = Field(
        300.0,
        gt=0,
        description="celery: an interview with more candidate speech than this is split into chunks "
        "of whole segments that several workers analyse at once.",
    )
    max_attempts: int = Field(
        3, ge=1, description="Runs of a chunk (a worker lost, a transient fault) before its job fails."
    )
    visibility_timeout: int = Field(
        6 * 3600,
        ge=1,
        description="celery on Redis: seconds before a chunk a worker took and never acknowledged "
        "goes to another worker; longer than the longest chunk takes.",
    )
    webhook_secret: str | None = Field(
        None,
        description="Signs webhooks (Standard Webhooks, HMAC-SHA256): whsec_ and base64 of 24 to 64 "
        "random bytes. Needed for a callback_url.",
    )
    webhook_attempts: int = Field(
        5, ge=1, description="POSTs of a webhook (after a network error or a 5xx) before giving up."
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds per webhook POST.")
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Days our per-frame detail and run logs (and videos with VE_DELETE_VIDEOS) are kept; "
        "the retention sweep deletes what is older. None: kept for ever.",
    )
    delete_videos: bool = Field(
        False,
        description="Whether we own the bucket's videos: true, the retention sweep and erasure delete them "
        "too; false, they are the application's and left alone.",
    )
    retention_sweep_hours: float = Field(
        24.0, gt=0, description="Hours between two retention sweeps of the service (with VE_RETENTION_DAYS)."
    )
    supabase_url: str | None = Field(
        None,
        description="Seed setting, kept for the S3 backend.",
        validation_alias=AliasChoices("VE_SUPABASE_URL", "SUPABASE_URL", "supabase_url"),
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 API endpoint of an S3-compatible store; default: AWS S3 (or Supabase's)."
    )
    s3_region: str | None = Field(None, description="S3 region; default: boto3's (AWS_REGION, ~/.aws).")
    s3_part_size_mb: int = Field(64, ge=5, description="S3 transfers: part size of multipart up/downloads.")

    @field_validator("interval", mode="before")
    @classmethod
    def _parse_interval(cls, value: Any) -> Any:
        return float(value) if isinstance(value, str) else value

    @field_validator("policy_file", mode="before")
    @classmethod
    def _no_empty_policy_file(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, SeedIniSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'video_emotions.db'}"

    @property
    def resolved_storage_url(self) -> str:
        """The storage URL; with none given, Supabase Storage when the seed's Supabase URL is set."""
        if self.storage_url:
            return self.storage_url
        if self.supabase_url:
            return f"s3://{self.bucket}"
        return f"file://{(self.data_dir / 'storage').resolve()}"

    @property
    def resolved_s3_endpoint_url(self) -> str | None:
        """``VE_S3_ENDPOINT_URL``, else Supabase Storage's S3 endpoint when the Supabase URL is set."""
        if self.s3_endpoint_url:
            return self.s3_endpoint_url
        if self.supabase_url:
            return f"{self.supabase_url.rstrip('/')}/storage/v1/s3"
        return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
