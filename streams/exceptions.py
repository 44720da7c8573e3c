"""Errors of the streams role, under the one root in :mod:`core.exceptions`.

ScorelineError
 └── PoisonRecordError         dead-letter it, keep going
     └── RuleSetError          a rule set whose params cannot be applied
"""

from __future__ import annotations

from core.exceptions import PoisonRecordError


class RuleSetError(PoisonRecordError):
    """A rule set the rules engine cannot apply (unknown, negative or non-decimal params).

    It is poison: the ``rules`` record goes to the dead-letter topic with this message and
    the previous version of the rule set stays in force.
    """
