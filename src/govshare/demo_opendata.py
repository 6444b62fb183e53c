"""Demo scenery of the open-data portal's public participation (数据需求征集): a few
requests from the public, with votes, one answered by pointing at an open dataset, one
answered 计划开放 and one waiting for the platform to assign it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.opendata import datasets as ds
from govshare.opendata import demands
from govshare.opendata.demands import AnswerForm, DemandForm
from govshare.opendata.models import AnswerKind, OpenDemand, OpenDemandVote
from govshare.security.models import Department, User
from govshare.security.roles import Role
from govshare.security.service import Principal, permissions_for


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
                description="各国控、省控站点 2015 年以来逐时的 AQI 与六项污染物浓度，用于研究。",
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
