"""Errors of the exchange system."""

from govshare.errors import Conflict, GovshareError, NotFound


class NodeNotFound(NotFound):
    code = "node_not_found"


class TaskNotFound(NotFound):
    code = "task_not_found"


class PackageRejected(GovshareError):
    """The hub refused a package: tampered, unsigned, replayed, out of order or misaddressed."""

    status = 422
    code = "package_rejected"


class SequenceConflict(Conflict):
    """A package whose sequence number is not the next one (replayed or skipped)."""

    code = "sequence_conflict"


class EnrollmentFailed(GovshareError):
    status = 401
    code = "enrollment_failed"


class NodeKeyAlreadyCurrent(Conflict):
    """A rotation to the key the hub already has for the node (the node's retry after
    the hub took its new key but the node never kept the answer)."""

    code = "node_key_already_current"


class NoKeyInOverlap(Conflict):
    """停用旧密钥 of a node none of whose replaced keys is still accepted."""

    code = "no_key_in_overlap"
