"""Shared plumbing for every Scoreline role: settings, logging, errors, the embedded stack
and the ``scoreline`` command line."""
