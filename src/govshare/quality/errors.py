"""Errors of data quality."""

from govshare.errors import Forbidden, InvalidInput, NotFound


class ScanNotFound(NotFound):
    code = "quality_scan_not_found"


class NoSharedStore(NotFound):
    """The resource has no shared store (共享信息库), so there is nothing to scan."""

    code = "quality_no_store"


class NotYourResource(Forbidden):
    code = "not_your_resource"


class InvalidRule(InvalidInput):
    code = "invalid_quality_rule"
