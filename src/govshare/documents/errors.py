"""Errors of the document exchange (电子公文交换)."""

from govshare.errors import Conflict, Forbidden, GovshareError, InvalidInput, NotFound


class InvalidDocument(InvalidInput):
    """A field of a document to send is missing or wrong; ``details`` name each one."""

    code = "invalid_document"


class SecrecyRefused(InvalidInput):
    """密级 above what the platform may carry (涉密 documents never are)."""

    code = "document_secrecy_refused"


class DocumentTooLarge(GovshareError):
    status = 413
    code = "body_too_large"


class DocumentNotFound(NotFound):
    code = "document_not_found"


class DocumentFileNotFound(NotFound):
    code = "document_file_not_found"


class NotYourDocument(Forbidden):
    """Neither the sender nor an addressed department."""

    code = "not_your_document"


class NotAddressed(Forbidden):
    """Only an addressed department signs for (or returns) a document."""

    code = "document_not_addressed"


class AlreadyAnswered(Conflict):
    """The department already signed for or returned the document: one receipt each."""

    code = "document_already_answered"


class DocumentKeyUnavailable(GovshareError):
    status = 503
    code = "document_key_unavailable"


class DocumentCorrupted(Conflict):
    """The stored record holds a value none of ours (a 密级, 紧急程度 or answer): altered."""

    code = "document_corrupted"
