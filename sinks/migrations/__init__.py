"""Alembic migrations of the Scoreline Postgres schema (``scoreline db migrate``)."""
