"""Errors of the evaluation (考核评估)."""

from govshare.errors import Conflict, InvalidInput, NotFound


class RunNotFound(NotFound):
    code = "evaluation_run_not_found"


class IndicatorNotFound(NotFound):
    code = "evaluation_indicator_not_found"


class ResultNotFound(NotFound):
    code = "evaluation_result_not_found"


class InvalidMonth(InvalidInput):
    code = "invalid_evaluation_month"


class InvalidScheme(InvalidInput):
    code = "invalid_evaluation_scheme"


class MonthPublished(Conflict):
    """The month is published: its results change only by an explicit recompute."""

    code = "evaluation_month_published"


class MonthNotOver(Conflict):
    code = "evaluation_month_not_over"
