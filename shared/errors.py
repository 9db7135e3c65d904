"""The domain's own errors. Service code raises these and never imports web code; the edge
(`shared.web.problems`) maps each kind to an HTTP status and a problem document.

A feature subclasses the kind that fits (`class ContactNotFound(NotFound)`) when callers need to tell
it apart; the kind alone decides the status.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a rule of the domain raises on purpose."""

    title = "Request refused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The thing asked for does not exist (or the caller may not know that it does)."""

    title = "Not found"

    def __init__(self, what: str, identifier: object) -> None:
        super().__init__(f"No {what.lower()} with id {identifier}.")
        self.title = f"{what} not found"
        self.what = what
        self.identifier = identifier


class Gone(DomainError):
    """The thing existed and was removed for good (an erased contact): a 410, not a 404."""

    title = "Gone"

    def __init__(self, what: str, identifier: object, detail: str) -> None:
        super().__init__(detail)
        self.title = f"{what} gone"
        self.identifier = identifier


class AlreadyExists(DomainError):
    """A unique value is taken; `existing_id` names the holder so the caller can use it instead."""

    title = "Conflict"

    def __init__(self, detail: str, *, existing_id: object) -> None:
        super().__init__(detail)
        self.existing_id = str(existing_id)


class InUse(DomainError):
    """The change would leave something that refers to the thing without it (a stage deals are in)."""

    title = "Conflict"


class StaleVersion(DomainError):
    """The caller changed a version it read earlier, and someone else changed it since."""

    title = "Precondition failed"

    def __init__(self, what: str, identifier: object, *, current: str) -> None:
        super().__init__(
            f"{what} {identifier} has changed since it was read; its current version is {current}."
        )
        self.current = current


class InvalidValue(DomainError):
    """Input that is well-formed but breaks a rule of the domain; `field` names where."""

    title = "Invalid value"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
