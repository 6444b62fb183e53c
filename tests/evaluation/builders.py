"""Builders for evaluation tests: departments, catalog entries, systems, applications,
objections, exchange tasks with packages and call statistics written straight into the
hub database with the dates a scenario needs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare import db
from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.catalog.models import Classification, InformationItem, InformationSystem, Resource
from govshare.config import Settings
from govshare.exchange.models import (
    ExchangeNode,
    ExchangePackage,
    ExchangeTask,
    TaskKind,
    TaskState,
)
from govshare.security.models import Department
from govshare.sharing.models import (
    ApplicationStatus,
    Objection,
    SharingApplication,
    SharingMode,
)

_n = itertools.count(1)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


@contextmanager
def session_for(settings: Settings) -> Iterator[Session]:
    engine = db.make_engine(settings)
    try:
        with db.session_scope(db.make_session_factory(engine, settings)) as s:
            yield s
    finally:
        engine.dispose()


def department(s: Session, name: str) -> Department:
    n = next(_n)
    d = Department(
        name=f"{name}{n}",
        short_name=name[:20],
        credit_code=f"11370200MB{n:08d}",
        division_code="370200",
        created_at=LONG_AGO,
    )
    s.add(d)
    s.flush()
    return d


def system(s: Session, dept: Department, **kw: Any) -> InformationSystem:
    sys = InformationSystem(
        department_id=dept.id,
        name=f"业务系统{next(_n)}",
        usage_frequency="daily",
        network="egov",
        created_at=LONG_AGO,
        **kw,
    )
    s.add(sys)
    s.flush()
    return sys


def entry(
    s: Session,
    dept: Department,
    *,
    status: ResourceStatus = ResourceStatus.PUBLISHED,
    abstract: str = "人口基础信息",
    items: int = 2,
    item_length: int | None = 18,
    updated_at: datetime = datetime(2026, 10, 1, tzinfo=UTC),
    system_id: int | None = None,
    update_cycle: str = "daily",
    sharing_type: str = "2",
    sharing_conditions: str = "仅用于法定职责",
) -> Resource:
    cls = s.scalars(select(Classification).where(Classification.code == "101001")).one()
    n = next(_n)
    r = Resource(
        code=f"101001/E{n:06d}",
        sequence=100000 + n,
        classification_id=cls.id,
        kind=ResourceKind.BASE,
        name=f"目录{n}",
        provider_department_id=dept.id,
        abstract=abstract,
        format="database",
        sharing_type=SharingType(sharing_type),
        sharing_conditions=sharing_conditions,
        update_cycle=update_cycle,
        source_system_id=system_id,
        status=status,
        listed=status is ResourceStatus.PUBLISHED,
        created_by="t",
        created_at=LONG_AGO,
        updated_at=updated_at,
    )
    s.add(r)
    s.flush()
    for i in range(items):
        s.add(
            InformationItem(
                resource_id=r.id,
                position=i,
                name=f"项{i}",
                code=f"x{i}",
                data_type="C",
                length=item_length,
            )
        )
    s.flush()
    return r


def application(
    s: Session,
    resource: Resource,
    consumer: Department,
    *,
    answer_due: date,
    answered_on: date | None,
    status: ApplicationStatus = ApplicationStatus.APPROVED,
    provide_due: date | None = None,
    provided_on: date | None = None,
) -> SharingApplication:
    a = SharingApplication(
        resource_id=resource.id,
        provider_department_id=resource.provider_department_id,
        consumer_department_id=consumer.id,
        applicant="t",
        purpose="办事",
        legal_basis="法规",
        mode=SharingMode.QUERY,
        users="窗口",
        end_date=date(2027, 12, 31),
        status=status,
        submitted_on=date(2026, 10, 20),
        answer_due=answer_due,
        answered_on=answered_on,
        provide_due=provide_due,
        provided_on=provided_on,
    )
    s.add(a)
    s.flush()
    return a


def objection(
    s: Session, resource: Resource, consumer: Department, *, due: date, answered: date | None
) -> Objection:
    o = Objection(
        resource_id=resource.id,
        consumer_department_id=consumer.id,
        provider_department_id=resource.provider_department_id,
        record_key="370202199001010011",
        evidence="证据",
        raised_by="t",
        raised_on=date(2026, 10, 25),
        answer_due=due,
        answered_on=answered,
    )
    s.add(o)
    s.flush()
    return o


def task(s: Session, resource: Resource, packages: list[datetime]) -> ExchangeTask:
    n = next(_n)
    node = ExchangeNode(
        name=f"节点{n}",
        department_id=resource.provider_department_id,
        sig_alg="ed25519",
        cipher="aes-gcm",
    )
    s.add(node)
    s.flush()
    t = ExchangeTask(
        name=f"发送{n}",
        kind=TaskKind.PROVIDER,
        node_id=node.id,
        resource_id=resource.id,
        state=TaskState.RUNNING,
        created_by="t",
        created_at=LONG_AGO,
    )
    s.add(t)
    s.flush()
    for seq, at in enumerate(packages, 1):
        s.add(
            ExchangePackage(
                task_id=t.id,
                seq=seq,
                digest="0" * 64,
                size=1,
                rows=1,
                created_at=at,
                received_at=at,
            )
        )
    s.flush()
    return t
