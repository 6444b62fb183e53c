"""Errors of the catalog."""

from govshare.errors import Conflict, Forbidden, InvalidInput, NotFound


class ResourceNotFound(NotFound):
    code = "resource_not_found"


class ClassificationNotFound(NotFound):
    code = "classification_not_found"


class InvalidResource(InvalidInput):
    code = "invalid_resource"


class DuplicateResourceName(InvalidResource):
    """本部门已有同名目录: refused unless the caller confirms it is a different resource."""

    code = "duplicate_resource_name"


class TransitionNotAllowed(Conflict):
    """The step does not apply in the resource's current state."""

    code = "transition_not_allowed"


class NotYourDepartment(Forbidden):
    code = "not_your_department"


class ImportRejected(InvalidInput):
    """A spreadsheet with any bad row; ``details`` lists every one, nothing is stored."""

    code = "import_rejected"


class DemandNotFound(NotFound):
    code = "demand_not_found"


class SystemNotFound(NotFound):
    code = "information_system_not_found"


class SystemNameTaken(Conflict):
    """Another information system of the department already has the name."""

    code = "information_system_name_taken"


class DutyNotFound(NotFound):
    code = "duty_not_found"


class DutyCodeTaken(Conflict):
    """Another duty of the department already has the code (uq_department_duty_dept_code)."""

    code = "duty_code_taken"


class InvalidDuty(InvalidInput):
    """A duty, a link or a change that breaks a rule of the register (dates, entries)."""

    code = "invalid_duty"
