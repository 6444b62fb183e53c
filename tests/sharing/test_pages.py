"""Sharing console pages on a signed-in console session with CSRF: applying from the
catalog, the two application lists with working-day countdowns across the 2026
National Day holiday, answers, disputes and decisions, grants and their revocation,
usage feedback and statistics; who may see and do what; forms and their errors.

The pages count deadlines from ``sharing_today``; every test stands on a fixed day
(``console.today``) so the countdowns are those of the 2026 calendar."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import unescape
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.exceptions import StarletteDeprecationWarning

from govshare.app import create_app
from govshare.catalog import service as catalog_service
from govshare.catalog.schemas import ResourceIn
from govshare.config import Settings
from govshare.exchange.models import ExchangeTask
from govshare.security.audit import SYSTEM
from govshare.security.models import AuditEntry
from govshare.security.roles import Role
from govshare.security.service import add_api_client, add_department, add_user
from govshare.sharing import objections, service
from govshare.sharing import pages as sharing_pages
from govshare.sharing.models import (
    ApplicationStatus,
    CallStat,
    Objection,
    ObjectionStatus,
    SharedStore,
    SharingApplication,
    SharingGrant,
    UsageReport,
)
from govshare.sharing.schemas import ApplicationCreate, ApproveIn, ObjectionCreate
from tests.conftest import make_settings, migrated
from tests.factories import PASSWORD, Dept, resource_payload, unique, valid_credit_code
from tests.sharing.builders import NOT_SHARED_BASIS, application_payload, far_end, principal
from tests.web.test_pages import csrf_of, sign_in

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

# A Wednesday just before the National Day holiday (10月1日–7日, 10月10日 Sat worked).
DAY = date(2026, 9, 30)


@dataclass
class Console:
    """An app on a fresh SQLite hub: the platform, a provider department (公安) with three
    published entries, a consumer department (人社) and a third department (民政)."""

    app: FastAPI
    admin: str
    platform_id: int
    provider: Dept
    consumer: Dept
    other: Dept
    conditional: int
    unconditional: int
    not_shared: int
    today: date = DAY
    departments: dict[int, Dept] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.app.state.settings

    def db(self) -> Session:
        return self.app.state.session_factory()

    def signed_in(self, username: str) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)
        response = sign_in(client, username, PASSWORD)
        assert response.status_code == 303, response.text
        return client

    def department(self, short: str) -> Dept:
        """A department with a registrar, a reviewer and a resource administrator."""
        with self.db() as s:
            dept = add_department(
                s,
                SYSTEM,
                name=unique(f"青岛市{short}"),
                short_name=short,
                credit_code=valid_credit_code(),
                division_code="370200",
            )
            people = {}
            for key, role in [
                ("registrar", Role.CATALOG_REGISTRAR),
                ("reviewer", Role.CATALOG_REVIEWER),
                ("resource_admin", Role.RESOURCE_ADMIN),
            ]:
                people[key] = unique(f"{key[:3]}_")
                add_user(
                    s,
                    SYSTEM,
                    username=people[key],
                    password=PASSWORD,
                    display_name=f"{short}{role.label}",
                    department_id=dept.id,
                    roles=[role],
                )
            s.commit()
            made = Dept(id=dept.id, name=dept.name, **people)
        self.departments[made.id] = made
        return made

    def published(self, dept: Dept, **overrides: Any) -> int:
        """An entry of ``dept`` taken through registration and publication."""
        registrar = principal(dept.registrar, dept.id, Role.CATALOG_REGISTRAR)
        with self.db() as s:
            resource = catalog_service.add_resource(
                s,
                registrar,
                ResourceIn.model_validate(resource_payload(**overrides)),
                confirm_duplicates=True,  # scenery: entries may share the default name
            )
            steps = [
                (registrar, "submit"),
                (principal(dept.reviewer, dept.id, Role.CATALOG_REVIEWER), "approve"),
                (registrar, "request_publication"),
                (principal(self.admin, self.platform_id, Role.PLATFORM_ADMIN), "publish"),
            ]
            for who, step in steps:
                catalog_service.transition(s, who, resource.id, step)
            s.commit()
            return resource.id

    def apply(
        self,
        consumer: Dept | None = None,
        *,
        resource_id: int | None = None,
        on: date | None = None,
        **kw: Any,
    ) -> int:
        """An application (to the conditional entry unless told), made through the service."""
        consumer = consumer or self.consumer
        kw.setdefault("end_date", far_end().isoformat())
        body = ApplicationCreate.model_validate(
            application_payload(resource_id or self.conditional, **kw)
        )
        with self.db() as s:
            app = service.apply(
                s,
                self.settings,
                principal(consumer.resource_admin, consumer.id),
                body,
                today=on or self.today,
            )
            s.commit()
            return app.id

    def approve(self, application_id: int, *, on: date | None = None) -> int:
        with self.db() as s:
            app = service.get_application(s, application_id)
            grant = service.approve(
                s,
                self.settings,
                self._answerer(app),
                app,
                ApproveIn(),
                today=on or self.today,
            )
            s.commit()
            return grant.id

    def refuse(self, application_id: int) -> None:
        with self.db() as s:
            app = service.get_application(s, application_id)
            reason = "数据涉及个人隐私，依法不予提供"
            service.refuse(s, self._answerer(app), app, reason, today=self.today)
            s.commit()

    def _answerer(self, app: SharingApplication) -> Any:
        """The resource administrator of the application's provider department."""
        dept = self.departments[app.provider_department_id]
        return principal(dept.resource_admin, dept.id)

    def application(self, application_id: int) -> SharingApplication:
        with self.db() as s:
            app = service.get_application(s, application_id)
            s.expunge_all()
            return app

    def grant_of(self, application_id: int) -> SharingGrant | None:
        with self.db() as s:
            grant = service.grant_of(s, application_id)
            s.expunge_all()
            return grant

    def count(self, model: Any) -> int:
        with self.db() as s:
            return s.scalar(select(func.count()).select_from(model)) or 0

    def actions(self, application_id: int) -> list[str]:
        with self.db() as s:
            return list(
                s.scalars(
                    select(AuditEntry.action)
                    .where(AuditEntry.object_type == "sharing_application")
                    .where(AuditEntry.object_id == str(application_id))
                    .order_by(AuditEntry.seq)
                )
            )


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    settings = migrated(make_settings(tmp_path_factory.mktemp("sharing-pages")))
    app = create_app(settings)
    with app.state.session_factory() as s:
        platform = add_department(
            s,
            SYSTEM,
            name=unique("青岛市大数据局"),
            short_name="大数据局",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        admin = unique("admin_")
        add_user(
            s,
            SYSTEM,
            username=admin,
            password=PASSWORD,
            display_name="平台管理员",
            department_id=platform.id,
            roles=[Role.PLATFORM_ADMIN],
        )
        s.commit()
        platform_id = platform.id
    c = Console(
        app=app,
        admin=admin,
        platform_id=platform_id,
        provider=Dept(0, "", "", "", ""),
        consumer=Dept(0, "", "", "", ""),
        other=Dept(0, "", "", "", ""),
        conditional=0,
        unconditional=0,
        not_shared=0,
    )
    c.provider = c.department("公安局")
    c.consumer = c.department("人社局")
    c.other = c.department("民政局")
    c.conditional = c.published(c.provider)
    c.unconditional = c.published(
        c.provider, name="机动车登记信息", sharing_type="1", sharing_conditions=""
    )
    c.not_shared = c.published(
        c.provider,
        name="案件侦办信息",
        sharing_type="3",
        sharing_conditions="",
        not_shared_basis=NOT_SHARED_BASIS,
    )
    app.dependency_overrides[sharing_pages.sharing_today] = lambda: c.today
    yield c
    app.state.engine.dispose()


@pytest.fixture(autouse=True)
def _fixed_day(console: Console) -> None:
    console.today = DAY


def _row(html: str, row_id: str) -> str:
    found = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert found, f"no row {row_id}"
    return found.group(1)


def _section(html: str, section_id: str) -> str:
    found = re.search(rf'<section class="[^"]*" id="{section_id}">(.*?)</section>', html, re.S)
    assert found, f"no section {section_id}"
    return found.group(1)


def _countdown(html: str) -> tuple[str, str]:
    """The countdown tag's level and text."""
    found = re.search(r'class="tag countdown countdown-(\w+)[^"]*"[^>]*>([^<]+)<', html)
    assert found, html
    return found.group(1), found.group(2)


def _countdown_classes(html: str) -> set[str]:
    found = re.search(r'class="(tag countdown [^"]*)"', html)
    assert found, html
    return set(found.group(1).split())


def _field_errors(html: str, name: str) -> list[str]:
    """The messages shown inside the form field that holds the input ``name``."""
    for block in re.split(r'<div class="field', html)[1:]:
        if f'name="{name}"' in block:
            return re.findall(r'class="field-error" role="alert">([^<]+)<', block)
    raise AssertionError(f"no field {name}")


def _form(client: TestClient, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": csrf_of(client), **fields}


def _apply_form(client: TestClient, **overrides: Any) -> dict[str, Any]:
    return _form(
        client,
        **{
            "purpose": "办理居住证积分落户审核",
            "legal_basis": "《居住证暂行条例》第十六条",
            "items": ["sfzhm", "xm"],
            "row_scope": "本市辖区内登记的流动人口",
            "mode": "verification",
            "users": "积分落户窗口经办人员",
            "end_date": "2026-12-31",
            **overrides,
        },
    )


# -- applying from the catalog ------------------------------------------------------------


def test_shareable_entry_offers_the_apply_button_to_other_departments(console: Console) -> None:
    apply_link = f'href="/sharing/apply/{console.conditional}"'
    consumer = console.signed_in(console.consumer.resource_admin)
    assert apply_link in consumer.get(f"/catalog/resources/{console.conditional}").text
    # Not to the provider's own department, nor to a registrar who cannot apply.
    own = console.signed_in(console.provider.resource_admin)
    assert apply_link not in own.get(f"/catalog/resources/{console.conditional}").text
    registrar = console.signed_in(console.consumer.registrar)
    assert apply_link not in registrar.get(f"/catalog/resources/{console.conditional}").text


def test_not_shared_entry_shows_its_legal_basis_and_no_apply_button(console: Console) -> None:
    client = console.signed_in(console.consumer.resource_admin)
    page = client.get(f"/catalog/resources/{console.not_shared}").text
    sharing = _section(page, "sharing")
    assert "不予共享" in sharing
    assert NOT_SHARED_BASIS in unescape(sharing)
    assert "/sharing/apply/" not in page
    # The apply page itself explains and offers no form; a crafted post stores nothing.
    form_page = client.get(f"/sharing/apply/{console.not_shared}").text
    assert NOT_SHARED_BASIS in unescape(form_page)
    assert 'action="/sharing/apply/' not in form_page
    before = console.count(SharingApplication)
    r = client.post(f"/sharing/apply/{console.not_shared}", data=_apply_form(client))
    assert r.status_code == 422
    assert NOT_SHARED_BASIS in unescape(r.text)
    assert console.count(SharingApplication) == before


def test_apply_form_lists_the_entrys_items_and_the_three_modes(console: Console) -> None:
    page = console.signed_in(console.consumer.resource_admin).get(
        f"/sharing/apply/{console.conditional}"
    )
    assert page.status_code == 200
    for code in ("sfzhm", "xm", "jzdz", "djrq"):
        assert f'name="items" value="{code}"' in page.text
    for mode, label in (("query", "查询"), ("subscription", "订阅"), ("verification", "核验")):
        assert f'value="{mode}"' in page.text
        assert label in page.text


def test_apply_form_errors_are_chinese_beside_their_fields_and_nothing_is_stored(
    console: Console,
) -> None:
    client = console.signed_in(console.consumer.resource_admin)
    before = console.count(SharingApplication)
    r = client.post(
        f"/sharing/apply/{console.conditional}",
        data=_apply_form(client, purpose="", items=[], mode="", end_date="2026-13-45"),
    )
    assert r.status_code == 422
    assert "申请信息不完整，请按提示修改" in r.text
    assert _field_errors(r.text, "purpose") == ["必填"]
    assert _field_errors(r.text, "items") == ["请至少选择一个信息项"]
    assert _field_errors(r.text, "mode") == ["请选择共享方式"]
    assert _field_errors(r.text, "end_date") == ["日期格式应为 年-月-日"]
    assert _field_errors(r.text, "legal_basis") == []
    assert "业务用途：必填" in r.text  # the summary names the field in Chinese
    assert "积分落户窗口经办人员" in r.text  # what was typed comes back
    assert console.count(SharingApplication) == before


def test_end_date_must_be_after_today_as_the_service_says(console: Console) -> None:
    client = console.signed_in(console.consumer.resource_admin)
    before = console.count(SharingApplication)
    r = client.post(
        f"/sharing/apply/{console.conditional}", data=_apply_form(client, end_date="2026-09-30")
    )
    assert r.status_code == 422
    assert "使用截止日期须晚于今天" in r.text
    assert "须晚于 2026-09-30" in r.text
    assert console.count(SharingApplication) == before


def test_applying_stores_the_application_with_its_working_day_deadline(console: Console) -> None:
    client = console.signed_in(console.consumer.resource_admin)
    r = client.post(
        f"/sharing/apply/{console.conditional}",
        data=_apply_form(client, items=["xm", "sfzhm"]),
    )
    assert r.status_code == 303
    match = re.fullmatch(r"/sharing/applications/(\d+)\?done=applied", r.headers["location"])
    assert match
    app = console.application(int(match.group(1)))
    assert (app.status, app.consumer_department_id) == (
        ApplicationStatus.SUBMITTED,
        console.consumer.id,
    )
    assert (app.items, app.mode, app.end_date) == (
        ["xm", "sfzhm"],
        "verification",
        date(2026, 12, 31),
    )
    # 9/30 + 10 working days: 10/8, 10/9, 10/10 (Sat, worked), 10/12 … 10/16, 10/19, 10/20.
    assert (app.submitted_on, app.answer_due) == (DAY, date(2026, 10, 20))
    page = client.get(r.headers["location"]).text
    assert "共享申请已提交" in page
    assert "待答复" in page


def test_unconditional_entry_is_granted_at_once(console: Console) -> None:
    client = console.signed_in(console.consumer.resource_admin)
    r = client.post(
        f"/sharing/apply/{console.unconditional}", data=_apply_form(client, mode="query")
    )
    assert r.status_code == 303
    assert r.headers["location"].endswith("?done=granted")
    page = client.get(r.headers["location"]).text
    assert "已自动通过并生成授权" in page
    assert "grant-active" in _section(page, "grant")


# -- lists and countdowns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "level", "text"),
    [
        (date(2026, 9, 30), "ok", "答复剩 10 个工作日"),
        (date(2026, 10, 7), "ok", "答复剩 10 个工作日"),  # the holiday week costs nothing
        (date(2026, 10, 9), "ok", "答复剩 8 个工作日"),  # 10/10 Sat is worked
        (date(2026, 10, 16), "soon", "答复剩 2 个工作日"),
        (date(2026, 10, 20), "soon", "答复今日到期"),
        (date(2026, 10, 21), "overdue", "答复已超期 1 个工作日"),
        (date(2026, 10, 26), "overdue", "答复已超期 4 个工作日"),
    ],
)
def test_countdown_counts_working_days_across_national_day(
    console: Console, day: date, level: str, text: str
) -> None:
    application_id = console.apply(on=DAY)
    console.today = day
    provider = console.signed_in(console.provider.resource_admin)
    row = _row(provider.get("/sharing/queue?status=all").text, f"application-{application_id}")
    assert _countdown(row) == (level, text)
    classes = _countdown_classes(row)
    assert ("tag-danger" in classes) is (level == "overdue")  # red
    assert ("tag-warn" in classes) is (level == "soon")  # amber
    # The consumer sees the same deadline on its own list and on the application page.
    consumer = console.signed_in(console.consumer.resource_admin)
    mine = _row(consumer.get("/sharing/applications").text, f"application-{application_id}")
    assert _countdown(mine) == (level, text)
    assert _countdown(consumer.get(f"/sharing/applications/{application_id}").text)[1] == text


def test_provide_countdown_starts_at_approval(console: Console) -> None:
    application_id = console.apply(on=DAY)
    console.approve(application_id, on=date(2026, 10, 9))
    # 10/9 + 5: 10/10 (Sat, worked), 10/12, 10/13, 10/14, 10/15.
    assert console.application(application_id).provide_due == date(2026, 10, 15)
    console.today = date(2026, 10, 12)
    client = console.signed_in(console.provider.resource_admin)
    page = client.get("/sharing/queue?status=approved").text
    assert _countdown(_row(page, f"application-{application_id}")) == ("ok", "提供剩 3 个工作日")


def test_queue_shows_what_waits_for_the_provider_nearest_deadline_first(
    console: Console,
) -> None:
    provider = console.department("税务局")
    resource_id = console.published(provider, name="纳税状态信息")
    later = console.apply(resource_id=resource_id, on=date(2026, 9, 30))  # due 10/20
    sooner = console.apply(resource_id=resource_id, on=date(2026, 9, 28))  # due 10/16
    answered = console.apply(resource_id=resource_id, on=date(2026, 9, 28))
    console.refuse(answered)
    page = console.signed_in(provider.resource_admin).get("/sharing/queue").text
    rows = re.findall(r'<tr id="application-(\d+)">', page)
    assert rows == [str(sooner), str(later)]  # 待处理: what still needs the provider
    assert "待处理（2）" in page


def test_lists_are_paginated(console: Console) -> None:
    consumer = console.department("医保局")
    made = [console.apply(consumer) for _ in range(23)]
    client = console.signed_in(consumer.resource_admin)
    first = client.get("/sharing/applications").text
    assert len(re.findall(r'<tr id="application-', first)) == 20
    assert "第 1 / 2 页，共 23 条" in first
    assert 'href="/sharing/applications?status=all&amp;p=2"' in first
    second = client.get("/sharing/applications?status=all&p=2").text
    shown = re.findall(r'<tr id="application-(\d+)">', second)
    assert sorted(map(int, shown)) == sorted(made)[:3]  # newest first: the oldest come last


def test_status_tabs_filter_and_count(console: Console) -> None:
    consumer = console.department("住建局")
    waiting, refused = console.apply(consumer), console.apply(consumer)
    console.refuse(refused)
    client = console.signed_in(consumer.resource_admin)
    page = client.get("/sharing/applications?status=refused").text
    assert re.findall(r'<tr id="application-(\d+)">', page) == [str(refused)]
    assert "已拒绝（1）" in page
    assert "待答复（1）" in page
    assert "全部（2）" in page
    assert str(waiting) in client.get("/sharing/applications").text


# -- one application: visibility, answers, disputes ------------------------------------------


def test_another_department_cannot_see_or_answer_an_application(console: Console) -> None:
    application_id = console.apply()
    stranger = console.signed_in(console.other.resource_admin)
    r = stranger.get(f"/sharing/applications/{application_id}")
    assert r.status_code == 404
    assert "不存在" in r.text
    r = stranger.post(
        f"/sharing/applications/{application_id}/approve", data=_form(stranger, items=["xm"])
    )
    assert r.status_code == 404
    assert console.application(application_id).status is ApplicationStatus.SUBMITTED
    assert f'id="application-{application_id}"' not in stranger.get("/sharing/applications").text
    # Both parties and the platform see it.
    for who in (console.consumer.resource_admin, console.provider.resource_admin, console.admin):
        assert (
            console.signed_in(who).get(f"/sharing/applications/{application_id}").status_code == 200
        )


def test_only_the_provider_sees_the_answer_forms(console: Console) -> None:
    application_id = console.apply()
    provider = console.signed_in(console.provider.resource_admin).get(
        f"/sharing/applications/{application_id}"
    )
    assert f'action="/sharing/applications/{application_id}/approve' in provider.text
    assert f'action="/sharing/applications/{application_id}/refuse' in provider.text
    consumer = console.signed_in(console.consumer.resource_admin).get(
        f"/sharing/applications/{application_id}"
    )
    assert "/approve" not in consumer.text
    assert "/refuse" not in consumer.text
    assert "当前没有您可以办理的操作" in consumer.text


def test_refusal_without_a_reason_shows_the_chinese_error_and_changes_nothing(
    console: Console,
) -> None:
    application_id = console.apply()
    client = console.signed_in(console.provider.resource_admin)
    r = client.post(
        f"/sharing/applications/{application_id}/refuse", data=_form(client, reason="  ")
    )
    assert r.status_code == 422
    refuse = _section(r.text, "refuse")
    assert "拒绝须说明理由" in refuse
    assert "has-error" in refuse
    app = console.application(application_id)
    assert (app.status, app.answered_on, app.answer_reason) == (
        ApplicationStatus.SUBMITTED,
        None,
        "",
    )
    assert console.actions(application_id) == ["sharing.application.submit"]


def test_refusal_with_a_reason_is_shown_to_the_consumer_who_may_dispute(
    console: Console,
) -> None:
    application_id = console.apply()
    provider = console.signed_in(console.provider.resource_admin)
    r = provider.post(
        f"/sharing/applications/{application_id}/refuse",
        data=_form(provider, reason="申请用途与本部门数据的共享条件不符"),
    )
    assert (r.status_code, r.headers["location"]) == (
        303,
        f"/sharing/applications/{application_id}?done=refused",
    )
    consumer = console.signed_in(console.consumer.resource_admin)
    page = consumer.get(f"/sharing/applications/{application_id}").text
    assert "拒绝理由：申请用途与本部门数据的共享条件不符" in page
    assert f'action="/sharing/applications/{application_id}/dispute' in page
    timeline = _section(page, "timeline")
    assert "提交申请" in timeline
    assert "2026-09-30" in timeline
    assert "拒绝" in timeline


def test_approval_grants_the_chosen_items_with_their_masking(console: Console) -> None:
    application_id = console.apply(items=["sfzhm", "xm"])
    client = console.signed_in(console.provider.resource_admin)
    form_page = client.get(f"/sharing/applications/{application_id}").text
    for label in ("不脱敏", "证件号码", "姓名"):
        assert label in _section(form_page, "approve")
    r = client.post(
        f"/sharing/applications/{application_id}/approve",
        data=_form(client, items=["sfzhm"], masking_sfzhm="id_number", masking_xm="name"),
    )
    assert r.status_code == 303
    grant = console.grant_of(application_id)
    assert grant is not None
    assert (grant.items, grant.masking) == (["sfzhm"], {"sfzhm": "id_number"})
    app = console.application(application_id)
    assert app.status is ApplicationStatus.APPROVED
    # Approved on 9/30: provide within 5 working days, 10/8, 10/9, 10/10, 10/12, 10/13.
    assert app.provide_due == date(2026, 10, 13)
    page = client.get(r.headers["location"]).text
    assert "已同意申请并生成授权" in page
    assert _countdown(page) == ("ok", "提供剩 5 个工作日")
    assert f'action="/sharing/applications/{application_id}/provide"' in page


def test_approving_no_item_is_refused_in_chinese(console: Console) -> None:
    application_id = console.apply()
    client = console.signed_in(console.provider.resource_admin)
    r = client.post(f"/sharing/applications/{application_id}/approve", data=_form(client))
    assert r.status_code == 422
    assert "批准的信息项须为申请项的非空子集" in _section(r.text, "approve")
    assert console.application(application_id).status is ApplicationStatus.SUBMITTED
    assert console.grant_of(application_id) is None


def test_marking_provided_records_the_day(console: Console) -> None:
    application_id = console.apply()
    console.approve(application_id)
    console.today = date(2026, 10, 9)
    client = console.signed_in(console.provider.resource_admin)
    r = client.post(f"/sharing/applications/{application_id}/provide", data=_form(client))
    assert r.status_code == 303
    app = console.application(application_id)
    assert (app.status, app.provided_on) == (ApplicationStatus.PROVIDED, date(2026, 10, 9))
    timeline = _section(client.get(r.headers["location"]).text, "timeline")
    assert "已提供数据" in timeline
    assert "2026-10-09" in timeline


def test_dispute_goes_to_the_platform_whose_decision_is_recorded(console: Console) -> None:
    application_id = console.apply()
    console.refuse(application_id)
    consumer = console.signed_in(console.consumer.resource_admin)
    r = consumer.post(
        f"/sharing/applications/{application_id}/dispute", data=_form(consumer, reason="")
    )
    assert r.status_code == 422
    assert "提出争议须说明理由" in _section(r.text, "dispute")
    assert console.application(application_id).status is ApplicationStatus.REFUSED
    r = consumer.post(
        f"/sharing/applications/{application_id}/dispute",
        data=_form(consumer, reason="积分落户审核系法定职责，依《居住证暂行条例》应予共享"),
    )
    assert r.status_code == 303

    admin = console.signed_in(console.admin)
    disputes = admin.get("/sharing/disputes").text
    assert "积分落户审核系法定职责" in _row(disputes, f"dispute-{application_id}")
    # Deciding needs an outcome and a reason.
    r = admin.post(f"/sharing/applications/{application_id}/decision", data=_form(admin, reason=""))
    assert r.status_code == 422
    decision = _section(r.text, "decision-form")
    assert "请选择裁决结果" in decision
    assert console.application(application_id).status is ApplicationStatus.DISPUTED
    r = admin.post(
        f"/sharing/applications/{application_id}/decision",
        data=_form(admin, outcome="overturned", reason="属于法定职责所需，撤销拒绝"),
    )
    assert r.status_code == 303
    app = console.application(application_id)
    assert (app.status, app.dispute_outcome, app.dispute_decision) == (
        ApplicationStatus.APPROVED,
        "overturned",
        "属于法定职责所需，撤销拒绝",
    )
    assert console.grant_of(application_id) is not None
    decided = _row(admin.get("/sharing/disputes").text, f"decided-{application_id}")
    assert "撤销拒绝" in decided
    assert "属于法定职责所需，撤销拒绝" in decided
    assert f"dispute-{application_id}" not in admin.get("/sharing/disputes").text
    # The consumer sees the outcome on the application and in its timeline.
    page = consumer.get(f"/sharing/applications/{application_id}").text
    assert "平台裁决：<strong>撤销拒绝</strong>" in page
    assert "平台裁决：撤销拒绝" in _section(page, "timeline")


def test_only_the_platform_decides_disputes(console: Console) -> None:
    application_id = console.apply()
    console.refuse(application_id)
    with console.db() as s:
        service.dispute(
            s,
            principal(console.consumer.resource_admin, console.consumer.id),
            service.get_application(s, application_id),
            "不服",
        )
        s.commit()
    for who in (console.consumer.resource_admin, console.provider.resource_admin):
        client = console.signed_in(who)
        assert client.get("/sharing/disputes").status_code == 403
        r = client.post(
            f"/sharing/applications/{application_id}/decision",
            data=_form(client, outcome="overturned", reason="自行裁决"),
        )
        assert r.status_code == 403
        assert "没有权限" in r.text
    assert console.application(application_id).status is ApplicationStatus.DISPUTED


# -- grants ---------------------------------------------------------------------------------------


def test_revoking_takes_effect_at_once_and_shows_as_revoked(console: Console) -> None:
    application_id = console.apply()
    grant_id = console.approve(application_id)
    consumer = console.signed_in(console.consumer.resource_admin)
    assert "grant-active" in _row(consumer.get("/sharing/grants").text, f"grant-{grant_id}")

    provider = console.signed_in(console.provider.resource_admin)
    r = provider.post(
        f"/sharing/grants/{grant_id}/revoke",
        data=_form(provider, reason="", next="/sharing/grants/provider"),
    )
    assert r.status_code == 422
    assert "撤销授权须说明理由" in _row(r.text, f"grant-{grant_id}")
    with console.db() as s:
        assert s.get(SharingGrant, grant_id).revoked is False  # type: ignore[union-attr]

    r = provider.post(
        f"/sharing/grants/{grant_id}/revoke",
        data=_form(provider, reason="超出约定用途使用数据", next="/sharing/grants/provider"),
    )
    assert (r.status_code, r.headers["location"]) == (303, "/sharing/grants/provider?done=revoked")
    with console.db() as s:
        grant = s.get(SharingGrant, grant_id)
        assert grant is not None
        assert grant.revoked
        assert not service.is_active(grant, DAY)  # no longer lets the consumer use the data
    row = _row(consumer.get("/sharing/grants").text, f"grant-{grant_id}")
    assert "已撤销" in row
    assert "grant-revoked" in row
    assert "超出约定用途使用数据" in row
    assert "反馈使用情况" not in row
    assert f"grant-{grant_id}" in consumer.get("/sharing/grants?state=revoked").text
    assert f"grant-{grant_id}" not in consumer.get("/sharing/grants?state=active").text


def test_grant_badges_follow_the_end_date(console: Console) -> None:
    application_id = console.apply(end_date="2026-10-20")
    grant_id = console.approve(application_id)
    client = console.signed_in(console.consumer.resource_admin)
    console.today = date(2026, 10, 20)  # the end date itself still counts
    assert "grant-active" in _row(client.get("/sharing/grants").text, f"grant-{grant_id}")
    console.today = date(2026, 10, 21)
    row = _row(client.get("/sharing/grants").text, f"grant-{grant_id}")
    assert "grant-expired" in row
    assert "已过期" in row


def test_consumers_cannot_revoke(console: Console) -> None:
    grant_id = console.approve(console.apply())
    consumer = console.signed_in(console.consumer.resource_admin)
    assert "/revoke" not in consumer.get("/sharing/grants").text
    r = consumer.post(f"/sharing/grants/{grant_id}/revoke", data=_form(consumer, reason="不想要了"))
    assert r.status_code == 403
    assert "只有目录提供部门或平台管理员可以撤销授权" in r.text


# -- usage feedback and statistics --------------------------------------------------------------


def test_usage_feedback_is_seen_by_the_provider_and_counted(console: Console) -> None:
    consumer_dept = console.department("卫健委")
    grant_id = console.approve(console.apply(consumer_dept))
    consumer = console.signed_in(consumer_dept.resource_admin)
    form = consumer.get(f"/sharing/usage?grant_id={grant_id}").text
    assert f'<option value="{grant_id}" selected>' in form

    before = console.count(UsageReport)
    r = consumer.post("/sharing/usage", data=_form(consumer, grant_id=str(grant_id), text=""))
    assert r.status_code == 422
    assert "至少 2 个字符" in r.text
    assert console.count(UsageReport) == before

    r = consumer.post(
        "/sharing/usage",
        data=_form(consumer, grant_id=str(grant_id), count="37", text="核验积分落户申请37件"),
    )
    assert (r.status_code, r.headers["location"]) == (
        303,
        "/sharing/usage?side=mine&done=usage_reported",
    )
    provider = console.signed_in(console.provider.resource_admin)
    seen = provider.get("/sharing/usage?side=provider").text
    assert "核验积分落户申请37件" in seen
    assert consumer_dept.name in seen

    stats = provider.get("/sharing/stats?side=provider")
    assert stats.status_code == 200
    assert "/static/vendor/echarts.common.min.js" in stats.text
    found = re.search(r'id="chart-departments">(.*?)</script>', stats.text, re.S)
    assert found
    by_department = json.loads(found.group(1))
    assert by_department["values"][by_department["labels"].index(consumer_dept.name)] == 37


def test_usage_statistics_by_resource_department_and_month() -> None:
    """The figures behind the charts, from reports of two months and two departments."""

    def report(resource: str, consumer: str, month: int, count: int) -> Any:
        grant = SimpleNamespace(
            resource=SimpleNamespace(name=resource), consumer=SimpleNamespace(name=consumer)
        )
        # Mid-month in UTC: the same month in China.
        at = datetime(2026, month, 15, 4, 0, tzinfo=UTC)
        return SimpleNamespace(grant=grant, count=count, reported_at=at)

    stats = sharing_pages.usage_statistics(
        [
            report("人口信息", "人社局", 8, 10),
            report("人口信息", "民政局", 10, 5),
            report("车辆信息", "人社局", 10, 1),
        ]
    )
    assert stats["by_resource"] == [("人口信息", 15), ("车辆信息", 1)]
    assert stats["by_department"] == [("人社局", 11), ("民政局", 5)]
    assert stats["months"] == ["2026-08", "2026-09", "2026-10"]  # the quiet month shows
    assert stats["month_reports"] == [1, 0, 2]
    assert stats["month_series"] == [
        {"name": "人社局", "values": [10, 0, 1]},
        {"name": "民政局", "values": [0, 0, 5]},
    ]


def test_monthly_chart_draws_six_departments_and_sums_the_rest() -> None:
    reports = [
        SimpleNamespace(
            grant=SimpleNamespace(
                resource=SimpleNamespace(name="人口信息"),
                consumer=SimpleNamespace(name=f"部门{n}"),
            ),
            count=10 - n,
            reported_at=datetime(2026, 10, 15, 4, 0, tzinfo=UTC),
        )
        for n in range(8)
    ]
    series = sharing_pages.usage_statistics(reports)["month_series"]
    assert [s["name"] for s in series] == [f"部门{n}" for n in range(6)] + ["其他部门"]
    assert series[-1]["values"] == [4 + 3]  # 部门6 and 部门7


def test_usage_report_for_another_departments_grant_is_refused(console: Console) -> None:
    grant_id = console.approve(console.apply())
    stranger = console.signed_in(console.other.resource_admin)
    before = console.count(UsageReport)
    r = stranger.post(
        "/sharing/usage", data=_form(stranger, grant_id=str(grant_id), text="冒名反馈")
    )
    assert r.status_code == 422
    assert "只能反馈本部门所持授权的使用情况" in r.text
    assert console.count(UsageReport) == before


# -- navigation, permissions, every page renders ------------------------------------------------


def test_navigation_shows_the_sharing_section_by_role(console: Console) -> None:
    admin = console.signed_in(console.admin).get("/").text
    assert 'href="/sharing/disputes"' in admin
    resource_admin = console.signed_in(console.consumer.resource_admin).get("/").text
    for href in ("/sharing/applications", "/sharing/queue", "/sharing/grants", "/sharing/stats"):
        assert f'href="{href}"' in resource_admin
    assert 'href="/sharing/disputes"' not in resource_admin
    registrar = console.signed_in(console.consumer.registrar).get("/").text
    assert 'href="/sharing/' not in registrar
    assert (
        console.signed_in(console.consumer.registrar).get("/sharing/applications").status_code
        == 403
    )


def test_console_posts_need_the_csrf_token(console: Console) -> None:
    application_id = console.apply()
    client = console.signed_in(console.provider.resource_admin)
    r = client.post(f"/sharing/applications/{application_id}/refuse", data={"reason": "无"})
    assert r.status_code == 403
    assert console.application(application_id).status is ApplicationStatus.SUBMITTED


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("consumer", "/sharing/applications"),
        ("consumer", "/sharing/applications?status=bogus&p=99"),
        ("consumer", "/sharing/grants"),
        ("consumer", "/sharing/grants?state=expired"),
        ("consumer", "/sharing/usage"),
        ("consumer", "/sharing/usage?side=mine"),
        ("consumer", "/sharing/stats?side=mine"),
        ("provider", "/sharing/queue"),
        ("provider", "/sharing/queue?status=provided"),
        ("provider", "/sharing/grants/provider"),
        ("provider", "/sharing/stats"),
        ("admin", "/sharing/disputes"),
        ("admin", "/sharing/grants/provider"),
        ("admin", "/sharing/usage?side=all"),
        ("admin", "/sharing/stats?side=all"),
    ],
)
def test_page_renders(console: Console, who: str, path: str) -> None:
    user = {
        "consumer": console.consumer.resource_admin,
        "provider": console.provider.resource_admin,
        "admin": console.admin,
    }[who]
    r = console.signed_in(user).get(path)
    assert r.status_code == 200, r.text
    assert "</html>" in r.text


# -- the apply form's structured row filter -------------------------------------------------------


def test_apply_form_takes_a_structured_row_filter(console: Console) -> None:
    client = console.signed_in(console.consumer.resource_admin)
    page = client.get(f"/sharing/apply/{console.conditional}").text
    assert page.count('name="rf_item"') == 3
    r = client.post(
        f"/sharing/apply/{console.conditional}",
        data=_apply_form(
            client,
            rf_item=["jzdz", "", "xm"],
            rf_op=["prefix", "eq", "in"],
            rf_value=["青岛市市南区", "", "张三，李四、王五"],
        ),
    )
    assert r.status_code == 303, r.text
    application_id = int(re.findall(r"/sharing/applications/(\d+)", r.headers["location"])[0])
    assert console.application(application_id).row_filter == [
        {"item": "jzdz", "op": "prefix", "value": "青岛市市南区"},
        {"item": "xm", "op": "in", "value": ["张三", "李四", "王五"]},
    ]
    assert "以…开头" in client.get(r.headers["location"]).text


def test_row_filter_errors_stand_beside_their_condition(console: Console) -> None:
    client = console.signed_in(console.consumer.resource_admin)
    before = console.count(SharingApplication)
    r = client.post(
        f"/sharing/apply/{console.conditional}",
        data=_apply_form(client, rf_item=["", "jzdz"], rf_op=["eq", "eq"], rf_value=["x", ""]),
    )
    assert r.status_code == 422
    row_filter = _field_errors(r.text, "rf_item")
    assert row_filter == ["请选择信息项", "请填写条件的值"]
    assert "行过滤条件：请选择信息项" in r.text
    # An item the entry does not have is refused by the service, beside its row.
    r = client.post(
        f"/sharing/apply/{console.conditional}",
        data=_apply_form(client, rf_item=["bogus"], rf_op=["eq"], rf_value=["1"]),
    )
    assert r.status_code == 422
    assert _field_errors(r.text, "rf_item") == ["目录没有信息项 bogus"]
    assert console.count(SharingApplication) == before


# -- objections (异议) ----------------------------------------------------------------------------

ID_NUMBER = "370202199001011234"
MASKED = "370202********1234"


def _objection(console: Console, grant_id: int, *, claimed: dict[str, str] | None = None) -> int:
    """An objection of the consumer to a record under ``grant_id``, raised on ``today``."""
    with console.db() as s:
        obj = objections.raise_objection(
            s,
            console.settings,
            principal(console.consumer.resource_admin, console.consumer.id),
            ObjectionCreate(
                grant_id=grant_id,
                record_key=ID_NUMBER,
                claimed=claimed or {"xm": "张三丰"},
                evidence="户口簿首页及本人页复印件",
            ),
            today=console.today,
        )
        s.commit()
        return obj.id


def _stored_objection(objection_id: int, console: Console) -> Objection:
    with console.db() as s:
        obj = s.get(Objection, objection_id)
        assert obj is not None
        s.expunge_all()
        return obj


def test_objection_is_raised_from_a_held_grant(console: Console) -> None:
    grant_id = console.approve(console.apply(items=["sfzhm", "xm", "jzdz"]))
    client = console.signed_in(console.consumer.resource_admin)
    picker = client.get("/sharing/objections/new").text
    assert f'<option value="{grant_id}">' in picker
    assert 'action="/sharing/objections/new" class="card" id="objection-form"' not in picker
    form = client.get(f"/sharing/objections/new?grant_id={grant_id}").text
    for code in ("sfzhm", "xm", "jzdz"):
        assert f'name="claimed_{code}"' in form

    before = console.count(Objection)
    r = client.post(
        "/sharing/objections/new",
        data=_form(client, grant_id=str(grant_id), record_key=ID_NUMBER, claimed_xm=""),
    )
    assert r.status_code == 422
    assert "请至少填写一个信息项的正确值" in r.text
    assert _field_errors(r.text, "evidence") == ["请说明证明材料"]
    assert console.count(Objection) == before

    r = client.post(
        "/sharing/objections/new",
        data=_form(
            client,
            grant_id=str(grant_id),
            record_key=ID_NUMBER,
            claimed_xm="张三丰",
            claimed_jzdz="",
            evidence="户口簿首页及本人页复印件",
        ),
    )
    assert r.status_code == 303, r.text
    match = re.fullmatch(r"/sharing/objections/(\d+)\?done=objection_raised", r.headers["location"])
    assert match
    obj = _stored_objection(int(match.group(1)), console)
    said = objections.text_of(obj, console.settings)
    assert (obj.status, said.claimed, said.record_key) == (
        ObjectionStatus.OPEN,
        {"xm": "张三丰"},
        ID_NUMBER,
    )
    # Kept sealed (字段加密): the hub database holds neither the ID number nor the name.
    assert obj.sealed
    assert obj.record_key.startswith("~")
    assert ID_NUMBER not in obj.record_key
    assert "张三丰" not in str(obj.claimed)
    # 9/30 + 10 working days across the National Day holiday.
    assert (obj.raised_on, obj.answer_due) == (DAY, date(2026, 10, 20))
    page = client.get(r.headers["location"]).text
    assert "异议已提交" in page
    assert _countdown(page) == ("ok", "答复剩 10 个工作日")


def test_an_objection_to_a_grant_not_held_is_refused_beside_the_grant(console: Console) -> None:
    grant_id = console.approve(console.apply())
    stranger = console.signed_in(console.other.resource_admin)
    before = console.count(Objection)
    r = stranger.post(
        "/sharing/objections/new",
        data=_form(
            stranger,
            grant_id=str(grant_id),
            record_key=ID_NUMBER,
            claimed_xm="张三丰",
            evidence="户口簿首页及本人页复印件",
        ),
    )
    assert r.status_code == 422
    assert "只能对本部门所持授权的数据提出异议" in r.text
    assert console.count(Objection) == before


def test_the_record_key_is_masked_in_lists_and_whole_only_for_the_parties(
    console: Console,
) -> None:
    objection_id = _objection(console, console.approve(console.apply()))
    consumer = console.signed_in(console.consumer.resource_admin)
    provider = console.signed_in(console.provider.resource_admin)
    admin = console.signed_in(console.admin)
    lists = [
        consumer.get("/sharing/objections").text,
        provider.get("/sharing/objections/provider").text,
        admin.get("/sharing/objections/provider?status=all").text,
    ]
    for page in lists:
        row = _row(page, f"objection-{objection_id}")
        assert MASKED in row
        assert ID_NUMBER not in page
    for client in (consumer, provider):
        detail = client.get(f"/sharing/objections/{objection_id}").text
        assert f'id="record-key">{ID_NUMBER}<' in detail
    detail = admin.get(f"/sharing/objections/{objection_id}").text
    assert f'id="record-key">{MASKED}<' in detail
    assert ID_NUMBER not in detail


def test_a_department_not_party_to_an_objection_gets_404(console: Console) -> None:
    objection_id = _objection(console, console.approve(console.apply()))
    stranger = console.signed_in(console.other.resource_admin)
    r = stranger.get(f"/sharing/objections/{objection_id}")
    assert r.status_code == 404
    assert "不存在" in r.text
    r = stranger.post(
        f"/sharing/objections/{objection_id}/reject", data=_form(stranger, reason="数据无误")
    )
    assert r.status_code == 404
    assert f"objection-{objection_id}" not in stranger.get("/sharing/objections").text
    assert (
        f"objection-{objection_id}"
        not in stranger.get("/sharing/objections/provider?status=all").text
    )
    assert _stored_objection(objection_id, console).status is ObjectionStatus.OPEN


def test_only_the_provider_sees_the_answer_forms_of_an_objection(console: Console) -> None:
    objection_id = _objection(console, console.approve(console.apply()))
    provider = console.signed_in(console.provider.resource_admin)
    page = provider.get(f"/sharing/objections/{objection_id}").text
    assert f'action="/sharing/objections/{objection_id}/accept' in page
    assert f'action="/sharing/objections/{objection_id}/reject' in page
    for who in (console.consumer.resource_admin, console.admin):
        client = console.signed_in(who)
        page = client.get(f"/sharing/objections/{objection_id}").text
        assert "/accept" not in page
        assert "/reject" not in page
        assert "等待数据提供部门答复" in page
    consumer = console.signed_in(console.consumer.resource_admin)
    r = consumer.post(
        f"/sharing/objections/{objection_id}/accept", data=_form(consumer, answer="自行确认")
    )
    assert r.status_code == 403
    assert "只有数据提供部门可以答复异议" in r.text
    assert _stored_objection(objection_id, console).status is ObjectionStatus.OPEN


def test_rejecting_without_a_reason_shows_the_chinese_error_and_changes_nothing(
    console: Console,
) -> None:
    objection_id = _objection(console, console.approve(console.apply()))
    client = console.signed_in(console.provider.resource_admin)
    r = client.post(f"/sharing/objections/{objection_id}/reject", data=_form(client, reason=" "))
    assert r.status_code == 422
    reject = _section(r.text, "reject")
    assert "不予更正须说明理由和依据" in reject
    assert "has-error" in reject
    obj = _stored_objection(objection_id, console)
    assert (obj.status, obj.answered_on, obj.answer, obj.archived_at) == (
        ObjectionStatus.OPEN,
        None,
        "",
        None,
    )
    with console.db() as s:
        actions = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_type == "sharing_objection")
            .where(AuditEntry.object_id == str(objection_id))
        ).all()
    assert actions == ["sharing.objection.raise"]

    r = client.post(
        f"/sharing/objections/{objection_id}/reject",
        data=_form(client, reason="经核对户籍原始档案，姓名登记无误"),
    )
    assert (r.status_code, r.headers["location"]) == (
        303,
        f"/sharing/objections/{objection_id}?done=objection_rejected",
    )
    obj = _stored_objection(objection_id, console)
    assert (obj.status, obj.answer) == (
        ObjectionStatus.REJECTED,
        "经核对户籍原始档案，姓名登记无误",
    )
    consumer = console.signed_in(console.consumer.resource_admin).get(r.headers["location"]).text
    assert "理由：经核对户籍原始档案，姓名登记无误" in consumer
    timeline = _section(consumer, "timeline")
    assert "不予更正" in timeline
    assert "归档" in timeline


def test_accepting_corrects_to_the_claimed_values_unless_changed(console: Console) -> None:
    objection_id = _objection(
        console,
        console.approve(console.apply(items=["sfzhm", "xm", "jzdz"])),
        claimed={"xm": "张三丰", "jzdz": "青岛市市南区香港中路1号"},
    )
    client = console.signed_in(console.provider.resource_admin)
    accept = _section(client.get(f"/sharing/objections/{objection_id}").text, "accept")
    assert 'name="correction_xm" value="张三丰"' in accept  # defaults to the claimed value
    r = client.post(
        f"/sharing/objections/{objection_id}/accept",
        data=_form(client, correction_xm="", correction_jzdz="", answer=""),
    )
    assert r.status_code == 422
    accept = _section(r.text, "accept")
    assert "请至少填写一项更正后的值" in accept
    assert "请填写答复意见" in accept
    assert _stored_objection(objection_id, console).status is ObjectionStatus.OPEN

    r = client.post(
        f"/sharing/objections/{objection_id}/accept",
        data=_form(
            client,
            correction_xm="张三丰",
            correction_jzdz="青岛市市南区香港中路1号甲",
            answer="经核实登记有误，已在户籍系统中更正",
        ),
    )
    assert r.status_code == 303
    obj = _stored_objection(objection_id, console)
    assert "青岛市" not in str(obj.correction)
    assert (obj.status, objections.text_of(obj, console.settings).correction, obj.answered_on) == (
        ObjectionStatus.ACCEPTED,
        {"xm": "张三丰", "jzdz": "青岛市市南区香港中路1号甲"},
        DAY,
    )
    page = client.get(r.headers["location"]).text
    assert "/accept" not in page
    assert "确认异议，由数源部门更正" in _section(page, "timeline")
    assert "青岛市市南区香港中路1号甲" in _section(page, "objection")

    # The correction arrives through the exchange: the objection is archived.
    with console.db() as s:
        stored = s.get(Objection, objection_id)
        assert stored is not None
        stored.status, stored.corrected_seq = ObjectionStatus.CORRECTED, 7
        stored.archived_at = datetime(2026, 10, 9, 2, 0, tzinfo=UTC)
        s.commit()
    timeline = _section(client.get(f"/sharing/objections/{objection_id}").text, "timeline")
    assert "更正数据经交换到达共享信息库（数据包序号 7）" in timeline
    assert "2026-10-09 10:00" in timeline
    assert "归档" in timeline


def test_overdue_objections_are_red_and_come_first(console: Console) -> None:
    provider = console.department("自然资源局")
    resource_id = console.published(provider, name="不动产登记信息")
    grant_id = console.approve(console.apply(resource_id=resource_id))
    console.today = date(2026, 9, 21)
    early = _objection(console, grant_id)  # due 10/12 (9/21 + 10 working days)
    console.today = DAY
    later = _objection(console, grant_id)  # due 10/20
    console.today = date(2026, 10, 13)
    page = console.signed_in(provider.resource_admin).get("/sharing/objections/provider").text
    assert re.findall(r'<tr id="objection-(\d+)">', page) == [str(early), str(later)]
    level, text = _countdown(_row(page, f"objection-{early}"))
    assert (level, text) == ("overdue", "答复已超期 1 个工作日")
    assert "tag-danger" in _countdown_classes(_row(page, f"objection-{early}"))
    assert _countdown(_row(page, f"objection-{later}")) == ("ok", "答复剩 5 个工作日")


# -- shared stores (共享信息库) --------------------------------------------------------------------


def _api(console: Console, username: str) -> TestClient:
    """The hub's API with a bearer token, as a department system or script calls it."""
    client = TestClient(console.app)
    r = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return client


def _node(console: Console, dept: Dept) -> int:
    r = _api(console, console.admin).post(
        "/api/v1/exchange/nodes", json={"name": unique("node-"), "department_id": dept.id}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _provider_task(console: Console, resource_id: int, dept: Dept | None = None) -> int:
    """A provider task of the resource on a node of its department (the node never runs)."""
    r = _api(console, console.admin).post(
        "/api/v1/exchange/tasks",
        json={
            "name": "人口信息发送",
            "kind": "provider",
            "node_id": _node(console, dept or console.provider),
            "resource_id": resource_id,
            "config": {"source": "biz", "table": "person", "key": ["id"], "mode": "snapshot"},
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _store_form(client: TestClient, resource_id: int, task_id: int, **overrides: Any) -> Any:
    return _form(
        client,
        **{
            "resource_id": str(resource_id),
            "source_task_id": str(task_id),
            "map_col": ["id_no", "name", "", ""],
            "map_item": ["sfzhm", "xm", "jzdz", "djrq"],
            "key_item": "sfzhm",
            "verify_rules": "",
            **overrides,
        },
    )


PRESENCE_RULE = {
    "name": "registered",
    "label": "登记状态",
    "kind": "presence",
    "present": "已登记",
    "absent": "未登记",
}


def test_provider_sets_up_a_shared_store_from_its_provider_task(console: Console) -> None:
    resource_id = console.published(console.provider, name="常住人口信息")
    task_id = _provider_task(console, resource_id)
    client = console.signed_in(console.provider.resource_admin)
    picker = client.get("/sharing/stores").text
    assert f'<option value="{resource_id}">' in picker
    form = client.get(f"/sharing/stores?resource_id={resource_id}").text
    assert f'<option value="{task_id}">' in form
    assert form.count('name="map_col"') == 4  # one row per item of the entry
    assert '<option value="sfzhm" selected>' in form  # the key item is preselected

    r = client.post(
        "/sharing/stores",
        data=_store_form(
            client,
            resource_id,
            task_id,
            verify_rules=json.dumps([PRESENCE_RULE]),
        ),
    )
    assert r.status_code == 303, r.text
    with console.db() as s:
        store = s.scalar(select(SharedStore).where(SharedStore.resource_id == resource_id))
        assert store is not None
        assert (store.source_task_id, store.key_item, store.mapping) == (
            task_id,
            "sfzhm",
            {"id_no": "sfzhm", "name": "xm"},
        )
        store_id = store.id
    page = client.get(r.headers["location"]).text
    assert "共享信息库已建立" in page
    row = _row(page, f"store-{store_id}")
    assert f'href="/exchange/tasks/{task_id}"' in row
    assert "常住人口信息" in row
    assert "尚未入库" in row
    assert "登记状态" in row
    # The entry is no longer offered for a second store.
    assert f'<option value="{resource_id}">' not in client.get("/sharing/stores").text


def test_store_form_refuses_an_unknown_item_and_bad_rules_in_chinese(console: Console) -> None:
    resource_id = console.published(console.provider, name="暂住人口信息")
    task_id = _provider_task(console, resource_id)
    client = console.signed_in(console.provider.resource_admin)
    before = console.count(SharedStore)
    r = client.post(
        "/sharing/stores",
        data=_store_form(client, resource_id, task_id, map_item=["sfzhm", "bogus", "", ""]),
    )
    assert r.status_code == 422
    mapping = _field_errors(r.text, "map_col")
    assert mapping == ["目录没有信息项 bogus"]
    assert "字段映射：目录没有信息项 bogus" in r.text

    r = client.post(
        "/sharing/stores",
        data=_store_form(client, resource_id, task_id, verify_rules='[{"name": "x",'),
    )
    assert r.status_code == 422
    assert _field_errors(r.text, "verify_rules") == ["不是有效的 JSON（第 1 行第 15 列）"]
    r = client.post(
        "/sharing/stores",
        data=_store_form(
            client,
            resource_id,
            task_id,
            verify_rules='[{"name": "zt", "kind": "status", "item": "nosuch", "values": {}}]',
        ),
    )
    assert r.status_code == 422
    assert _field_errors(r.text, "verify_rules") == ["第 1 条规则 item：nosuch"]
    assert "核验规则引用了目录没有的信息项" in r.text
    r = client.post(
        "/sharing/stores", data=_store_form(client, resource_id, task_id, key_item="jzdz")
    )
    assert r.status_code == 422
    assert _field_errors(r.text, "key_item") == ["jzdz 未映射"]
    assert console.count(SharedStore) == before


def test_only_the_provider_or_the_platform_sets_up_a_store(console: Console) -> None:
    resource_id = console.published(console.provider, name="出生登记信息")
    task_id = _provider_task(console, resource_id)
    stranger = console.signed_in(console.consumer.resource_admin)
    assert f'<option value="{resource_id}">' not in stranger.get("/sharing/stores").text
    before = console.count(SharedStore)
    r = stranger.post("/sharing/stores", data=_store_form(stranger, resource_id, task_id))
    assert r.status_code == 422
    assert "只有目录提供部门或平台管理员可以建立共享信息库" in r.text
    assert console.count(SharedStore) == before
    registrar = console.signed_in(console.provider.registrar)
    assert registrar.get("/sharing/stores").status_code == 403
    admin = console.signed_in(console.admin)
    assert f'<option value="{resource_id}">' in admin.get("/sharing/stores").text
    r = admin.post("/sharing/stores", data=_store_form(admin, resource_id, task_id))
    assert r.status_code == 303
    assert console.count(SharedStore) == before + 1


# -- data-service call statistics -------------------------------------------------------------


def test_stats_page_shows_who_called_the_data_services(console: Console) -> None:
    provider = console.department("市场监管局")
    resource_id = console.published(provider, name="市场主体登记信息")
    users = [console.department("商务局"), console.department("税务局")]
    grants = [console.approve(console.apply(d, resource_id=resource_id)) for d in users]
    with console.db() as s:
        for dept, grant_id, calls in zip(users, grants, (40, 3), strict=True):
            client, _secret = add_api_client(
                s, console.settings, SYSTEM, name=unique("系统"), department_id=dept.id
            )
            s.flush()
            for day, factor in ((DAY - timedelta(days=1), 1), (DAY, 2)):
                s.add(
                    CallStat(
                        day=day,
                        client_id=client.id,
                        grant_id=grant_id,
                        calls=calls * factor,
                        keys=calls * factor * 10,
                        rows=calls * factor * 9,
                    )
                )
        s.commit()

    page = console.signed_in(provider.resource_admin).get("/sharing/stats?side=provider").text
    found = re.search(r'id="chart-calls">(.*?)</script>', page, re.S)
    assert found
    daily = json.loads(found.group(1))
    assert daily["type"] == "stack"
    assert daily["labels"][-2:] == ["09-29", "09-30"]
    assert len(daily["labels"]) == 30
    by_name = {s["name"]: s["values"][-2:] for s in daily["series"]}
    assert by_name == {users[0].name: [40, 80], users[1].name: [3, 6]}
    found = re.search(r'id="chart-call-keys">(.*?)</script>', page, re.S)
    assert found
    assert json.loads(found.group(1))["values"] == [(40 + 80 + 3 + 6) * 10]
    table = re.search(r'<table class="table" id="call-totals">(.*?)</table>', page, re.S)
    assert table
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>((?:<td[^>]*>\d+</td>){3})", table[1])
    assert [(dept, figures) for dept, _, figures in rows] == [
        (
            users[0].name,
            '<td class="num">120</td><td class="num">1200</td><td class="num">1080</td>',
        ),
        (users[1].name, '<td class="num">9</td><td class="num">90</td><td class="num">81</td>'),
    ]
    assert "近30天数据服务调用" in page
    # A consumer sees its own use only; a department not involved sees none of it.
    own = console.signed_in(users[1].resource_admin).get("/sharing/stats?side=mine").text
    assert users[1].name in _section_after(own, "call-totals")
    assert users[0].name not in _section_after(own, "call-totals")
    other = console.signed_in(console.other.resource_admin).get("/sharing/stats?side=provider").text
    assert "近30天没有数据服务调用" in other


def _section_after(html: str, table_id: str) -> str:
    found = re.search(rf'<table class="table" id="{table_id}">(.*?)</table>', html, re.S)
    assert found, f"no table {table_id}"
    return found.group(1)


# -- subscriptions (订阅) -----------------------------------------------------------------------


def test_subscription_grant_creates_its_receiving_task_from_my_grants(console: Console) -> None:
    consumer = console.department("教育局")
    resource_id = console.published(console.provider, name="户籍人口信息")
    source_id = _provider_task(console, resource_id)
    grant_id = console.approve(
        console.apply(consumer, resource_id=resource_id, mode="subscription")
    )
    client = console.signed_in(consumer.resource_admin)
    row = _row(client.get("/sharing/grants").text, f"grant-{grant_id}")
    assert "创建接收任务" in row
    assert "本部门还没有前置机" in row
    node_id = _node(console, consumer)
    _node(console, console.other)  # another department's node is not offered
    row = _row(client.get("/sharing/grants").text, f"grant-{grant_id}")
    assert re.findall(r'name="node_id".*?</select>', row, re.S)[0].count("<option") == 2
    assert f'<option value="{source_id}">' in row

    tasks_before = console.count(ExchangeTask)
    r = client.post(
        f"/sharing/grants/{grant_id}/subscription",
        data=_form(client, node_id=str(node_id), source_task_id=str(source_id), target="dst"),
    )
    assert r.status_code == 422
    assert "请填写目标表" in _row(r.text, f"grant-{grant_id}")
    assert console.count(ExchangeTask) == tasks_before

    r = client.post(
        f"/sharing/grants/{grant_id}/subscription",
        data=_form(
            client,
            node_id=str(node_id),
            source_task_id=str(source_id),
            target="dst",
            table="hj_person",
        ),
    )
    assert r.status_code == 303, r.text
    task_id = int(re.findall(r"task=(\d+)", r.headers["location"])[0])
    with console.db() as s:
        task = s.get(ExchangeTask, task_id)
        assert task is not None
        assert (task.kind, task.state, task.node_id) == ("subscriber", "running", node_id)
        assert (task.config["target"], task.config["table"]) == ("dst", "hj_person")
        # It receives from the grant's own provider task, made from the chosen one.
        made = s.get(ExchangeTask, task.source_task_id)
        chosen = s.get(ExchangeTask, source_id)
        assert made is not None
        assert chosen is not None
        assert made.id != source_id
        assert (made.kind, made.state, made.node_id) == ("provider", "running", chosen.node_id)
        assert made.config["source"] == chosen.config["source"]
    page = client.get(r.headers["location"]).text
    assert f'<a href="/exchange/tasks/{task_id}">#{task_id}</a> 已在本部门前置机上启动' in page
    assert f'href="/exchange/tasks/{task_id}"' in _row(page, f"grant-{grant_id}")


def test_query_grants_offer_no_receiving_task_and_strangers_cannot_make_one(
    console: Console,
) -> None:
    grant_id = console.approve(console.apply())  # mode query
    consumer = console.signed_in(console.consumer.resource_admin)
    assert "创建接收任务" not in _row(consumer.get("/sharing/grants").text, f"grant-{grant_id}")
    stranger = console.signed_in(console.other.resource_admin)
    r = stranger.post(
        f"/sharing/grants/{grant_id}/subscription",
        data=_form(stranger, node_id="1", source_task_id="1", target="dst", table="t"),
    )
    assert r.status_code == 403
    assert "只能为本部门所持的授权创建订阅" in r.text


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("consumer", "/sharing/objections"),
        ("consumer", "/sharing/objections?status=bogus&p=9"),
        ("consumer", "/sharing/objections/new"),
        ("consumer", "/sharing/objections/new?grant_id=999999"),
        ("provider", "/sharing/objections/provider"),
        ("provider", "/sharing/objections/provider?status=rejected"),
        ("provider", "/sharing/stores"),
        ("provider", "/sharing/stores?resource_id=999999"),
        ("admin", "/sharing/objections/provider?status=all"),
        ("admin", "/sharing/stores"),
    ],
)
def test_objection_and_store_pages_render(console: Console, who: str, path: str) -> None:
    user = {
        "consumer": console.consumer.resource_admin,
        "provider": console.provider.resource_admin,
        "admin": console.admin,
    }[who]
    r = console.signed_in(user).get(path)
    assert r.status_code == 200, r.text
    assert "</html>" in r.text


# -- holiday schedules (节假日安排) --------------------------------------------------------

NEW_YEARS_EVE_2098 = date(2098, 12, 31)  # every day counted from it falls in 2099


def test_an_unknown_year_shows_provisional_countdowns_until_the_admin_enters_it(
    console: Console,
) -> None:
    console.today = NEW_YEARS_EVE_2098
    app_id = console.apply(end_date="2099-06-30")
    with console.signed_in(console.consumer.resource_admin) as client:
        html = client.get(f"/sharing/applications/{app_id}").text
        assert _countdown(html) == ("ok", "答复剩 10 个工作日（预计）")
        assert client.get("/sharing/calendar").status_code == 403
    with console.signed_in(console.admin) as client:
        page = client.get("/sharing/calendar").text
        assert "节假日安排" in page
        assert "未录入，按周末推算（预计）" in _row(page, "year-2099")
        wrong = client.post(
            "/sharing/calendar",
            data=_form(client, year="2099", holidays="2099-01-01\n2099-02-30", workdays=""),
        )
        assert wrong.status_code == 422
        assert _field_errors(wrong.text, "holidays") == [
            "放假日期“2099-02-30”不是日期，应写作 2099-01-01 或区间 2099-02-15~2099-02-21"
        ]
        assert "未录入" in _row(client.get("/sharing/calendar").text, "year-2099")  # not stored
        done = client.post(
            "/sharing/calendar",
            data=_form(
                client, year="2099", holidays="2099-01-01 ~ 2099-01-03", workdays="2099-01-04"
            ),
        )
        assert done.status_code == 303
        page = client.get(done.headers["location"]).text
        assert "预计期限已按新安排重算" in page
        assert "控制台录入" in _row(page, "year-2099")
        html = client.get(f"/sharing/applications/{app_id}").text
        # Recounted: New Year's three days off, the Sunday worked; no longer provisional.
        assert console.application(app_id).answer_due == date(2099, 1, 15)
        assert _countdown(html) == ("ok", "答复剩 10 个工作日")
        removed = client.post("/sharing/calendar/2099/remove", data=_form(client))
        assert removed.status_code == 303
    assert console.application(app_id).answer_due == date(2099, 1, 14)
    assert console.application(app_id).answer_due_provisional
