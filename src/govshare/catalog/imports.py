"""导入任务: spreadsheet imports as jobs, so a large file never holds the hub.

An upload answers at once with a job. A thread of the hub process then checks every
row (reading only: no write lock is held, logins and other writers go on) and stores
the entries in short transactions of ``CHUNK`` entries each, recording with each chunk
which entries it stored. The import stays all-or-nothing for the department: a file
with any bad row stores nothing, and a job cut short after some chunks (a rule that
only the later rows break, a crash of the hub) takes its stored entries back.

The same file uploaded again by the same department with the same options (its SHA-256
digest) returns the first job while that one is queued, running or done; an upload
with the same ``Idempotency-Key`` returns its first job whatever became of it. A client
that timed out and retries never imports twice.
"""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from govshare.catalog import service, spreadsheet
from govshare.catalog.errors import ImportRejected
from govshare.catalog.models import ImportJob, ImportJobStatus
from govshare.db import session_scope, utcnow
from govshare.errors import GovshareError, NotFound
from govshare.security.service import Principal

log = structlog.get_logger(__name__)

# Entries stored per transaction: each holds SQLite's write lock for a fraction of a
# second, and the pause between them lets waiting writers (a login) in.
CHUNK = 25
PAUSE_SECONDS = 0.05
OPEN = (ImportJobStatus.QUEUED, ImportJobStatus.CHECKING, ImportJobStatus.WRITING)


class ImportJobNotFound(NotFound):
    code = "import_job_not_found"


# Which process runs a job: host, pid and a token of this process's life (a pid is
# reused after a restart, often at once in a container).
RUNNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _digest(content: bytes, provider_department_id: int | None, confirm: bool) -> str:
    h = hashlib.sha256(content)
    h.update(f"|{provider_department_id}|{confirm}".encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """What the worker needs besides the job row: who, the file, the options."""

    job_id: int
    principal: Principal
    content: bytes
    provider_department_id: int | None
    confirm_duplicates: bool


def submit(
    session: Session,
    principal: Principal,
    *,
    filename: str,
    content: bytes,
    provider_department_id: int | None = None,
    confirm_duplicates: bool = False,
    idempotency_key: str | None = None,
) -> tuple[ImportJob, bool]:
    """The job for this upload: a new one (True), or the department's earlier job for
    the same ``idempotency_key`` (whatever its outcome) or for the same file while that
    one is queued, running or done (False)."""
    if not content:
        raise ImportRejected("上传的文件是空的")
    department_id = provider_department_id or principal.department_id
    digest = _digest(content, provider_department_id, confirm_duplicates)
    found = None
    if idempotency_key:  # the same request again, whatever became of it
        found = session.scalar(
            select(ImportJob)
            .where(
                ImportJob.department_id == department_id,
                ImportJob.idempotency_key == idempotency_key,
            )
            .order_by(ImportJob.id.desc())
            .limit(1)
        )
    if found is None:  # the same file again, unless it failed (then it is checked anew)
        found = session.scalar(
            select(ImportJob)
            .where(
                ImportJob.department_id == department_id,
                ImportJob.digest == digest,
                ImportJob.status.in_([*OPEN, ImportJobStatus.DONE]),
            )
            .order_by(ImportJob.id.desc())
            .limit(1)
        )
    if found is not None:
        return found, False
    job = ImportJob(
        department_id=department_id,
        created_by=principal.name,
        filename=filename[:200],
        digest=digest,
        idempotency_key=idempotency_key,
        status=ImportJobStatus.QUEUED,
        resource_ids=[],
        runner=RUNNER,
    )
    session.add(job)
    session.flush()
    return job, True


def get_job(session: Session, principal: Principal, job_id: int) -> ImportJob:
    """A job of the caller's department (any, for the platform)."""
    job = session.get(ImportJob, job_id)
    if job is None or not (principal.is_admin or job.department_id == principal.department_id):
        raise ImportJobNotFound(f"导入任务 {job_id} 不存在")
    return job


def list_jobs(session: Session, principal: Principal, limit: int = 20) -> list[ImportJob]:
    q = select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)
    if not principal.is_admin:
        q = q.where(ImportJob.department_id == principal.department_id)
    return list(session.scalars(q))


def _update(factory: sessionmaker[Session], job_id: int, **values: Any) -> None:
    with session_scope(factory) as s:
        job = s.get(ImportJob, job_id)
        if job is not None:
            for key, value in values.items():
                setattr(job, key, value)


def _failure(exc: GovshareError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details or []}


def run(factory: sessionmaker[Session], request: ImportRequest) -> None:
    """Check the file, then store its entries chunk by chunk; on any failure take back
    what was stored and record why."""
    job_id = request.job_id
    _update(factory, job_id, status=ImportJobStatus.CHECKING)
    with factory() as s:
        job = s.get(ImportJob, job_id)
        filename = job.filename if job else "upload"
        try:
            checked = spreadsheet.check_import(
                s,
                request.principal,
                filename,
                request.content,
                provider_department_id=request.provider_department_id,
                confirm_duplicates=request.confirm_duplicates,
            )
        except GovshareError as exc:
            s.rollback()
            _finish(factory, job_id, error=_failure(exc))
            return
        except Exception:
            s.rollback()
            log.exception("import check failed", job_id=job_id)
            _finish(factory, job_id, error=_unexpected())
            return
        s.rollback()  # reads only
    total = len(checked.entries)
    _update(factory, job_id, status=ImportJobStatus.WRITING, rows=checked.rows, entries_total=total)
    try:
        for start in range(0, total, CHUNK):
            with session_scope(factory) as s:
                created = spreadsheet.store_entries(
                    s, request.principal, checked.entries[start : start + CHUNK]
                )
                job = s.get(ImportJob, job_id)
                assert job is not None
                job.resource_ids = [*job.resource_ids, *(r.id for r in created)]
                job.entries_done = start + len(created)
                if start + CHUNK >= total:
                    spreadsheet.record_import(s, request.principal, checked, total)
                    job.status = ImportJobStatus.DONE
                    job.finished_at = utcnow()
            time.sleep(PAUSE_SECONDS)
    except GovshareError as exc:
        take_back(factory, job_id, request.principal, _failure(exc))
    except Exception:
        log.exception("import write failed", job_id=job_id)
        take_back(factory, job_id, request.principal, _unexpected())


def _unexpected() -> dict[str, Any]:
    return {
        "code": "import_failed",
        "message": "导入时发生意外错误，未导入任何数据，请稍后重试或联系平台管理员",
        "details": [],
    }


def _finish(factory: sessionmaker[Session], job_id: int, *, error: dict[str, Any]) -> None:
    _update(factory, job_id, status=ImportJobStatus.FAILED, error=error, finished_at=utcnow())


def take_back(
    factory: sessionmaker[Session],
    job_id: int,
    principal: Principal,
    error: dict[str, Any],
) -> None:
    """Delete the entries a job stored before it was cut short (audited as deletions),
    then mark it failed with ``error``."""
    with session_scope(factory) as s:
        job = s.get(ImportJob, job_id)
        if job is None:
            return
        for resource_id in job.resource_ids:
            try:
                service.delete_resource(s, principal, resource_id)
            except GovshareError:  # already gone or taken on by its department since
                continue
        job.resource_ids = []
        job.entries_done = 0
        job.status = ImportJobStatus.FAILED
        job.error = error
        job.finished_at = utcnow()


def recover(factory: sessionmaker[Session]) -> int:
    """Jobs this host's earlier processes left unfinished (a crash, a restart): their
    stored entries are taken back and they are marked failed. Returns how many."""
    from govshare.security.roles import Role
    from govshare.security.service import permissions_for

    host = socket.gethostname()
    with factory() as s:
        stale = [
            (job.id, job.created_by, job.department_id)
            for job in s.scalars(select(ImportJob).where(ImportJob.status.in_(OPEN)))
            if (job.runner or "").split(":")[0] == host and not _alive(job.runner)
        ]
    for job_id, name, department_id in stale:
        principal = Principal(
            kind="user",
            name=name,
            department_id=department_id,
            permissions=permissions_for([Role.CATALOG_REGISTRAR]),
            roles=(Role.CATALOG_REGISTRAR.value,),
        )
        take_back(
            factory,
            job_id,
            principal,
            {
                "code": "import_interrupted",
                "message": "平台在导入过程中重启，本次导入未完成，已撤回，请重新上传",
                "details": [],
            },
        )
    return len(stale)


def _alive(runner: str | None) -> bool:
    """Whether the process named by ``runner`` (on this host) still runs."""
    if runner == RUNNER:
        return True
    try:
        pid = int((runner or "").split(":")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():  # an earlier life of this process's pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ImportWorker:
    """One thread per hub process that runs the process's import jobs in turn."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self._jobs: queue.Queue[ImportRequest | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, request: ImportRequest) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="catalog-import", daemon=True
                )
                self._thread.start()
        self._jobs.put(request)

    def _run(self) -> None:
        while (request := self._jobs.get()) is not None:
            try:
                run(self.factory, request)
            except Exception:
                log.exception("import job crashed", job_id=request.job_id)

    def stop(self) -> None:
        self._jobs.put(None)
