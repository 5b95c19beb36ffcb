"""Accounts: users, sessions (one per login/device) and their refresh-token families.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("username_key", sa.String(32), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("bio", sa.String(500), nullable=False),
        sa.Column("avatar_media_id", sa.BigInteger, nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("presence_hidden", sa.Boolean, nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("deleted_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username_key", name="uq_users_username_key"),
        **MYSQL,
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.BigInteger, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("last_used_at", ts(), nullable=False),
        sa.Column("expires_at", ts(), nullable=False),
        sa.Column("revoked_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        **MYSQL,
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64)),
        sa.Column("session_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("used_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
        **MYSQL,
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])


def downgrade() -> None:
    op.drop_table("refresh_tokens")
    op.drop_table("sessions")
    op.drop_table("users")
