"""The base of every service's domain errors: errors are values at the boundary.

A domain error carries the API error code (`error`) and, when it is about one
request field, that field; each service maps its subclasses to contract error
kinds with one table (see `services.runtime.commands.CommandRouter`).
"""

from __future__ import annotations


class DomainError(Exception):
    """A refused command: `error` is the API error code, `field` the field at fault."""

    error = "domain_error"
    field: str | None = None

    def __init__(self, message: str, *, error: str | None = None, field: str | None = None):
        super().__init__(message)
        if error:
            self.error = error
        if field:
            self.field = field
