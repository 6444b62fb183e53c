"""Builders for test data: departments with their people, and catalog entries."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import httpx
from stdnum.cn import uscc

from govshare.security.audit import SYSTEM
from govshare.security.roles import Role
from govshare.security.service import add_department, add_user
from tests.live import LiveHub

PASSWORD = "Correct-Horse-9"
_counter = itertools.count(1)
_rng = random.Random()


_issued_credit_codes: set[str] = set()


def valid_credit_code() -> str:
    """A valid 统一社会信用代码 this process has not handed out before: a session's hub
    holds thousands of departments, and a repeat among random draws (about one in five
    runs at that size) made an unrelated test fail with a duplicate department."""
    while True:
        body = f"11370200MB{_rng.randrange(10**7):07d}"
        if body not in _issued_credit_codes:
            _issued_credit_codes.add(body)
            return body + uscc.calc_check_digit(body)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}x{_rng.randrange(10**6)}"


@dataclass
class Dept:
    id: int
    name: str
    registrar: str
    reviewer: str
    resource_admin: str


def resource_payload(**overrides: Any) -> dict[str, Any]:
    """A conforming entry (有条件共享 population data) unless overridden."""
    data: dict[str, Any] = {
        "classification_code": "101001",
        "name": "流动人口居住登记信息",
        "abstract": "流动人口居住登记与居住证办理信息，用于人口服务管理。",
        "format": "database",
        "format_detail": "关系型数据库表",
        "sharing_type": "2",
        "sharing_conditions": "仅用于本部门法定职责",
        "sharing_modes": ["table", "api"],
        "update_cycle": "daily",
        "items": [
            {
                "name": "公民身份号码",
                "code": "sfzhm",
                "data_type": "C",
                "length": 18,
                "is_key": True,
            },
            {"name": "姓名", "code": "xm", "data_type": "C", "length": 50},
            {"name": "居住地址", "code": "jzdz", "data_type": "C", "length": 200},
            {"name": "登记日期", "code": "djrq", "data_type": "D"},
        ],
    }
    data.update(overrides)
    return data


class World:
    """Test scenery on a live hub: a platform admin, departments, entries."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        if not hasattr(hub, "_admin"):
            platform = self._add_dept("数据局")
            with hub.db() as s:
                add_user(
                    s,
                    SYSTEM,
                    username=f"admin_{platform.id}",
                    password=PASSWORD,
                    display_name="平台管理员",
                    department_id=platform.id,
                    roles=[Role.PLATFORM_ADMIN],
                )
                add_user(
                    s,
                    SYSTEM,
                    username=f"auditor_{platform.id}",
                    password=PASSWORD,
                    display_name="审计员",
                    department_id=platform.id,
                    roles=[Role.AUDITOR],
                )
            hub._admin = f"admin_{platform.id}"  # type: ignore[attr-defined]
            hub._auditor = f"auditor_{platform.id}"  # type: ignore[attr-defined]
        self.admin: str = hub._admin  # type: ignore[attr-defined]
        self.auditor: str = hub._auditor  # type: ignore[attr-defined]

    def _add_dept(self, short: str) -> Dept:
        with self.hub.db() as s:
            dept = add_department(
                s,
                SYSTEM,
                name=unique(f"青岛市{short}"),
                short_name=short,
                credit_code=valid_credit_code(),
                division_code="370200",
            )
            return Dept(id=dept.id, name=dept.name, registrar="", reviewer="", resource_admin="")

    def person(self, dept: Dept, username: str, role: Role) -> str:
        """One more user of ``dept`` with ``role``; the username."""
        with self.hub.db() as s:
            add_user(
                s,
                SYSTEM,
                username=username,
                password=PASSWORD,
                display_name=username,
                department_id=dept.id,
                roles=[role],
            )
        return username

    def department(self, short: str = "测试局") -> Dept:
        """A department with a registrar, a reviewer and a resource administrator."""
        dept = self._add_dept(short)
        people = {
            key: self.person(dept, f"{key[:3]}_{dept.id}", role)
            for key, role in [
                ("registrar", Role.CATALOG_REGISTRAR),
                ("reviewer", Role.CATALOG_REVIEWER),
                ("resource_admin", Role.RESOURCE_ADMIN),
            ]
        }
        return Dept(id=dept.id, name=dept.name, **people)

    def api(self, username: str | None = None) -> httpx.Client:
        token = self.hub.token(username, PASSWORD) if username else None
        return self.hub.client(token)

    def add_resource(self, dept: Dept, **overrides: Any) -> dict[str, Any]:
        with self.api(dept.registrar) as c:
            # Scenery: several entries of one department may share the default name.
            r = c.post(
                "/api/v1/catalog/resources",
                json=resource_payload(**overrides),
                params={"confirm_duplicates": "true"},
            )
            assert r.status_code == 201, r.text
            return r.json()

    def step(
        self, username: str, resource_id: int, step: str, reason: str = "", expect: int = 200
    ) -> dict[str, Any]:
        with self.api(username) as c:
            r = c.post(
                f"/api/v1/catalog/resources/{resource_id}/transitions/{step}",
                json={"reason": reason},
            )
            assert r.status_code == expect, r.text
            return r.json()

    def published(self, dept: Dept, **overrides: Any) -> dict[str, Any]:
        """An entry taken through the whole lifecycle to 发布."""
        res = self.add_resource(dept, **overrides)
        self.step(dept.registrar, res["id"], "submit")
        self.step(dept.reviewer, res["id"], "approve")
        self.step(dept.registrar, res["id"], "request_publication")
        return self.step(self.admin, res["id"], "publish")
