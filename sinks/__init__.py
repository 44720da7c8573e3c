"""Sinks: consumers that write results to Postgres (the truth) and Redis (the projection)."""
