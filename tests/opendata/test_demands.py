"""数据需求征集: the public asks and votes without an account, under per-address limits;
the addressed department answers publicly; the platform assigns and hides. Over real
HTTP on a live hub (both backends), the rules themselves with an injected clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from govshare.errors import Forbidden, InvalidInput, NotFound, TooManyRequests
from govshare.opendata import demands
from govshare.opendata.demands import AnswerForm, DemandForm
from govshare.opendata.models import AnswerKind, DemandStatus, DeveloperMail, OpenDemand
from govshare.security.models import AuditEntry, User
from govshare.security.roles import Role
from govshare.security.service import Principal
from tests.catalog.console import csrf_of, signed_in
from tests.factories import Dept, World, unique
from tests.opendata.builders import OpenScene, open_scene
from tests.sharing.builders import principal

pytestmark = pytest.mark.xdist_group("opendata")
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def scene(hub: Any) -> OpenScene:
    return open_scene(World(hub))


def _loopback(world: World) -> str:
    return demands.address_hash(world.hub.settings.secret_key, LOOPBACK)


@pytest.fixture
def fresh_address(world: World) -> Iterator[str]:
    """This test's posts come from 127.0.0.1 like every other's: start its limits from
    nothing by removing the requests and votes earlier tests left under that address."""
    who = _loopback(world)
    with world.hub.db() as s:
        s.execute(delete(OpenDemand).where(OpenDemand.submitter == who))
        s.execute(delete(demands.OpenDemandVote).where(demands.OpenDemandVote.voter == who))
    return who


def _form(**overrides: Any) -> dict[str, str]:
    data = {
        "title": unique("公交实时到站数据"),
        "description": "希望开放公交线路、站点和车辆实时到站时间，用于出行应用。",
        "department_id": "",
        "nickname": "市民张先生",
        "contact": "zhang@example.com",
    }
    data.update(overrides)
    return data


def _ask(world: World, **overrides: Any) -> httpx.Response:
    with world.hub.client(follow_redirects=False) as c:
        return c.post("/open/demands/new", data=_form(**overrides))


def _created_id(r: httpx.Response) -> int:
    assert r.status_code == 303, r.text[:2000]
    found = re.fullmatch(r"/open/demands/(\d+)\?done=submitted", r.headers["location"])
    assert found, r.headers["location"]
    return int(found.group(1))


def _admin(world: World) -> Principal:
    with world.hub.db() as s:
        user = s.scalars(select(User).where(User.username == world.admin)).one()
        return principal(world.admin, user.department_id, Role.PLATFORM_ADMIN)


def _count(world: World) -> int:
    with world.hub.db() as s:
        return int(s.scalar(select(func.count()).select_from(OpenDemand)) or 0)


def _last_audit_id(world: World) -> int:
    """`fresh_address` deletes requests, and SQLite may then give a deleted request's id
    to a new one: a test looks only at the audit entries written after this mark."""
    with world.hub.db() as s:
        return int(s.scalar(select(func.max(AuditEntry.seq))) or 0)


# -- the public ----------------------------------------------------------------------------


def test_anyone_asks_votes_once_and_reads_the_answer(
    world: World, scene: OpenScene, fresh_address: str
) -> None:
    dept = scene.dept
    audited_before = _last_audit_id(world)
    r = _ask(world, department_id=str(dept.id))
    demand_id = _created_id(r)
    with world.hub.client() as c:
        page = c.get(f"/open/demands/{demand_id}?done=submitted").text
        assert "需求已提交" in page
        assert "市民张先生" in page
        assert "zhang@example.com" not in page  # the contact is for the department only
        assert dept.name in page
        assert 'id="votes">0<' in page
        listed = c.get("/open/demands", params={"department": dept.id}).text
        assert f"/open/demands/{demand_id}" in listed

    with world.hub.client(follow_redirects=False) as c:
        first = c.post(f"/open/demands/{demand_id}/vote")
        again = c.post(f"/open/demands/{demand_id}/vote")
    assert first.headers["location"].endswith("done=voted")
    assert again.headers["location"].endswith("done=already")
    with world.hub.db() as s:
        assert s.get(OpenDemand, demand_id).votes == 1  # type: ignore[union-attr]

    with signed_in(world, dept.resource_admin) as c:
        console = c.get("/open-demands").text
        assert f"/open-demands/{demand_id}" in console
        detail = c.get(f"/open-demands/{demand_id}").text
        assert "zhang@example.com" in detail
        r = c.post(
            f"/open-demands/{demand_id}/answer",
            data={
                "csrf_token": csrf_of(c),
                "kind": "opened",
                "answer": "该数据已在开放平台提供，每月更新。",
                "dataset": scene.open_plain["code"],
            },
        )
        assert r.status_code == 303, r.text[:2000]
    with world.hub.client() as c:
        page = c.get(f"/open/demands/{demand_id}").text
    assert "已开放" in page
    assert "该数据已在开放平台提供" in page
    assert f'href="/open/datasets/{scene.open_plain["slug"]}" id="answer-dataset"' in page
    with world.hub.db() as s:
        entry = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "open_demand.answer",
                AuditEntry.object_id == str(demand_id),
                AuditEntry.seq > audited_before,
            )
        ).one()
        assert entry.actor == dept.resource_admin


def test_an_asker_who_left_an_email_address_is_told_of_each_answer(
    world: World, scene: OpenScene, fresh_address: str
) -> None:
    """The answer is queued for mail (sent by the outbox, ``test_mailer``) to an e-mail
    contact only, once per answer; a phone number gets nothing."""
    dept = scene.dept
    mailed = _created_id(_ask(world, department_id=str(dept.id), contact="li@example.com"))
    phoned = _created_id(_ask(world, department_id=str(dept.id), contact="13800138000"))
    with signed_in(world, dept.resource_admin) as c:
        answers = [(mailed, "计划于下季度开放。"), (phoned, "计划开放。"), (mailed, "已排期。")]
        for demand_id, said in answers:
            r = c.post(
                f"/open-demands/{demand_id}/answer",
                data={"csrf_token": csrf_of(c), "kind": "planned", "answer": said},
            )
            assert r.status_code == 303, r.text[:2000]
    with world.hub.db() as s:
        mails = list(
            s.scalars(
                select(DeveloperMail)
                .where(DeveloperMail.demand_id.in_([mailed, phoned]))
                .order_by(DeveloperMail.id)
            )
        )
    assert [(m.demand_id, m.developer_id, m.to) for m in mails] == [
        (mailed, None, "li@example.com")
    ] * 2
    first, second = mails
    assert first.subject.startswith("您提出的数据需求已答复：公交实时到站数据")
    assert second.subject.startswith("您提出的数据需求答复已更新：")
    assert "答复结论：计划开放" in first.body
    assert "答复内容：计划于下季度开放。" in first.body
    assert f"答复部门：{dept.name}" in first.body
    assert "答复内容：已排期。" in second.body
    assert re.search(rf"查看详情：http://\S+/open/demands/{mailed}\n", first.body), first.body


def test_a_bad_request_is_refused_with_its_reasons_and_stores_nothing(
    world: World, fresh_address: str
) -> None:
    before = _count(world)
    r = _ask(world, title="短", contact="not-a-contact", department_id="99999999")
    assert r.status_code == 422
    assert "需求名称" in r.text
    assert "联系方式应为电子邮箱或 11 位手机号码" in r.text
    r = _ask(world, department_id="2147483647")
    assert r.status_code == 422
    assert "希望提供的部门不存在" in r.text
    r = _ask(world, department_id="abc")
    assert r.status_code == 422
    assert _count(world) == before


def test_the_address_limit_refuses_with_retry_after(world: World, fresh_address: str) -> None:
    for _ in range(demands.SUBMIT_PER_HOUR):
        _created_id(_ask(world))
    before = _count(world)
    r = _ask(world)
    assert r.status_code == 429
    assert "提交过于频繁" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 3600
    assert _count(world) == before


def test_a_post_from_another_site_is_refused(world: World, fresh_address: str) -> None:
    before = _count(world)
    with world.hub.client(follow_redirects=False) as c:
        r = c.post("/open/demands/new", data=_form(), headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        r = c.post("/open/demands/new", data=_form(), headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        r = c.post("/open/demands/new", data=_form(), headers={"Origin": world.hub.base_url})
        assert r.status_code == 303
    assert _count(world) == before + 1


def test_unknown_and_crafted_ids_answer_not_found(world: World) -> None:
    with world.hub.client(follow_redirects=False) as c:
        for path in ("/open/demands/99999999", "/open/demands/0", "/open/demands/1e3"):
            r = c.get(path)
            assert r.status_code in (404, 422), (path, r.status_code)
            assert "<html" in r.text
        assert c.post("/open/demands/99999999/vote").status_code == 404


# -- the console ---------------------------------------------------------------------------


def _stored(world: World, dept: Dept | None) -> int:
    with world.hub.db() as s:
        data = DemandForm(
            title=unique("需求"),
            description="需要这类数据用于研究与服务开发。",
            department_id=dept.id if dept else None,
        )
        return demands.submit(s, data, unique("addr"), NOW).id


def test_a_department_sees_and_answers_only_requests_addressed_to_it(
    world: World, scene: OpenScene
) -> None:
    mine = _stored(world, scene.dept)
    other = world.department("别的局")
    theirs = _stored(world, other)
    unassigned = _stored(world, None)
    with signed_in(world, scene.dept.resource_admin) as c:
        listed = c.get("/open-demands").text
        assert f"/open-demands/{mine}" in listed
        assert f"/open-demands/{theirs}" not in listed
        assert f"/open-demands/{unassigned}" not in listed
        assert c.get(f"/open-demands/{theirs}").status_code == 404
        r = c.post(
            f"/open-demands/{theirs}/answer",
            data={"csrf_token": csrf_of(c), "kind": "declined", "answer": "不属于本部门职责。"},
        )
        assert r.status_code == 404
        # Naming an open dataset of another department, or none, for 已开放 is refused.
        r = c.post(
            f"/open-demands/{mine}/answer",
            data={"csrf_token": csrf_of(c), "kind": "opened", "answer": "已经开放了。"},
        )
        assert r.status_code == 422
        assert "须指明一个已开放的数据集" in r.text
        r = c.post(
            f"/open-demands/{mine}/answer",
            data={
                "csrf_token": csrf_of(c),
                "kind": "opened",
                "answer": "已经开放了。",
                "dataset": scene.closed["code"],
            },
        )
        assert r.status_code == 422
    with world.hub.db() as s:
        assert s.get(OpenDemand, mine).status is DemandStatus.OPEN  # type: ignore[union-attr]
    # A registrar holds no sharing.read: the console's list is not theirs.
    with signed_in(world, scene.dept.registrar) as c:
        assert c.get("/open-demands").status_code == 403


def test_the_platform_assigns_hides_and_restores(world: World, scene: OpenScene) -> None:
    audited_before = _last_audit_id(world)
    unassigned = _stored(world, None)
    with signed_in(world, scene.dept.resource_admin) as c:
        r = c.post(
            f"/open-demands/{unassigned}/hide", data={"csrf_token": csrf_of(c), "reason": "重复"}
        )
        assert r.status_code == 403
    with signed_in(world, world.admin) as c:
        r = c.post(
            f"/open-demands/{unassigned}/assign",
            data={"csrf_token": csrf_of(c), "department_id": str(scene.dept.id)},
        )
        assert r.status_code == 303
        r = c.post(
            f"/open-demands/{unassigned}/hide", data={"csrf_token": csrf_of(c), "reason": ""}
        )
        assert r.status_code == 422
        assert "屏蔽须写明理由" in r.text
        r = c.post(
            f"/open-demands/{unassigned}/hide",
            data={"csrf_token": csrf_of(c), "reason": "含个人信息"},
        )
        assert r.headers["location"].endswith("done=hidden")
    with world.hub.client() as c:
        assert c.get(f"/open/demands/{unassigned}").status_code == 404
        assert c.post(f"/open/demands/{unassigned}/vote").status_code == 404
        assert f"/open/demands/{unassigned}" not in c.get("/open/demands?sort=new").text
    with signed_in(world, scene.dept.resource_admin) as c:
        assert c.get(f"/open-demands/{unassigned}").status_code == 404
    with signed_in(world, world.admin) as c:
        r = c.post(f"/open-demands/{unassigned}/hide", data={"csrf_token": csrf_of(c)})
        assert r.headers["location"].endswith("done=restored")
    with world.hub.db() as s:
        d = s.get(OpenDemand, unassigned)
        assert d is not None
        assert d.status is DemandStatus.OPEN
        assert d.department_id == scene.dept.id
        actions = set(
            s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.object_type == "open_demand",
                    AuditEntry.object_id == str(unassigned),
                    AuditEntry.seq > audited_before,
                )
            )
        )
    assert actions == {"open_demand.assign", "open_demand.hide", "open_demand.restore"}


# -- the rules, with the clock injected -----------------------------------------------------


def test_limits_count_per_address_and_window(world: World, scene: OpenScene) -> None:
    who = unique("addr").ljust(20, "0")
    data = DemandForm(title="地铁客流数据", description="按站点和小时统计的进出站客流。")
    with world.hub.db() as s:
        for i in range(demands.SUBMIT_PER_HOUR):
            demands.submit(s, data, who, NOW + timedelta(minutes=i))
        with pytest.raises(TooManyRequests) as refused:
            demands.submit(s, data, who, NOW + timedelta(minutes=30))
        # The oldest of the hour leaves the window 30 minutes later.
        assert refused.value.retry_after == 30 * 60 + 1
        demands.submit(s, data, unique("other"), NOW + timedelta(minutes=30))
        at = NOW + timedelta(hours=1, minutes=1)
        for i in range(demands.SUBMIT_PER_DAY - demands.SUBMIT_PER_HOUR):
            demands.submit(s, data, who, at + timedelta(hours=i))
        with pytest.raises(TooManyRequests, match="每天"):
            demands.submit(s, data, who, at + timedelta(hours=20))
        demands.submit(s, data, who, NOW + timedelta(days=1, minutes=1))


def test_votes_limit_per_address(world: World) -> None:
    voter = unique("voter")
    ids = [_stored(world, None) for _ in range(demands.VOTES_PER_HOUR + 1)]
    with world.hub.db() as s:
        for i, demand_id in enumerate(ids[:-1]):
            assert demands.vote(s, demand_id, voter, NOW + timedelta(seconds=i))
        with pytest.raises(TooManyRequests):
            demands.vote(s, ids[-1], voter, NOW + timedelta(minutes=5))
        assert demands.vote(s, ids[-1], voter, NOW + timedelta(hours=1, seconds=1))
        assert not demands.vote(s, ids[-1], voter, NOW + timedelta(hours=2))
        assert s.get(OpenDemand, ids[-1]).votes == 1  # type: ignore[union-attr]


def test_only_the_platform_answers_unassigned_requests(world: World, scene: OpenScene) -> None:
    unassigned = _stored(world, None)
    admin = _admin(world)
    dept_admin = principal(scene.dept.resource_admin, scene.dept.id)
    answer = AnswerForm(kind=AnswerKind.PLANNED, answer="计划于下季度开放。")
    with world.hub.db() as s:
        with pytest.raises(NotFound):
            demands.answer(s, dept_admin, unassigned, answer, NOW)
        demands.answer(s, admin, unassigned, answer, NOW)
        with pytest.raises(Forbidden):
            demands.hide(s, dept_admin, unassigned, "重复提交")
        with pytest.raises(InvalidInput):
            demands.assign(s, admin, unassigned, 2**31 - 1)
