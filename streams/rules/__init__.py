"""The rules engine: pure functions of data, one module per game.

Nothing here does I/O, reads a clock or talks to Kafka: times, results, entries and rule
sets come in as arguments. Agents (``streams/agents/``) call these functions; unit tests
call them directly, thousands of times, with hypothesis.

- :mod:`streams.rules.predictions`: guess the score (awards, entry validity, corrections,
  and the oracle the integration tests compare the stores against).
- :mod:`streams.rules.boards`: leaderboard order, competition ranks, the Redis encoding.
"""
