"""Media: uploaded files, their attachment to messages, a per-message media count.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("owner_id", sa.BigInteger, nullable=False),
        sa.Column("storage_key", sa.String(128), nullable=False),
        sa.Column("thumbnail_key", sa.String(128), nullable=True),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("attached", sa.Boolean, nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("deleted_at", ts(), nullable=True),
        sa.UniqueConstraint("storage_key", name="uq_media_storage_key"),
        **MYSQL,
    )
    op.create_index("ix_media_owner_id", "media", ["owner_id"])
    op.create_index("ix_media_attached_created_at", "media", ["attached", "created_at"])
    op.create_index("ix_media_deleted_at", "media", ["deleted_at"])
    op.create_table(
        "message_media",
        sa.Column("conversation_id", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("media_id", sa.BigInteger, nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "seq", "media_id"),
        sa.UniqueConstraint("media_id", name="uq_message_media_media_id"),
        **MYSQL,
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("media_count", sa.SmallInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("media_count")
    op.drop_table("message_media")
    op.drop_index("ix_media_deleted_at", table_name="media")
    op.drop_index("ix_media_attached_created_at", table_name="media")
    op.drop_index("ix_media_owner_id", table_name="media")
    op.drop_table("media")
