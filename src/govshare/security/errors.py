"""Errors of identity and access."""

from govshare.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    Locked,
    NotAuthenticated,
    NotFound,
    TooManyRequests,
)


class BadCredentials(NotAuthenticated):
    code = "bad_credentials"


class AccountLocked(Locked):
    pass


class LoginThrottled(TooManyRequests):
    code = "login_throttled"


class BadSignature(NotAuthenticated):
    code = "bad_signature"


class ReplayedRequest(NotAuthenticated):
    code = "replayed_request"


class PermissionDenied(Forbidden):
    code = "permission_denied"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


class DepartmentNotFound(NotFound):
    code = "department_not_found"


class UserNotFound(NotFound):
    code = "user_not_found"


class DuplicateDepartment(Conflict):
    code = "duplicate_department"


class DuplicateUser(Conflict):
    code = "duplicate_user"


__all__ = [
    "AccountLocked",
    "BadCredentials",
    "BadSignature",
    "CsrfFailed",
    "DepartmentNotFound",
    "DuplicateDepartment",
    "DuplicateUser",
    "InvalidInput",
    "LoginThrottled",
    "PermissionDenied",
    "ReplayedRequest",
    "UserNotFound",
]


class TotpRequired(BadCredentials):
    """The password is right and the account signs in with a one-time code (动态口令):
    send it along. Not counted as a failure."""

    code = "totp_required"


class TotpEnrolmentRequired(Forbidden):
    """The password is right, but the account's role must sign in with a one-time code
    and it has none yet: enrol first (/login/totp)."""

    code = "totp_enrolment_required"


class PasswordExpired(Forbidden):
    """The password is right but past its age (口令过期): change it, then sign in."""

    code = "password_expired"


class AddressNotAllowed(Forbidden):
    """An API client called from outside its allowed networks (IP 白名单)."""

    code = "address_not_allowed"


class TotpNotEnabled(Conflict):
    """重置动态口令 of an account that has none."""

    code = "totp_not_enabled"
