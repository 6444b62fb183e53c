"""Demo data of business collaboration (业务协同): the built-in 综合救助一窗受理 process,
a window officer and a handler in each of its three departments, and two cases — one
being worked, one with a task past its deadline."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, time
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.collab import service
from govshare.collab.models import CaseStep, Decision
from govshare.demo_sharing import demo_grant, id_number
from govshare.rules.clock import CHINA
from govshare.security import audit
from govshare.security.audit import SYSTEM
from govshare.security.models import Department, User
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal, hash_password

BUILTIN = Path(__file__).parent / "collab" / "builtin"
# username, display name, department short name, role
PEOPLE = [
    ("dsj_window", "大数据局窗口受理员", "大数据局", Role.WINDOW_OFFICER),
    ("mzj_case", "民政协同办理员", "民政", Role.CASE_HANDLER),
    ("cl_case", "残联协同办理员", "残联", Role.CASE_HANDLER),
    ("zjj_case", "住建协同办理员", "住建", Role.CASE_HANDLER),
]


def builtin_files(name: str = "assistance") -> tuple[bytes, dict[str, object]]:
    """A built-in process: its ``.bpmn`` file and its forms."""
    forms = json.loads((BUILTIN / f"{name}.forms.json").read_text(encoding="utf-8"))
    return (BUILTIN / f"{name}.bpmn").read_bytes(), forms


ENTERPRISE_PREFILL = {
    "key_label": "统一社会信用代码",
    "key_kind": "credit_code",
    "items": {"qymc": "企业名称", "fddbr": "法定代表人", "djzs": "登记住所", "qylx": "企业类型"},
}


def enterprise_prefill(session: Session, admin: Principal, base: Resource) -> None:
    """企业开办 brings the enterprise over from the 法人库 ``base``: the window's department
    (大数据局, which keeps the base too) holds a query grant for the items brought over, as
    if it had applied and been approved, and the process gets a version whose forms say
    what to bring over (the first version stays as it was)."""
    window = session.scalar(select(User).where(User.username == "dsj_window"))
    assert window is not None
    assert window.department_id is not None
    demo_grant(
        session,
        admin.actor,
        base,
        window.department_id,
        ["tyshxydm", *ENTERPRISE_PREFILL["items"]],
        "企业开办一窗受理：从法人库带出企业信息",
    )
    data, forms = builtin_files("enterprise")
    forms["prefill"] = {"resource": base.code, **ENTERPRISE_PREFILL}
    service.upload_definition(session, admin, data=data, forms=forms)


def _at(day: date, hour: int) -> datetime:
    """``hour`` o'clock of ``day`` in Beijing, as the UTC moment the hub stores."""
    return datetime.combine(day, time(hour), CHINA).astimezone(UTC)


def _principal(user: User, dept: Department) -> Principal:
    return Principal(
        kind="user",
        name=user.username,
        department_id=dept.id,
        permissions=permissions_for(user.roles),
        user_id=user.id,
        roles=tuple(user.roles),
        display_name=user.display_name,
        department_name=dept.name,
    )


def seed_collab(session: Session, password: str, today: date, *, secret_key: str) -> dict[str, int]:
    """Load the built-in process and two cases; returns ``{"collab_cases": 2}``.
    ``secret_key`` is the hub's, so that the applicants' lookup finds the cases."""
    by_short = {d.short_name: d for d in session.scalars(select(Department))}
    pw = hash_password(password)
    people: dict[str, Principal] = {}
    for username, display, short, role in PEOPLE:
        dept = by_short[short]
        user = User(
            username=username,
            display_name=display,
            password_hash=pw,
            department_id=dept.id,
            roles=[role.value],
            # So that the reminders of late tasks have someone to reach (they wait in
            # the outbox until an SMTP server is set).
            email=f"{username}@example.cn",
        )
        session.add(user)
        session.flush()
        people[username] = _principal(user, dept)
    audit.record(session, SYSTEM, "demo.users", object_type="user", after={"count": len(PEOPLE)})
    bureau = Principal(
        kind="system",
        name="admin",
        department_id=by_short["大数据局"].id,
        permissions=permissions_for([Role.PLATFORM_ADMIN]),
        roles=(Role.PLATFORM_ADMIN.value,),
    )
    data, forms = builtin_files("enterprise")
    service.upload_definition(session, bureau, data=data, forms=forms)
    data, forms = builtin_files()
    definition = service.upload_definition(session, bureau, data=data, forms=forms)
    keys = service.ApplicantKeys(secret_key)
    rng = random.Random(14)

    def no_store(session: Session, *, department_id: int, resource_code: str, key: str) -> str:  # noqa: ARG001
        return "unavailable"  # the demo's stores hold none of the three registers

    # The first case came in 30 days ago: 民政 has answered, 残联's time is up.
    earlier = date.fromordinal(today.toordinal() - 30)
    for day, kinds in ((earlier, ["最低生活保障", "公共租赁住房"]), (today, ["残疾人两项补贴"])):
        case = service.start_case(
            session,
            people["dsj_window"],
            definition_id=definition.id,
            application=service.Application(
                applicant_name="演示申请人",
                applicant_id=id_number(rng),
                help_kinds=kinds,
                household=[],
            ),
            verifier=no_store,
            applicant_keys=keys,
            today=day,
        )
        # The case came in at the window that morning (Beijing), not when the demo loads.
        case.created_at = _at(day, 9)
        session.execute(update(CaseStep).where(CaseStep.case_id == case.id).values(at=_at(day, 9)))
        if day == earlier:
            mz = next(
                t for t in service.case_tasks(session, case.id) if t.element_id == "review_mz"
            )
            service.complete_task(
                session,
                people["mzj_case"],
                mz.id,
                decision=Decision.APPROVE,
                comment="家庭收入低于本市低保标准",
                verifier=no_store,
                today=day,
            )
            mz.completed_at = _at(day, 16)  # 民政 decided the same afternoon
            session.execute(
                update(CaseStep)
                .where(CaseStep.case_id == case.id, CaseStep.kind == "decided")
                .values(at=_at(day, 16))
            )
    service.check_overdue(session, today)
    return {"collab_cases": 2}
