"""Errors of business collaboration (业务协同)."""

from govshare.errors import Conflict, InvalidInput, NotFound
from govshare.security.errors import PermissionDenied


class InvalidDefinition(InvalidInput):
    """A BPMN file the platform cannot run; ``details`` name each element and line."""

    code = "invalid_process_definition"


class DefinitionNotFound(NotFound):
    code = "process_definition_not_found"


class CaseNotFound(NotFound):
    code = "case_not_found"


class TaskNotFound(NotFound):
    code = "case_task_not_found"


class InvalidApplication(InvalidInput):
    code = "invalid_case_application"


class TaskNotYours(PermissionDenied):
    """Another department's task, or a step the caller may not take (their own case)."""

    code = "case_task_not_yours"


class TaskClosed(Conflict):
    code = "case_task_closed"


class NoPrefill(InvalidInput):
    """The process's forms name no base database to bring an application over from."""

    code = "case_prefill_not_configured"


class PrefillNotFound(NotFound):
    """The base database holds no record for the key (or none the grant lets through)."""

    code = "case_prefill_not_found"
