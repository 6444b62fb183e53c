"""Demo scenery of the open-data portal's public side.

- 数据需求征集: a few requests from the public, with votes, one answered by pointing at
  an open dataset, one answered 计划开放 and one waiting for the platform to assign it.
- The developer centre: one confirmed developer with an API key and an approved
  application for a 有条件开放 dataset, so a first-run user can call the row API and the
  CKAN API with a key and see the console's 开放数据申请 page with content. The key's
  secret is stored only hashed, so the demo gives the key a new secret on every start
  (:func:`refresh_demo_key`) and ``govshare demo`` prints it with the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.db import utcnow
from govshare.opendata import datasets as ds
from govshare.opendata import demands
from govshare.opendata import developers as dev
from govshare.opendata.demands import AnswerForm, DemandForm
from govshare.opendata.models import (
    AnswerKind,
    OpenApiKey,
    OpenDemand,
    OpenDemandVote,
    OpenDeveloper,
)
from govshare.security.models import Department, User
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal

DEMO_EMAIL = "developer@example.cn"
DEMO_KEY_NAME = "演示密钥"


@dataclass(frozen=True)
class DemoDeveloper:
    email: str
    key: str  # the clear secret, fresh on every start
    conditional: str | None  # the slug of the approved 有条件开放 dataset


def seed_developer(session: Session, settings: Settings, password: str) -> int:
    """The demo developer (the demo accounts' password), a key and, when the catalog has a
    有条件开放 dataset, an application its department's resource admin approved."""
    now = utcnow()
    developer, _link = dev.register(
        session,
        email=DEMO_EMAIL,
        password=password,
        base_url=f"http://{settings.host}:{settings.port}",
        now=now,
    )
    developer.confirmed_at = now
    key, _secret = dev.create_key(session, settings, developer, name=DEMO_KEY_NAME, now=now)
    found = ds.search_datasets(
        session, ds.DatasetQuery(filters=[ds.Filter("open_type", "conditional")], rows=1)
    )
    if not found.datasets:
        return 0
    dataset = found.datasets[0]
    application = dev.apply(
        session,
        settings,
        developer,
        dataset_key=dataset.slug,
        key_id=key.id,
        purpose="演示：用于学术研究，遵守开放条件，不再分发",
        now=now,
    )
    staff = session.scalars(
        select(User).where(User.department_id == dataset.publisher.id).order_by(User.id)
    )
    approver = next((u for u in staff if Role.RESOURCE_ADMIN.value in u.roles), None)
    if approver is None:
        return 1
    principal = Principal(
        kind="user",
        name=approver.username,
        department_id=approver.department_id,
        permissions=permissions_for(approver.roles),
        user_id=approver.id,
        roles=tuple(approver.roles),
    )
    dev.decide(
        session, principal, application.id, approve=True, reason="符合开放条件（演示）", now=now
    )
    return 1


def refresh_demo_key(session: Session, settings: Settings, password: str) -> DemoDeveloper | None:
    """A new secret for the demo key (and the demo password for the developer)."""
    developer = session.scalar(select(OpenDeveloper).where(OpenDeveloper.email == DEMO_EMAIL))
    if developer is None:
        return None
    dev.set_password(developer, password)
    key = session.scalar(
        select(OpenApiKey).where(
            OpenApiKey.developer_id == developer.id, OpenApiKey.name == DEMO_KEY_NAME
        )
    )
    if key is None:
        return None
    secret = dev.rotate_key_secret(settings, key)
    key.revoked_at = None
    approved = dev.list_own_applications(session, developer.id)
    slug = next(
        (v.dataset_slug for v in approved if v.application.status.value == "approved"), None
    )
    return DemoDeveloper(DEMO_EMAIL, secret, slug)


def _answerer(session: Session, department_id: int) -> Principal:
    """The department's resource administrator (信息资源管理员), who answers requests."""
    user = next(
        u
        for u in session.scalars(select(User).where(User.department_id == department_id))
        if Role.RESOURCE_ADMIN.value in u.roles
    )
    return Principal(
        kind="user",
        name=user.username,
        department_id=department_id,
        roles=(Role.RESOURCE_ADMIN.value,),
        permissions=permissions_for([Role.RESOURCE_ADMIN]),
    )


def seed_open_demands(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Requests and votes as a month of public use would leave them; returns how many."""
    now = now or datetime.now(UTC)
    by_name = {d.name: d for d in session.scalars(select(Department))}
    opened = session.execute(
        ds.open_select(Resource.code, Resource.provider_department_id).limit(1)
    ).first()
    asked: list[tuple[DemandForm, int]] = [
        (
            DemandForm(
                title="公交线路、站点及车辆实时到站数据",
                description="希望开放全市公交线路走向、站点坐标和车辆实时到站时间（接口），用于出行类应用。",
                department_id=by_name["青岛市交通运输局"].id,
                nickname="出行应用开发者",
            ),
            23,
        ),
        (
            DemandForm(
                title="全市中小学学区划分数据",
                description="各小学、初中对应的学区范围（街道、小区），每年招生前更新。",
                department_id=by_name["青岛市教育局"].id,
                nickname="市民李女士",
            ),
            41,
        ),
        (
            DemandForm(
                title="历年空气质量逐时监测数据",
                description="各监测站点 2015 年以来逐时的空气质量指数与六项污染物浓度。",
                nickname="高校研究组",
            ),
            9,
        ),
    ]
    dataset = ds.get_dataset(session, opened[0]) if opened is not None else None
    if opened is not None and dataset is not None:
        provider = opened[1]
        asked.append(
            (
                DemandForm(
                    title=f"{dataset.title}的全量数据及更新"[:100],
                    description="想要下载本数据集的全部记录并定期获取更新，用于公益地图。",
                    department_id=provider,
                    nickname="公益地图志愿者",
                ),
                5,
            )
        )
    made: list[OpenDemand] = []
    for i, (form, votes) in enumerate(asked):
        at = now - timedelta(days=20 - 4 * i)
        demand = demands.submit(
            session, form, demands.address_hash(settings.secret_key, f"demo-{i}"), at
        )
        session.execute(
            insert(OpenDemandVote),
            [
                {"demand_id": demand.id, "voter": f"demo-{i}-{v}", "created_at": at}
                for v in range(votes)
            ],
        )
        demand.votes = votes
        made.append(demand)
    transport = by_name["青岛市交通运输局"]
    demands.answer(
        session,
        _answerer(session, transport.id),
        made[0].id,
        AnswerForm(
            kind=AnswerKind.PLANNED,
            answer="线路与站点数据计划于下季度开放；实时到站数据涉及运营企业，正在协调。",
        ),
        now - timedelta(days=10),
    )
    if opened is not None and dataset is not None:
        demands.answer(
            session,
            _answerer(session, opened[1]),
            made[-1].id,
            AnswerForm(
                kind=AnswerKind.OPENED,
                answer="该数据已无条件开放，可下载或通过接口获取。",
                dataset=opened[0],
            ),
            now - timedelta(days=1),
        )
    return len(made)
