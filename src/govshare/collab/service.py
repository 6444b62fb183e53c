"""Business collaboration (业务协同): 前台一口受理、后台协同办理.

A window officer starts a case from a process definition version; the engine runs its
service tasks (verifications against shared stores, answered yes/no) and stops at the
user tasks, each assigned to a department with a deadline in working days. A handler
of that department claims and decides its task; the case closes with one combined
answer when the process ends.

Every step is written in one transaction: the workflow is loaded from its serialized
state and advanced, and what it did is worked out down to the rows (``_Advance``);
then the new state goes in under the case's revision (a step that lost a race is
worked out again), together with the step's effect (task rows, steps) and its audit
entry. A hub killed at any moment leaves either the state before the step or the state
after it — never a task lost or made twice (``collab_task`` is unique per case and
engine task).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from govshare.collab import engine, prefill
from govshare.collab.errors import (
    CaseNotFound,
    DefinitionNotFound,
    InvalidApplication,
    InvalidDefinition,
    TaskClosed,
    TaskNotFound,
    TaskNotYours,
)
from govshare.collab.models import (
    Case,
    CaseStatus,
    CaseStep,
    CaseTask,
    Decision,
    ProcessDefinition,
    TaskStatus,
)
from govshare.db import PerDialect, Prepared, RowsInsert, utcnow
from govshare.rules import workdays
from govshare.rules.clock import china_date
from govshare.rules.validators import citizen_id_problem
from govshare.security import audit
from govshare.security.models import Department
from govshare.security.roles import Permission
from govshare.security.service import Principal

if TYPE_CHECKING:
    from govshare.exchange.models import AlertKind

MAX_HOUSEHOLD = 20


class Verifier(Protocol):
    """核验: whether ``key`` is in the shared store of ``resource_code``, asked on behalf
    of ``department_id``; ``"yes"``, ``"no"`` or ``"unavailable"`` (no store, no grant)."""

    def __call__(
        self, session: Session, *, department_id: int, resource_code: str, key: str
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    id_number: str
    relation: str


@dataclass(frozen=True, slots=True)
class Application:
    """一次申请: what the window officer records."""

    applicant_name: str
    applicant_id: str
    help_kinds: list[str]
    household: list[Member]
    # 申请信息 the process's forms ask for beyond the applicant (label → value), e.g.
    # an enterprise's details brought over from the 法人库 (``collab.prefill``).
    particulars: dict[str, str] = field(default_factory=dict)


# -- definitions -----------------------------------------------------------------------


def _resolve_department(session: Session, code: str) -> Department | str:
    """The department a process names: by credit code, full name, or a short name that
    only one department has; else why not."""
    code = code.strip()
    for column in (Department.credit_code, Department.name):
        found = session.scalar(select(Department).where(column == code))
        if found is not None:
            return found
    short = list(session.scalars(select(Department).where(Department.short_name == code).limit(2)))
    if len(short) == 1:
        return short[0]
    if short:
        return f"部门简称 {code!r} 不唯一，请写部门全称或统一社会信用代码"
    return f"找不到部门 {code!r}（可写统一社会信用代码、部门全称或唯一的简称）"


def upload_definition(
    session: Session,
    principal: Principal,
    *,
    data: bytes,
    forms: dict[str, Any] | None = None,
) -> ProcessDefinition:
    """Check and store a BPMN file as the next version of its process. A running case
    keeps the version it started from."""
    try:
        text = data.decode("utf-8")
        checked = engine.check_definition(data)
    except UnicodeDecodeError:
        raise _invalid([engine.Problem("", None, "文件须为 UTF-8 编码 (UTF-8 expected)")]) from None
    except engine.DefinitionProblems as exc:
        raise _invalid(exc.problems) from None
    root = engine.parse_xml(data)
    problems: list[engine.Problem] = []
    assignments: dict[str, Any] = {}
    for task in checked.user_tasks:
        found = _resolve_department(session, task.department)
        if isinstance(found, str):
            problems.append(
                engine.Problem(task.element_id, engine.line_of(root, task.element_id), found)
            )
        else:
            assignments[task.element_id] = {
                "department_id": found.id,
                "department": found.name,
                "working_days": task.working_days,
                "name": task.name,
            }
    if problems:
        raise _invalid(problems)
    if not checked.user_tasks:
        raise _invalid([engine.Problem(checked.process_key, root.sourceline, "流程没有用户任务")])
    version = (
        session.scalar(
            select(func.max(ProcessDefinition.version)).where(
                ProcessDefinition.process_key == checked.process_key
            )
        )
        or 0
    ) + 1
    definition = ProcessDefinition(
        process_key=checked.process_key,
        name=checked.name[:200],
        version=version,
        bpmn_xml=text,
        forms=_clean_forms(forms),
        assignments=assignments,
        time_limit_days=checked.time_limit_days,
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=principal.name,
    )
    session.add(definition)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "collab.definition.upload",
        object_type="collab_definition",
        object_id=definition.id,
        after={
            "process_key": definition.process_key,
            "version": version,
            "sha256": definition.sha256,
            "user_tasks": sorted(assignments),
            "time_limit_days": definition.time_limit_days,
        },
    )
    return definition


def _invalid(problems: list[engine.Problem]) -> InvalidDefinition:
    first = problems[0]
    where = f"（第 {first.line} 行）" if first.line else ""
    return InvalidDefinition(
        f"流程定义有误：元素 {first.element_id or '(文件)'}{where}：{first.message}",
        details=[p.as_detail() for p in problems],
    )


def _clean_forms(forms: dict[str, Any] | None) -> dict[str, Any]:
    """The forms that go with a definition: the kinds of help an applicant may ask for
    and, per verification result variable, the benefit a "yes" means is already had."""
    forms = forms or {}
    kinds = [str(k)[:40] for k in forms.get("help_kinds", []) if str(k).strip()][:50]
    benefits = {str(k)[:100]: str(v)[:40] for k, v in dict(forms.get("benefits", {})).items()}
    notes = {str(k)[:100]: str(v)[:500] for k, v in dict(forms.get("notes", {})).items()}
    label = str(forms.get("kinds_label") or "申请的救助类别")[:40]
    cleaned = {"help_kinds": kinds, "benefits": benefits, "notes": notes, "kinds_label": label}
    if (spec := prefill.clean_spec(forms.get("prefill"))) is not None:
        cleaned["prefill"] = spec
    return cleaned


def list_definitions(session: Session) -> list[ProcessDefinition]:
    return list(
        session.scalars(
            select(ProcessDefinition).order_by(
                ProcessDefinition.process_key, ProcessDefinition.version.desc()
            )
        )
    )


def latest_definitions(session: Session) -> list[ProcessDefinition]:
    latest: dict[str, ProcessDefinition] = {}
    for d in list_definitions(session):
        latest.setdefault(d.process_key, d)
    return list(latest.values())


@dataclass(frozen=True, slots=True)
class DefinitionView:
    """What running a case needs of its definition version (which never changes, so
    it is read once per process)."""

    id: int
    process_key: str
    version: int
    sha256: str
    bpmn_xml: str
    forms: dict[str, Any]
    assignments: dict[str, Any]
    time_limit_days: int | None


_views: dict[tuple[str, int], DefinitionView] = {}


def definition_view(session: Session, definition_id: int) -> DefinitionView:
    # Keyed by database too: a process may serve (tests: one after another) several.
    key = (str(session.get_bind().engine.url), definition_id)
    found = _views.get(key)
    if found is None:
        d = get_definition(session, definition_id)
        found = DefinitionView(
            d.id,
            d.process_key,
            d.version,
            d.sha256,
            d.bpmn_xml,
            d.forms,
            d.assignments,
            d.time_limit_days,
        )
        if len(_views) > 1024:
            _views.clear()
        _views[key] = found
    return found


def get_definition(session: Session, definition_id: int) -> ProcessDefinition:
    found = session.get(ProcessDefinition, definition_id)
    if found is None:
        raise DefinitionNotFound(f"流程定义 {definition_id} 不存在")
    return found


# -- cases -----------------------------------------------------------------------------


class ApplicantKeys:
    """Keyed hashes of ID numbers: the public lookup compares these, not the numbers."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"govshare-collab-applicant\0" + secret_key.encode()).digest()

    def __call__(self, id_number: str) -> str:
        return hmac.new(self._key, id_number.strip().upper().encode(), hashlib.sha256).hexdigest()


def check_application(
    app: Application, help_kinds: list[str], forms: dict[str, Any] | None = None
) -> None:
    problems = prefill.particulars_problems(prefill.spec_of(forms or {}), app.particulars)
    if not app.applicant_name.strip() or len(app.applicant_name) > 50:
        problems.append({"field": "applicant_name", "message": "申请人姓名须为1到50个字"})
    if msg := citizen_id_problem(app.applicant_id):
        problems.append({"field": "applicant_id", "message": msg})
    if not app.help_kinds:
        problems.append({"field": "help_kinds", "message": "至少选择一项申请事项"})
    for kind in app.help_kinds:
        if help_kinds and kind not in help_kinds:
            problems.append({"field": "help_kinds", "message": f"{kind!r} 不是本流程可申请的事项"})
    if len(app.household) > MAX_HOUSEHOLD:
        problems.append({"field": "household", "message": f"家庭成员最多 {MAX_HOUSEHOLD} 人"})
    for i, m in enumerate(app.household):
        if not m.name.strip():
            problems.append({"field": f"household[{i}].name", "message": "成员姓名不能为空"})
        if msg := citizen_id_problem(m.id_number):
            problems.append({"field": f"household[{i}].id_number", "message": msg})
    if problems:
        raise InvalidApplication("申请信息不正确", details=problems)


def _new_number(today: date) -> str:
    return f"XT{today:%Y%m%d}{secrets.randbelow(10**10):010d}"


@dataclass
class _Run:
    """What one step needs while the engine runs: the session, the case, the clock."""

    session: Session
    case: Case
    verifier: Verifier
    today: date
    verifications: list[dict[str, Any]]
    steps: list[dict[str, Any]] = field(default_factory=list)  # written by ``_write_advance``

    def call(self, operation: str, params: dict[str, Any], name: str) -> Any:
        if operation == "verify":
            resource = str(params.get("resource", ""))
            result = self.verifier(
                self.session,
                department_id=self.case.department_id,
                resource_code=resource,
                key=str(params.get("key", "")),
            )
            self.verifications.append({"resource": resource, "name": name, "result": result})
            return result
        raise InvalidDefinition(f"未知的平台服务 {operation!r}")


def start_case(
    session: Session,
    principal: Principal,
    *,
    definition_id: int,
    application: Application,
    verifier: Verifier,
    applicant_keys: Callable[[str], str],
    today: date,
    turns: AbstractContextManager[None] | None = None,
) -> Case:
    """受理: open a case on a definition version, run its verifications and fan its
    tasks out to the departments — in the caller's transaction, or with ``turns`` (the
    hub's writers taking turns, ``db.WriteTurns``) committed while the turn is held:
    the verifications and the engine have run before it is taken."""
    if principal.department_id is None:
        raise TaskNotYours("只有部门用户可以受理办件")
    definition = definition_view(session, definition_id)
    check_application(application, definition.forms.get("help_kinds", []), definition.forms)
    case = Case(
        number=_new_number(today),
        definition_id=definition.id,
        status=CaseStatus.OPEN,
        applicant_name=application.applicant_name.strip(),
        applicant_key=applicant_keys(application.applicant_id),
        department_id=principal.department_id,
        accepted_by=principal.name,
        state="",
        outcome=None,
        particulars={k: v.strip() for k, v in application.particulars.items() if v.strip()} or None,
        revision=0,
        created_at=utcnow(),
        closed_at=None,
        due_on=None,
        due_provisional=False,
        overdue_alerted=False,
    )
    if definition.time_limit_days is not None:
        due = workdays.deadline(today, definition.time_limit_days)
        case.due_on, case.due_provisional = due.due, due.provisional
    run = _Run(session, case, verifier, today, [])
    spec = engine.cached_spec(definition.sha256, definition.bpmn_xml, definition.process_key)
    data = {
        "applicant_id": application.applicant_id,
        "help_kinds": list(application.help_kinds),
        "household_ids": [m.id_number for m in application.household],
    }
    workflow = engine.new_workflow(spec, data, engine.script_engine(run.call))
    _step(
        run,
        "accepted",
        f"窗口受理（{principal.department_name or '受理部门'}）",
        principal.department_id,
    )
    workflow.do_engine_steps()
    flags = _double_benefits(definition, application, run)
    case.flags = flags
    case.state = engine.dump(workflow)
    advance = _advance(run, definition, workflow, known=set(), decisions=[])
    case.status, case.outcome, case.closed_at = advance.status, advance.outcome, advance.closed_at
    after = {
        "number": case.number,
        "definition_id": definition.id,
        "version": definition.version,
        "help_kinds": list(application.help_kinds),
        "household": len(application.household),
        "particulars": sorted(case.particulars or {}),
        "verifications": run.verifications,
        "flags": flags,
        **advance.changes,
    }
    with turns or nullcontext():
        _insert_case(session, case)
        _write_advance(run, advance)
        audit.record(
            session,
            principal.actor,
            "collab.case.start",
            object_type="collab_case",
            object_id=case.id,
            after=after,
        )
        if turns is not None:
            session.commit()
    return case


def _double_benefits(definition: DefinitionView, application: Application, run: _Run) -> list[str]:
    """重复享受: a kind of help asked for that a verification says is already had."""
    benefits: dict[str, str] = definition.forms.get("benefits", {})
    had = {
        benefits[v["resource"]]
        for v in run.verifications
        if v["result"] == "yes" and v["resource"] in benefits
    }
    return sorted(f"已享受{kind}，又申请{kind}" for kind in had if kind in application.help_kinds)


def _step(
    run: _Run,
    kind: str,
    title: str,
    department_id: int | None,
    detail: dict[str, Any] | None = None,
) -> None:
    run.steps.append(
        {
            "at": utcnow(),
            "kind": kind,
            "title": title[:200],
            "department_id": department_id,
            "detail": detail or {},
        }
    )


# A step's writes, each one statement compiled once per dialect and run on the
# session's DBAPI connection: through the ORM's flush they were most of the time a step
# holds the write turn, and every other step of the hub waits for that turn.
_CASE: Table = Case.__table__  # type: ignore[assignment]
_TASK: Table = CaseTask.__table__  # type: ignore[assignment]
_CASE_COLUMNS = [c.name for c in _CASE.columns if c.name != "id"]
_NEW_TASK_COLUMNS = (
    "case_id",
    "engine_id",
    "element_id",
    "name",
    "department_id",
    "status",
    "comment",
    "working_days",
    "started_on",
    "due_on",
    "due_provisional",
    "overdue_alerted",
    "created_at",
)
_DECIDED_COLUMNS = ("status", "decision", "comment", "completed_by", "claimed_by", "completed_at")
_STEP_COLUMNS = ("revision", "state", "status", "outcome", "closed_at")

_case_insert = PerDialect(
    lambda dialect: RowsInsert(
        _CASE,
        dialect,
        _CASE_COLUMNS,
        lambda ins: ins.returning(_CASE.c.id),
    )
)
_task_insert = PerDialect(lambda dialect: RowsInsert(_TASK, dialect, _NEW_TASK_COLUMNS))
_step_insert = PerDialect(
    lambda dialect: RowsInsert(
        CaseStep.__table__,  # type: ignore[arg-type]
        dialect,
        ("case_id", "at", "kind", "title", "department_id", "detail"),
    )
)
_case_step = PerDialect(
    lambda dialect: Prepared(
        update(_CASE)
        .where(_CASE.c.id == bindparam("case_id"), _CASE.c.revision == bindparam("seen"))
        .values({c: bindparam(f"new_{c}", type_=_CASE.c[c].type) for c in _STEP_COLUMNS}),
        dialect,
    )
)
_task_decided = PerDialect(
    lambda dialect: Prepared(
        update(_TASK)
        .where(_TASK.c.id == bindparam("task_id"))
        .values({c: bindparam(f"new_{c}", type_=_TASK.c[c].type) for c in _DECIDED_COLUMNS}),
        dialect,
    )
)


def _dbapi(session: Session) -> tuple[Any, Any]:
    """The session's DBAPI connection, in its transaction, and its dialect."""
    conn = session.connection()
    return conn.connection, conn.dialect


def _insert_case(session: Session, case: Case) -> None:
    """The new case's row; ``case`` becomes the session's persistent, clean object."""
    dbapi, dialect = _dbapi(session)
    ((case.id,),) = _case_insert(dialect).rows(
        dbapi, [{c: getattr(case, c) for c in _CASE_COLUMNS}]
    )
    make_transient_to_detached(case)
    session.add(case)


@dataclass
class _Advance:
    """What the engine did in one step, worked out before anything is written: the
    new task rows, the case's status, the audit entry's changes (steps are in the
    run's ``steps``)."""

    tasks: list[dict[str, Any]]
    status: CaseStatus
    outcome: str | None
    closed_at: datetime | None
    changes: dict[str, Any]


def _advance(
    run: _Run, definition: DefinitionView, workflow: Any, known: set[str], decisions: list[str]
) -> _Advance:
    """Work out what the engine did: its verifications as steps, a task row for every
    ready user task not in ``known``, the case's closure when the process ended —
    ``decisions`` are then the case's tasks' decisions, this step's included.

    ``known`` is the engine ids of the user tasks that were ready before the step:
    each step leaves a row for every ready user task, in the same commit as the state,
    so those have theirs (no select needed)."""
    case = run.case
    for v in run.verifications:
        answer = {"yes": "是", "no": "否"}.get(v["result"], "无法核验")
        _step(run, "verified", f"{v['name']}：{answer}", None, dict(v))
    tasks: list[dict[str, Any]] = []
    now = utcnow()
    for task in engine.ready_user_tasks(workflow):
        engine_id = str(task.id)
        if engine_id in known:
            continue
        assignment = definition.assignments[task.task_spec.bpmn_id]
        due = workdays.deadline(run.today, int(assignment["working_days"]))
        tasks.append(
            {
                "engine_id": engine_id,
                "element_id": task.task_spec.bpmn_id,
                "name": assignment["name"],
                "department_id": assignment["department_id"],
                "status": TaskStatus.READY,
                "comment": "",
                "working_days": int(assignment["working_days"]),
                "started_on": run.today,
                "due_on": due.due,
                "due_provisional": due.provisional,
                "overdue_alerted": False,
                "created_at": now,
            }
        )
        _step(
            run,
            "assigned",
            f"转 {assignment['department']} 办理：{assignment['name']}"
            f"（{assignment['working_days']} 个工作日内）",
            assignment["department_id"],
            {"due_on": due.due.isoformat()},
        )
    advance = _Advance(
        tasks,
        case.status,
        case.outcome,
        case.closed_at,
        {"tasks_made": [t["element_id"] for t in tasks]},
    )
    if engine.is_completed(workflow) and case.status is CaseStatus.OPEN:
        if decisions and all(d == Decision.APPROVE for d in decisions):
            outcome = "approved"
        elif decisions and all(d == Decision.REJECT for d in decisions):
            outcome = "rejected"
        else:
            outcome = "partial"
        advance.status, advance.outcome, advance.closed_at = CaseStatus.CLOSED, outcome, now
        _step(run, "closed", f"办结：{OUTCOME_LABELS[outcome]}", case.department_id)
        advance.changes["outcome"] = outcome
    return advance


def _write_advance(run: _Run, advance: _Advance) -> None:
    """The step's new task rows and its 办理环节 rows, in order, each one statement."""
    dbapi, dialect = _dbapi(run.session)
    case_id = run.case.id
    if advance.tasks:
        _task_insert(dialect).run(dbapi, [{"case_id": case_id, **t} for t in advance.tasks])
    if run.steps:
        _step_insert(dialect).run(dbapi, [{"case_id": case_id, **step} for step in run.steps])
        run.steps.clear()


OUTCOME_LABELS = {"approved": "全部同意", "rejected": "不予救助", "partial": "部分同意"}


_TAKE_CASE_OF_TASK = (
    update(Case)
    .where(
        Case.id
        == select(CaseTask.case_id).where(CaseTask.id == bindparam("task_id")).scalar_subquery()
    )
    .values(revision=Case.revision + 1)
    .returning(Case)
    .execution_options(synchronize_session=False, populate_existing=True)
)


def _locked_task(session: Session, task_id: int) -> tuple[CaseTask, Case]:
    """The task and its case, the case taken for this transaction: the UPDATE waits for
    any other step of the same case (row lock on PostgreSQL, the write lock on SQLite)
    and hands the case back as it is after the lock (one statement, built once), so two
    departments deciding at once never overwrite each other's step. The task is read
    after it."""
    case = session.scalars(_TAKE_CASE_OF_TASK, {"task_id": task_id}).one_or_none()
    if case is None:
        raise TaskNotFound(f"任务 {task_id} 不存在")
    task = session.get(CaseTask, task_id, populate_existing=True)
    assert task is not None
    return task, case


def get_task(session: Session, task_id: int) -> CaseTask:
    task = session.get(CaseTask, task_id)
    if task is None:
        raise TaskNotFound(f"任务 {task_id} 不存在")
    return task


def _check_handler(principal: Principal, task: CaseTask, case: Case) -> None:
    if not principal.can(Permission.COLLAB_HANDLE) or principal.department_id != task.department_id:
        raise TaskNotYours("该任务由其他部门办理，本部门不能认领或办理 (another department's task)")
    if principal.name == case.accepted_by:
        raise TaskNotYours("不能审批自己受理的办件 (nobody approves their own step)")
    if task.status is TaskStatus.CLAIMED and task.claimed_by not in (None, principal.name):
        raise TaskNotYours(f"该任务已由 {task.claimed_by} 认领")
    if task.status is TaskStatus.DONE:
        raise TaskClosed("该任务已办结")


def claim_task(session: Session, principal: Principal, task_id: int) -> CaseTask:
    """认领: the task is the caller's until decided."""
    task, case = _locked_task(session, task_id)
    _check_handler(principal, task, case)
    task.status = TaskStatus.CLAIMED
    task.claimed_by = principal.name
    audit.record(
        session,
        principal.actor,
        "collab.task.claim",
        object_type="collab_task",
        object_id=task.id,
        after={"case": case.number, "element_id": task.element_id},
    )
    return task


def complete_task(
    session: Session,
    principal: Principal,
    task_id: int,
    *,
    decision: Decision,
    comment: str,
    verifier: Verifier,
    today: date,
    turns: AbstractContextManager[None] | None = None,
) -> CaseTask:
    """部门意见: decide the task and let the process go on (closing the case when every
    department has answered).

    Without ``turns`` the case is taken first and the step is left in the caller's
    transaction. With ``turns`` (the hub's writers taking turns, ``db.WriteTurns``)
    the engine runs on the case as read, and the turn is held only to write the step
    and commit it: the case's revision guards the write, and if another step of the
    case was written meanwhile the decision is worked out again on the new state."""
    if turns is None:
        task, case = _locked_task(session, task_id)
        decided = _decide(session, principal, task, case, decision, comment, verifier, today)
        written = _write_decision(session, principal, decided)
        assert written, "the case is locked by this transaction"
        return task
    while True:
        task, case = _read_task(session, task_id)
        decided = _decide(session, principal, task, case, decision, comment, verifier, today)
        with turns:
            if _write_decision(session, principal, decided):
                session.commit()
                return task
        session.rollback()


@dataclass
class _Decided:
    """A decision the engine has run, worked out down to the rows, not yet written."""

    run: _Run
    task: CaseTask
    seen: int  # the case's revision the decision was worked out on
    state: str  # the workflow after the decision, as stored
    task_values: dict[str, Any]
    advance: _Advance
    audit_after: dict[str, Any]


_TASK_WITH_CASE = (
    select(CaseTask, Case)
    .join(Case, Case.id == CaseTask.case_id)
    .where(CaseTask.id == bindparam("task_id"))
    .execution_options(populate_existing=True)
)


def _read_task(session: Session, task_id: int) -> tuple[CaseTask, Case]:
    """The task and its case as they are now (one statement, built once), not taken."""
    found = session.execute(_TASK_WITH_CASE, {"task_id": task_id}).first()
    if found is None:
        raise TaskNotFound(f"任务 {task_id} 不存在")
    return found[0], found[1]


_OTHER_DECISIONS = select(CaseTask.decision).where(
    CaseTask.case_id == bindparam("case_id"), CaseTask.id != bindparam("task_id")
)


def _decide(
    session: Session,
    principal: Principal,
    task: CaseTask,
    case: Case,
    decision: Decision,
    comment: str,
    verifier: Verifier,
    today: date,
) -> _Decided:
    """The engine's part of a decision and what it will write: nothing is written.
    What is read here (the other tasks' decisions when the case closes) belongs to
    the case's revision ``seen``, which the write checks."""
    _check_handler(principal, task, case)
    seen = case.revision
    definition = definition_view(session, case.definition_id)
    run = _Run(session, case, verifier, today, [])
    spec = engine.cached_spec(definition.sha256, definition.bpmn_xml, definition.process_key)
    workflow = engine.load(case.state, engine.script_engine(run.call), spec)
    engine_task = workflow.get_task_from_id(_uuid(task.engine_id))
    ready = engine.ready_user_tasks(workflow)
    if engine_task is None or engine_task not in ready:
        raise TaskClosed("该任务已不在待办状态")
    engine_task.data[f"{task.element_id}_decision"] = str(decision)
    engine_task.run()
    workflow.do_engine_steps()
    decision = Decision(decision)
    _step(run, "decided", f"{task.name}：{decision.label}", task.department_id)
    decisions = []
    if engine.is_completed(workflow):
        decisions = [
            *session.scalars(_OTHER_DECISIONS, {"case_id": case.id, "task_id": task.id}),
            str(decision),
        ]
    advance = _advance(run, definition, workflow, {str(t.id) for t in ready}, decisions)
    return _Decided(
        run,
        task,
        seen,
        engine.dump(workflow),
        {
            "status": TaskStatus.DONE,
            "decision": str(decision),
            "comment": comment.strip()[:2000],
            "completed_by": principal.name,
            "claimed_by": task.claimed_by or principal.name,
            "completed_at": utcnow(),
        },
        advance,
        {
            "case": case.number,
            "element_id": task.element_id,
            "decision": str(decision),
            "overdue": today > task.due_on,
            **advance.changes,
        },
    )


def _write_decision(session: Session, principal: Principal, decided: _Decided) -> bool:
    """Write the decided step if the case is still at the revision it was worked out
    on; False (nothing written) if another step of the case came first."""
    task, case, advance = decided.task, decided.run.case, decided.advance
    case_values = {
        "revision": decided.seen + 1,
        "state": decided.state,
        "status": advance.status,
        "outcome": advance.outcome,
        "closed_at": advance.closed_at,
    }
    dbapi, dialect = _dbapi(session)
    moved = _case_step(dialect).run(
        dbapi,
        {
            "case_id": case.id,
            "seen": decided.seen,
            **{f"new_{k}": v for k, v in case_values.items()},
        },
    )
    if moved != 1:
        return False
    _task_decided(dialect).run(
        dbapi, {"task_id": task.id, **{f"new_{k}": v for k, v in decided.task_values.items()}}
    )
    _write_advance(decided.run, advance)
    for name, value in case_values.items():
        set_committed_value(case, name, value)
    for name, value in decided.task_values.items():
        set_committed_value(task, name, value)
    audit.record(
        session,
        principal.actor,
        "collab.task.complete",
        object_type="collab_task",
        object_id=task.id,
        after=decided.audit_after,
    )
    return True


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)


def get_case(session: Session, principal: Principal, case_id: int) -> Case:
    """A case as its accepting department, a department with a task in it, or a
    platform administrator sees it; to anyone else it does not exist. The reading is
    audited (the case names its applicant)."""
    case = session.get(Case, case_id)
    if case is None or not can_see(session, principal, case):
        raise CaseNotFound(f"办件 {case_id} 不存在")
    audit.record(
        session, principal.actor, "collab.case.read", object_type="collab_case", object_id=case.id
    )
    return case


def can_see(session: Session, principal: Principal, case: Case) -> bool:
    if principal.is_admin or principal.department_id == case.department_id:
        return True
    return (
        session.scalar(
            select(CaseTask.id).where(
                CaseTask.case_id == case.id, CaseTask.department_id == principal.department_id
            )
        )
        is not None
    )


def list_cases(session: Session, principal: Principal, *, limit: int = 200) -> list[Case]:
    q = select(Case).order_by(Case.id.desc()).limit(limit)
    if not principal.is_admin:
        mine = select(CaseTask.case_id).where(CaseTask.department_id == principal.department_id)
        q = q.where((Case.department_id == principal.department_id) | Case.id.in_(mine))
    return list(session.scalars(q))


def case_steps(session: Session, case_id: int) -> list[CaseStep]:
    return list(
        session.scalars(select(CaseStep).where(CaseStep.case_id == case_id).order_by(CaseStep.id))
    )


def case_tasks(session: Session, case_id: int) -> list[CaseTask]:
    return list(
        session.scalars(select(CaseTask).where(CaseTask.case_id == case_id).order_by(CaseTask.id))
    )


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A task in a department's queue with its countdown in working days."""

    task: CaseTask
    case: Case
    remaining: int  # working days left; negative when overdue
    elapsed: int  # working days since the task was assigned

    @property
    def overdue(self) -> bool:
        return self.remaining < 0


def timing(task: CaseTask, today: date) -> tuple[int, int]:
    """(remaining, elapsed) working days of a task as of ``today``; remaining is
    negative once the due day has passed."""
    end = today if task.completed_at is None else min(today, task.completed_at.date())
    elapsed = workdays.working_days_between(task.started_on, end)
    return _remaining(today, task.due_on), elapsed


def _remaining(today: date, due: date) -> int:
    """Working days left until ``due``; negative once it has passed."""
    remaining = workdays.working_days_between(today, due)
    if today > due and remaining == 0:
        remaining = -1  # overdue over a holiday: still late
    return remaining


def case_timing(case: Case, today: date) -> tuple[int | None, int]:
    """(remaining, elapsed) working days of a case as of ``today``, counted from the
    day it was accepted (Beijing time): remaining is None for a closed case or one
    without a 办结时限, negative once its due day has passed."""
    end = today if case.closed_at is None else min(today, china_date(case.closed_at))
    elapsed = workdays.working_days_between(china_date(case.created_at), end)
    if case.due_on is None or case.closed_at is not None:
        return None, elapsed
    return _remaining(today, case.due_on), elapsed


def department_queue(session: Session, principal: Principal, today: date) -> list[QueueItem]:
    """待办: the open tasks of the caller's department, soonest due first."""
    rows = session.execute(
        select(CaseTask, Case)
        .join(Case, Case.id == CaseTask.case_id)
        .where(
            CaseTask.department_id == principal.department_id,
            CaseTask.status != TaskStatus.DONE,
        )
        .order_by(CaseTask.due_on, CaseTask.id)
    ).all()
    return [QueueItem(t, c, *timing(t, today)) for t, c in rows]


def overdue_tasks(session: Session, today: date) -> list[CaseTask]:
    """Open tasks whose due day is before ``today``."""
    return list(
        session.scalars(
            select(CaseTask)
            .where(CaseTask.status != TaskStatus.DONE, CaseTask.due_on < today)
            .order_by(CaseTask.due_on, CaseTask.id)
        )
    )


def overdue_cases(session: Session, today: date) -> list[Case]:
    """Open cases whose 办结期限 is before ``today``."""
    return list(
        session.scalars(
            select(Case)
            .where(Case.status == CaseStatus.OPEN, Case.due_on < today)
            .order_by(Case.due_on, Case.id)
        )
    )


def check_overdue(session: Session, today: date) -> int:
    """超期: mark newly overdue tasks (audited) and keep one open alert while any task
    is overdue; resolve it when none is. Cases past their 办结期限 likewise, with an
    alert of their own. Returns how many tasks are overdue."""
    from govshare.exchange.models import AlertKind

    tasks = overdue_tasks(session, today)
    _flag_late(
        session,
        tasks,
        "collab.task.overdue",
        "collab_task",
        AlertKind.CASE_TASK_OVERDUE,
        f"{len(tasks)} 个协同办理任务超过办理时限",
        "tasks",
    )
    cases = overdue_cases(session, today)
    _flag_late(
        session,
        cases,
        "collab.case.overdue",
        "collab_case",
        AlertKind.CASE_OVERDUE,
        f"{len(cases)} 个协同办件超过办结期限仍未办结",
        "cases",
    )
    return len(tasks)


def _flag_late(
    session: Session,
    late: Sequence[CaseTask | Case],
    action: str,
    object_type: str,
    kind: AlertKind,
    message: str,
    listed_as: str,
) -> None:
    from govshare.exchange.alerts import raise_alert, resolve_alerts

    for row in late:
        if row.overdue_alerted:
            continue
        row.overdue_alerted = True
        audit.record(
            session,
            audit.SYSTEM,
            action,
            object_type=object_type,
            object_id=row.id,
            after={"due_on": str(row.due_on), "department_id": row.department_id},
        )
    if not late:
        resolve_alerts(session, kind)
        return
    # Raised (or counted, while it stays open) on every check, with today's list.
    details = {listed_as: [row.id for row in late[:200]]}
    alert = raise_alert(session, kind, message, details=details)
    if alert is not None:
        alert.details = details


def lookup_public(
    session: Session,
    *,
    number: str,
    id_number: str,
    applicant_keys: Callable[[str], str],
    remote_addr: str | None = None,
) -> tuple[Case, list[CaseStep]]:
    """办件查询 for the applicant: the case's steps when both the number and the ID
    number match; one answer for a wrong number and a wrong ID number alike."""
    case = session.scalar(select(Case).where(Case.number == number.strip()[:24]))
    key = applicant_keys(id_number)
    if case is None or not hmac.compare_digest(case.applicant_key, key):
        raise CaseNotFound("办件编号或身份号码不正确 (no such case)")
    audit.record(
        session,
        audit.Actor(name="applicant", kind="anonymous", remote_addr=remote_addr),
        "collab.case.lookup",
        object_type="collab_case",
        object_id=case.id,
    )
    return case, case_steps(session, case.id)
