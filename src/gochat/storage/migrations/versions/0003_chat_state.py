"""Chat state: reactions, mentions, last-seen times.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "reactions",
        sa.Column("conversation_id", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("emoji", sa.String(64), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "seq", "user_id", "emoji"),
        **MYSQL,
    )
    op.create_table(
        "mentions",
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("conversation_id", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "conversation_id", "seq"),
        **MYSQL,
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("mention_ids", sa.String(1024), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("last_seen_at", ts(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_seen_at")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("mention_ids")
    op.drop_table("mentions")
    op.drop_table("reactions")
