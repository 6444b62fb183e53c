"""Scenery for the open-data tests: one department with an entry in every state the open
catalog must tell apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.factories import Dept, World, resource_payload, unique

SECRET = "绝密草稿词"  # only a pending draft holds it


@dataclass
class OpenScene:
    dept: Dept
    slug: str  # the department's CKAN organization name
    marker: str  # in every entry's name, to find them with q
    open_plain: dict[str, Any]  # 无条件开放
    open_conditional: dict[str, Any]  # 有条件开放
    in_change: dict[str, Any]  # open, published, with a pending draft holding SECRET
    closed: dict[str, Any]  # published, not open
    withdrawn: dict[str, Any]  # was open and published, then withdrawn
    draft: dict[str, Any]  # open, never published

    @property
    def open(self) -> list[dict[str, Any]]:
        return [self.open_plain, self.open_conditional, self.in_change]

    @property
    def hidden(self) -> list[dict[str, Any]]:
        return [self.closed, self.withdrawn, self.draft]


def _slug(code: str) -> str:
    return code.lower().replace("/", "-")


def open_scene(world: World) -> OpenScene:
    dept = world.department("开放局")
    marker = unique("开放")
    plain = world.published(dept, is_open=True, name=f"{marker}公厕位置", update_cycle="monthly")
    conditional = world.published(
        dept,
        is_open=True,
        name=f"{marker}公交刷卡",
        classification_code="102001",
        open_conditions="实名注册开发者申请",
    )
    changing = world.published(dept, is_open=True, name=f"{marker}停车场泊位")
    with world.api(dept.registrar) as c:
        body = resource_payload(
            is_open=False,
            name=f"{marker}停车场泊位{SECRET}",
            abstract=f"草稿摘要 {SECRET}",
            reason="调整",
        )
        r = c.put(f"/api/v1/catalog/resources/{changing['id']}", json=body)
        assert r.status_code == 200, r.text
    closed = world.published(dept, is_open=False, name=f"{marker}内部名单")
    withdrawn = world.published(dept, is_open=True, name=f"{marker}已撤回数据")
    world.step(dept.registrar, withdrawn["id"], "withdraw", reason="停止开放")
    draft = world.add_resource(dept, is_open=True, name=f"{marker}未发布草稿")
    with world.hub.db() as s:
        from govshare.security.models import Department

        credit = s.get(Department, dept.id).credit_code  # type: ignore[union-attr]
    for entry in (plain, conditional, changing, closed, withdrawn, draft):
        entry["slug"] = _slug(entry["code"])
    return OpenScene(
        dept=dept,
        slug=credit.lower(),
        marker=marker,
        open_plain=plain,
        open_conditional=conditional,
        in_change=changing,
        closed=closed,
        withdrawn=withdrawn,
        draft=draft,
    )
