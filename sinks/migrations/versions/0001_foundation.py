"""Foundation: poll executions (a state machine) and the sinks' consumed offsets.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create type poll_status as enum
            ('queued', 'in_progress', 'completed', 'failed', 'cancelled');

        create table poll_executions (
            execution_id uuid primary key,
            provider text not null,
            feed text not null,
            status poll_status not null default 'queued',
            queued_at timestamptz not null default now(),
            started_at timestamptz,
            finished_at timestamptz,
            fetched_count integer not null default 0,
            published_count integer not null default 0,
            error text
        );
        create index poll_executions_by_feed on poll_executions (provider, feed, queued_at desc);

        -- The state machine: queued -> in_progress | cancelled;
        -- in_progress -> completed | failed | cancelled; the last three are final.
        create function poll_status_transition() returns trigger language plpgsql as $$
        begin
            if new.status = old.status then
                return new;
            end if;
            if (old.status = 'queued' and new.status in ('in_progress', 'cancelled'))
               or (old.status = 'in_progress'
                   and new.status in ('completed', 'failed', 'cancelled')) then
                return new;
            end if;
            raise exception 'poll execution %: illegal transition % -> %',
                old.execution_id, old.status, new.status
                using errcode = 'check_violation';
        end;
        $$;
        create trigger poll_status_transition before update of status on poll_executions
            for each row execute function poll_status_transition();

        -- A sink stores the next offset to read in the same transaction as its rows,
        -- and seeks to it on start.
        create table sink_offsets (
            consumer text not null,
            topic text not null,
            partition integer not null check (partition >= 0),
            next_offset bigint not null check (next_offset >= 0),
            updated_at timestamptz not null default now(),
            primary key (consumer, topic, partition)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        drop table sink_offsets;
        drop trigger poll_status_transition on poll_executions;
        drop function poll_status_transition();
        drop table poll_executions;
        drop type poll_status;
        """
    )
