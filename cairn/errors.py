"""One exception tree for Cairn; the edges map ``code`` to GraphQL codes and HTTP statuses."""

from __future__ import annotations


class CairnError(Exception):
    """Base of every error Cairn raises on purpose."""

    code = "INTERNAL"
    http_status = 500


class Unauthenticated(CairnError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(CairnError):
    code = "FORBIDDEN"
    http_status = 403


class NotFound(CairnError):
    code = "NOT_FOUND"
    http_status = 404


class InvalidTransition(CairnError):
    code = "INVALID_TRANSITION"
    http_status = 409


class Conflict(CairnError):
    code = "CONFLICT"
    http_status = 409


class ValidationFailed(CairnError):
    code = "VALIDATION"
    http_status = 400


class TooLarge(CairnError):
    """A request over a size limit (HTTP 413)."""

    code = "TOO_LARGE"
    http_status = 413


class Unavailable(CairnError):
    """A store or the bus does not answer; the caller may retry."""

    code = "UNAVAILABLE"
    http_status = 503


class SettingsError(CairnError):
    """The environment holds a bad value; the message names the variable."""

    code = "SETTINGS"
