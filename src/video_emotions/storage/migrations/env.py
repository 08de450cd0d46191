"""Alembic environment: migrates on the connection that ``migrations.upgrade`` hands over."""

from alembic import context

from video_emotions.storage.migrations import VERSION_TABLE, include_name, own_metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=own_metadata(),
    version_table=VERSION_TABLE,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
