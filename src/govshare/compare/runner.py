"""Running comparison jobs: queue, execute in a worker process, keep the cases.

A run is queued (by a person, the CLI or a job's schedule), claimed under a lease by one
hub process, planned again (grants may have changed since the job was saved), then
executed by ``govshare.compare.worker`` in a process of its own. Only when the worker
succeeds are its cases written, in one transaction with the run's counts: a run that
fails, is cancelled or whose hub is killed leaves the previous cases as they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import structlog
from croniter import CroniterError, croniter
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from govshare.compare.delivery import Deliveries
from govshare.compare.errors import InvalidJob, RunBusy, RunNotFound
from govshare.compare.models import CompareCase, CompareJob, CompareRun
from govshare.compare.plan import Plan, plan
from govshare.compare.schemas import Definition, Presence, RunStatus
from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.node.target import CURSOR_TABLE
from govshare.rules.clock import CHINA, china_today
from govshare.rules.masking import masker
from govshare.security import audit
from govshare.security.atrest import (
    SEALED_DOCUMENT,
    cipher_for,
    open_document,
    seal_document,
    sealing_cipher,
)
from govshare.security.audit import SYSTEM, Actor
from govshare.sharing.shared_db import field_sealer
from govshare.sharing.store import SharedDatabase

log = structlog.get_logger()

LEASE = timedelta(minutes=2)
# A job is a short list for people to follow up; beyond this the definition is too loose.
MAX_CASES = 200_000


class CaseHasher:
    """Cases are matched across runs by a keyed hash of their case key: the hub keeps
    no plain index of people's ID numbers beside the cases' (masked) values."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"govshare-compare-case:" + secret_key.encode()).digest()

    def __call__(self, values: list[Any]) -> str:
        return hmac.new(self._key, orjson.dumps(values, default=str), hashlib.sha256).hexdigest()


# -- queueing -------------------------------------------------------------------------------


def open_run(session: Session, job_id: int) -> CompareRun | None:
    return session.scalar(
        select(CompareRun).where(
            CompareRun.job_id == job_id,
            CompareRun.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
        )
    )


def queue_run(
    session: Session, job: CompareJob, actor: Actor, trigger: str = "manual"
) -> CompareRun:
    """A new queued run of ``job``; refused while another is queued or running."""
    busy = open_run(session, job.id)
    if busy is not None:
        raise RunBusy(f"比对任务已有运行 #{busy.id} 在{busy.status.label}")
    run = CompareRun(job_id=job.id, trigger=trigger, requested_by=actor.name)
    session.add(run)
    session.flush()
    audit.record(
        session,
        actor,
        "compare.run.queue",
        object_type="compare_run",
        object_id=run.id,
        after={"job_id": job.id, "trigger": trigger},
    )
    return run


def request_cancel(session: Session, actor: Actor, run: CompareRun) -> CompareRun:
    if run.status.finished:
        raise RunBusy(f"运行 #{run.id} 已结束（{run.status.label}），不能取消")
    if run.status is RunStatus.QUEUED:
        _finish(run, RunStatus.CANCELLED, "运行前已取消")
    else:
        run.cancel_requested = True
    audit.record(session, actor, "compare.run.cancel", object_type="compare_run", object_id=run.id)
    return run


def _finish(run: CompareRun, status: RunStatus, error: str = "") -> None:
    run.status = status
    run.error = error[:4000]
    run.finished_at = utcnow()
    run.lease_until = None


def next_time(schedule: str | None, after: datetime) -> datetime | None:
    """The next time the cron expression names after ``after``, read in Beijing time
    (``0 2 * * *`` is 02:00 in China), as a UTC time."""
    if not schedule:
        return None
    found: datetime = croniter(schedule, after.astimezone(CHINA)).get_next(datetime)
    return found.astimezone(UTC)


def check_schedule(schedule: str | None) -> str | None:
    if schedule is None or not schedule.strip():
        return None
    wrong = InvalidJob.about("运行计划须是 cron 表达式，如 0 2 * * *", "schedule", schedule)
    try:
        valid = croniter.is_valid(schedule.strip())
        # A valid expression may name no real day (0 0 31 2 *): it would never run.
        valid = valid and next_time(schedule.strip(), utcnow()) is not None
    except (CroniterError, ValueError, TypeError, OverflowError, KeyError):
        raise wrong from None
    if not valid:
        raise wrong
    return schedule.strip()


# -- executing ------------------------------------------------------------------------------


def _claim(session: Session, run_id: int, now: datetime) -> bool:
    """Take the queued run under a lease; False when another process took it first."""
    claimed = session.execute(
        update(CompareRun)
        .where(CompareRun.id == run_id, CompareRun.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.RUNNING,
            started_at=now,
            lease_until=now + LEASE,
            worker=f"{socket.gethostname()}:{os.getpid()}"[:80],
            phase="规划",
        )
    )
    session.commit()
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up here in the hub: the child between fork and exec of a
    many-threaded process must not import anything (another thread may have held the
    import lock at the fork)."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        found: Callable[..., int] = ctypes.CDLL("libc.so.6").prctl
    except (OSError, AttributeError):
        return None
    return found


_PRCTL = _prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # A worker whose hub was killed would go on reading stores for nobody. (The signal
    # comes when the thread that started it ends: the runner's, which lives as the hub.)
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def _lines(stream: Any, out: queue.Queue[dict[str, Any] | None]) -> None:
    for raw in stream:
        with contextlib.suppress(orjson.JSONDecodeError):
            out.put(orjson.loads(raw))
    out.put(None)


Progress = Callable[[CompareRun], None]


def execute(
    settings: Settings,
    factory: sessionmaker[Session],
    db: SharedDatabase,
    run_id: int,
    *,
    today: date | None = None,
    on_progress: Progress | None = None,
    stopping: threading.Event | None = None,
    keep_files: bool = False,
) -> CompareRun | None:
    """Run a queued run to its end; None when another process claimed it. The run's
    folder (snapshot and result files) is removed unless ``keep_files`` (the bench
    queries the same files by hand)."""
    with factory() as session:
        if not _claim(session, run_id, utcnow()):
            return None
        run = session.get(CompareRun, run_id)
        job = session.get(CompareJob, run.job_id) if run else None
        assert run is not None
        assert job is not None
        try:
            the_plan = plan(
                session,
                db,
                Definition.model_validate(job.definition),
                job.department_id,
                today or china_today(),
            )
        except InvalidJob as exc:
            detail = "; ".join(f"{d['field']}: {d['message']}" for d in exc.details)
            _finish(run, RunStatus.FAILED, f"{exc.message} ({detail})" if detail else exc.message)
            session.commit()
            return _detached(session, run)
        folder = run_folder(settings.data_dir, run.id)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            outcome = _supervise(
                settings, session, run, the_plan, folder, on_progress, stopping or threading.Event()
            )
            if outcome.get("done"):
                table = pq.read_table(folder / "result.parquet")
                store_cases(session, settings, job, run, the_plan, table.to_pylist())
                _finish(run, RunStatus.SUCCEEDED)
                run.progress = 1.0
                run.phase = "完成"
            elif outcome.get("cancelled"):
                _finish(run, RunStatus.CANCELLED, "已取消")
            else:
                _finish(run, RunStatus.FAILED, str(outcome.get("error") or "比对进程异常退出"))
            audit.record(
                session,
                Actor(
                    name=run.requested_by, kind="system" if run.trigger == "schedule" else "user"
                ),
                "compare.run",
                object_type="compare_run",
                object_id=run.id,
                after={
                    "job_id": job.id,
                    "status": str(run.status),
                    "inputs": run.inputs,
                    "hits": run.hits,
                    "new": run.new_cases,
                    "gone": run.gone_cases,
                },
            )
            # The files go before the run is seen to have ended: whoever reads the
            # final state (a waiting CLI, the next run, a test) finds no leftovers.
            _clear(folder, keep_files)
            session.commit()
        except Exception as exc:
            session.rollback()
            log.exception("comparison run failed", run_id=run_id)
            failed = session.get(CompareRun, run_id)
            if failed is not None:
                _finish(failed, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
                _clear(folder, keep_files)
                session.commit()
        finally:
            # Only a failing commit of the final state gets here with files left.
            _clear(folder, keep_files)
        if on_progress is not None:
            on_progress(run)
        return _detached(session, run)


def run_folder(data_dir: Path, run_id: int) -> Path:
    """Where a run's worker keeps its spec, snapshot and result while it runs."""
    return data_dir / "compare" / f"run-{run_id}"


def _clear(folder: Path, keep_files: bool) -> None:
    if not keep_files:
        shutil.rmtree(folder, ignore_errors=True)


def _detached(session: Session, run: CompareRun) -> CompareRun:
    """The run as it is stored, readable after its session closed."""
    session.refresh(run)
    session.expunge(run)
    return run


def _supervise(
    settings: Settings,
    session: Session,
    run: CompareRun,
    the_plan: Plan,
    folder: Path,
    on_progress: Progress | None,
    stopping: threading.Event,
) -> dict[str, Any]:
    """Start the worker and follow it: progress to the run row, cancellation and the
    lease checked twice a second."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "folder": str(folder),
        "shared_url": settings.resolved_shared_store_url,
        "inputs": [asdict(i) for i in the_plan.inputs],
        "sql": the_plan.sql,
        "params": the_plan.params,
        "cursor_table": CURSOR_TABLE,
        "memory_mb": settings.compare_memory_mb,
        "threads": settings.compare_threads,
    }
    secrets: dict[str, Any] = {}
    if any(i.sealed for i in the_plan.inputs):
        # 字段加密: the worker opens the sealed items with the hub's field key; the secret
        # that opens the key goes on its stdin, not into the spec file.
        sealer = field_sealer(settings)
        spec["field_seal"] = {"data_dir": str(sealer.data_dir), "alg": sealer.alg}
        secrets["secret_key"] = sealer.secret_key
    (folder / "spec.json").write_bytes(orjson.dumps(spec))
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, a path we made
        [sys.executable, "-m", "govshare.compare.worker", str(folder / "spec.json")],
        stdin=subprocess.PIPE if secrets else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if _PRCTL is not None else None,
    )
    if proc.stdin is not None:
        # A few bytes: the pipe takes them whether or not the worker reads yet. A
        # worker that died at once is reported by its exit status below.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(orjson.dumps(secrets))
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    outcome: dict[str, Any] = {}
    try:
        while True:
            try:
                message = lines.get(timeout=0.5)
            except queue.Empty:
                message = {}
            if message is None:
                break
            if "inputs" in message:
                run.inputs = message["inputs"]
            if "progress" in message:
                run.progress = float(message["progress"])
                run.phase = str(message.get("phase", run.phase))[:100]
            if message.get("done") or "error" in message:
                outcome = message
            session.commit()
            session.refresh(run)
            if run.cancel_requested:
                proc.kill()
                proc.wait()
                return {"cancelled": True}
            if stopping.is_set():
                return {"error": "平台停止，运行中断，请重新运行"}
            run.lease_until = utcnow() + LEASE
            if on_progress is not None:
                on_progress(run)
        code = proc.wait()
        if code != 0 and "error" not in outcome:
            outcome = {"error": f"比对进程异常退出 (退出码 {code}，可能超出内存限制)"}
        return outcome
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def store_cases(
    session: Session,
    settings: Settings,
    job: CompareJob,
    run: CompareRun,
    the_plan: Plan,
    rows: list[dict[str, Any]],
) -> None:
    """The run's result as cases: new ones added, those found again updated, those
    not found any more marked gone (their follow-up state stays)."""
    if len(rows) > MAX_CASES:
        raise InvalidJob(f"结果有 {len(rows)} 条线索，超过上限 {MAX_CASES}，请收紧比对条件")
    hasher = CaseHasher(settings.secret_key)
    mask = masker(the_plan.masking)
    # A case's values (the persons found, masked as the grants say) are sealed at rest.
    sealing, opener = sealing_cipher(settings), cipher_for(settings)
    existing = {
        c.key_hash: c
        for c in session.scalars(select(CompareCase).where(CompareCase.job_id == job.id))
    }
    now = utcnow()
    seen: set[str] = set()
    new = 0
    total = 0.0
    for row in rows:
        key = [_json_value(row[f"k{n}"]) for n in range(len(the_plan.case_key))]
        key_hash = hasher(key)
        seen.add(key_hash)
        values = mask({out: _json_value(row[f"o{n}"]) for n, out in enumerate(the_plan.output)})
        amount = row.get("amt")
        total += float(amount or 0)
        case = existing.get(key_hash)
        if case is None:
            new += 1
            session.add(
                CompareCase(
                    job_id=job.id,
                    key_hash=key_hash,
                    values=seal_document(sealing, values),
                    amount=amount,
                    rows=int(row["n"]),
                    presence=Presence.NEW,
                    history=[],
                    first_run_id=run.id,
                    last_run_id=run.id,
                    updated_at=now,
                )
            )
            continue
        if case.presence is Presence.GONE:
            new += 1  # back after it had gone: new to whoever follows the job up
        presence = Presence.NEW if case.presence is Presence.GONE else Presence.STILL
        shown = (presence, values, amount, int(row["n"]))
        if shown != (case.presence, open_document(opener, case.values), case.amount, case.rows):
            # What the case shows changed: a delivering job's copy follows by this time.
            case.presence, _, case.amount, case.rows = shown
            case.values = seal_document(sealing, values)
            case.updated_at = now
        elif (SEALED_DOCUMENT in case.values) != (sealing is not None):
            # Kept otherwise than sealing is set now (stored before it): the same values.
            case.values = seal_document(sealing, values)
        case.last_run_id = run.id
    gone = 0
    for key_hash, case in existing.items():
        if key_hash not in seen and case.presence is not Presence.GONE:
            case.presence = Presence.GONE
            case.updated_at = now
            gone += 1
    run.hits = len(rows)
    run.new_cases = new
    run.gone_cases = gone
    run.amount = total if the_plan.amount else None


# -- the hub's background runner -------------------------------------------------------------


def expire_lost(session: Session, now: datetime, data_dir: Path | None = None) -> int:
    """Runs whose process died (their lease ran out) end as failed, and their folders
    under ``data_dir`` go: a snapshot holds the inputs' rows, sealed items opened, and
    nothing else would ever remove it (the run never runs again)."""
    lost = list(
        session.scalars(
            select(CompareRun).where(
                CompareRun.status == RunStatus.RUNNING, CompareRun.lease_until < now
            )
        )
    )
    for run in lost:
        _finish(run, RunStatus.FAILED, "运行进程已中断 (租约过期)，请重新运行")
        if data_dir is not None:
            _clear(run_folder(data_dir, run.id), keep_files=False)
    return len(lost)


def queue_due(session: Session, now: datetime) -> int:
    """A run for every scheduled job whose time has come."""
    due = session.execute(
        select(CompareJob.id, CompareJob.schedule, CompareJob.next_run_at).where(
            CompareJob.schedule.is_not(None), CompareJob.next_run_at <= now
        )
    ).all()
    return sum(queue_scheduled(session, job_id, str(cron), seen, now) for job_id, cron, seen in due)


def queue_scheduled(
    session: Session, job_id: int, schedule: str, seen: datetime | None, now: datetime
) -> bool:
    """Claim the scheduled time ``seen`` of a job and queue its run. Every hub process
    runs this; the claim moves the job's next time on only if it still reads ``seen``,
    so one process wins and the others (their update matching no row) queue nothing,
    even when the winner's run has already finished."""
    claimed = session.execute(
        update(CompareJob)
        .where(CompareJob.id == job_id, CompareJob.next_run_at == seen)
        .values(next_run_at=next_time(schedule, now))
        .execution_options(synchronize_session=False)
    )
    job = session.get(CompareJob, job_id)
    if job is not None:
        session.refresh(job, ["next_run_at"])
    if job is None or getattr(claimed, "rowcount", 0) != 1 or open_run(session, job_id):
        return False
    queue_run(session, job, SYSTEM, trigger="schedule")
    return True


class Runner:
    """A daemon thread of the hub: expires lost runs, queues scheduled ones and executes
    queued runs one at a time (each in its own worker process)."""

    def __init__(
        self, settings: Settings, factory: sessionmaker[Session], db: SharedDatabase
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.db = db
        self.deliveries = Deliveries(db.engine, cipher_for(settings))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="compare-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> int:
        with session_scope(self.factory) as session:
            expire_lost(session, utcnow(), self.settings.data_dir)
            queue_due(session, utcnow())
        with self.factory() as session:
            queued = list(
                session.scalars(
                    select(CompareRun.id)
                    .where(CompareRun.status == RunStatus.QUEUED)
                    .order_by(CompareRun.id)
                )
            )
        for run_id in queued:
            if self._stop.is_set():
                break
            execute(self.settings, self.factory, self.db, run_id, stopping=self._stop)
        if self.deliveries.due() and not self._stop.is_set():
            with self.factory() as session:
                self.deliveries.run_once(session)
        return len(queued)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.compare_poll_seconds):
            try:
                self.run_once()
            except Exception:
                log.exception("comparison runner tick failed")


def find_run(session: Session, run_id: int) -> CompareRun:
    run = session.get(CompareRun, run_id)
    if run is None:
        raise RunNotFound(f"比对运行 {run_id} 不存在")
    return run


def wait(factory: sessionmaker[Session], run_id: int, timeout: float = 60) -> CompareRun:
    """The run once it finished (tests and the CLI's ``--wait``)."""
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            run = find_run(session, run_id)
            if run.status.finished or time.monotonic() > deadline:
                session.expunge(run)
                return run
        time.sleep(0.2)
