"""Test scenery for business collaboration: a window department and the three
departments of the built-in 综合救助 process, their people, and the process file
with each department named by its credit code."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
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
