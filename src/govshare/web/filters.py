"""Jinja filters and globals for the console: Chinese labels, times, URLs."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from markupsafe import Markup, escape

from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.rules.masking import MaskingRule
from govshare.security.models import DepartmentLevel
from govshare.security.roles import Permission, Role
from govshare.sharing.models import GRANT_STATE_LABELS
from govshare.web.forms import NO_ERRORS

CHINA = ZoneInfo("Asia/Shanghai")
STATIC = Path(__file__).parent.parent / "static"

# Notices shown after a redirect (``?done=key``); only these fixed texts, so a crafted
# link cannot put words of its own on the page.
NOTICES: dict[str, str] = {
    "logged_out": "已安全退出",
    "password_changed": "密码已修改，请用新密码登录",
    "totp_enabled": "动态口令已启用，今后登录请同时输入验证器应用显示的六位数字",
    "networks_set": "允许调用的网络已保存",
    "created": "目录已保存为草稿，核对无误后请提交注册",
    "updated": "目录已保存",
    "deleted": "草稿已删除",
    "imported": "导入成功，新目录已保存为草稿",
    "step": "操作已完成",
    "department_added": "部门已新增",
    "user_added": "用户已新增",
    "user_unlocked": "账号已解除锁定",
    "user_email_set": "用户邮箱已保存",
    "my_email_set": "邮箱已保存",
    "totp_reset": "动态口令已重置，该用户下次登录前须重新启用",
    "totp_not_enabled": "该账号未启用动态口令，无需重置",
    "demand_added": "需求已发布",
    "demand_answered": "已响应该需求",
    "demand_closed": "需求已关闭",
    "system_added": "信息系统已登记",
    "duty_declared": "职责已声明，请在目录更新期限内编制或关联对应目录",
    "duty_changed": "职责已调整，已登记职责调整",
    "duty_withdrawn": "职责已取消，已登记职责调整",
    "duty_linked": "已关联目录",
    "duty_unlinked": "已取消关联",
    "system_changed": "信息系统变更已登记，目录更新期限已起算",
}


def local_time(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """China time of a moment, or of an ISO moment kept in JSON (an audit entry's calls)."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return moment.astimezone(CHINA).strftime(fmt)
    return value.astimezone(CHINA).strftime(fmt)


def local_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_time(value, "%Y-%m-%d")
    return value.strftime("%Y-%m-%d")


def status_label(value: str | None) -> str:
    try:
        return ResourceStatus(value or "").label
    except ValueError:
        return value or ""


def sharing_label(value: str | None) -> str:
    try:
        return SharingType(value or "").label
    except ValueError:
        return value or ""


def kind_label(value: str | None) -> str:
    try:
        return ResourceKind(value or "").label
    except ValueError:
        return value or ""


def role_label(value: str) -> str:
    try:
        return Role(value).label
    except ValueError:
        return value


def level_label(value: str) -> str:
    try:
        return DepartmentLevel(value).label
    except ValueError:
        return value


def yes_no(value: object) -> str:
    return "是" if value else "否"


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def with_query(params: dict[str, Any], **changes: Any) -> str:
    """A query string: ``params`` with ``changes`` applied (None or "" removes a key)."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else "?"


def highlight(value: str, words: list[str]) -> Markup:
    """Escape ``value`` and wrap each occurrence of ``words`` in ``<mark>``."""
    text = str(value)
    if not words:
        return escape(text)
    lowered = text.lower()
    spans: list[tuple[int, int]] = []
    for word in sorted({w for w in words if w}, key=len, reverse=True):
        start = lowered.find(word)
        while start >= 0:
            end = start + len(word)
            if not any(s < end and start < e for s, e in spans):
                spans.append((start, end))
            start = lowered.find(word, end)
    out, pos = Markup(), 0
    for start, end in sorted(spans):
        out += (
            escape(text[pos:start]) + Markup("<mark>") + escape(text[start:end]) + Markup("</mark>")
        )
        pos = end
    return out + escape(text[pos:])


@pass_context
def person(context: Any, username: str | None) -> str:
    """The name of the person behind a login name (``gaj_reg`` → 公安编目员): records keep
    the login name, readers want the person. Looked up once per request."""
    if not username:
        return ""
    if username == "system":
        return "系统"
    request = context.get("request")
    if request is None:
        return username
    names: dict[str, str] | None = getattr(request.state, "person_names", None)
    if names is None:
        from sqlalchemy import select

        from govshare.security.models import User

        with request.app.state.session_factory() as session:
            names = {
                u: d for u, d in session.execute(select(User.username, User.display_name)) if d
            }
        request.state.person_names = names
    return names.get(username, username)


def asset_version() -> str:
    """A digest of the hand-written static files, appended to their URLs so a browser
    fetches them again after an upgrade."""
    h = hashlib.sha256()
    for path in sorted(STATIC.glob("*.*")):
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def install(env: Any) -> None:
    env.filters.update(
        local_time=local_time,
        local_date=local_date,
        status_label=status_label,
        sharing_label=sharing_label,
        kind_label=kind_label,
        role_label=role_label,
        level_label=level_label,
        yes_no=yes_no,
        pretty_json=pretty_json,
        highlight=highlight,
        person=person,
    )
    env.globals.update(
        Permission=Permission,
        MaskingRule=MaskingRule,
        NOTICES=NOTICES,
        GRANT_STATE_LABELS=GRANT_STATE_LABELS,
        with_query=with_query,
        no_errors=NO_ERRORS,
        asset_version=asset_version(),
    )
