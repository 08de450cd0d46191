"""Alembic migrations of our own tables (``ve_*``). The Interviewz tables are never touched.

``video-emotions db upgrade`` runs them; the embedded SQLite default runs them at start. The
version is kept in ``ve_alembic_version`` so that an application using Alembic itself on the same
database keeps its own ``alembic_version``. A change to our tables in ``schema.py`` needs a new
file in ``versions/`` whose ``down_revision`` is the latest one; the test suite checks that the
migrations' result equals ``schema.py``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData

from video_emotions.storage import schema

SCRIPTS = Path(__file__).resolve().parent
VERSION_TABLE = "ve_alembic_version"


def own_metadata() -> MetaData:
    """Our tables alone, as ``schema.py`` defines them: what the migrations must produce."""
    metadata = MetaData()
    for table in schema.OWN_TABLES:
        table.to_metadata(metadata)
    return metadata


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Autogenerate and comparisons look at our tables only, never at the application's."""
    return type_ != "table" or ((name or "").startswith("ve_") and name != VERSION_TABLE)


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> str:
    """Migrate to the latest revision in one transaction (where the database allows); idempotent."""
    with engine.begin() as connection:
        command.upgrade(_config(connection), "head")
    return head_revision()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory(str(SCRIPTS)).get_current_head()
    assert head is not None, "no migrations packaged"
    return head
