"""Test scenery for business collaboration: a window department and the three
departments of the built-in 综合救助 process, their people, and the process file
with each department named by its credit code."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from govshare.demo_sharing import id_number
from govshare.security.audit import SYSTEM
from govshare.security.roles import Role
from govshare.security.service import add_department, add_user
from tests.factories import PASSWORD, unique, valid_credit_code

BUILTIN = Path(__file__).parents[2] / "src/govshare/collab/builtin"
SHORTS = {"民政": "mz", "残联": "cl", "住建": "zj"}
_rng = random.Random(14)


def new_id_number() -> str:
    return id_number(_rng)


@dataclass
class Scenery:
    """Departments by short name → (id, credit code); users by role key."""

    departments: dict[str, tuple[int, str]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)

    def bpmn(self, text: str | None = None) -> bytes:
        """The built-in process with each department named by its credit code."""
        text = text or (BUILTIN / "assistance.bpmn").read_text(encoding="utf-8")
        for short in SHORTS:
            code = self.departments[short][1]
            text = text.replace(
                f'name="department" value="{short}"', f'name="department" value="{code}"'
            )
        return text.encode()


def build(session: Session) -> Scenery:
    tag = unique("s")
    scenery = Scenery()

    def dept(short: str) -> int:
        code = valid_credit_code()
        d = add_department(
            session,
            SYSTEM,
            name=f"青岛市{short}{tag}",
            short_name=short,
            credit_code=code,
            division_code="370200",
        )
        scenery.departments[short] = (d.id, code)
        return d.id

    def user(key: str, dept_id: int, roles: list[Role]) -> None:
        name = f"{key}_{tag}"
        add_user(
            session,
            SYSTEM,
            username=name,
            password=PASSWORD,
            display_name=key,
            department_id=dept_id,
            roles=roles,
        )
        scenery.users[key] = name

    window = dept("政务服务")
    user("admin", window, [Role.PLATFORM_ADMIN])
    user("window", window, [Role.WINDOW_OFFICER])
    for short, key in SHORTS.items():
        d = dept(short)
        user(key, d, [Role.CASE_HANDLER])
        user(f"{key}2", d, [Role.CASE_HANDLER])
    # A 民政 officer who both accepts at the window and handles 民政's tasks.
    user("mz_window", scenery.departments["民政"][0], [Role.WINDOW_OFFICER, Role.CASE_HANDLER])
    return scenery


def forms() -> str:
    return (BUILTIN / "assistance.forms.json").read_text(encoding="utf-8")


def upload(client: httpx.Client, data: bytes, forms_text: str | None = None) -> httpx.Response:
    files = {"file": ("process.bpmn", data, "application/xml")}
    extra = {"forms": forms_text} if forms_text else None
    return client.post("/api/v1/collab/definitions", files=files, data=extra)


def application(definition_id: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "definition_id": definition_id,
        "applicant_name": "张三",
        "applicant_id": new_id_number(),
        "help_kinds": ["最低生活保障", "残疾人两项补贴", "公共租赁住房"],
        "household": [{"name": "李四", "id_number": new_id_number(), "relation": "配偶"}],
    }
    body.update(overrides)
    return body


def verification_store(
    session: Session,
    shared_url: str,
    *,
    provider_id: int,
    consumer_id: int,
    name: str,
    holders: list[str],
) -> str:
    """A published resource of ``provider_id`` with a shared store holding ``holders``
    (公民身份号码, each with a secret name beside it) and a verification grant for
    ``consumer_id``; returns the resource's code."""
    from sqlalchemy import Column, MetaData, String, Table, create_engine

    from govshare.catalog import service as catalog
    from govshare.catalog.schemas import ItemIn, ResourceIn
    from govshare.sharing.models import SharedStore
    from tests.e2e.hubenv import ADMIN, REVIEWER

    res = catalog.add_resource(
        session,
        ADMIN,
        ResourceIn(
            classification_code="101001",
            name=name,
            abstract="协同核验测试",
            format="database",
            sharing_type="2",
            sharing_conditions="仅用于社会救助",
            sharing_modes=["api"],
            update_cycle="daily",
            provider_department_id=provider_id,
            items=[
                ItemIn(name="公民身份号码", code="sfzhm", data_type="C", length=18, is_key=True),
                ItemIn(name="姓名", code="xm", data_type="C", length=50),
            ],
        ),
    )
    for step in ["submit", "approve", "request_publication", "publish"]:
        catalog.transition(
            session, REVIEWER if step in ("approve", "publish") else ADMIN, res.id, step
        )
    table = f"ss_{res.id}"
    session.add(
        SharedStore(
            resource_id=res.id,
            source_task_id=None,
            key_item="sfzhm",
            mapping={"sfzhm": "sfzhm", "xm": "xm"},
            verify_rules=[],
            table_name=table,
            created_by="setup",
        )
    )
    grant(session, res.id, provider_id, consumer_id, ["sfzhm"], "verification", "社会救助核验")
    session.flush()
    engine = create_engine(shared_url)
    t = Table(table, MetaData(), Column("sfzhm", String(18), index=True), Column("xm", String(50)))
    t.create(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"sfzhm": h, "xm": "秘密姓名"} for h in holders])
    engine.dispose()
    return str(res.code)


def grant(
    session: Session,
    resource_id: int,
    provider_id: int,
    consumer_id: int,
    items: list[str],
    mode: str,
    purpose: str,
    masking: dict[str, str] | None = None,
) -> None:
    """A grant in force until 2099 of ``items`` in ``mode``, as if applied and approved."""
    from govshare.sharing.models import SharingGrant

    session.add(
        SharingGrant(
            resource_id=resource_id,
            provider_department_id=provider_id,
            consumer_department_id=consumer_id,
            items=items,
            modes=[mode],
            masking=masking or {},
            purpose=purpose,
            expires_on=date(2099, 12, 31),
            created_by="setup",
        )
    )
