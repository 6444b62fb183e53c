"""电子监察: every approval item (审批事项 — a user task of a process, with the
department that decides it and its time limit in working days), the working time each
task and case took, yellow cards (黄牌) before a task's limit and red cards (红牌) after
it, and a month's figures per department for the dashboard and the XLSX export.

Cards are derived, never stored: a task's card follows from its due day, its completion
and today, so the dashboard, the queue and the export always agree.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from govshare.collab.models import Case, CaseStatus, CaseTask, ProcessDefinition, TaskStatus
from govshare.collab.service import latest_definitions
from govshare.db import update_if_unchanged
from govshare.rules import workdays
from govshare.rules.clock import china_date
from govshare.rules.months import Month
from govshare.rules.spreadsheet import xlsx_row
from govshare.security.models import Department

TREND_MONTHS = 12


class Card(StrEnum):
    """监察牌: none, 黄牌 (the limit is near), 红牌 (the limit has passed)."""

    NONE = "none"
    YELLOW = "yellow"
    RED = "red"

    @property
    def label(self) -> str:
        return {"none": "正常", "yellow": "黄牌", "red": "红牌"}[self.value]


def completed_on(task: CaseTask) -> date | None:
    return china_date(task.completed_at) if task.completed_at is not None else None


def card_of(task: CaseTask, today: date, warn_days: int) -> Card:
    """红牌 when a task is done after its due day or still open past it; 黄牌 when it is
    open with at most ``warn_days`` working days left (the due day itself counts as 0)."""
    return _card(task.due_on, completed_on(task), today, warn_days)


def case_card(case: Case, today: date, warn_days: int) -> Card:
    """A case's card against its 办结期限, as a task's against its due day; none for a
    case whose definition sets no 办结时限."""
    if case.due_on is None:
        return Card.NONE
    closed = china_date(case.closed_at) if case.closed_at is not None else None
    return _card(case.due_on, closed, today, warn_days)


def _card(due: date, done: date | None, today: date, warn_days: int) -> Card:
    if done is not None:
        return Card.RED if done > due else Card.NONE
    if today > due:
        return Card.RED
    if workdays.working_days_between(today, due) <= warn_days:
        return Card.YELLOW
    return Card.NONE


def elapsed_days(start: date, end: date) -> int:
    """Working days from the day a task or case started to ``end`` (the day it ended, or
    today): 0 when handled on the day it came in."""
    return max(0, workdays.working_days_between(start, end))


def due_soon(session: Session, today: date, warn_days: int) -> list[CaseTask]:
    """The open tasks with a yellow card today."""
    candidates = session.scalars(
        select(CaseTask)
        .where(CaseTask.status != TaskStatus.DONE, CaseTask.due_on >= today)
        .order_by(CaseTask.due_on, CaseTask.id)
    )
    return [t for t in candidates if card_of(t, today, warn_days) is Card.YELLOW]


def remind_due_soon(session: Session, today: date, warn_days: int) -> int:
    """到期提醒: one open alert (控制台告警、Webhook、告警邮件) while any task has a yellow
    card, listing them; resolved when none has. Returns how many have one."""
    from govshare.exchange.alerts import raise_alert, resolve_alerts
    from govshare.exchange.models import AlertKind

    soon = due_soon(session, today, warn_days)
    if not soon:
        resolve_alerts(session, AlertKind.CASE_TASK_DUE_SOON)
        return 0
    tasks = [t.id for t in soon[:200]]
    alert = raise_alert(
        session,
        AlertKind.CASE_TASK_DUE_SOON,
        f"{len(soon)} 个协同办理任务即将到期（黄牌），最早 {soon[0].due_on} 到期",
        details={"tasks": tasks},
    )
    if alert is not None:  # None: the bureau switched the reminder off
        alert.details = {"tasks": tasks}  # today's list, also while the alert stays open
    return len(soon)


def remind_handlers(session: Session, today: date, warn_days: int) -> int:
    """到期提醒 and 超期催办 to the people who decide: when an open task gets its 黄牌,
    and again when it gets its 红牌, its handlers are mailed once (through the users'
    outbox): the one who claimed it when that user has an address, otherwise every
    active 协同办理员 of its department who has one. Audited per task, also when nobody
    has an address to mail (the console's queue shows the card either way). Returns
    the tasks reminded."""
    from govshare.security import audit
    from govshare.security.audit import SYSTEM
    from govshare.security.roles import Role
    from govshare.security.service import mailable_holders, queue_mail

    candidates = session.scalars(
        select(CaseTask)
        .where(CaseTask.status != TaskStatus.DONE)
        .where(or_(CaseTask.reminded_card.is_(None), CaseTask.reminded_card != Card.RED.value))
        .order_by(CaseTask.due_on, CaseTask.id)
    )
    due = [(t, card_of(t, today, warn_days)) for t in candidates]
    due = [(t, c) for t, c in due if c is not Card.NONE and t.reminded_card != c.value]
    if not due:
        return 0
    handlers = mailable_holders(session, {t.department_id for t, _ in due}, Role.CASE_HANDLER)
    case_ids = {t.case_id for t, _ in due}
    cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(case_ids)))}
    reminded = 0
    for task, card in due:
        if not update_if_unchanged(
            session, task, "reminded_card", task.reminded_card, reminded_card=card.value
        ):
            continue  # another hub process reminded it meanwhile
        reminded += 1
        people = handlers[task.department_id]
        to = [u for u in people if u.username == task.claimed_by] or people
        mailed = queue_mail(session, to, *_reminder_text(task, cases[task.case_id], card))
        audit.record(
            session,
            SYSTEM,
            "collab.task.remind",
            object_type="collab_task",
            object_id=task.id,
            after={"card": card.value, "due_on": task.due_on.isoformat(), "mailed": mailed},
        )
    return reminded


def _reminder_text(task: CaseTask, case: Case, card: Card) -> tuple[str, str]:
    if card is Card.RED:
        subject = f"[govshare 超期催办] 协同任务「{task.name}」已超过办理时限（{task.due_on} 到期）"
        lead = "以下协同办理任务已超过办理时限（红牌），请尽快办理："
    else:
        subject = f"[govshare 到期提醒] 协同任务「{task.name}」将于 {task.due_on} 到期"
        lead = "以下协同办理任务即将到期（黄牌），请在期限内办理："
    body = "\n".join(
        [
            lead,
            "",
            f"办件编号: {case.number}",
            f"任务: {task.name}",
            f"办理时限: {task.working_days} 个工作日，{task.started_on} 起，{task.due_on} 到期",
            f"认领人: {task.claimed_by or '未认领'}",
            "",
            f"请在控制台 业务协同 → 办件 {case.number} 办理（/collab/cases/{case.id}）。",
        ]
    )
    return subject, body


@dataclass(frozen=True, slots=True)
class Item:
    """审批事项: a user task of the newest version of a process."""

    process: str
    version: int
    element_id: str
    name: str
    department: str
    working_days: int


def items(session: Session) -> list[Item]:
    out = []
    for d in latest_definitions(session):
        for element_id, a in sorted(d.assignments.items()):
            out.append(
                Item(
                    process=d.name,
                    version=d.version,
                    element_id=element_id,
                    name=str(a.get("name") or element_id),
                    department=str(a.get("department", "")),
                    working_days=int(a["working_days"]),
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class ProcessItem:
    """审批事项 as a whole: the newest version of a process with its 办结时限."""

    process: str
    version: int
    time_limit_days: int | None


@dataclass(frozen=True, slots=True)
class CaseLine:
    """A case with its process, accepting department, elapsed working days and card
    against its 办结期限."""

    case: Case
    process: str
    department: str
    elapsed: int
    card: Card


@dataclass(frozen=True, slots=True)
class TaskLine:
    """A task with its case, department, elapsed working days and card."""

    task: CaseTask
    case_number: str
    process: str
    department: str
    elapsed: int
    card: Card


@dataclass(slots=True)
class DepartmentRow:
    """A department's month: tasks that came in, were completed (and how many late, and
    the mean working days they took), and its open tasks' cards today."""

    department_id: int
    name: str
    received: int = 0
    completed: int = 0
    completed_late: int = 0
    days_total: int = 0
    open_yellow: int = 0
    open_red: int = 0

    @property
    def mean_days(self) -> float | None:
        return round(self.days_total / self.completed, 2) if self.completed else None

    @property
    def on_time_rate(self) -> float | None:
        if not self.completed:
            return None
        return round(100 * (self.completed - self.completed_late) / self.completed, 2)


@dataclass(slots=True)
class MonthReport:
    """监察月报: the month's volumes, each department's row, the cards of the tasks open
    today (with ``today``), the red cards of tasks completed late in the month, the
    items and the trend of the months up to this one."""

    month: Month
    today: date
    warn_days: int
    cases_accepted: int = 0
    cases_closed: int = 0
    mean_case_days: float | None = None
    cases_open: int = 0
    cases_closed_late: int = 0  # closed in the month after their 办结期限
    cases_open_yellow: int = 0
    cases_open_red: int = 0
    departments: list[DepartmentRow] = field(default_factory=list)
    carded: list[TaskLine] = field(default_factory=list)
    carded_cases: list[CaseLine] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    processes: list[ProcessItem] = field(default_factory=list)
    trend: list[dict[str, int | str]] = field(default_factory=list)

    @property
    def tasks_received(self) -> int:
        return sum(d.received for d in self.departments)

    @property
    def tasks_completed(self) -> int:
        return sum(d.completed for d in self.departments)

    @property
    def completed_late(self) -> int:
        return sum(d.completed_late for d in self.departments)

    @property
    def open_yellow(self) -> int:
        return sum(d.open_yellow for d in self.departments)

    @property
    def open_red(self) -> int:
        return sum(d.open_red for d in self.departments)


def _in(m: Month, day: date | None) -> bool:
    return day is not None and m.first_day <= day <= m.last_day


def month_report(session: Session, month: Month, *, today: date, warn_days: int) -> MonthReport:
    """The month's figures: tasks received (assigned in the month), completed in the
    month with their working days and lateness, cases accepted and closed in it; and,
    as of ``today``, the open tasks' cards. Read from the tasks and cases, so a month
    is never frozen: a task completed late changes the month it was completed in."""
    report = MonthReport(month=month, today=today, warn_days=warn_days)
    names: dict[int, str] = dict(session.execute(select(Department.id, Department.name)).all())
    rows: dict[int, DepartmentRow] = {}

    def row(dept: int) -> DepartmentRow:
        if dept not in rows:
            rows[dept] = DepartmentRow(dept, names.get(dept, f"#{dept}"))
        return rows[dept]

    tasks = session.execute(
        select(CaseTask, Case.number, ProcessDefinition.name)
        .join(Case, Case.id == CaseTask.case_id)
        .join(ProcessDefinition, ProcessDefinition.id == Case.definition_id)
        .where(
            or_(
                CaseTask.started_on.between(month.first_day, month.last_day),
                and_(CaseTask.completed_at >= month.start, CaseTask.completed_at < month.end),
                CaseTask.status != TaskStatus.DONE,
            )
        )
        .order_by(CaseTask.due_on, CaseTask.id)
    ).all()
    for task, number, process in tasks:
        r = row(task.department_id)
        done = completed_on(task)
        card = card_of(task, today, warn_days)
        if _in(month, task.started_on):
            r.received += 1
        if done is not None and _in(month, done):
            r.completed += 1
            r.days_total += elapsed_days(task.started_on, done)
            if card is Card.RED:
                r.completed_late += 1
                report.carded.append(
                    TaskLine(
                        task, number, process, r.name, elapsed_days(task.started_on, done), card
                    )
                )
        if done is None:
            if card is Card.YELLOW:
                r.open_yellow += 1
            elif card is Card.RED:
                r.open_red += 1
            if card is not Card.NONE:
                report.carded.append(
                    TaskLine(
                        task, number, process, r.name, elapsed_days(task.started_on, today), card
                    )
                )
    report.departments = sorted(rows.values(), key=lambda d: (-d.received, d.name))
    report.carded.sort(key=lambda line: (line.card is not Card.RED, line.task.due_on))
    cases = session.execute(
        select(Case, ProcessDefinition.name)
        .join(ProcessDefinition, ProcessDefinition.id == Case.definition_id)
        .where(
            or_(
                and_(Case.created_at >= month.start, Case.created_at < month.end),
                and_(Case.closed_at >= month.start, Case.closed_at < month.end),
                Case.status == CaseStatus.OPEN,
            )
        )
        .order_by(Case.due_on, Case.id)
    ).all()
    closed_days = []
    for case, process in cases:
        accepted, closed = china_date(case.created_at), case.closed_at
        if month.start <= case.created_at < month.end:
            report.cases_accepted += 1
        card = case_card(case, today, warn_days)
        line = CaseLine(case, process, names.get(case.department_id, ""), 0, card)
        if closed is not None and month.start <= closed < month.end:
            report.cases_closed += 1
            closed_days.append(elapsed_days(accepted, china_date(closed)))
            if card is Card.RED:
                report.cases_closed_late += 1
                report.carded_cases.append(
                    replace(line, elapsed=elapsed_days(accepted, china_date(closed)))
                )
        if case.status is CaseStatus.OPEN:
            report.cases_open += 1
            if card is Card.YELLOW:
                report.cases_open_yellow += 1
            elif card is Card.RED:
                report.cases_open_red += 1
            if card is not Card.NONE:
                report.carded_cases.append(replace(line, elapsed=elapsed_days(accepted, today)))
    if closed_days:
        report.mean_case_days = round(sum(closed_days) / len(closed_days), 2)
    report.carded_cases.sort(key=lambda line: line.card is not Card.RED)
    report.items = items(session)
    report.processes = [
        ProcessItem(d.name, d.version, d.time_limit_days) for d in latest_definitions(session)
    ]
    report.trend = trend(session, month)
    return report


def trend(session: Session, last: Month, months: int = TREND_MONTHS) -> list[dict[str, int | str]]:
    """Per month up to ``last``: cases accepted and closed, tasks completed and how many
    of them late (红牌)."""
    first = last
    for _ in range(months - 1):
        first = first.previous()
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: {"accepted": 0, "closed": 0, "completed": 0, "late": 0}
    )
    for created, closed in session.execute(
        select(Case.created_at, Case.closed_at).where(
            or_(Case.created_at >= first.start, Case.closed_at >= first.start),
            Case.created_at < last.end,
        )
    ):
        counts[china_date(created).strftime("%Y-%m")]["accepted"] += 1
        if closed is not None:
            counts[china_date(closed).strftime("%Y-%m")]["closed"] += 1
    for completed_at, due_on in session.execute(
        select(CaseTask.completed_at, CaseTask.due_on).where(
            CaseTask.completed_at >= first.start, CaseTask.completed_at < last.end
        )
    ):
        if completed_at is None:  # excluded by the query; says so to the type checker
            continue
        day = china_date(completed_at)
        counts[day.strftime("%Y-%m")]["completed"] += 1
        counts[day.strftime("%Y-%m")]["late"] += day > due_on
    out: list[dict[str, int | str]] = []
    m = first
    for _ in range(months):
        out.append({"month": str(m), **counts[str(m)]})
        m = m.next()
    return out


def xlsx(report: MonthReport) -> bytes:
    """监察月报 as a workbook: 汇总, 部门, 红黄牌, 办件红黄牌, 事项办结时限, 审批事项
    (Chinese headers, every cell through ``xlsx_row`` so nothing is read as a formula)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)

    def sheet(title: str, header: list[str], rows: Iterable[list[Any]]) -> None:
        ws = wb.create_sheet(title)
        ws.append(xlsx_row(ws, header))
        for row in rows:
            ws.append(xlsx_row(ws, ["—" if v is None else v for v in row]))

    def day(moment: datetime | None, missing: str) -> str:
        return china_date(moment).isoformat() if moment is not None else missing

    sheet(
        "汇总",
        ["项目", "数值"],
        [
            ["月份", str(report.month)],
            ["统计日", report.today.isoformat()],
            ["受理办件", report.cases_accepted],
            ["办结办件", report.cases_closed],
            ["办结办件平均用时（工作日）", report.mean_case_days],
            ["办理中办件（统计日）", report.cases_open],
            ["超期办结办件（红牌）", report.cases_closed_late],
            ["在办办件黄牌（统计日）", report.cases_open_yellow],
            ["在办办件红牌（统计日）", report.cases_open_red],
            ["分送任务", report.tasks_received],
            ["办结任务", report.tasks_completed],
            ["超期办结任务（红牌）", report.completed_late],
            ["在办任务黄牌（统计日）", report.open_yellow],
            ["在办任务红牌（统计日）", report.open_red],
            ["黄牌提前工作日数", report.warn_days],
        ],
    )
    sheet(
        "部门",
        [
            "部门",
            "分送任务",
            "办结任务",
            "超期办结",
            "按时办结率（%）",
            "平均用时（工作日）",
            "在办黄牌",
            "在办红牌",
        ],
        (
            [
                d.name,
                d.received,
                d.completed,
                d.completed_late,
                d.on_time_rate,
                d.mean_days,
                d.open_yellow,
                d.open_red,
            ]
            for d in report.departments
        ),
    )
    sheet(
        "红黄牌",
        ["监察牌", "办件编号", "事项", "任务", "部门", "分送日", "到期日", "办结日", "已用工作日"],
        (
            [
                line.card.label,
                line.case_number,
                line.process,
                line.task.name,
                line.department,
                line.task.started_on.isoformat(),
                line.task.due_on.isoformat(),
                day(line.task.completed_at, "办理中"),
                line.elapsed,
            ]
            for line in report.carded
        ),
    )
    sheet(
        "办件红黄牌",
        ["监察牌", "办件编号", "事项", "受理部门", "受理日", "办结期限", "办结日", "已用工作日"],
        (
            [
                c.card.label,
                c.case.number,
                c.process,
                c.department,
                day(c.case.created_at, ""),
                c.case.due_on.isoformat() if c.case.due_on else None,
                day(c.case.closed_at, "办理中"),
                c.elapsed,
            ]
            for c in report.carded_cases
        ),
    )
    sheet(
        "事项办结时限",
        ["事项（流程）", "版本", "办结时限（工作日）"],
        (
            [p.process, p.version, "未设" if p.time_limit_days is None else p.time_limit_days]
            for p in report.processes
        ),
    )
    sheet(
        "审批事项",
        ["事项（流程）", "版本", "任务", "办理部门", "时限（工作日）"],
        ([i.process, i.version, i.name, i.department, i.working_days] for i in report.items),
    )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
