"""Builders for comparison tests: departments' stores written straight into the shared
database, grants between them, and jobs run by the live hub's own runner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from govshare.compare import runner, service
from govshare.compare.models import CompareCase, CompareRun
from govshare.compare.schemas import JobCreate
from govshare.security.atrest import cipher_for, open_document
from govshare.security.roles import Role
from govshare.sharing.models import SharingGrant
from govshare.sharing.store import SharedDatabase
from tests.factories import Dept, World
from tests.quality.builders import StoreScene, citizen_id, store_with_rows
from tests.sharing.builders import principal

TODAY = date(2026, 6, 15)
GRANT_END = date(2099, 12, 31)  # the hub's runner plans with the real date

PEOPLE_ITEMS: list[dict[str, Any]] = [
    {"name": "公民身份号码", "code": "sfzhm", "data_type": "C", "length": 18, "is_key": True},
    {"name": "姓名", "code": "xm", "data_type": "C", "length": 50},
    {"name": "死亡日期", "code": "swrq", "data_type": "D"},
    {"name": "行政区划", "code": "xzqh", "data_type": "C", "length": 6},
]
PENSION_ITEMS: list[dict[str, Any]] = [
    {"name": "公民身份号码", "code": "sfzhm", "data_type": "C", "length": 18, "is_key": True},
    {"name": "姓名", "code": "xm", "data_type": "C", "length": 50},
    {"name": "发放日期", "code": "ffrq", "data_type": "D"},
    {"name": "发放金额", "code": "ffje", "data_type": "Y", "length": 12},
]


def old_id(number: str) -> str:
    """The 15-digit form an 18-digit ID number had before 1999."""
    return number[:6] + number[8:17]


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@dataclass
class PensionScene:
    world: World
    police: Dept
    social: Dept
    people: StoreScene
    pension: StoreScene
    expected: dict[str, float]  # 18-digit ID → amount paid after death
    pension_rows: list[dict[str, Any]]


def pension_scene(world: World, *, as_template: bool = False) -> PensionScene:
    """公安's people (five dead) and 人社's pension payments: paid after death once plainly,
    once under a 15-digit ID, once in full-width digits; decoys: a payment before death,
    a living person's 15-digit ID, a dead person never paid.

    ``as_template``: the entries are named as the built-in template ``dead_pension``
    names them (养老金发放信息, 人口基础信息库) and the payments carry its 发放年月."""
    police = world.department("公安")
    social = world.department("人社")
    ids = [citizen_id(n, birth="19500101") for n in range(1, 21)]
    deaths = {ids[0]: "2025-02-01", ids[1]: "2025-02-10", ids[2]: "2025年2月20日"}
    deaths |= {ids[3]: "2025-06-01", ids[4]: "2024-12-01"}
    people = [
        {
            "sfzhm": n,
            "xm": f"居民{i}",
            "swrq": deaths.get(n),
            "xzqh": "370202" if i % 2 else "370203",
        }
        for i, n in enumerate(ids)
    ]
    pay: list[dict[str, Any]] = []
    for i, n in enumerate(ids[:4] + ids[5:]):
        shown = {1: old_id(n), 2: full_width(n)}.get(i, n)
        for month in ("2025-01-15", "2025-03-15"):
            pay.append({"sfzhm": shown, "xm": f"居民{i}", "ffrq": month, "ffje": "3000.5"})
    pay.append({"sfzhm": old_id(ids[6]), "xm": "居民6", "ffrq": "2025-04-15", "ffje": "10"})
    pension_items = PENSION_ITEMS
    names: dict[str, str | None] = {"people": None, "pension": None}
    if as_template:
        pension_items = [
            *PENSION_ITEMS,
            {"name": "发放年月", "code": "ffny", "data_type": "C", "length": 6},
        ]
        pay = [{**row, "ffny": row["ffrq"][:7].replace("-", "")} for row in pay]
        names = {"people": "人口基础信息库", "pension": "养老金发放信息"}
    return PensionScene(
        world=world,
        police=police,
        social=social,
        people=store_with_rows(world, police, people, items=PEOPLE_ITEMS, name=names["people"]),
        pension=store_with_rows(
            world, social, pay, items=pension_items, key_item="sfzhm", name=names["pension"]
        ),
        expected={ids[0]: 3000.5, ids[1]: 3000.5, ids[2]: 3000.5},
        pension_rows=pay,
    )


def granted_pension_scene(world: World) -> PensionScene:
    """The pension scene with 人社 granted 公安's 公民身份号码 and 死亡日期 (查询)."""
    s = pension_scene(world)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq"])
    return s


def resource_code(world: World, resource_id: int) -> str:
    from govshare.catalog.models import Resource

    with world.hub.db() as s:
        found = s.get(Resource, resource_id)
        assert found is not None
        return found.code


def grant(
    world: World,
    provider: Dept,
    consumer: Dept,
    resource_id: int,
    items: list[str],
    **kw: Any,
) -> int:
    with world.hub.db() as s:
        g = SharingGrant(
            resource_id=resource_id,
            provider_department_id=provider.id,
            consumer_department_id=consumer.id,
            items=items,
            modes=kw.pop("modes", ["query"]),
            purpose="比对测试",
            expires_on=kw.pop("expires_on", GRANT_END),
            created_by="test",
            **kw,
        )
        s.add(g)
        s.flush()
        return g.id


def dead_pension(scene: PensionScene, **overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "name": "死亡人员仍领取养老金",
        "department_id": scene.social.id,
        "inputs": [
            {
                "alias": "pay",
                "resource": resource_code(scene.world, scene.pension.resource_id),
                "items": ["sfzhm", "xm", "ffrq", "ffje"],
            },
            {
                "alias": "ppl",
                "resource": resource_code(scene.world, scene.people.resource_id),
                "items": ["sfzhm", "swrq"],
            },
        ],
        "links": [
            {
                "input": "ppl",
                "on": [{"left": "pay.sfzhm", "right": "sfzhm"}],
                "normalize": ["width", "trim", "upper", "id18"],
            }
        ],
        "conditions": [{"left": "pay.ffrq", "op": ">", "right": "ppl.swrq"}],
        "output": ["ppl.sfzhm", "pay.xm", "ppl.swrq"],
        "case_key": ["ppl.sfzhm"],
        "amount": "pay.ffje",
    }
    job.update(overrides)
    return job


def admin_of(dept: Dept) -> Any:
    return principal(dept.resource_admin, dept.id, Role.RESOURCE_ADMIN)


def save(world: World, dept: Dept, job: dict[str, Any], today: date = TODAY) -> int:
    db = SharedDatabase.of(world.hub.settings)
    try:
        with world.hub.db() as s:
            created = service.create_job(
                s, db, admin_of(dept), JobCreate.model_validate(job), today
            )
            s.flush()
            return created.id
    finally:
        db.close()


def run(world: World, dept: Dept, job_id: int, timeout: float = 60) -> CompareRun:
    """Queue a run and wait for the hub's runner to finish it."""
    with world.hub.db() as s:
        run_id = service.start_run(s, admin_of(dept), job_id).id
    return runner.wait(world.hub.session_factory, run_id, timeout)


def cases(world: World, job_id: int) -> list[CompareCase]:
    """The job's cases, detached, their values opened as the hub shows them (the hub
    database keeps them sealed at rest)."""
    from sqlalchemy import select

    cipher = cipher_for(world.hub.settings)
    with world.hub.db() as s:
        found = list(
            s.scalars(
                select(CompareCase).where(CompareCase.job_id == job_id).order_by(CompareCase.id)
            )
        )
        s.expunge_all()
    for c in found:
        c.values = open_document(cipher, c.values)
    return found
