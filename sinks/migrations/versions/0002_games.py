"""Predictions game: provider state, matches, leagues, rule sets, entries, scores, boards.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- What a poller last published per provider object, so an unchanged payload
        -- publishes nothing and a changed final score gets the next result version,
        -- across restarts.
        create table provider_match_state (
            provider text not null,
            match_id text not null,
            payload_sha256 text not null,
            status text not null,
            home_score integer,
            away_score integer,
            result_version integer not null default 0,
            provider_version bigint not null default 0,
            updated_at timestamptz not null default now(),
            primary key (provider, match_id)
        );

        -- The latest state of each match, from fixtures.matches (highest version wins).
        create table matches (
            match_id text primary key,
            tournament_id text not null,
            round text,
            home_team_id text not null,
            home_team_name text not null,
            away_team_id text not null,
            away_team_name text not null,
            status text not null,
            home_score integer not null,
            away_score integer not null,
            minute integer,
            period text,
            kickoff_at timestamptz not null,
            provider text not null,
            provider_version bigint not null,
            result_version integer not null,
            updated_at timestamptz not null
        );

        -- Leagues are defined by the upstream app; a private league's board needs its token.
        create table leagues (
            league_id text primary key,
            tournament_id text not null,
            name text not null,
            private boolean not null default false,
            access_token_sha256 text,
            check (not private or access_token_sha256 is not null)
        );

        create table rule_sets (
            ruleset_id text not null,
            version integer not null,
            game text not null,
            params jsonb not null,
            effective_from timestamptz not null,
            primary key (ruleset_id, version)
        );

        create table prediction_entries (
            entry_id text primary key,
            member_id text not null,
            match_id text not null,
            league_ids text[] not null,
            home_goals integer not null,
            away_goals integer not null,
            placed_at timestamptz not null
        );
        create index prediction_entries_by_match on prediction_entries (match_id);

        create table scores (
            idempotency_key text primary key,
            member_id text not null,
            board_ids text[] not null,
            points_delta numeric(18, 2) not null,
            exact_delta integer not null default 0,
            reason text not null,
            source text not null,
            rule_version integer not null,
            result_version integer not null,
            awarded_at timestamptz not null,
            kafka_partition integer not null,
            kafka_offset bigint not null
        );
        create index scores_by_member on scores (member_id);

        -- Board totals are the sum of applied scores (each applied once, by its key).
        create table board_totals (
            board_id text not null,
            member_id text not null,
            total numeric(18, 2) not null default 0,
            exact_count integer not null default 0,
            updated_at timestamptz not null default now(),
            primary key (board_id, member_id)
        );
        -- The board order: total desc, exact-score count desc, member id (bytewise) asc.
        create index board_totals_order on board_totals
            (board_id, total desc, exact_count desc, member_id collate "C");
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop table board_totals;
        drop table scores;
        drop table prediction_entries;
        drop table rule_sets;
        drop table leagues;
        drop table matches;
        drop table provider_match_state;
        """
    )
