"""Operator tasks behind the CLI: pure logic and Kafka I/O, no terminal output."""
