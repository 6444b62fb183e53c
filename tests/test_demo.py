"""Demo data: the seeds' departments and realistic entries a newcomer can explore, and a
sharing side with content on every sharing page."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from govshare import db
from govshare.basedata.assembly import ItemPlan, comparable
from govshare.catalog import search
from govshare.catalog.codes import ResourceStatus
from govshare.catalog.models import CodeEntry, InformationItem, Resource
from govshare.cli import _ensure_demo
from govshare.collab.models import Case, CaseStep
from govshare.config import Settings
from govshare.demo import demo_loaded, load_demo
from govshare.demo_basedata import PLANTED as PEOPLE
from govshare.demo_basedata import make_sources
from govshare.demo_exchange import make_population
from govshare.demo_legalbase import ENTERPRISES, make_registers
from govshare.demo_legalbase import PLANTED as LEGAL
from govshare.demo_opendata import refresh_demo_key
from govshare.mail import normal_address
from govshare.opendata.datasets import get_dataset
from govshare.opendata.developers import key_access
from govshare.opendata.models import AnswerKind, OpenDemand
from govshare.rules.clock import fixed_today
from govshare.rules.masking import MaskingRule
from govshare.rules.validators import credit_code_problem, division_code_problem
from govshare.rules.workdays import covers
from govshare.security.audit import journalled_calls, verify_chain
from govshare.security.models import ApiClient, AuditEntry, Department, User
from govshare.security.roles import Role
from govshare.sharing.models import (
    ApplicationStatus,
    CallStat,
    Objection,
    ObjectionStatus,
    SharingApplication,
    SharingGrant,
    UsageReport,
)
from tests.catalog.console import signed_in
from tests.factories import PASSWORD, World
from tests.live import start_live_hub


@pytest.mark.parametrize("backend", ["sqlite"])
def test_demo_loads_a_believable_city(fresh_settings: Settings) -> None:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    with db.session_scope(factory) as s:
        counts = load_demo(s, "demo-password-1", settings=fresh_settings)
    with db.session_scope(factory) as s:
        depts = list(s.scalars(select(Department)))
        assert len(depts) >= 20
        assert {"公安", "人社", "市场监管", "税务", "民政", "卫健", "残联", "不动产", "公积金"} <= {
            d.short_name for d in depts
        }
        assert all(credit_code_problem(d.credit_code) is None for d in depts)
        assert all(division_code_problem(d.division_code) is None for d in depts)
        # The reminders of late collaboration tasks reach each handler by mail.
        handlers = [u for u in s.scalars(select(User)) if Role.CASE_HANDLER.value in u.roles]
        assert len(handlers) >= 3
        assert all(normal_address(u.email or "") for u in handlers)
        # Each demo case's 办理环节 happened on its day, from its acceptance on (the first
        # case came in 30 days before the demo's day).
        cases = list(s.scalars(select(Case)))
        assert len(cases) == 2
        for case in cases:
            at = [
                step.at for step in s.scalars(select(CaseStep).where(CaseStep.case_id == case.id))
            ]
            assert min(at) == case.created_at
            assert max(at) - case.created_at < timedelta(hours=12)
        total = s.scalar(select(func.count()).select_from(Resource))
        assert total is not None
        assert 180 <= total <= 300
        assert counts["resources"] == total
        statuses = dict(
            s.execute(select(Resource.status, func.count()).group_by(Resource.status)).all()
        )
        assert statuses[ResourceStatus.PUBLISHED] > total // 2
        assert statuses[ResourceStatus.PENDING_REGISTRATION] > 0
        assert statuses[ResourceStatus.PENDING_PUBLICATION] > 0
        item_names = set(s.scalars(select(InformationItem.name)))
        # SPEC §4: birth, death, social insurance, enterprise and tax registration items.
        assert {
            "出生医学证明号",
            "新生儿姓名",
            "死亡证编号",
            "个人社保号",
            "险种类型",
            "统一社会信用代码",
            "法定代表人",
            "登记机关",
            "纳税人识别号",
        } <= item_names
        found = search.search(
            s, search.SearchQuery(q="出生医学证明", scope="all", viewer_is_admin=True)
        )
        assert any(r.name == "出生医学证明信息" for r in found.rows)
        # The open lawyers' register would publish names, never ID numbers in clear.
        masked = s.scalar(
            select(InformationItem.open_masking)
            .join(Resource)
            .where(Resource.name == "律师执业信息", InformationItem.code == "sfzhm")
        )
        assert masked == MaskingRule.ID_NUMBER
        # 数据需求征集: requests with votes, one answered by an open dataset of its own
        # department, one waiting for the platform to assign it.
        asked = list(s.scalars(select(OpenDemand)))
        assert counts["open_demands"] == len(asked) == 4
        assert all(d.votes > 0 for d in asked)
        opened = [d for d in asked if d.answer_kind is AnswerKind.OPENED]
        assert len(opened) == 1
        assert opened[0].dataset_code is not None
        assert get_dataset(s, opened[0].dataset_code) is not None
        assert [d.department_id for d in asked].count(None) == 1
        assert verify_chain(s).intact
        # The open-data portal's demo developer: confirmed, a key, an approved application;
        # the key printed at start works and reaches that 有条件开放 dataset.
        assert counts["developers"] == 1
        developer = refresh_demo_key(s, fresh_settings, "demo-password-1")
        assert developer is not None
        assert developer.conditional is not None
        access = key_access(s, fresh_settings, developer.key)
        assert access is not None
        assert len(access.granted) == 1
    engine.dispose()


# A Wednesday of a year whose holidays chinesecalendar does not know: the demo must not
# lean on the day it was written nor on a known holiday schedule.
DEMO_DAY = date(2027, 6, 9)
SHARING_COUNTS = (SharingApplication, SharingGrant, CallStat, UsageReport, Objection, ApiClient)


def _chart(page: str, chart_id: str) -> dict[str, object]:
    found = re.search(rf'<script type="application/json" id="{chart_id}">(.*?)</script>', page)
    assert found, page
    return dict(json.loads(found.group(1)))


def _counts(settings: Settings) -> list[int | None]:
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as s:
        assert demo_loaded(s)
        counts = [s.scalar(select(func.count()).select_from(m)) for m in SHARING_COUNTS]
    engine.dispose()
    return counts


@pytest.mark.parametrize("backend", ["sqlite"])
def test_demo_sharing_has_every_state_on_any_day(fresh_settings: Settings) -> None:
    assert not covers(DEMO_DAY.year)
    settings = fresh_settings.model_copy(update={"admin_password": PASSWORD})
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    with fixed_today(DEMO_DAY):
        with db.session_scope(factory) as s:
            load_demo(s, PASSWORD, settings=settings)
        with db.session_scope(factory) as s:
            apps = list(s.scalars(select(SharingApplication)))
            assert {a.status for a in apps} == set(ApplicationStatus)
            waiting = [a for a in apps if a.status is ApplicationStatus.SUBMITTED]
            assert all(a.answer_due is not None for a in waiting)
            assert any(a.answer_due < DEMO_DAY for a in waiting if a.answer_due)  # overdue
            assert any(a.answer_due >= DEMO_DAY for a in waiting if a.answer_due)
            assert any(a.answer_due_provisional for a in waiting)  # 2027 is estimated
            assert all(a.submitted_on <= DEMO_DAY for a in apps)
            assert any(a.submitted_on < DEMO_DAY - timedelta(days=30) for a in apps)

            grants = list(s.scalars(select(SharingGrant)))
            masked = {code: rule for g in grants for code, rule in g.masking.items()}
            assert masked.get("xm") == "name"
            assert masked.get("lxdh") == "phone"
            # 联系电话 is marked 敏感 in the catalog: no grant shows it in the clear.
            phones = [g for g in grants if "lxdh" in g.items]
            assert phones
            assert all(g.masking.get("lxdh") == "phone" for g in phones)
            assert s.scalars(
                select(InformationItem.sensitive).where(InformationItem.code == "lxdh")
            ).all() == [True]

            stats = list(s.scalars(select(CallStat)))
            days = {c.day for c in stats}
            assert max(days) == DEMO_DAY
            assert (max(days) - min(days)).days > 14
            # Each call counted is a call audited, as the call journal writes them.
            audited = [
                call
                for e in s.scalars(
                    select(AuditEntry).where(
                        AuditEntry.action.in_(["data.lookup", "data.verify", "data.query"])
                    )
                )
                for call in journalled_calls(e.after)
            ]
            assert sum(c.calls for c in stats) == len(audited)
            assert audited
            # each call keeps the day it stands for, though written as the demo loads
            assert {c["at"][:10] for c in audited} >= {str(DEMO_DAY)}

            reports = list(s.scalars(select(UsageReport)))
            assert len({r.reported_at.strftime("%Y-%m") for r in reports}) >= 2

            objections = {o.status: o for o in s.scalars(select(Objection))}
            assert ObjectionStatus.OPEN in objections
            closed = objections[ObjectionStatus.REJECTED]
            assert closed.archived_at is not None

            consumers = {a.consumer_department_id for a in apps}
            with_client = set(s.scalars(select(ApiClient.department_id)))
            assert consumers <= with_client

            tables = {
                tuple(row)
                for row in s.execute(
                    select(InformationItem.name, InformationItem.code_table).where(
                        InformationItem.name.in_(["性别", "民族"])
                    )
                )
            }
            assert tables == {("性别", "GB/T 2261.1"), ("民族", "GB/T 3304")}
            ethnic = dict(
                s.execute(
                    select(CodeEntry.code, CodeEntry.label).where(
                        CodeEntry.table_name == "GB/T 3304"
                    )
                ).all()
            )
            assert ethnic["01"] == "汉族"
            assert ethnic["56"] == "基诺族"
            sexes = set(
                s.scalars(select(CodeEntry.code).where(CodeEntry.table_name == "GB/T 2261.1"))
            )
            assert {"1", "2"} <= sexes
            assert verify_chain(s).intact
        engine.dispose()

        hub = start_live_hub(settings)
        hub._admin, hub._auditor = "admin", "auditor"  # type: ignore[attr-defined]
        world = World(hub)
        try:
            with signed_in(world, "rsj_res") as c:  # 人社, a consumer
                page = c.get("/sharing/applications?status=all").text
                assert "常住人口基本信息" in page
                assert "已提供" in page
                usage = c.get("/sharing/usage?side=mine").text
                assert "用于社会保险参保登记时核对参保人身份与户籍信息" in usage
                assert "待答复" in c.get("/sharing/objections").text
            with signed_in(world, "bdc_res") as c:  # 不动产, the overdue application's provider
                assert "答复已超期" in c.get("/sharing/queue").text
            with signed_in(world, "gaj_res") as c:  # 公安, whose population data is called
                stats = c.get("/sharing/stats?side=provider").text
                calls = _chart(stats, "chart-calls")
                series = calls["series"]
                assert isinstance(series, list)
                assert {s["name"] for s in series} == {
                    "青岛市人力资源和社会保障局",
                    "青岛市民政局",
                }
                values = [v for s in series for v in s["values"]]
                days = len(calls["labels"])  # type: ignore[arg-type]
                busy = {i % days for i, v in enumerate(values) if v}
                assert len(busy) > 14
                assert _chart(stats, "chart-months")["labels"]
                assert _chart(stats, "chart-applications")["labels"]
            with signed_in(world, "admin") as c:
                disputes = c.get("/sharing/disputes").text
                assert "待裁决（1）" in disputes
                assert "住房公积金缴存信息" in disputes
                assert "已裁决（1）" in disputes
        finally:
            hub.stop()
            hub.session_factory.kw["bind"].dispose()

        # A second start finds the demo loaded and seeds nothing more.
        before = _counts(settings)
        _ensure_demo(settings)
        assert _counts(settings) == before


def test_demo_sources_plant_exactly_the_counted_defects(tmp_path: Path) -> None:
    """The business tables the demo nodes read hold the planted disagreements in the
    numbers ``PLANTED`` gives, compared the way 多元校核 compares them (blanks, full-width
    forms and date spellings do not count), and valid codes everywhere else. The running
    demo's counts are checked by tests/e2e/test_console_browser.py."""
    make_population(tmp_path / "gaj-business.db")
    make_sources(tmp_path)
    make_registers(
        tmp_path / "gaj-business.db", tmp_path / "scj-business.db", tmp_path / "swj-business.db"
    )

    def rows(db: str, sql: str) -> dict[str, str]:
        con = sqlite3.connect(tmp_path / db)
        try:
            return {str(k): str(v) for k, v in con.execute(sql)}
        finally:
            con.close()

    def differ(item: ItemPlan, mine: dict[str, str], theirs: dict[str, str]) -> set[str]:
        return {
            k for k, v in theirs.items() if comparable(item, v) != comparable(item, mine.get(k))
        }

    name = ItemPlan(item="xm", store_id=1, column="xm")
    day = ItemPlan(item="csrq", store_id=1, column="csrq", is_date=True)
    births = rows("gaj-business.db", "SELECT gmsfhm, csrq FROM czrk")
    certified = rows("wjw-business.db", "SELECT xsesfzhm, csrq FROM csyxzm")
    assert len(differ(day, births, certified)) == PEOPLE["birth_conflicts"]
    assert sum(certified[k] != births[k] for k in certified) > PEOPLE["birth_conflicts"]
    police = rows("gaj-business.db", "SELECT gmsfhm, xm FROM czrk")
    insured = rows("rsj-business.db", "SELECT gmsfhm, xm FROM cbxx")
    assert len(differ(name, police, insured)) == PEOPLE["name_conflicts"]
    marriages = rows("mzj-business.db", "SELECT gmsfhm, hyzk FROM hyxx")
    assert marriages.keys() <= police.keys()
    assert set(marriages.values()) <= {"20", "30", "40"}

    registered = rows("scj-business.db", "SELECT tyshxydm, qymc FROM scztdj")
    taxed = rows("swj-business.db", "SELECT tyshxydm, nsrmc FROM swdj")
    assert len(registered) == ENTERPRISES
    assert all(credit_code_problem(c) is None for c in registered)
    broken = {c for c in taxed if credit_code_problem(c)}
    assert len(broken) == LEGAL["invalid_codes"]
    assert all(credit_code_problem(c) == "统一社会信用代码校验位不正确" for c in broken)
    conflicts = differ(ItemPlan(item="qymc", store_id=1, column="qymc"), registered, taxed)
    assert len(conflicts) == LEGAL["name_conflicts"]
    assert broken <= conflicts
    # Full-width brackets and blanks are planted too, and are no conflicts.
    assert sum(taxed[k] != registered[k] for k in taxed if k in registered) > len(conflicts)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_demo_declares_each_departments_duties(fresh_settings: Settings) -> None:
    from govshare.catalog.models import CatalogChangeEvent, ChangeKind, DepartmentDuty

    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    with fixed_today(DEMO_DAY):
        with db.session_scope(factory) as s:
            counts = load_demo(s, PASSWORD, settings=fresh_settings)
        with db.session_scope(factory) as s:
            duties = list(s.scalars(select(DepartmentDuty)))
            events = list(s.scalars(select(CatalogChangeEvent)))
            departments = list(s.scalars(select(Department)))
            per_department = {
                d.id: [x for x in duties if x.department_id == d.id] for d in departments
            }
            assert all(3 <= len(v) <= 7 for v in per_department.values()), per_department
            assert counts["duties"] == len(duties)
            linked = [d for d in duties if d.resources]
            assert len(linked) > len(duties) * 2 // 3
            assert all(
                r.provider_department_id == d.department_id for d in linked for r in d.resources
            )
            assert any(d.withdrawn_on is not None for d in duties)
            assert {e.kind for e in events} == {ChangeKind.DUTY, ChangeKind.SYSTEM}
            assert all(e.changed_on <= DEMO_DAY for e in events)
            # A deadline still running and one already past, for the timeliness indicator.
            assert any(e.catalog_due >= DEMO_DAY for e in events)
            assert any(e.catalog_due < DEMO_DAY for e in events)
    engine.dispose()
