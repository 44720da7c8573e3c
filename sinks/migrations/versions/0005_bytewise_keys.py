"""Bytewise ("C") collation for the keys the sinks write in bulk; no unused score index.

The identifiers here (idempotency keys, member, board, entry and bet ids) are opaque
strings: nothing sorts them for people. Under the database's default collation (often
``en_US.UTF-8``, ``C.UTF-8`` on the reference machine) every B-tree comparison goes
through ``strcoll`` and Postgres cannot use abbreviated keys; bytewise comparison is
``memcmp``. Measured on the reference machine: 200,000 scores inserted in random key order
2.07 s → 1.93 s, the board lines upserted from them 3.11 s → 2.60 s (docs/predictions.md).
Ordering stays deterministic and the same as Redis' (member ids bytewise).

``scores_by_member`` goes: no query reads scores by member (the API reads board totals,
the tools read Kafka), and it was one of the six index entries each award costs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: (table, column, SQL type) of every key made bytewise.
KEYS = (
    ("scores", "idempotency_key", "text"),
    ("scores", "member_id", "text"),
    ("scores", "board_ids", "text[]"),
    ("board_totals", "board_id", "text"),
    ("board_totals", "member_id", "text"),
    ("prediction_entries", "entry_id", "text"),
    ("prediction_entries", "member_id", "text"),
    ("board_totals_by_version", "board_id", "text"),
    ("board_totals_by_version", "member_id", "text"),
    ("bets", "bet_id", "text"),
    ("bets", "member_id", "text"),
    ("settlements", "bet_id", "text"),
    ("settlements", "member_id", "text"),
    ("credit_ledger", "idempotency_key", "text"),
    ("credit_ledger", "member_id", "text"),
    ("credit_balances", "member_id", "text"),
)


def _alter(collation: str) -> str:
    tables: dict[str, list[str]] = {}
    for table, column, sql_type in KEYS:
        tables.setdefault(table, []).append(
            f'alter column {column} type {sql_type} collate "{collation}"'
        )
    return "\n".join(f"alter table {t} {', '.join(columns)};" for t, columns in tables.items())


def upgrade() -> None:
    op.execute(_alter("C"))
    op.execute("drop index scores_by_member")


def downgrade() -> None:
    op.execute("create index scores_by_member on scores (member_id)")
    op.execute(_alter("default"))
