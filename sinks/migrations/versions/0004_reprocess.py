"""Reprocess: re-scoring runs, their totals per rule version, their state, promotions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One re-scoring run per (rule set, version) (`scoreline reprocess`): the params
        -- it scores with (never changed once set) and the name its offsets are kept under
        -- in sink_offsets.
        create table reprocess_runs (
            ruleset_id text not null,
            rule_version integer not null check (rule_version >= 0),
            game text not null,
            tournament_id text not null,
            params jsonb not null,
            consumer text not null unique,
            started_at timestamptz not null default now(),
            caught_up_at timestamptz,
            primary key (ruleset_id, rule_version)
        );

        -- The run's match states (streams.scoring.MatchState as JSON), written in the same
        -- transaction as its totals and offsets, so a run resumes where it committed.
        create table reprocess_match_states (
            ruleset_id text not null,
            rule_version integer not null,
            match_id text not null,
            partition integer not null check (partition >= 0),
            state jsonb not null,
            primary key (ruleset_id, rule_version, match_id)
        );

        -- Board totals under one rule version: a run's (the new version, before and after
        -- its promotion), or the live totals saved by a promotion (the old version),
        -- readable until `scoreline reprocess --retire`.
        create table board_totals_by_version (
            ruleset_id text not null,
            rule_version integer not null,
            board_id text not null,
            member_id text not null,
            total numeric(18, 2) not null default 0,
            exact_count integer not null default 0,
            primary key (ruleset_id, rule_version, board_id, member_id)
        );
        create index board_totals_by_version_order on board_totals_by_version
            (ruleset_id, rule_version, board_id, total desc, exact_count desc,
             member_id collate "C");

        -- A promotion: 'pending' from before its Kafka transaction until after its commit,
        -- then 'done'; a second promotion of a version that is done does nothing.
        create table rule_promotions (
            ruleset_id text not null,
            rule_version integer not null,
            previous_version integer not null,
            state text not null check (state in ('pending', 'done')),
            lines integer not null check (lines >= 0),
            points_delta numeric(18, 2) not null,
            started_at timestamptz not null default now(),
            promoted_at timestamptz,
            check ((state = 'done') = (promoted_at is not null)),
            primary key (ruleset_id, rule_version)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop table rule_promotions;
        drop table board_totals_by_version;
        drop table reprocess_match_states;
        drop table reprocess_runs;
        """
    )
