"""办件告知书: the applicant's notice of a closed case as a PDF — the combined answer
and each department's decision, nothing of anybody else."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.collab import service
from govshare.collab.errors import TaskClosed
from govshare.collab.models import Case, CaseStatus, Decision
from govshare.rules.clock import china_date
from govshare.security.models import Department

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))


def notice_html(session: Session, case: Case) -> str:
    if case.status is not CaseStatus.CLOSED or case.closed_at is None:
        raise TaskClosed("办件尚未办结，还不能出具告知书")
    tasks = service.case_tasks(session, case.id)
    names: dict[int, str] = dict(
        session.execute(  # type: ignore[arg-type]
            select(Department.id, Department.name).where(
                Department.id.in_({t.department_id for t in tasks} | {case.department_id})
            )
        ).all()
    )
    return _env.get_template("collab/notice_pdf.html").render(
        case=case,
        definition=service.get_definition(session, case.definition_id),
        rows=[
            (
                names.get(t.department_id, ""),
                t.name,
                Decision(t.decision).label if t.decision else "",
                t.comment,
            )
            for t in tasks
        ],
        window=names.get(case.department_id, ""),
        outcome=service.OUTCOME_LABELS.get(case.outcome or "", ""),
        closed_on=china_date(case.closed_at),
    )


def notice_pdf(session: Session, case: Case) -> bytes:
    from weasyprint import HTML

    html = notice_html(session, case)
    out: bytes = HTML(string=html, base_url=TEMPLATES.as_uri() + "/").write_pdf()
    return out
