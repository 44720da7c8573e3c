"""Errors of the operator tools, under the one root in :mod:`core.exceptions`.

ScorelineError
 └── OperatorError              the command cannot do what was asked; nothing changed
     ├── InvalidResetError      the options name no valid reset (mode, datetime, duration)
     ├── UnknownGroupError      no such consumer group or sink
     └── GroupActiveError       the group has live members (or a sink holds its lease)
"""

from __future__ import annotations

from core.exceptions import ScorelineError


class OperatorError(ScorelineError):
    """An operator command refused or failed; it changed nothing."""


class InvalidResetError(OperatorError):
    """The reset options are wrong: no mode, two modes, a bad datetime or duration."""


class UnknownGroupError(OperatorError):
    """The group is neither a Kafka consumer group nor a known sink."""


class GroupActiveError(OperatorError):
    """The group has live members: stop them before moving its offsets."""
