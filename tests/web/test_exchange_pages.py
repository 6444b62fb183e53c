"""Exchange console pages on a live hub with two real front-end nodes: monitoring,
nodes, tasks, alerts and domains; who may see and change them; forms and their errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from govshare.exchange import alerts
from govshare.exchange import pages as exchange_pages
from govshare.exchange.models import AlertKind
from govshare.node import native
from govshare.node.agent import NodeAgent
from govshare.node.config import Database, NodeConfig
from tests.conftest import make_settings, migrated
from tests.exchange.scenario import Scene, make_scene
from tests.factories import PASSWORD, World, unique
from tests.live import LiveHub, start_live_hub
from tests.web.test_pages import csrf_of, sign_in


@dataclass
class Exchange:
    """A hub whose provider node has moved a table to the consumer's node, with the
    schema collected, one reconciliation that matched and one that did not."""

    hub: LiveHub
    world: World
    scene: Scene
    tmp: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def provider_task(self) -> int:
        return int(self.scene.provider_task["id"])

    @property
    def subscriber_task(self) -> int:
        return int(self.scene.subscriber_task["id"])

    @property
    def provider_node(self) -> int:
        return self.scene.node_ids["provider"]

    @property
    def consumer_node(self) -> int:
        return self.scene.node_ids["consumer"]

    def user(self, who: str) -> str:
        """admin: platform admin; reader: resource admin (exchange.read only);
        registrar: catalog.write but no exchange permission; auditor: neither."""
        return {
            "admin": self.world.admin,
            "auditor": self.world.auditor,
            "reader": self.scene.provider.resource_admin,
            "registrar": self.scene.provider.registrar,
        }[who]

    def anonymous(self) -> httpx.Client:
        """A browser of its own; closed after the test (see ``_close_clients``)."""
        client = httpx.Client(base_url=self.hub.base_url, timeout=30)
        self.clients.append(client)
        return client

    def signed_in(self, who: str) -> httpx.Client:
        client = self.anonymous()
        assert sign_in(client, self.user(who), PASSWORD).status_code == 303
        return client

    def api(self, path: str, **params: Any) -> Any:
        with self.world.api(self.world.admin) as c:
            r = c.get(f"/api/v1/exchange{path}", params=params)
            assert r.status_code == 200, r.text
            return r.json()

    def raise_alert(self, message: str, **where: Any) -> int:
        with self.hub.db() as s:
            return alerts.raise_alert(s, AlertKind.SEND_FAILED, message, **where).id

    def idle_tasks(self, *, with_subscriber: bool = True) -> tuple[int, int | None]:
        """A provider task, and a subscriber to it, that are created but never started."""
        with self.world.api(self.world.admin) as c:
            r = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": unique("闲置发送"),
                    "kind": "provider",
                    "node_id": self.provider_node,
                    "resource_id": self.scene.resource["id"],
                    "config": {
                        "source": "biz",
                        "table": "person",
                        "key": ["id"],
                        "mode": "snapshot",
                    },
                },
            )
            assert r.status_code == 201, r.text
            provider = r.json()["id"]
            if not with_subscriber:
                return provider, None
            r = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": unique("闲置接收"),
                    "kind": "subscriber",
                    "node_id": self.consumer_node,
                    "resource_id": self.scene.resource["id"],
                    "source_task_id": provider,
                    "config": {"target": "dst", "table": "idle_copy"},
                },
            )
            assert r.status_code == 201, r.text
            return provider, r.json()["id"]


def _wait_reconciliation(ex: Exchange) -> None:
    def done() -> bool:
        recs = ex.api("/reconciliations", task_id=ex.provider_task)
        return all(r["outcome"] != "pending" for r in recs)

    ex.scene.run_until(done)


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    tmp = tmp_path_factory.mktemp("exchange-pages")
    hub = start_live_hub(migrated(make_settings(tmp / "hub")))
    world = World(hub)
    scene = make_scene(world, tmp, rows=700)
    scene.node("provider")
    scene.node("consumer")
    scene.create_tasks(batch_rows=200)
    ex = Exchange(hub=hub, world=world, scene=scene, tmp=tmp)
    scene.run_until(scene.in_sync)
    with world.api(world.admin) as c:
        r = c.post(
            f"/api/v1/exchange/nodes/{ex.provider_node}/commands",
            json={"command": "collect_schema"},
        )
        assert r.status_code == 201, r.text
    scene.run_until(lambda: bool(ex.api(f"/nodes/{ex.provider_node}/schemas")))
    for drift in (False, True):
        if drift:  # someone edits the target behind the exchange's back
            engine = create_engine(scene.target_url)
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM person_copy WHERE id = 42"))
            engine.dispose()
        with world.api(world.admin) as c:
            assert c.post(f"/api/v1/exchange/tasks/{ex.provider_task}/reconcile").status_code == 201
        _wait_reconciliation(ex)
    scene.close()
    yield ex
    hub.stop()


@pytest.fixture(autouse=True)
def _close_clients(ex: Exchange) -> Iterator[None]:
    yield
    while ex.clients:
        ex.clients.pop().close()


def _found(pattern: str, page: str) -> str:
    """The first group of ``pattern`` in ``page``, which must match."""
    found = re.search(pattern, page, re.S)
    assert found, pattern
    return found.group(1)


def _form(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": csrf_of(client), **fields}


# -- who may see what ----------------------------------------------------------------------------

PAGES = [
    "/exchange",
    "/exchange/nodes",
    "/exchange/nodes/{provider_node}",
    "/exchange/tasks",
    "/exchange/tasks/{provider_task}",
    "/exchange/tasks/{subscriber_task}",
    "/exchange/alerts",
    "/exchange/domains",
]


def _path(ex: Exchange, template: str) -> str:
    return template.format(
        provider_node=ex.provider_node,
        provider_task=ex.provider_task,
        subscriber_task=ex.subscriber_task,
    )


@pytest.mark.parametrize("page", PAGES)
def test_pages_send_strangers_to_the_login_page(ex: Exchange, page: str) -> None:
    r = ex.anonymous().get(_path(ex, page))
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("who", ["registrar", "auditor"])
@pytest.mark.parametrize("page", PAGES)
def test_pages_need_the_exchange_read_permission(ex: Exchange, who: str, page: str) -> None:
    r = ex.signed_in(who).get(_path(ex, page))
    assert r.status_code == 403
    assert "缺少“查看数据交换”权限" in r.text


def test_navigation_shows_data_exchange_to_readers_only(ex: Exchange) -> None:
    for who in ("admin", "reader"):
        home = ex.signed_in(who).get("/").text
        assert "数据交换" in home
        assert 'href="/exchange/tasks"' in home
    for who in ("registrar", "auditor"):
        assert 'href="/exchange"' not in ex.signed_in(who).get("/").text


@pytest.mark.parametrize("who", ["admin", "reader"])
@pytest.mark.parametrize("page", PAGES)
def test_page_renders(ex: Exchange, who: str, page: str) -> None:
    r = ex.signed_in(who).get(_path(ex, page))
    assert r.status_code == 200, r.text
    assert "</html>" in r.text


def test_reader_sees_no_forms_and_may_change_nothing(ex: Exchange) -> None:
    reader = ex.signed_in("reader")
    for page in PAGES:
        html = reader.get(_path(ex, page)).text
        assert 'method="post" action="/exchange' not in html, page
    alert_id = ex.raise_alert(unique("读者不能处理的告警"))
    csrf = csrf_of(reader)
    refused = [
        ("/exchange/nodes", {"name": unique("前置机"), "department_id": ex.scene.consumer.id}),
        (f"/exchange/nodes/{ex.provider_node}/commands", {"command": "collect_schema"}),
        ("/exchange/tasks", {"kind": "provider", "name": "不允许"}),
        (f"/exchange/tasks/{ex.provider_task}/stop", {}),
        (f"/exchange/tasks/{ex.provider_task}/reconcile", {}),
        (f"/exchange/alerts/{alert_id}/resolve", {}),
        ("/exchange/domains", {"name": unique("交换域")}),
    ]
    for path, data in refused:
        r = reader.post(path, data={"csrf_token": csrf, **data})
        assert r.status_code == 403, path
        assert "缺少“管理数据交换”权限" in r.text
    assert ex.api(f"/tasks/{ex.provider_task}")["state"] == "running"
    assert any(a["id"] == alert_id for a in ex.api("/alerts", open_only=True))


def test_posts_without_the_csrf_token_are_refused(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    r = admin.post(f"/exchange/tasks/{ex.provider_task}/stop")
    assert r.status_code == 403
    assert "请刷新后重试" in r.text
    assert ex.api(f"/tasks/{ex.provider_task}")["state"] == "running"


# -- the pages show the exchange ----------------------------------------------------------------


def _chart(page: str, chart_id: str) -> dict[str, Any]:
    """The data a chart on ``page`` is drawn from."""
    source = _found(rf'<script type="application/json" id="{chart_id}">(.*?)</script>', page)
    return dict(json.loads(source))


def test_monitor_shows_nodes_volume_lag_and_open_alerts(ex: Exchange) -> None:
    message = unique("前置机写库失败")
    ex.raise_alert(message, node_id=ex.consumer_node)
    html = ex.signed_in("reader").get("/exchange").text
    volume = _chart(html, "chart-volume")
    assert [s["name"] for s in volume["series"]] == ["平台接收", "订阅方入库"]
    assert len(volume["labels"]) == 24
    assert sum(volume["series"][0]["values"]) >= 700
    assert sum(volume["series"][1]["values"]) >= 700
    lag = _chart(html, "chart-lag")
    assert f"#{ex.subscriber_task} 人口信息接收" in lag["labels"]
    assert "前置机在线" in html
    assert f"provider-{ex.scene.provider.id}" in html
    assert "秒前" in html or "分钟前" in html
    assert message in html
    assert "核对不一致" in html


def test_node_page_shows_its_report_commands_and_discovered_tables(ex: Exchange) -> None:
    html = ex.signed_in("admin").get(f"/exchange/nodes/{ex.provider_node}").text
    assert "各任务上报" in html
    assert f'href="/exchange/tasks/{ex.provider_task}"' in html
    assert "采集表结构" in html
    assert "已完成" in html  # the collect_schema command came back
    assert '数据源 <span class="mono">biz</span>' in html
    assert '<span class="mono">person</span>' in html
    assert "sfzhm" in html
    assert "生成目录草稿" in html


def test_task_page_shows_config_packages_chart_and_reconciliations(ex: Exchange) -> None:
    html = ex.signed_in("reader").get(f"/exchange/tasks/{ex.provider_task}").text
    assert "人口信息发送" in html
    assert "增量（按游标列）" in html
    assert "version" in html
    chart = _chart(html, "chart-packages")
    assert chart["labels"] == ["#1", "#2", "#3", "#4"]  # 700 rows in batches of 200
    assert [s["name"] for s in chart["series"]] == ["新增", "修改", "删除"]
    assert sum(chart["series"][0]["values"]) == 700
    assert "一致" in html
    assert "不一致" in html
    assert "源表 700 行，目标表 699 行" in html
    # A SQLite source is read natively too (in a reading process of its own) where
    # connectorx is installed, as the dev group installs it.
    way = "快速读取（整批直接读成列式数据）" if native.available() else "逐行读取（数据库驱动）"
    assert f"读取方式：{way}" in html
    subscriber = ex.signed_in("reader").get(f"/exchange/tasks/{ex.subscriber_task}").text
    assert "已入库" in subscriber
    assert f"发送任务 #{ex.provider_task} 的数据包" in subscriber
    assert "列映射" in subscriber


def test_package_log_pages_by_sequence(ex: Exchange, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_pages, "PACKAGE_PAGE", 2)
    reader = ex.signed_in("reader")
    html = reader.get(f"/exchange/tasks/{ex.provider_task}").text
    assert _chart(html, "chart-packages")["labels"] == ["#3", "#4"]
    assert f"/exchange/tasks/{ex.provider_task}?before=3#packages" in html
    older = reader.get(f"/exchange/tasks/{ex.provider_task}", params={"before": 3}).text
    assert _chart(older, "chart-packages")["labels"] == ["#1", "#2"]
    assert "?before=" not in older.split('id="packages"')[1]
    oldest = reader.get(f"/exchange/tasks/{ex.provider_task}", params={"before": 1}).text
    assert "没有更早的数据包" in oldest


# -- enrolling nodes -------------------------------------------------------------------------------


def test_enrolling_shows_the_token_once_and_the_token_works(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    name = unique("人社局前置机")
    r = admin.post(
        "/exchange/nodes", data=_form(admin, name=name, department_id=ex.scene.consumer.id)
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    token = _found(r'<code class="token" id="enrollment-token">([^<]+)</code>', r.text)
    node_id = int(_found(r"node_id = (\d+)", r.text))
    assert f'enrollment_token = "{token}"' in unescape(r.text)
    assert "只在此显示一次" in r.text
    # Never again: not in the list, not on the node's page.
    assert token not in admin.get("/exchange/nodes").text
    assert token not in admin.get(f"/exchange/nodes/{node_id}").text
    assert "待注册" in admin.get(f"/exchange/nodes/{node_id}").text
    # And it is the real one: a node registers with it.
    agent = NodeAgent(
        NodeConfig(
            hub_url=ex.hub.base_url,
            node_id=node_id,
            enrollment_token=token,
            store=ex.tmp / f"store-enrolled-{node_id}",
            targets={"dst": Database(url=f"sqlite:///{ex.tmp / 'enrolled.db'}")},
        )
    )
    try:
        agent.ensure_registered()
    finally:
        agent.close()
    assert ex.api(f"/nodes/{node_id}")["status"] == "active"


def test_enroll_form_errors_are_inline(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    r = admin.post("/exchange/nodes", data=_form(admin, name="x", department_id=""))
    assert r.status_code == 422
    assert "前置机信息不完整" in r.text
    assert "至少 2 个字符" in r.text
    assert "所属部门" in r.text
    taken = ex.api(f"/nodes/{ex.provider_node}")["name"]
    r = admin.post(
        "/exchange/nodes", data=_form(admin, name=taken, department_id=ex.scene.provider.id)
    )
    assert r.status_code == 422
    assert "名称已存在" in r.text
    assert "enrollment-token" not in r.text


# -- the task forms -------------------------------------------------------------------------------


def _task_count(ex: Exchange) -> int:
    return len(ex.api("/tasks"))


def test_provider_form_errors_come_back_in_chinese_beside_their_fields(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    before = _task_count(ex)
    form = _form(
        admin,
        kind="provider",
        name="x",
        node_id="",
        resource_code="999999/000001",
        source="",
        key="",
        batch_rows="10",
        schedule_interval_seconds="0.01",
    )
    r = admin.post("/exchange/tasks", data=form)
    assert r.status_code == 422
    assert "发送任务配置有误" in r.text
    for message in (
        "任务名称：至少 2 个字符",
        "前置机：请选择前置机",
        "目录：没有资源代码为 999999/000001 的目录",
        "每包行数：不能小于 100",
        "执行间隔：不能小于 0.2",
    ):
        assert message in r.text, message
    field = r.text.split('id="f-p-batch_rows"')[1].split("</div>")[0]
    assert "不能小于 100" in field
    assert 'value="999999/000001"' in r.text  # what was typed comes back
    assert _task_count(ex) == before


def test_provider_form_reports_the_schema_rules_beside_their_field(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    form = _form(
        admin,
        kind="provider",
        name="规则检查",
        node_id=ex.provider_node,
        resource_code=ex.scene.resource["code"],
        source="biz",
        table="person",
        query="SELECT * FROM person",
        key="id",
        mode="incremental",
    )
    r = admin.post("/exchange/tasks", data=form)
    assert r.status_code == 422
    table_field = r.text.split('id="f-p-table"')[1].split("</div>")[0]
    assert "源表 table 与查询 query 须且只须填写一个" in table_field
    r = admin.post("/exchange/tasks", data={**form, "query": ""})
    assert r.status_code == 422
    cursor_field = r.text.split('id="f-p-cursor_column"')[1].split("</div>")[0]
    assert "增量模式须指定 cursor_column" in cursor_field


def test_provider_form_reports_the_service_rules(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    before = _task_count(ex)
    form = _form(
        admin,
        kind="provider",
        name="错误部门的发送任务",
        node_id=ex.consumer_node,  # not the resource's provider department
        resource_code=ex.scene.resource["code"],
        source="biz",
        table="person",
        key="id",
        mode="snapshot",
    )
    r = admin.post("/exchange/tasks", data=form)
    assert r.status_code == 422
    node_field = r.text.split('id="f-p-node_id"')[1].split("</div>")[0]
    assert "前置机不属于目录提供部门" in node_field
    assert _task_count(ex) == before


def test_subscriber_form_errors(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    form = _form(
        admin,
        kind="subscriber",
        name="接收检查",
        node_id=ex.consumer_node,
        source_task_id="",
        target="dst",
        table="1bad",
        mapping="xm=name\n没有等号",
        code_maps="xb=1",
    )
    r = admin.post("/exchange/tasks", data=form)
    assert r.status_code == 422
    assert "接收任务配置有误" in r.text
    assert "请选择要订阅的发送任务" in r.text
    assert "第2行应写成“源列=目标列”" in r.text
    assert "“xb”应写成“列:源代码”" in r.text
    assert "应以英文字母或下划线开头" in r.text
    assert "没有等号" in r.text  # the textarea keeps what was typed


def test_tasks_created_through_the_forms_then_started_and_stopped(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    r = admin.post(
        "/exchange/tasks",
        data=_form(
            admin,
            kind="provider",
            name="表单创建的发送任务",
            node_id=ex.provider_node,
            resource_code=ex.scene.resource["code"],
            source="biz",
            table="person",
            key="id",
            columns="id, sfzhm，xm",
            mode="incremental",
            cursor_column="version",
            delete_detection="keyset",
            keyset_every_seconds="600",
            batch_rows="1000",
            schedule_interval_seconds="30",
        ),
    )
    assert r.status_code == 303, r.text
    provider = int(_found(r"^/exchange/tasks/(\d+)\?done=task_added$", r.headers["location"]))
    task = ex.api(f"/tasks/{provider}")
    assert task["state"] == "draft"
    assert task["config"]["columns"] == ["id", "sfzhm", "xm"]
    assert task["config"]["schedule"]["interval_seconds"] == 30
    page = admin.get(r.headers["location"]).text
    assert "交换任务已创建" in page
    assert "未部署" in page
    assert "部署并启动" in page

    r = admin.post(
        "/exchange/tasks",
        data=_form(
            admin,
            kind="subscriber",
            name="表单创建的接收任务",
            node_id=ex.consumer_node,
            source_task_id=provider,
            target="dst",
            table="person_form",
            mapping="xm=name",
            code_maps="xb:1=M\nxb:2=F",
        ),
    )
    assert r.status_code == 303, r.text
    subscriber = ex.api(r.headers["location"].split("?")[0].removeprefix("/exchange"))
    assert subscriber["source_task_id"] == provider
    assert subscriber["resource_id"] == ex.scene.resource["id"]
    assert subscriber["config"]["mapping"] == {"xm": "name"}
    assert subscriber["config"]["code_maps"] == {"xb": {"1": "M", "2": "F"}}

    r = admin.post(f"/exchange/tasks/{provider}/start", data=_form(admin))
    assert r.status_code == 303
    assert ex.api(f"/tasks/{provider}")["state"] == "running"
    assert "任务已启动" in admin.get(r.headers["location"]).text
    r = admin.post(f"/exchange/tasks/{provider}/stop", data=_form(admin))
    assert r.status_code == 303
    assert ex.api(f"/tasks/{provider}")["state"] == "stopped"


# -- commands, reconciliation, alerts --------------------------------------------------------------


def test_commands_are_sent_to_the_node(ex: Exchange) -> None:
    provider, subscriber = ex.idle_tasks()
    admin = ex.signed_in("admin")
    r = admin.post(
        f"/exchange/nodes/{ex.provider_node}/commands",
        data=_form(admin, command="keyset", task_id=provider, next=f"/exchange/tasks/{provider}"),
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/exchange/tasks/{provider}?done=node_command"
    page = admin.get(f"/exchange/nodes/{ex.provider_node}").text
    assert "键集比对" in page
    assert "待领取" in page
    r = admin.post(
        f"/exchange/nodes/{ex.consumer_node}/commands",
        data=_form(admin, command="keyset", task_id=subscriber),
    )
    assert r.status_code == 422
    assert "键集比对只适用于发送任务" in r.text
    r = admin.post(
        f"/exchange/nodes/{ex.consumer_node}/commands",
        data=_form(admin, command="resync", next="/exchange/nodes"),
    )
    assert r.status_code == 422
    assert "须选择任务" in r.text
    r = admin.post(
        f"/exchange/nodes/{ex.consumer_node}/commands",
        data=_form(admin, command="drop_tables", task_id=subscriber),
    )
    assert r.status_code == 422
    r = admin.post(
        f"/exchange/nodes/{ex.consumer_node}/commands",
        data=_form(admin, command="resync", task_id=subscriber, next="https://evil.example/"),
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/exchange/nodes/{ex.consumer_node}?done=node_command"
    assert "重新同步" in admin.get(f"/exchange/nodes/{ex.consumer_node}").text


def test_reconcile_button_requests_a_reconciliation(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    before = len(ex.api("/reconciliations", task_id=ex.provider_task))
    r = admin.post(f"/exchange/tasks/{ex.provider_task}/reconcile", data=_form(admin))
    assert r.status_code == 303
    assert len(ex.api("/reconciliations", task_id=ex.provider_task)) == before + 1
    page = admin.get(r.headers["location"].split("#")[0]).text
    assert "已发起核对" in page
    assert "核对中" in page
    r = admin.post(f"/exchange/tasks/{ex.subscriber_task}/reconcile", data=_form(admin))
    assert r.status_code == 422
    assert "核对须针对发送任务" in r.text
    lonely, _ = ex.idle_tasks(with_subscriber=False)
    r = admin.post(f"/exchange/tasks/{lonely}/reconcile", data=_form(admin))
    assert r.status_code == 422
    assert "还没有接收任务" in r.text


def test_resolving_an_alert(ex: Exchange) -> None:
    message = unique("待处理告警")
    alert_id = ex.raise_alert(message, task_id=ex.provider_task)
    admin = ex.signed_in("admin")
    assert message in admin.get("/exchange/alerts").text
    r = admin.post(
        f"/exchange/alerts/{alert_id}/resolve",
        data=_form(admin, next="/exchange/alerts?show=open"),
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/exchange/alerts?show=open&done=alert_resolved"
    assert all(a["id"] != alert_id for a in ex.api("/alerts", open_only=True))
    assert message not in admin.get("/exchange/alerts").text
    everything = admin.get("/exchange/alerts", params={"show": "all"}).text
    row = next(r for r in re.findall(r"<tr>.*?</tr>", everything, re.S) if message in r)
    assert "已处理" in row
    assert admin.post("/exchange/alerts/999999/resolve", data=_form(admin)).status_code == 404


# -- catalog drafts from discovered tables ---------------------------------------------------------


def test_draft_from_a_discovered_table(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    path = f"/exchange/nodes/{ex.provider_node}/resources"
    form = _form(admin, source="biz", table="person", classification_code="", name="x", abstract="")
    r = admin.post(path, data=form)
    assert r.status_code == 422
    assert "目录信息不完整" in r.text
    assert "请选择信息资源分类" in r.text
    assert "至少 2 个字符" in r.text
    assert '<details class="schema" open' in r.text
    r = admin.post(
        path,
        data={
            **form,
            "table": "no_such_table",
            "classification_code": "101001",
            "name": "不存在的表",
            "abstract": "摘要",
        },
    )
    assert r.status_code == 422
    assert "未上报表 biz.no_such_table 的结构" in r.text
    r = admin.post(
        path,
        data={
            **form,
            "classification_code": "101001",
            "name": "前置机发现的人口表",
            "abstract": "由前置机上报的表结构生成",
        },
    )
    assert r.status_code == 303, r.text
    assert re.fullmatch(r"/catalog/resources/\d+\?done=created", r.headers["location"])
    page = admin.get(r.headers["location"]).text
    assert "前置机发现的人口表" in page
    assert "sfzhm" in page
    assert "草稿" in page


def test_draft_needs_catalog_write(ex: Exchange) -> None:
    reader = ex.signed_in("reader")
    html = reader.get(f"/exchange/nodes/{ex.provider_node}").text
    assert "生成目录草稿" not in html
    r = reader.post(
        f"/exchange/nodes/{ex.provider_node}/resources",
        data=_form(
            reader,
            source="biz",
            table="person",
            classification_code="101001",
            name="不允许",
            abstract="不允许",
        ),
    )
    assert r.status_code == 403
    assert "缺少“编制资源目录”权限" in r.text


# -- domains ---------------------------------------------------------------------------------------


def test_domains_form(ex: Exchange) -> None:
    admin = ex.signed_in("admin")
    name = unique("人口交换域")
    members = [ex.scene.provider.id, ex.scene.consumer.id]
    r = admin.post(
        "/exchange/domains",
        data=_form(admin, name=name, description="人口数据", department_ids=members),
    )
    assert r.status_code == 303
    page = admin.get(r.headers["location"]).text
    assert name in page
    assert "交换域已保存" in page
    domain = next(d for d in ex.api("/domains") if d["name"] == name)
    assert sorted(domain["department_ids"]) == sorted(members)
    r = admin.post("/exchange/domains", data=_form(admin, name=name))
    assert r.status_code == 422
    assert "交换域已存在" in r.text
    r = admin.post("/exchange/domains", data=_form(admin, name="x"))
    assert r.status_code == 422
    assert "交换域名称：至少 2 个字符" in r.text
    edit = admin.get("/exchange/domains", params={"edit": domain["id"]}).text
    assert "编辑交换域" in edit
    assert f'name="domain_id" value="{domain["id"]}"' in edit
    r = admin.post(
        "/exchange/domains",
        data=_form(admin, domain_id=domain["id"], name=name, department_ids=members[:1]),
    )
    assert r.status_code == 303
    domain = next(d for d in ex.api("/domains") if d["name"] == name)
    assert domain["department_ids"] == members[:1]
