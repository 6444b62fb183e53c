"""The built-in comparison templates (比对模板) and the demo data planted for them: each
definition is valid and names items the demo's listed entries have; ``instantiate``
resolves entry names to codes; the demo's tables hold exactly the planted cases, which a
job finds only by normalising keys the way the templates ask, and none of the decoys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare import db, demo_compare, demo_exchange
from govshare.basedata.models import BaseDatabase
from govshare.catalog.models import Resource
from govshare.compare import delivery
from govshare.compare.errors import InvalidJob
from govshare.compare.models import CompareJob
from govshare.compare.schemas import Definition
from govshare.compare.templates import TEMPLATES, instantiate
from govshare.demo import load_demo
from govshare.demo_basedata import make_sources
from govshare.demo_compare import PLANTED, Planting, expected_cases, make_tables
from govshare.demo_exchange import make_population
from govshare.demo_legalbase import make_registers
from govshare.exchange.models import ExchangeTask, TaskKind, TaskState
from govshare.rules.validators import citizen_id_problem
from govshare.security.models import Department
from govshare.sharing.models import GrantSubscription, SharedStore, SharingGrant
from tests.conftest import make_settings, migrated


def _refs(definition: Definition) -> list[str]:
    """Every ``alias.item`` a definition reads."""
    refs = [*definition.output, *definition.case_key]
    refs += [c.left for c in definition.conditions]
    refs += [c.right for c in definition.conditions if c.right]
    refs += [p.left for link in definition.links for p in link.on]
    refs += [f"{link.input}.{p.right}" for link in definition.links for p in link.on]
    return refs + ([definition.amount] if definition.amount else [])


def test_every_template_is_a_valid_definition_reading_only_its_inputs_items() -> None:
    assert [t.code for t in TEMPLATES] == list(PLANTED)
    for template in TEMPLATES:
        definition = Definition.model_validate(template.definition)
        items = {i.alias: set(i.items) for i in definition.inputs}
        assert len(items) == len(definition.inputs), template.code
        for ref in _refs(definition):
            alias, item = ref.split(".")
            assert item in items.get(alias, set()), (template.code, ref)
        # Each link joins an input to one named before it, the first input driving.
        aliases = [i.alias for i in definition.inputs]
        assert [link.input for link in definition.links] == aliases[1:], template.code
        for link in definition.links:
            assert all(
                aliases.index(p.left.split(".")[0]) < aliases.index(link.input) for p in link.on
            )
        assert definition.case_key[0].startswith(f"{aliases[0]}."), template.code
        assert template.name
        assert template.description


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """A hub with the demo and its exchange set up (the nodes are not started)."""
    settings = migrated(make_settings(tmp_path_factory.mktemp("demo") / "data"))
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    with db.session_scope(factory) as s:
        load_demo(s, "demo-password-1", settings=settings)
    with db.session_scope(factory) as s:
        demo_exchange.setup(s, settings, "http://127.0.0.1:9")
    session = factory()
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


def _listed(session: Session, name: str) -> Resource:
    found = list(
        session.scalars(select(Resource).where(Resource.name == name, Resource.listed.is_(True)))
    )
    assert len(found) == 1, name
    return found[0]


def test_templates_read_listed_demo_entries_that_have_their_items_and_data(
    demo: Session,
) -> None:
    stored = set(demo.scalars(select(SharedStore.resource_id)))
    bases = set(demo.scalars(select(BaseDatabase.resource_id)))
    for template in TEMPLATES:
        for entry in Definition.model_validate(template.definition).inputs:
            resource = _listed(demo, entry.resource)
            assert set(entry.items) <= {i.code for i in resource.items}, (
                template.code,
                entry.resource,
            )
            # A job reads a shared store or a base database: the demo feeds one of each.
            assert resource.id in stored | bases, (template.code, entry.resource)
        # A job joins an input by its store's key (查询键), the column it is indexed by.
        definition = Definition.model_validate(template.definition)
        named = {i.alias: i.resource for i in definition.inputs}
        for link in definition.links:
            resource = _listed(demo, named[link.input])
            store = demo.scalar(select(SharedStore).where(SharedStore.resource_id == resource.id))
            assert store is not None, named[link.input]
            assert [p.right for p in link.on] == [store.key_item], (template.code, link.input)


def test_instantiate_resolves_names_to_the_listed_entries_codes(demo: Session) -> None:
    for template in TEMPLATES:
        dept = demo.scalar(select(Department).where(Department.short_name == template.department))
        assert dept is not None, template.department
        job = instantiate(demo, template.code, dept.id)
        assert job.template == template.code
        assert job.name == template.name
        assert job.department_id == dept.id
        named = template.definition["inputs"]
        assert [i.resource for i in job.inputs] == [
            _listed(demo, i["resource"]).code for i in named
        ]
        assert job.links == Definition.model_validate(template.definition).links


def test_instantiate_refuses_an_unknown_template_and_a_missing_or_ambiguous_entry(
    demo: Session,
) -> None:
    with pytest.raises(InvalidJob) as unknown:
        instantiate(demo, "no_such_template", 1)
    assert unknown.value.details[0]["field"] == "template"

    certificates = _listed(demo, "残疾人证信息")
    other = _listed(demo, "居住证办理信息")
    try:
        certificates.name = "残疾人证信息（停用）"
        demo.flush()
        with pytest.raises(InvalidJob) as missing:
            instantiate(demo, "disability_quota", 1)
        assert "残疾人证信息" in missing.value.message
        assert missing.value.details[0]["field"] == "inputs.1.resource"

        certificates.name = "残疾人证信息"
        other.name = "残疾人证信息"
        demo.flush()
        with pytest.raises(InvalidJob) as ambiguous:
            instantiate(demo, "disability_quota", 1)
        assert "同名" in ambiguous.value.message
        assert certificates.code in ambiguous.value.details[0]["message"]
    finally:
        demo.rollback()


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Planting]:
    """The demo's business tables, without a hub."""
    base = tmp_path_factory.mktemp("tables")
    make_population(base / "gaj-business.db")
    make_sources(base)
    make_registers(base / "gaj-business.db", base / "scj-business.db", base / "swj-business.db")
    return base, make_tables(base)


def test_the_tables_hold_exactly_the_planted_cases_and_no_decoy(
    tables: tuple[Path, Planting],
) -> None:
    base, planting = tables
    found = expected_cases(base)
    assert set(found) == set(PLANTED)
    for code, count in PLANTED.items():
        assert len(found[code]) == count, code
        assert found[code] == planting.cases[code], code
        assert planting.decoys[code], code
        assert not found[code] & planting.decoys[code], code
    # Writing again (a restarted demo) adds nothing.
    make_tables(base)
    assert expected_cases(base) == found


def test_decoys_are_rows_a_job_reads_and_keys_need_normalising(
    tables: tuple[Path, Planting], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoys are there to be read (keys of the driving table), and a job comparing
    keys as written would get five of the six scenarios wrong."""
    base, planting = tables
    driving = {
        "dead_pension": ("rsj", "SELECT gmsfhm FROM ylfs", True),
        "unemployed_employed": ("rsj", "SELECT gmsfhm FROM syj", True),
        "housing_no_hukou": ("zjj", "SELECT gmsfhm FROM zfbz", True),
        "registered_untaxed": ("scj", "SELECT tyshxydm FROM scztdj", False),
        "migrant_no_permit": ("rsj", "SELECT gmsfhm FROM jydj", True),
        "disability_quota": ("cl", "SELECT tyshxydm FROM cjrjy", False),
    }
    for code, (dept, sql, id18) in driving.items():
        rows = demo_compare._rows(base / f"{dept}-business.db", sql)
        keys = {demo_compare.normal_key(k, id18=id18) for (k,) in rows}
        assert planting.decoys[code] <= keys, code
        assert planting.cases[code] <= keys, code

    # How the sources write keys: 15 digits, full-width with blanks, a small x.
    upgraded = demo_compare.normal_key("370202610101123")
    assert upgraded[:17] == "37020219610101123"
    assert citizen_id_problem(upgraded) is None
    assert demo_compare.normal_key(" ３７０２０２６１０１０１１２３\u3000") == upgraded
    assert demo_compare.normal_key("37020219610101123x") == "37020219610101123X"
    assert demo_compare.normal_key("91370202ma3c4x1k2b", id18=False) == "91370202MA3C4X1K2B"

    found = expected_cases(base)
    monkeypatch.setattr(demo_compare, "normal_key", lambda value, **_: value)
    as_written = expected_cases(base)
    differ = {code for code in PLANTED if as_written[code] != found[code]}
    assert differ == set(PLANTED) - {"unemployed_employed"}


def test_the_demo_delivers_the_pension_cases_to_the_departments_own_database(
    demo: Session,
) -> None:
    """交付 in the demo, set up as docs/compare.md sets it up by hand: the bureau's entry
    whose items are the copy's columns, its node's task reading the copy from the
    shared-store database, 人社's 订阅 grant and its subscription into its own database."""
    job = demo.scalar(select(CompareJob).where(CompareJob.template == "dead_pension"))
    assert job is not None
    assert job.deliver
    assert not any(
        j.deliver for j in demo.scalars(select(CompareJob).where(CompareJob.id != job.id))
    )
    entry = _listed(demo, demo_compare.DELIVERY_NAME)
    bureau = demo.get(Department, entry.provider_department_id)
    assert bureau is not None
    assert bureau.short_name == "大数据局"
    items = delivery.catalog_items(demo, job.definition)
    assert [(i.code, i.name) for i in entry.items] == [(i.code, i.name) for i in items]
    source = demo.scalar(
        select(ExchangeTask)
        .where(ExchangeTask.resource_id == entry.id, ExchangeTask.kind == TaskKind.PROVIDER)
        .order_by(ExchangeTask.id)
    )
    assert source is not None
    assert source.node.name == "大数据局前置机"
    assert source.config["table"] == delivery.table_name(job.id)
    assert source.config["cursor_column"] == delivery.VERSION
    grant = demo.scalars(select(SharingGrant).where(SharingGrant.resource_id == entry.id)).one()
    assert grant.consumer_department_id == job.department_id
    assert grant.modes == ["subscription"]
    subscription = demo.scalars(
        select(GrantSubscription).where(GrantSubscription.grant_id == grant.id)
    ).one()
    receiver = demo.get(ExchangeTask, subscription.subscriber_task_id)
    assert receiver is not None
    assert receiver.node.name == "人社前置机"
    assert receiver.config["table"] == demo_compare.DELIVERY_TABLE
    assert receiver.state is TaskState.RUNNING
