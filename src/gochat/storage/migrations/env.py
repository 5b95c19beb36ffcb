"""Alembic environment: always handed a live connection by gochat.storage.migrate."""

from __future__ import annotations

from alembic import context

from gochat.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `gochat migrate` (gochat.storage.migrate)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
