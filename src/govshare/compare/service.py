"""Comparison jobs as the console and the API use them: saving (only a definition that
plans), who sees and runs what, the cases' follow-up and the figures a job reports.

A job belongs to the department that follows its cases up. Its people (and the
platform admin) see the job, its runs and its cases; only its people work the cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.compare import runner
from govshare.compare.errors import (
    CaseNotFound,
    InvalidCaseInput,
    InvalidCaseStep,
    InvalidJob,
    JobNotFound,
)
from govshare.compare.models import CompareCase, CompareJob, CompareRun
from govshare.compare.plan import Plan, plan
from govshare.compare.schemas import CaseState, JobCreate, Presence
from govshare.db import utcnow
from govshare.errors import Forbidden
from govshare.security import audit
from govshare.security.models import Department
from govshare.security.service import Principal
from govshare.sharing.store import SharedDatabase

# 待核查 → 核查中 → 属实 / 不属实; a concluded case may be opened again (核查中).
STEPS: dict[CaseState, set[CaseState]] = {
    CaseState.PENDING: {CaseState.CHECKING},
    CaseState.CHECKING: {CaseState.CONFIRMED, CaseState.REFUTED},
    CaseState.CONFIRMED: {CaseState.CHECKING},
    CaseState.REFUTED: {CaseState.CHECKING},
}


class NotYourJob(Forbidden):
    code = "not_your_compare_job"


def check(
    session: Session, db: SharedDatabase, principal: Principal, data: JobCreate, today: date
) -> Plan:
    """The plan of ``data``; refuses a department other than the caller's own."""
    if not principal.is_admin and principal.department_id != data.department_id:
        raise NotYourJob("只能为本部门建立比对任务 (not your department)")
    if session.get(Department, data.department_id) is None:
        raise InvalidJob.about("负责部门不存在", "department_id", str(data.department_id))
    runner.check_schedule(data.schedule)
    return plan(session, db, data.as_definition(), data.department_id, today)


def create_job(
    session: Session, db: SharedDatabase, principal: Principal, data: JobCreate, today: date
) -> CompareJob:
    check(session, db, principal, data, today)
    schedule = runner.check_schedule(data.schedule)
    job = CompareJob(
        name=data.name,
        description=data.description,
        department_id=data.department_id,
        template=data.template,
        definition=data.as_definition().model_dump(mode="json", exclude_defaults=False),
        schedule=schedule,
        next_run_at=runner.next_time(schedule, utcnow()),
        deliver=data.deliver,
        created_by=principal.name,
    )
    session.add(job)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "compare.job.create",
        object_type="compare_job",
        object_id=job.id,
        after={
            "name": job.name,
            "department_id": job.department_id,
            "deliver": job.deliver,
            **job.definition,
        },
    )
    return job


def update_job(
    session: Session,
    db: SharedDatabase,
    principal: Principal,
    job_id: int,
    data: JobCreate,
    today: date,
) -> CompareJob:
    job = visible_job(session, principal, job_id)
    if data.department_id != job.department_id:
        raise InvalidJob.about(
            "不能更改比对任务的负责部门", "department_id", str(data.department_id)
        )
    check(session, db, principal, data, today)
    before = {
        "name": job.name,
        "schedule": job.schedule,
        "deliver": job.deliver,
        **job.definition,
    }
    schedule = runner.check_schedule(data.schedule)
    job.name = data.name
    job.description = data.description
    job.definition = data.as_definition().model_dump(mode="json")
    job.schedule = schedule
    job.next_run_at = runner.next_time(schedule, utcnow())
    job.deliver = data.deliver
    job.updated_at = utcnow()
    audit.record(
        session,
        principal.actor,
        "compare.job.update",
        object_type="compare_job",
        object_id=job.id,
        before=before,
        after={
            "name": job.name,
            "schedule": job.schedule,
            "deliver": job.deliver,
            **job.definition,
        },
    )
    return job


def visible_job(session: Session, principal: Principal, job_id: int) -> CompareJob:
    job = session.get(CompareJob, job_id)
    if job is None:
        raise JobNotFound(f"比对任务 {job_id} 不存在")
    if not principal.is_admin and principal.department_id != job.department_id:
        raise NotYourJob("只有负责部门和平台管理员可以查看该比对任务 (not your department)")
    return job


def list_jobs(session: Session, principal: Principal) -> list[CompareJob]:
    q = select(CompareJob).order_by(CompareJob.id)
    if not principal.is_admin:
        q = q.where(CompareJob.department_id == principal.department_id)
    return list(session.scalars(q))


def as_create(job: CompareJob) -> JobCreate:
    return JobCreate.model_validate(
        {
            **job.definition,
            "name": job.name,
            "description": job.description,
            "department_id": job.department_id,
            "schedule": job.schedule,
            "template": job.template,
            "deliver": job.deliver,
        }
    )


def start_run(session: Session, principal: Principal, job_id: int) -> CompareRun:
    job = visible_job(session, principal, job_id)
    return runner.queue_run(session, job, principal.actor)


def last_runs(session: Session, job_ids: list[int]) -> dict[int, CompareRun]:
    if not job_ids:
        return {}
    newest = (
        select(func.max(CompareRun.id))
        .where(CompareRun.job_id.in_(job_ids))
        .group_by(CompareRun.job_id)
    )
    return {
        r.job_id: r for r in session.scalars(select(CompareRun).where(CompareRun.id.in_(newest)))
    }


def list_runs(
    session: Session, principal: Principal, job_id: int, *, before_id: int | None, limit: int
) -> list[CompareRun]:
    visible_job(session, principal, job_id)
    q = select(CompareRun).where(CompareRun.job_id == job_id)
    if before_id is not None:
        q = q.where(CompareRun.id < before_id)
    return list(session.scalars(q.order_by(CompareRun.id.desc()).limit(limit)))


def visible_run(session: Session, principal: Principal, run_id: int) -> CompareRun:
    run = runner.find_run(session, run_id)
    visible_job(session, principal, run.job_id)
    return run


def cancel_run(session: Session, principal: Principal, run_id: int) -> CompareRun:
    run = visible_run(session, principal, run_id)
    return runner.request_cancel(session, principal.actor, run)


# -- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFilter:
    state: CaseState | None = None
    presence: Presence | None = None
    include_gone: bool = True


def _case_query(job_id: int, flt: CaseFilter) -> Any:
    q = select(CompareCase).where(CompareCase.job_id == job_id)
    if flt.state is not None:
        q = q.where(CompareCase.state == flt.state)
    if flt.presence is not None:
        q = q.where(CompareCase.presence == flt.presence)
    elif not flt.include_gone:
        q = q.where(CompareCase.presence != Presence.GONE)
    return q


def list_cases(
    session: Session,
    principal: Principal,
    job_id: int,
    flt: CaseFilter,
    *,
    after_id: int | None = None,
    limit: int = 50,
) -> tuple[list[CompareCase], int]:
    """A page of the job's cases (by id) and how many match the filter in all."""
    visible_job(session, principal, job_id)
    q = _case_query(job_id, flt)
    total = int(session.scalar(select(func.count()).select_from(q.subquery())) or 0)
    if after_id is not None:
        q = q.where(CompareCase.id > after_id)
    return list(session.scalars(q.order_by(CompareCase.id).limit(limit))), total


def all_cases(
    session: Session, principal: Principal, job_id: int, flt: CaseFilter
) -> list[CompareCase]:
    """Every case of the filter (a download): the access is audited."""
    job = visible_job(session, principal, job_id)
    cases = list(session.scalars(_case_query(job_id, flt).order_by(CompareCase.id)))
    audit.record(
        session,
        principal.actor,
        "compare.case.export",
        object_type="compare_job",
        object_id=job.id,
        after={"rows": len(cases), "state": flt.state, "presence": flt.presence},
    )
    return cases


def get_case(session: Session, principal: Principal, case_id: int) -> CompareCase:
    case = session.get(CompareCase, case_id)
    if case is None:
        raise CaseNotFound(f"线索 {case_id} 不存在")
    visible_job(session, principal, case.job_id)
    return case


def step_case(
    session: Session, principal: Principal, case_id: int, state: CaseState, note: str
) -> CompareCase:
    """Move a case on; only its job's department does, with a note for a conclusion."""
    case = get_case(session, principal, case_id)
    job = session.get(CompareJob, case.job_id)
    assert job is not None
    if principal.department_id != job.department_id:
        raise NotYourJob("只有负责部门可以核查线索 (not your department)")
    if state not in STEPS[case.state]:
        raise InvalidCaseStep(
            f"线索当前为「{case.state.label}」，不能改为「{state.label}」",
            details=[
                {
                    "field": "state",
                    "message": f"可改为: {'、'.join(s.label for s in STEPS[case.state])}",
                }
            ],
        )
    note = note.strip()
    if state in (CaseState.CONFIRMED, CaseState.REFUTED) and not note:
        raise InvalidCaseInput.about("认定属实或不属实须填写核查说明", "note", "为空")
    before = case.state
    case.state = state
    case.note = note or case.note
    case.history = [
        *case.history,
        {"at": utcnow().isoformat(), "by": principal.name, "state": str(state), "note": note},
    ]
    case.updated_at = utcnow()
    audit.record(
        session,
        principal.actor,
        "compare.case.step",
        object_type="compare_case",
        object_id=case.id,
        before={"state": str(before)},
        after={"state": str(state), "note": note},
    )
    return case


@dataclass(frozen=True)
class JobFigures:
    """What a job's dashboard shows. ``by_state`` counts the cases the latest run still
    found (gone ones apart, in ``gone_cases``); the confirmed rate and the confirmed
    amount count every case ever concluded, gone or not — what the department found."""

    by_state: dict[str, int]
    open_cases: int
    gone_cases: int
    confirmed_rate: float | None  # 属实 / (属实 + 不属实)
    amount_open: float
    amount_confirmed: float


def figures(session: Session, principal: Principal, job_id: int) -> JobFigures:
    visible_job(session, principal, job_id)
    rows = session.execute(
        select(
            CompareCase.state,
            CompareCase.presence,
            func.count(),
            func.coalesce(func.sum(CompareCase.amount), 0.0),
        )
        .where(CompareCase.job_id == job_id)
        .group_by(CompareCase.state, CompareCase.presence)
    ).all()
    by_state = {str(s): 0 for s in CaseState}
    concluded = {str(CaseState.CONFIRMED): 0, str(CaseState.REFUTED): 0}
    gone = 0
    amount_open = amount_confirmed = 0.0
    for state, presence, n, amount in rows:
        if str(state) in concluded:
            concluded[str(state)] += n
        if state is CaseState.CONFIRMED:
            amount_confirmed += float(amount or 0)
        if presence is Presence.GONE:
            gone += n
            continue
        by_state[str(state)] += n
        if state in (CaseState.PENDING, CaseState.CHECKING):
            amount_open += float(amount or 0)
    decided = sum(concluded.values())
    return JobFigures(
        by_state=by_state,
        open_cases=by_state["pending"] + by_state["checking"],
        gone_cases=gone,
        confirmed_rate=concluded["confirmed"] / decided if decided else None,
        amount_open=amount_open,
        amount_confirmed=amount_confirmed,
    )
