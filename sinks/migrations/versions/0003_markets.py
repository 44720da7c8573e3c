"""Markets and bets: markets, bets, rejections, settlements, the credits ledger, balances.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- The latest state of each market, from fixtures.markets. Updates (question,
        -- outcomes, prices) and resolutions carry separate versions, so each half keeps
        -- its own highest version: a late update never erases a resolution. A resolution
        -- read before the market's first update makes a row with an empty update half.
        create table markets (
            market_id text primary key,
            kind text not null,
            question text,
            slug text,
            match_id text,
            outcomes jsonb,  -- [{"name", "price": "0.4500", "odds": "2.1000" | null}]
            active boolean,
            closed boolean,
            end_date timestamptz,
            version integer,
            updated_at timestamptz,
            resolution_outcome text,
            void boolean not null default false,
            resolution_version integer,
            resolved_at timestamptz,
            check (version is null
                   or (question is not null and outcomes is not null
                       and active is not null and closed is not null
                       and updated_at is not null)),
            check (resolution_version is null or resolved_at is not null)
        );
        create index markets_by_match on markets (match_id) where match_id is not null;

        -- Every bet the upstream app sent (entries.bets), with what became of it: open,
        -- rejected (entries.rejected), or its latest settlement version (settlements).
        create table bets (
            bet_id text primary key,
            member_id text not null,
            kind text not null,
            stake numeric(18, 2) not null,
            legs jsonb not null,  -- [{"market_id", "selection", "odds", "price"}]
            placed_at timestamptz not null,
            status text not null default 'open'
                check (status in ('open', 'rejected', 'won', 'lost', 'void', 'push')),
            reject_reason text,
            reject_detail text,
            payout numeric(18, 2),
            settlement_version integer,
            settled_at timestamptz,
            check ((settlement_version is null) = (settled_at is null))
        );
        -- A member's bets newest first, keyset-paginated on (placed_at, bet_id).
        create index bets_by_member on bets (member_id, placed_at, bet_id);

        -- Entries the streams refused (entries.rejected), bets and predictions alike.
        create table entry_rejections (
            entry_topic text not null,
            entry_id text not null,
            member_id text not null,
            reason text not null,
            detail text not null default '',
            rejected_at timestamptz not null,
            primary key (entry_topic, entry_id)
        );

        -- Every settlement version once (a resettlement is a new row, never an edit).
        create table settlements (
            bet_id text not null,
            version integer not null check (version >= 1),
            member_id text not null,
            status text not null check (status in ('won', 'lost', 'void', 'push')),
            stake numeric(18, 2) not null,
            payout numeric(18, 2) not null,
            previous_payout numeric(18, 2),
            settled_at timestamptz not null,
            idempotency_key text not null,
            primary key (bet_id, version)
        );

        -- The credits ledger: every balance change once, by its idempotency key.
        create table credit_ledger (
            idempotency_key text primary key,
            member_id text not null,
            kind text not null
                check (kind in ('grant', 'stake', 'payout', 'refund', 'reversal')),
            amount numeric(18, 2) not null,
            bet_id text,
            version integer,
            posted_at timestamptz not null
        );
        create index credit_ledger_by_member on credit_ledger (member_id);

        -- balance = sum(credit_ledger.amount) of the member, entries = their count; both
        -- moved by the statement that inserts the ledger rows (sinks/postgres_markets.py).
        create table credit_balances (
            member_id text primary key,
            balance numeric(18, 2) not null check (balance >= 0 and balance <= 1000000),
            entries integer not null default 0 check (entries >= 0),
            updated_at timestamptz not null default now()
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop table credit_balances;
        drop table credit_ledger;
        drop table settlements;
        drop table entry_rejections;
        drop table bets;
        drop table markets;
        """
    )
