"""The read-only HTTP API over leaderboards, matches and markets."""
