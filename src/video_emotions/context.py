"""The service's parts built from the settings: database, blob store, model registry."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import make_url

from video_emotions.config import Settings
from video_emotions.storage.blobs import BlobStore, open_blob_store
from video_emotions.storage.db import Database
from video_emotions.vision.registry import ModelRegistry


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    blobs: BlobStore
    models: ModelRegistry

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceContext:
        url = settings.resolved_database_url
        db = Database(url)
        if make_url(url).get_backend_name() == "sqlite":
            # The embedded SQLite database is ours: create the Interviewz tables there so the
            # service runs alone, and migrate our own tables at start.
            db.create_tables(interviewz=True)
        else:
            # A production database: the application owns its tables, and our migrations run as
            # a deliberate step (`video-emotions db upgrade`), not by whichever worker starts first.
            db.check_schema()
        return cls(
            settings=settings,
            db=db,
            blobs=open_blob_store(
                settings.resolved_storage_url,
                settings.bucket,
                endpoint_url=settings.resolved_s3_endpoint_url,
                region=settings.s3_region,
                part_size_mb=settings.s3_part_size_mb,
            ),
            models=ModelRegistry(settings),
        )
