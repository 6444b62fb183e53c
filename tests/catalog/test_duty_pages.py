"""The 职责清单 console page and the 登记系统变更 form, over HTTP on a live hub, as a
signed-in browser posts them (CSRF token, form fields, redirects)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select

from govshare.catalog.models import CatalogChangeEvent, DepartmentDuty, DutyResource
from govshare.rules.clock import fixed_today
from tests.catalog.console import csrf_of, signed_in
from tests.factories import World


@pytest.fixture(autouse=True)
def _fixed_day() -> Iterator[None]:
    with fixed_today(date(2026, 10, 9)):
        yield


def test_declare_link_change_and_withdraw_in_the_console(world: World) -> None:
    dept = world.department("公安局")
    entry = world.add_resource(dept, name="常住人口基本信息")
    with signed_in(world, dept.registrar) as c:
        csrf = csrf_of(c)
        empty = c.get("/catalog/duties")
        assert empty.status_code == 200
        assert "尚未声明任何职责" in empty.text
        assert 'href="/catalog/duties"' in empty.text  # in the navigation
        refused = c.post(
            "/catalog/duties",
            data={"csrf_token": csrf, "code": "户籍", "name": "", "declared_on": "2026-10-10"},
        )
        assert refused.status_code == 422
        assert "职责编码须为 1 至 50 个字母、数字或 - _ . 字符" in refused.text
        future = c.post(
            "/catalog/duties",
            data={
                "csrf_token": csrf,
                "code": "GA-01",
                "name": "户籍管理",
                "declared_on": "2026-10-10",
            },
        )
        assert future.status_code == 422
        assert "声明日期不能晚于今天" in future.text
        made = c.post(
            "/catalog/duties",
            data={
                "csrf_token": csrf,
                "code": "GA-01",
                "name": "户籍管理",
                "basis": "三定方案第三条",
                "declared_on": "2026-09-30",
            },
        )
        assert made.status_code == 303, made.text
        page = c.get(made.headers["location"])
        assert "职责已声明" in page.text
        assert "户籍管理" in page.text
        assert "尚无对应目录" in page.text
        assert "2026-10-27" in page.text  # the catalog's update deadline
        with world.hub.db() as s:
            duty_id = s.scalars(
                select(DepartmentDuty.id).where(DepartmentDuty.department_id == dept.id)
            ).one()
        linked = c.post(
            f"/catalog/duties/{duty_id}/link",
            data={"csrf_token": csrf, "resource_id": str(entry["id"])},
        )
        assert linked.status_code == 303, linked.text
        page = c.get("/catalog/duties").text
        assert f'href="/catalog/resources/{entry["id"]}"' in page
        no_reason = c.post(
            f"/catalog/duties/{duty_id}/change",
            data={"csrf_token": csrf, "name": "户籍与居住证管理", "changed_on": "2026-10-08"},
        )
        assert no_reason.status_code == 422
        assert "调整原因必填" in no_reason.text
        changed = c.post(
            f"/catalog/duties/{duty_id}/change",
            data={
                "csrf_token": csrf,
                "name": "户籍与居住证管理",
                "basis": "三定方案第三条",
                "changed_on": "2026-10-08",
                "reason": "增加居住证管理职责",
            },
        )
        assert changed.status_code == 303, changed.text
        withdrawn = c.post(
            f"/catalog/duties/{duty_id}/withdraw",
            data={"csrf_token": csrf, "withdrawn_on": "2026-10-09", "reason": "职责划转"},
        )
        assert withdrawn.status_code == 303, withdrawn.text
        page = c.get("/catalog/duties").text
        assert "已于 2026-10-09 取消" in page
        assert "取消职责：职责划转" in page
    with world.hub.db() as s:
        kinds = s.scalars(
            select(CatalogChangeEvent.description)
            .where(CatalogChangeEvent.duty_id == duty_id)
            .order_by(CatalogChangeEvent.id)
        ).all()
        links = s.scalars(select(DutyResource.resource_id).where(DutyResource.duty_id == duty_id))
        assert list(links) == [entry["id"]]
    assert kinds == [
        "声明职责：户籍管理",
        "调整职责：增加居住证管理职责",
        "取消职责：职责划转",
    ]


def test_other_departments_cannot_see_or_post(world: World) -> None:
    dept, other = world.department("公安局"), world.department("民政局")
    with world.api(dept.registrar) as c:
        duty = c.post(
            "/api/v1/catalog/duties",
            json={"code": "GA-02", "name": "居民身份证管理", "declared_on": "2026-09-01"},
        ).json()
    with signed_in(world, other.registrar) as c:
        csrf = csrf_of(c)
        own = c.get("/catalog/duties", params={"department_id": dept.id})
        assert own.status_code == 200
        assert "居民身份证管理" not in own.text  # their own register instead
        r = c.post(
            f"/catalog/duties/{duty['id']}/withdraw",
            data={"csrf_token": csrf, "withdrawn_on": "2026-10-09", "reason": "越权"},
        )
        assert r.status_code == 403
    with signed_in(world, world.auditor) as c:
        page = c.get("/catalog/duties", params={"department_id": dept.id})
        assert page.status_code == 200
        assert "居民身份证管理" in page.text
        assert "声明职责</h2>" not in page.text  # reads, never writes


def test_system_change_form_on_the_systems_page(world: World) -> None:
    dept = world.department("人社局")
    with world.api(dept.registrar) as c:
        system = c.post(
            "/api/v1/catalog/systems",
            json={"name": "社会保险信息系统", "usage_frequency": "daily", "network": "internet"},
        ).json()
    with signed_in(world, dept.registrar) as c:
        csrf = csrf_of(c)
        page = c.get("/catalog/systems").text
        assert "登记系统变更" in page
        assert re.search(rf'<option value="{system["id"]}"[^>]*>社会保险信息系统</option>', page)
        bad = c.post(
            "/catalog/systems/changes",
            data={
                "csrf_token": csrf,
                "system_id": str(system["id"]),
                "changed_on": "2026-10-12",
                "description": "",
            },
        )
        assert bad.status_code == 422
        assert "变更内容必填" in bad.text
        ok = c.post(
            "/catalog/systems/changes",
            data={
                "csrf_token": csrf,
                "system_id": str(system["id"]),
                "changed_on": "2026-09-30",
                "description": "新增灵活就业参保模块",
            },
        )
        assert ok.status_code == 303, ok.text
        page = c.get(ok.headers["location"]).text
        assert "信息系统变更已登记" in page
        assert "新增灵活就业参保模块" in page
        assert "2026-10-27" in page
    with world.hub.db() as s:
        stored = s.scalars(
            select(CatalogChangeEvent).where(CatalogChangeEvent.system_id == system["id"])
        ).one()
        assert (stored.changed_on, stored.catalog_due) == (date(2026, 9, 30), date(2026, 10, 27))
