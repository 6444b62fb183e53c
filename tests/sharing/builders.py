"""Builders for sharing tests: application bodies, and principals for service calls."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from govshare.rules.clock import china_today
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal

NOT_SHARED_BASIS = "《中华人民共和国个人信息保护法》第二十八条"


def application_payload(resource_id: int, **overrides: Any) -> dict[str, Any]:
    """A complete 共享申请 for items 身份证号 and 姓名, mode query, 90 days."""
    data: dict[str, Any] = {
        "resource_id": resource_id,
        "purpose": "办理居住证积分落户审核",
        "legal_basis": "《居住证暂行条例》第十六条",
        "items": ["sfzhm", "xm"],
        "row_scope": "本市辖区内登记的流动人口",
        "row_filter": [{"item": "jzdz", "op": "prefix", "value": "青岛市"}],
        "mode": "query",
        "users": "人社局积分落户窗口经办人员",
        "end_date": (china_today() + timedelta(days=90)).isoformat(),
    }
    data.update(overrides)
    return data


def principal(name: str, department_id: int, role: Role = Role.RESOURCE_ADMIN) -> Principal:
    """A caller for direct service calls (the API resolves the same from a token)."""
    return Principal(
        kind="user",
        name=name,
        department_id=department_id,
        permissions=permissions_for([role]),
        roles=(role.value,),
    )


def far_end() -> date:
    return date(2027, 6, 30)
