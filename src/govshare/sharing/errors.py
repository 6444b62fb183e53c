"""Errors of the sharing system."""

from govshare.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
)


class ApplicationNotFound(NotFound):
    code = "application_not_found"


class GrantNotFound(NotFound):
    code = "grant_not_found"


class NotShareable(InvalidInput):
    """不予共享: the resource cannot be applied for; the message cites the legal basis."""

    code = "not_shareable"


class InvalidApplication(InvalidInput):
    code = "invalid_application"


class StepNotAllowed(Conflict):
    """The step does not apply in the application's current state."""

    code = "sharing_step_not_allowed"


class NotYourDepartment(Forbidden):
    code = "not_your_department"


class StoreNotFound(NotFound):
    code = "shared_store_not_found"


class NoGrant(Forbidden):
    """No grant in force lets the caller's department use the resource this way."""

    code = "no_grant"


class RateLimited(TooManyRequests):
    code = "rate_limited"


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"


class ObjectionNotFound(NotFound):
    code = "objection_not_found"
