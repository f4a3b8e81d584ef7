"""Domain errors: raised by command methods before anything is recorded."""

from __future__ import annotations

from cairn.errors import Conflict, InvalidTransition, NotFound, ValidationFailed


class DomainValidationError(ValidationFailed):
    """A command's input breaks a rule of the domain."""


class TransitionError(InvalidTransition):
    """The lifecycle does not allow this command from the current stage."""


class RevisionConflict(Conflict):
    """``expectedRevision`` is stale, or another command won the race."""


class UnknownDefinition(NotFound):
    pass
