"""Errors of the comparison jobs (比对)."""

from govshare.errors import Conflict, InvalidInput, NotFound


class JobNotFound(NotFound):
    code = "compare_job_not_found"


class RunNotFound(NotFound):
    code = "compare_run_not_found"


class CaseNotFound(NotFound):
    code = "compare_case_not_found"


class InvalidJob(InvalidInput):
    """A definition refused before it is saved (or, at run time, no longer valid)."""

    code = "invalid_compare_job"


class RunBusy(Conflict):
    """The job has a run queued or under way."""

    code = "compare_run_busy"


class InvalidCaseStep(Conflict):
    code = "compare_case_step"


class InvalidCaseInput(InvalidInput):
    """A case step without what it needs (a conclusion without its note)."""

    code = "invalid_compare_case"
