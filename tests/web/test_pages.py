"""Console pages through the ASGI app: sign-in, CSRF, permissions, forms and their errors."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from starlette.exceptions import StarletteDeprecationWarning

from govshare.app import create_app
from govshare.catalog import service
from govshare.catalog.models import Resource
from govshare.catalog.schemas import ResourceIn
from govshare.security.audit import SYSTEM
from govshare.security.models import AuditEntry, User
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal, add_department, add_user, get_user_by_username
from tests.catalog.console import follow_import
from tests.conftest import make_settings, migrated
from tests.factories import PASSWORD, resource_payload, unique, valid_credit_code

with warnings.catch_warnings():
    # Starlette asks for httpx2 now; the project still ships httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@dataclass
class Console:
    """An app on a fresh SQLite hub with one department and its people."""

    app: FastAPI
    department_id: int
    admin: str
    auditor: str
    registrar: str
    reviewer: str

    def db(self) -> Any:
        return self.app.state.session_factory()

    def anonymous(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def signed_in(self, username: str) -> TestClient:
        client = self.anonymous()
        response = sign_in(client, username, PASSWORD)
        assert response.status_code == 303, response.text
        return client

    def resource_count(self) -> int:
        with self.db() as s:
            return s.scalar(select(func.count()).select_from(Resource)) or 0


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    settings = migrated(make_settings(tmp_path_factory.mktemp("console")))
    app = create_app(settings)
    names: dict[str, str] = {}
    with app.state.session_factory() as s:
        platform = add_department(
            s,
            SYSTEM,
            name=unique("青岛市大数据局"),
            short_name="大数据局",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        police = add_department(
            s,
            SYSTEM,
            name=unique("青岛市公安局"),
            short_name="公安",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        for key, dept, role in [
            ("admin", platform, Role.PLATFORM_ADMIN),
            ("auditor", platform, Role.AUDITOR),
            ("registrar", police, Role.CATALOG_REGISTRAR),
            ("reviewer", police, Role.CATALOG_REVIEWER),
        ]:
            names[key] = unique(f"{key}_")
            add_user(
                s,
                SYSTEM,
                username=names[key],
                password=PASSWORD,
                display_name=f"{role.label}{key}",
                department_id=dept.id,
                roles=[role],
            )
        s.commit()
        department_id = police.id
    yield Console(app=app, department_id=department_id, **names)
    app.state.engine.dispose()


def sign_in(client: TestClient, username: str, password: str, next_url: str = "/") -> Any:
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "login_token": token.group(1),
            "next": next_url,
        },
    )


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert found
    return found.group(1)


def resource_form(csrf: str, **overrides: Any) -> dict[str, Any]:
    """The compile form as a browser posts it, from the factories' conforming entry."""
    payload = resource_payload(**overrides)
    items = payload.pop("items")
    form: dict[str, Any] = {
        "csrf_token": csrf,
        **{k: v for k, v in payload.items() if k != "sharing_modes"},
        "sharing_modes": payload.get("sharing_modes", []),
    }
    for key in ("name", "code", "data_type", "length", "description", "code_table"):
        form[f"item_{key}"] = ["" if it.get(key) is None else str(it[key]) for it in items]
    form["item_is_key"] = ["1" if it.get("is_key") else "" for it in items]
    return form


def add_draft(console: Console, **overrides: Any) -> int:
    """An entry saved directly through the service, as the registrar."""
    with console.db() as s:
        user = get_user_by_username(s, console.registrar)
        principal = Principal(
            kind="user",
            name=user.username,
            department_id=user.department_id,
            user_id=user.id,
            roles=tuple(user.roles),
            permissions=permissions_for(user.roles),
        )
        resource = service.add_resource(
            s,
            principal,
            ResourceIn.model_validate(resource_payload(**overrides)),
            confirm_duplicates=True,  # scenery: entries may share the default name
        )
        s.commit()
        return resource.id


# -- sign-in ------------------------------------------------------------------------------


def test_login_page_is_chinese_and_sets_its_token_cookie(console: Console) -> None:
    r = console.anonymous().get("/login")
    assert r.status_code == 200
    assert "用户登录" in r.text
    assert 'lang="zh-CN"' in r.text
    assert "govshare_login=" in r.headers["set-cookie"]


def test_login_sets_an_httponly_lax_session_cookie(console: Console) -> None:
    client = console.anonymous()
    r = sign_in(client, console.registrar, PASSWORD)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("govshare_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # settings.secure_cookies is off in tests
    home = client.get("/")
    assert home.status_code == 200
    assert "编制目录" in home.text


def test_failed_login_shows_chinese_message_and_counts_the_failure(console: Console) -> None:
    with console.db() as s:
        user = get_user_by_username(s, console.reviewer)
        before = user.failed_logins
    r = sign_in(console.anonymous(), console.reviewer, "wrong-password")
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text
    assert "govshare_session=" not in r.headers.get("set-cookie", "")
    with console.db() as s:
        user = s.scalar(select(User).where(User.username == console.reviewer))
        assert user is not None
        assert user.failed_logins == before + 1
        logged = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "auth.login_failed", AuditEntry.object_id == str(user.id))
        )
        assert logged
    # A good password afterwards resets the count.
    assert sign_in(console.anonymous(), console.reviewer, PASSWORD).status_code == 303


def test_login_without_its_form_token_is_refused(console: Console) -> None:
    r = console.anonymous().post(
        "/login", data={"username": console.registrar, "password": PASSWORD}
    )
    assert r.status_code == 400
    assert "登录页面已过期" in r.text


@pytest.mark.parametrize(
    ("next_url", "landing"),
    [("/catalog/mine", "/catalog/mine"), ("//evil.example/x", "/"), ("https://evil.example", "/")],
)
def test_login_returns_to_same_site_pages_only(
    console: Console, next_url: str, landing: str
) -> None:
    r = sign_in(console.anonymous(), console.registrar, PASSWORD, next_url)
    assert r.status_code == 303
    assert r.headers["location"] == landing


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/catalog",
        "/catalog/mine",
        "/catalog/resources/new",
        "/catalog/review",
        "/audit",
        "/admin/users",
        "/admin/departments",
        "/catalog/import",
        "/catalog/demands",
        "/catalog/systems",
    ],
)
def test_pages_send_strangers_to_the_login_page(console: Console, path: str) -> None:
    r = console.anonymous().get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


def test_logout_ends_the_session(console: Console) -> None:
    client = console.signed_in(console.registrar)
    r = client.post("/logout", data={"csrf_token": csrf_of(client)})
    assert r.status_code == 303
    assert r.headers["location"] == "/login?done=logged_out"
    stale = console.anonymous()
    stale.cookies.set("govshare_session", client.cookies.get("govshare_session") or "gone")
    assert stale.get("/").status_code == 303


# -- CSRF and permissions --------------------------------------------------------------------


def test_console_posts_without_csrf_token_are_refused(console: Console) -> None:
    client = console.signed_in(console.registrar)
    before = console.resource_count()
    form = resource_form("")
    form.pop("csrf_token")
    r = client.post("/catalog/resources/new", data=form)
    assert r.status_code == 403
    assert "请刷新后重试" in r.text
    assert console.resource_count() == before
    assert client.post("/logout").status_code == 403
    # htmx sends the token as a header instead of a form field.
    assert client.post("/logout", headers={"X-CSRF-Token": csrf_of(client)}).status_code == 303


def test_navigation_shows_only_what_the_role_allows(console: Console) -> None:
    auditor = console.signed_in(console.auditor).get("/").text
    assert 'href="/audit"' in auditor
    assert 'href="/catalog"' not in auditor
    assert 'href="/admin/users"' not in auditor
    registrar = console.signed_in(console.registrar).get("/").text
    assert 'href="/catalog/resources/new"' in registrar
    assert 'href="/admin/users"' not in registrar
    assert 'href="/audit"' not in registrar
    admin = console.signed_in(console.admin).get("/").text
    assert 'href="/admin/users"' in admin
    assert 'href="/catalog/review"' in admin


def test_forbidden_pages_render_the_chinese_error_page(console: Console) -> None:
    r = console.signed_in(console.registrar).get("/admin/users")
    assert r.status_code == 403
    assert "没有权限" in r.text
    assert "缺少“用户管理”权限" in r.text
    assert 'href="/catalog/mine"' in r.text  # the layout still knows who is signed in


def visible_text(html: str) -> str:
    """What a reader sees: the body without tags, scripts and ``<code>`` data."""
    body = re.split(r"<body[^>]*>", html, maxsplit=1)[1]
    body = re.sub(r"<(script|code)\b.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r'<span class="who-name">.*?</span>', " ", body)  # the fixture's name
    return re.sub(r"<[^>]+>", " ", body)


@pytest.mark.parametrize(
    ("method", "path", "status", "heading"),
    [
        ("GET", "/admin/users", 403, "没有权限"),
        ("GET", "/no-such-page", 404, "找不到页面"),
        ("GET", "/catalog/resources/999999999", 404, "找不到页面"),
        ("DELETE", "/catalog", 405, "不支持的操作方式"),
    ],
)
def test_error_pages_keep_the_layout_and_speak_chinese_only(
    console: Console, method: str, path: str, status: int, heading: str
) -> None:
    client = console.signed_in(console.registrar)
    r = client.request(method, path, headers={"X-CSRF-Token": csrf_of(client)})
    assert r.status_code == status
    assert heading in r.text
    assert 'class="sidebar"' in r.text
    assert "退出" in r.text
    assert re.search(r"<title>\S.*</title>", r.text)
    assert re.findall(r"[A-Za-z]{2,}", visible_text(r.text)) == []


def test_an_unexpected_failure_shows_the_chinese_error_page(console: Console) -> None:
    app = console.app

    @app.get("/boom-for-test")
    def boom() -> None:
        raise RuntimeError("boom")

    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    assert sign_in(client, console.registrar, PASSWORD).status_code == 303
    r = client.get("/boom-for-test")
    assert r.status_code == 500
    assert "系统出错" in r.text
    assert 'class="sidebar"' in r.text
    assert "boom" not in r.text


def listed_total(page: str) -> int:
    """The count a list page shows: the search's 共 N 条 or the department list's 全部（N）."""
    found = re.search(r"共 <strong>(\d+)</strong> 条", page) or re.search(r"全部（(\d+)）", page)
    assert found, page
    return int(found.group(1))


@pytest.mark.parametrize("who", ["admin", "registrar"])
def test_dashboard_cards_lead_to_the_list_they_count(console: Console, who: str) -> None:
    # A draft in the registrar's department (not the admin's own).
    registrar = console.signed_in(console.registrar)
    form = resource_form(csrf_of(registrar), name=unique("人口基本信息"))
    registrar.post("/catalog/resources/new", data=form)
    client = console.signed_in(getattr(console, who))
    home = client.get("/").text
    cards = re.findall(
        r'<a class="stat-card" href="([^"]+)"><span class="stat-value">(\d+)</span>'
        r'<span class="stat-label">([^<]+)</span>',
        home,
    )
    counted = {label: (href.replace("&amp;", "&"), int(n)) for href, n, label in cards}
    label = "全平台目录" if who == "admin" else "本部门目录"
    href, count = counted[label]
    assert count > 0
    assert listed_total(client.get(href).text) == count


def active_nav(page: str) -> list[str]:
    sidebar = page.split('<nav class="sidebar"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'<a href="([^"]+)" class="active">', sidebar)


def test_the_sidebar_shows_where_a_detail_page_belongs(console: Console) -> None:
    registrar = console.signed_in(console.registrar)
    form = resource_form(csrf_of(registrar), name=unique("人口基本信息"))
    saved = registrar.post("/catalog/resources/new", data=form)
    detail = saved.headers["location"].split("?")[0]
    assert active_nav(registrar.get(detail).text) == ["/catalog/mine"]
    assert active_nav(registrar.get(detail + "/edit").text) == ["/catalog/mine"]
    assert active_nav(registrar.get("/catalog/mine").text) == ["/catalog/mine"]
    # The admin reaches another department's entry from the catalog.
    assert active_nav(console.signed_in(console.admin).get(detail).text) == ["/catalog"]


def test_pages_name_people_not_their_login_names(console: Console) -> None:
    registrar = console.signed_in(console.registrar)
    form = resource_form(csrf_of(registrar), name=unique("人口基本信息"))
    saved = registrar.post("/catalog/resources/new", data=form)
    page = registrar.get(saved.headers["location"].split("?")[0]).text
    history = page.split("<h2>版本", 1)[1] if "<h2>版本" in page else page
    assert "目录编目员registrar" in history  # the display name of the fixture's registrar
    assert console.registrar not in page


def test_code_table_options_read_their_chinese_title_only(console: Console) -> None:
    form = console.signed_in(console.registrar).get("/catalog/resources/new").text
    assert '<option value="data_type">信息项数据类型</option>' in form


# -- every page renders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("registrar", "/"),
        ("registrar", "/catalog"),
        ("registrar", "/catalog?scope=mine&sort=name"),
        ("registrar", "/catalog/mine"),
        ("registrar", "/catalog/resources/new"),
        ("registrar", "/catalog/import"),
        ("registrar", "/catalog/demands"),
        ("registrar", "/catalog/systems"),
        ("reviewer", "/catalog/review"),
        ("admin", "/"),
        ("admin", "/catalog?scope=all&status=draft"),
        ("admin", "/catalog/review?queue=publication"),
        ("admin", "/admin/departments"),
        ("admin", "/admin/users"),
        ("auditor", "/"),
        ("auditor", "/audit"),
        ("auditor", "/audit?action=auth.login&since=2020-01-01&until=2099-12-31"),
    ],
)
def test_page_renders(console: Console, who: str, path: str) -> None:
    r = console.signed_in(getattr(console, who)).get(path)
    assert r.status_code == 200, r.text
    assert "</html>" in r.text


# -- the compile form -----------------------------------------------------------------------------


def test_form_errors_appear_beside_their_fields_and_nothing_is_stored(console: Console) -> None:
    client = console.signed_in(console.registrar)
    before = console.resource_count()
    items = [
        {"name": "公民身份号码", "code": "sfzhm", "data_type": "C", "length": 18, "is_key": True},
        {"name": "金额", "code": "je", "data_type": "Y"},  # needs a length
    ]
    form = resource_form(csrf_of(client), name="重名检查资源", sharing_conditions="", items=items)
    r = client.post("/catalog/resources/new", data=form)
    assert r.status_code == 422
    assert "目录信息不符合编制要求" in r.text
    assert "有条件共享必须填写共享条件" in r.text
    row = re.findall(r"<tr>.*?</tr>", r.text.split('id="item-rows"')[1], re.S)[1]
    assert "结构化信息项必须注明数据长度" in row
    assert "has-error" in row
    assert 'value="重名检查资源"' in r.text  # what was typed comes back
    assert "信息项第2行 · 数据长度" in r.text  # the summary names the field in Chinese
    assert console.resource_count() == before


def test_schema_and_rule_errors_come_in_one_round(console: Console) -> None:
    client = console.signed_in(console.registrar)
    before = console.resource_count()
    items = [
        {"name": "姓名", "code": "1bad", "data_type": "C", "length": "abc"},
        {"name": "金额", "code": "je", "data_type": "Y"},
    ]
    form = resource_form(csrf_of(client), name="", update_cycle="", items=items)
    r = client.post("/catalog/resources/new", data=form)
    assert r.status_code == 422
    assert "信息资源名称须为 2 至 200 个字符" in r.text
    assert "信息项代码须以英文字母或下划线开头" in r.text
    assert "数据长度须为 1 至 65535 之间的整数" in r.text
    assert "请选择更新周期" in r.text
    assert "结构化信息项必须注明数据长度" in r.text  # a rule, reported with the schema's errors
    assert 'value="abc"' in r.text
    assert console.resource_count() == before


def test_saving_the_form_creates_a_draft_and_shows_it(console: Console) -> None:
    client = console.signed_in(console.registrar)
    before = console.resource_count()
    r = client.post(
        "/catalog/resources/new", data=resource_form(csrf_of(client), name="表单编制的目录")
    )
    assert r.status_code == 303, r.text
    assert re.fullmatch(r"/catalog/resources/\d+\?done=created", r.headers["location"])
    assert console.resource_count() == before + 1
    page = client.get(r.headers["location"])
    assert "表单编制的目录" in page.text
    assert "目录已保存为草稿" in page.text
    assert "提交注册" in page.text  # the step the registrar may take next


def test_editing_keeps_values_and_records_a_version(console: Console) -> None:
    resource_id = add_draft(console, name="待修改的目录")
    client = console.signed_in(console.registrar)
    form_page = client.get(f"/catalog/resources/{resource_id}/edit")
    assert form_page.status_code == 200
    assert 'value="待修改的目录"' in form_page.text
    r = client.post(
        f"/catalog/resources/{resource_id}/edit",
        data=resource_form(csrf_of(client), name="修改后的目录"),
    )
    assert r.status_code == 303
    diff = client.get(f"/catalog/resources/{resource_id}?from=1&to=2")
    assert "第 1 版 → 第 2 版的差异" in diff.text
    assert "待修改的目录" in diff.text
    assert "修改后的目录" in diff.text
    fragment = client.get(
        f"/catalog/resources/{resource_id}?from=1&to=2",
        headers={"HX-Request": "true", "HX-Target": "version-diff"},
    )
    assert fragment.text.lstrip().startswith('<div id="version-diff">')


# -- lifecycle through the pages ----------------------------------------------------------------


def test_lifecycle_steps_and_a_missing_reason(console: Console) -> None:
    resource_id = add_draft(console, name="流转测试目录")
    registrar = console.signed_in(console.registrar)
    r = registrar.post(
        f"/catalog/resources/{resource_id}/steps/submit", data={"csrf_token": csrf_of(registrar)}
    )
    assert r.status_code == 303
    reviewer = console.signed_in(console.reviewer)
    queue = reviewer.get("/catalog/review")
    assert "流转测试目录" in queue.text
    r = reviewer.post(
        f"/catalog/resources/{resource_id}/steps/return", data={"csrf_token": csrf_of(reviewer)}
    )
    assert r.status_code == 422
    assert "请填写原因" in r.text
    r = reviewer.post(
        f"/catalog/resources/{resource_id}/steps/approve", data={"csrf_token": csrf_of(reviewer)}
    )
    assert r.status_code == 303
    page = reviewer.get(f"/catalog/resources/{resource_id}")
    assert "注册审核通过" in page.text
    assert "已注册" in page.text


def test_search_page_finds_published_entries_with_facets(console: Console) -> None:
    resource_id = add_draft(console, name="犬类免疫登记页面测试")
    for who, step in [
        ("registrar", "submit"),
        ("reviewer", "approve"),
        ("registrar", "request_publication"),
        ("admin", "publish"),
    ]:
        client = console.signed_in(getattr(console, who))
        r = client.post(
            f"/catalog/resources/{resource_id}/steps/{step}", data={"csrf_token": csrf_of(client)}
        )
        assert r.status_code == 303, r.text
    client = console.signed_in(console.reviewer)
    page = client.get("/catalog", params={"q": "免疫登记"})
    assert page.status_code == 200
    assert "犬类<mark>" in page.text or "<mark>免疫</mark>" in page.text
    assert 'data-facet="department"' in page.text
    assert "公安" in page.text
    fragment = client.get(
        "/catalog",
        params={"q": "免疫登记"},
        headers={"HX-Request": "true", "HX-Target": "catalog-search"},
    )
    assert fragment.text.lstrip().startswith('<div id="catalog-search">')
    assert "<html" not in fragment.text


# -- import, demands, systems, administration, audit ------------------------------------------


def test_import_shows_the_error_report_and_stores_nothing(console: Console) -> None:
    client = console.signed_in(console.registrar)
    before = console.resource_count()
    csv_text = (
        "资源序号,信息资源名称,信息资源分类,信息资源摘要,信息资源格式,共享类型,更新周期,信息项名称,信息项代码,数据类型,数据长度\n"
        "1,导入测试,999,摘要,数据库,有条件共享,每日,姓名,xm,C,\n"
    )
    r = client.post(
        "/catalog/import",
        data={"csrf_token": csrf_of(client)},
        files={"file": ("bad.csv", csv_text.encode(), "text/csv")},
    )
    page = follow_import(client, r)
    assert 'data-status="failed"' in page.text
    assert "行号" in page.text
    assert "原因" in page.text
    assert re.search(
        r'<td class="num">2</td><td>信息资源分类</td><td>信息资源分类 999 不存在</td>', page.text
    )
    assert console.resource_count() == before


def test_demand_form_errors_and_success(console: Console) -> None:
    client = console.signed_in(console.registrar)
    csrf = csrf_of(client)
    r = client.post(
        "/catalog/demands", data={"csrf_token": csrf, "title": "", "description": "说明"}
    )
    assert r.status_code == 422
    assert "需求名称" in r.text
    r = client.post(
        "/catalog/demands",
        data={"csrf_token": csrf, "title": "页面需求测试", "description": "说明"},
    )
    assert r.status_code == 303
    assert "页面需求测试" in client.get("/catalog/demands").text


def test_systems_flag_suspected_zombies(console: Console) -> None:
    client = console.signed_in(console.registrar)
    form = {
        "csrf_token": csrf_of(client),
        "name": "旧审批系统",
        "usage_frequency": "unused",
        "network": "internet",
    }
    assert client.post("/catalog/systems", data=form).status_code == 303
    page = client.get("/catalog/systems").text
    row = next(r for r in re.findall(r"<tr.*?</tr>", page, re.S) if "旧审批系统" in r)
    assert "疑似僵尸系统" in row
    r = client.post("/catalog/systems", data={**form, "network": "carrier-pigeon"})
    assert r.status_code == 422
    assert "部署网络" in r.text


def test_admin_forms_validate_in_chinese(console: Console) -> None:
    client = console.signed_in(console.admin)
    csrf = csrf_of(client)
    r = client.post(
        "/admin/departments",
        data={
            "csrf_token": csrf,
            "name": "青岛市测试局",
            "credit_code": "11370200MB0000001X",
            "division_code": "370200",
            "level": "city",
        },
    )
    assert r.status_code == 422
    assert "校验位不正确" in r.text
    r = client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "username": "x",
            "display_name": "测试",
            "password": "short",
            "department_id": str(console.department_id),
        },
    )
    assert r.status_code == 422
    assert "3至50位英文字母" in r.text
    assert "至少 8 个字符" in r.text
    assert "至少需要 1 项" in r.text
    name = unique("clerk_")
    r = client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "username": name,
            "display_name": "新编目员",
            "password": PASSWORD,
            "department_id": str(console.department_id),
            "roles": ["catalog_registrar"],
            "email": "Clerk@Example.GOV.cn",
        },
    )
    assert r.status_code == 303
    assert name in client.get("/admin/users").text
    with console.db() as s:
        user = s.scalars(select(User).where(User.username == name)).one()
    assert user.email == "clerk@example.gov.cn"

    # The address is changed on the list; a malformed one is told and the old one kept.
    r = client.post(f"/admin/users/{user.id}/email", data={"csrf_token": csrf, "email": "a b@c"})
    assert r.status_code == 422
    assert "邮箱地址格式不正确" in r.text
    assert 'value="a b@c"' in r.text  # what was typed is shown again beside the message
    r = client.post(f"/admin/users/{user.id}/email", data={"csrf_token": csrf, "email": ""})
    assert r.status_code == 303
    assert "用户邮箱已保存" in client.get(r.headers["location"]).text
    with console.db() as s:
        assert s.get_one(User, user.id).email is None
        actions = s.scalars(
            select(AuditEntry.action).where(
                AuditEntry.object_type == "user", AuditEntry.object_id == str(user.id)
            )
        ).all()
    assert "user.email" in actions


def test_audit_chain_button_reports_an_intact_chain(console: Console) -> None:
    client = console.signed_in(console.auditor)
    r = client.post(
        "/audit/verify",
        headers={
            "X-CSRF-Token": csrf_of(client),
            "HX-Request": "true",
            "HX-Target": "chain-report",
        },
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="chain-report"')
    assert "哈希链完整" in r.text
    page = client.get("/audit", params={"action": "audit.verify"})
    assert "校验哈希链" in page.text
    assert 'id="audit-table"' in page.text


def test_the_auditor_sees_the_signed_checkpoints(console: Console) -> None:
    from datetime import UTC, datetime

    from govshare.security import audit

    with console.db() as s:
        key = s.info["audit_key"]
        signed = audit.checkpoint(s, key, datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    assert signed is not None
    page = console.signed_in(console.auditor).get("/audit").text
    assert "签名检查点" in page
    assert f"<code>{signed[1]}</code>" in page
    assert "2026-03-02T09:30:00+00:00" in page
    assert key.public in page


def test_static_assets_are_served_locally(console: Console) -> None:
    client = console.anonymous()
    for path in [
        "/static/app.css",
        "/static/app.js",
        "/static/vendor/htmx.min.js",
        "/static/vendor/echarts.common.min.js",
    ]:
        assert client.get(path).status_code == 200, path
    assert "PingFang SC" in client.get("/static/app.css").text
    login = client.get("/login").text
    assert "http://" not in login
    assert "https://" not in login


def test_opening_the_verification_address_shows_the_report(console: Console) -> None:
    # A bookmarked or typed /audit/verify shows the verification, not a 405.
    page = console.signed_in(console.auditor).get("/audit/verify")
    assert page.status_code == 200, page.text
    assert "哈希链完整" in page.text
    assert 'id="audit-table"' in page.text
    assert console.signed_in(console.registrar).get("/audit/verify").status_code == 403


def test_every_user_sets_their_own_email(console: Console) -> None:
    client = console.signed_in(console.registrar)
    assert 'href="/account/email"' in client.get("/").text
    page = client.get("/account/email")
    assert page.status_code == 200
    assert "未设置" in page.text
    csrf = csrf_of(client)
    r = client.post("/account/email", data={"csrf_token": csrf, "email": "not-an-address"})
    assert r.status_code == 422
    assert "邮箱地址格式不正确" in r.text
    r = client.post("/account/email", data={"csrf_token": csrf, "email": "Me@Police.example.cn"})
    assert r.status_code == 303
    shown = client.get(r.headers["location"]).text
    assert "邮箱已保存" in shown
    assert "me@police.example.cn" in shown
    # Without the form's token nothing changes.
    r = client.post("/account/email", data={"email": "other@police.example.cn"})
    assert r.status_code == 403
    with console.db() as s:
        user = s.scalars(select(User).where(User.username == console.registrar)).one()
        assert user.email == "me@police.example.cn"
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "user.email", AuditEntry.object_id == str(user.id))
            .order_by(AuditEntry.seq.desc())
        ).first()
    assert entry is not None
    assert entry.actor == console.registrar
    assert entry.after == {"email": "me@police.example.cn"}
