"""Faust agents, one per module."""
