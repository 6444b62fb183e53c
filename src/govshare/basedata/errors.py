"""Errors of the base databases."""

from govshare.errors import Conflict, InvalidInput, NotFound


class BaseNotFound(NotFound):
    code = "base_database_not_found"


class ConflictNotFound(NotFound):
    code = "base_conflict_not_found"


class InvalidBase(InvalidInput):
    code = "invalid_base_database"


class BaseBusy(Conflict):
    """Another hub process is assembling the base right now."""

    code = "base_database_busy"
