"""Conversations, members, messages and the per-conversation change log (events).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.BigInteger, autoincrement=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("title", sa.String(128), nullable=True),
        sa.Column("direct_key", sa.String(41), nullable=True),
        sa.Column("created_by", sa.BigInteger, nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_pos", sa.BigInteger, nullable=False),
        sa.Column("last_activity_at", ts(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("direct_key", name="uq_conversations_direct_key"),
        **MYSQL,
    )
    op.create_index("ix_conversations_last_activity_at", "conversations", ["last_activity_at"])
    op.create_table(
        "members",
        sa.Column("conversation_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("read_seq", sa.BigInteger, nullable=False),
        sa.Column("joined_pos", sa.BigInteger, nullable=False),
        sa.Column("left_pos", sa.BigInteger, nullable=True),
        sa.Column("muted", sa.Boolean, nullable=False),
        sa.Column("joined_at", ts(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "user_id"),
        **MYSQL,
    )
    op.create_index("ix_members_user_id_left_pos", "members", ["user_id", "left_pos"])
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger, autoincrement=False),
        sa.Column("conversation_id", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("pos", sa.BigInteger, nullable=False),
        sa.Column("sender_id", sa.BigInteger, nullable=False),
        sa.Column("client_msg_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("reply_to_seq", sa.BigInteger, nullable=True),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("edited_at", ts(), nullable=True),
        sa.Column("deleted_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_id_seq"),
        sa.UniqueConstraint("sender_id", "client_msg_id", name="uq_messages_sender_id_client_msg_id"),
        **MYSQL,
    )
    op.create_table(
        "events",
        sa.Column("conversation_id", sa.BigInteger, nullable=False),
        sa.Column("pos", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("user_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", ts(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "pos"),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("messages")
    op.drop_index("ix_members_user_id_left_pos", table_name="members")
    op.drop_table("members")
    op.drop_table("conversations")
