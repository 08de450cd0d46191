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
        # The embedded SQLite database is ours: create the Interviewz tables there so the service
        # runs alone. A production database already has them and we never create or alter them.
        db.create_tables(interviewz=make_url(url).get_backend_name() == "sqlite")
        return cls(
            settings=settings,
            db=db,
            blobs=open_blob_store(settings.resolved_storage_url, settings.bucket),
            models=ModelRegistry(settings),
        )
