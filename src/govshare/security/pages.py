"""Identity and audit console pages: departments, users, API clients (应用接入) and the
audit-log browser."""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.deps import (
    AuditReader,
    Authenticated,
    DepartmentAdmin,
    SessionDep,
    SettingsDep,
    UserAdmin,
)
from govshare.errors import Conflict, InvalidInput, NotFound
from govshare.ids import MAX_SEQ, Id, parse_id, parse_seq
from govshare.rules.clock import china_today
from govshare.security import archive, audit, audit_search, service
from govshare.security.anchor import read_checkpoints
from govshare.security.models import ApiClient, DepartmentLevel
from govshare.security.roles import Permission, Role
from govshare.security.schemas import DepartmentCreate, UserCreate
from govshare.security.service import Principal
from govshare.web.filters import CHINA
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    is_fragment_request,
    optional_int,
    redirect,
    render,
    text,
    texts,
    validation_problems,
)
from govshare.web.headers import attachment

router = APIRouter(include_in_schema=False)

# -- departments ------------------------------------------------------------------------

DEPARTMENT_LABELS = {
    "name": "部门全称",
    "short_name": "简称",
    "credit_code": "统一社会信用代码",
    "division_code": "行政区划代码",
    "level": "行政层级",
    "parent_id": "上级部门",
}


def _department_label(field: str) -> str:
    return DEPARTMENT_LABELS.get(field, field)


def _departments_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    departments = service.list_departments(db)
    return render(
        request,
        "admin/departments.html",
        caller,
        status_code=status_code,
        departments=departments,
        names={d.id: d.short_name for d in departments},
        levels=list(DepartmentLevel),
        values=values or {"level": DepartmentLevel.CITY.value},
        errors=errors,
    )


@router.get("/admin/departments")
def departments_page(request: Request, db: SessionDep, caller: DepartmentAdmin) -> Response:
    return _departments_page(request, db, caller)


@router.post("/admin/departments")
def add_department(
    request: Request, form: FormDep, db: SessionDep, caller: DepartmentAdmin
) -> Response:
    values: dict[str, Any] = {
        k: text(form, k) for k in ("name", "short_name", "credit_code", "division_code", "level")
    }
    values["credit_code"] = values["credit_code"].upper()
    values["parent_id"] = optional_int(text(form, "parent_id"))
    try:
        data = DepartmentCreate.model_validate(values)
        service.add_department(db, caller.actor, **data.model_dump())
    except ValidationError as exc:
        errors = FormErrors("部门信息不正确", validation_problems(exc), label=_department_label)
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_department_label)
    else:
        db.commit()
        return redirect("/admin/departments?done=department_added")
    return _departments_page(request, db, caller, values=values, errors=errors, status_code=422)


# -- users ----------------------------------------------------------------------------------

USER_LABELS = {
    "username": "登录名",
    "password": "初始密码",
    "display_name": "姓名",
    "department_id": "所属部门",
    "roles": "角色",
    "email": "邮箱",
}
USERNAME_HINT = {r"^[A-Za-z0-9_.-]{3,50}$": "3至50位英文字母、数字或 _ . -"}


def _user_label(field: str) -> str:
    return USER_LABELS.get(field.split("[")[0], field)


def _users_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    department_id: Id | None = None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    email_for: int | None = None,
    email_errors: FormErrors = NO_ERRORS,
    email_values: dict[int, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/users.html",
        caller,
        status_code=status_code,
        users=service.list_users(db, department_id),
        departments=service.list_departments(db),
        department_id=department_id,
        roles=list(Role),
        values=values or {"department_id": department_id or caller.department_id, "roles": []},
        errors=errors,
        email_for=email_for,
        email_errors=email_errors,
        email_values=email_values or {},
    )


@router.get("/admin/users")
def users_page(
    request: Request, db: SessionDep, caller: UserAdmin, department_id: str = ""
) -> Response:
    return _users_page(request, db, caller, department_id=parse_id(department_id))


@router.post("/admin/users")
def add_user(request: Request, form: FormDep, db: SessionDep, caller: UserAdmin) -> Response:
    values: dict[str, Any] = {k: text(form, k) for k in ("username", "display_name", "email")}
    values["department_id"] = optional_int(text(form, "department_id"))
    values["roles"] = [r for r in texts(form, "roles") if r]
    password = form.get("password")
    try:
        data = UserCreate.model_validate(
            {**values, "password": password if isinstance(password, str) else ""}
        )
        service.add_user(db, caller.actor, **data.model_dump())
    except ValidationError as exc:
        errors = FormErrors(
            "用户信息不正确",
            validation_problems(exc, pattern_hints=USERNAME_HINT),
            label=_user_label,
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        db.rollback()
        details = exc.details or (
            [{"field": "username", "message": exc.message}] if isinstance(exc, Conflict) else []
        )
        errors = FormErrors(exc.message, details, label=_user_label)
    else:
        db.commit()
        return redirect("/admin/users?done=user_added")
    return _users_page(request, db, caller, values=values, errors=errors, status_code=422)


def _my_email_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    value: str | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    user = service.own_account(db, caller)
    return render(
        request,
        "account/email.html",
        caller,
        status_code=status_code,
        user=user,
        value=user.email or "" if value is None else value,
        errors=errors,
    )


@router.get("/account/email")
def my_email_page(request: Request, db: SessionDep, caller: Authenticated) -> Response:
    return _my_email_page(request, db, caller)


@router.post("/account/email")
def set_my_email(
    request: Request, form: FormDep, db: SessionDep, caller: Authenticated
) -> Response:
    email = text(form, "email")
    try:
        service.set_user_email(db, caller.actor, service.own_account(db, caller), email)
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_user_label)
        return _my_email_page(request, db, caller, value=email, errors=errors, status_code=422)
    db.commit()
    return redirect("/account/email?done=my_email_set")


@router.post("/admin/users/{user_id}/email")
def set_user_email(
    user_id: Id, request: Request, form: FormDep, db: SessionDep, caller: UserAdmin
) -> Response:
    user = service.get_user(db, user_id)
    email = text(form, "email")
    try:
        service.set_user_email(db, caller.actor, user, email)
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_user_label)
        return _users_page(
            request,
            db,
            caller,
            email_for=user_id,
            email_errors=errors,
            email_values={user_id: email},
            status_code=422,
        )
    db.commit()
    return redirect("/admin/users?done=user_email_set")


@router.post("/admin/users/{user_id}/unlock")
def unlock_user(user_id: Id, db: SessionDep, caller: UserAdmin) -> Response:
    service.unlock_user(db, caller.actor, service.get_user(db, user_id))
    db.commit()
    return redirect("/admin/users?done=user_unlocked")


@router.post("/admin/users/{user_id}/reset-totp")
def reset_user_totp(user_id: Id, db: SessionDep, caller: UserAdmin) -> Response:
    done = service.reset_totp(db, caller.actor, service.get_user(db, user_id))
    db.commit()
    return redirect(f"/admin/users?done={'totp_reset' if done else 'totp_not_enabled'}")


# -- API clients (应用接入) -----------------------------------------------------------------

CLIENT_NOTICES = {
    "client_disabled": "接入应用已停用，其数据服务调用将被拒绝",
    "client_enabled": "接入应用已启用",
    "limits_set": "调用限额已保存",
}
# Why the data services refused a call (``data.denied``), as the error codes they answered.
DENIED_REASONS = {
    "no_grant": "没有有效授权",
    "shared_store_not_found": "目录未发布或没有共享信息库",
    "rate_limited": "调用过于频繁",
    "quota_exceeded": "超出每日额度",
    "invalid_application": "请求内容不正确",
    "invalid_input": "请求内容不正确",
    "unstorable_value": "请求内容不正确",
}
CLIENT_CALL_DAYS = 30  # days of calls the client's chart shows
_RATE = re.compile(r"[0-9]+(\.[0-9]+)?")
_QUOTA = re.compile(r"[0-9]+")


def _client_label(_field: str) -> str:
    """None: each message names its field already ("每秒调用上限应为数字…")."""
    return ""


def _client_limits(values: dict[str, Any]) -> tuple[float | None, int | None, list[Problem]]:
    """The rate and quota as typed (blank: the platform's), with precise problems."""
    problems: list[Problem] = []
    rate: float | None = None
    quota: int | None = None
    if raw := values["rate_per_second"]:
        if not _RATE.fullmatch(raw):
            problems.append(
                {"field": "rate_per_second", "message": "每秒调用上限应为数字，如 50 或 0.5"}
            )
        elif not 0 < float(raw) <= service.MAX_CLIENT_RATE:
            problems.append(
                {
                    "field": "rate_per_second",
                    "message": f"每秒调用上限应大于 0 且不超过 {service.MAX_CLIENT_RATE}",
                }
            )
        else:
            rate = float(raw)
    if raw := values["daily_quota"]:
        if not _QUOTA.fullmatch(raw):
            problems.append(
                {"field": "daily_quota", "message": "每日额度应为正整数（键数），如 100000"}
            )
        elif not 1 <= int(raw) <= MAX_SEQ:
            problems.append(
                {"field": "daily_quota", "message": f"每日额度应在 1 至 {MAX_SEQ} 之间"}
            )
        else:
            quota = int(raw)
    return rate, quota, problems


def _limit_values(form: Any) -> dict[str, Any]:
    return {k: text(form, k) for k in ("rate_per_second", "daily_quota")}


def _clients_page(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    departments = (
        service.list_departments(db)
        if caller.is_admin
        else [d for d in service.list_departments(db) if d.id == caller.department_id]
    )
    return render(
        request,
        "admin/clients.html",
        caller,
        status_code=status_code,
        rows=service.list_api_clients(db, caller, today=china_today()),
        departments=departments,
        settings=settings,
        values=values or {"department_id": caller.department_id},
        errors=errors,
        notice=CLIENT_NOTICES.get(request.query_params.get("done", ""), ""),
    )


def _client_page(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    client: ApiClient,
    *,
    secret: str | None = None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    network_text: str | None = None,
    network_errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    today = china_today()
    days = [today - timedelta(days=n) for n in range(CLIENT_CALL_DAYS - 1, -1, -1)]
    per_day = {d.day: d for d in service.api_client_daily_calls(db, client.id, since=days[0])}
    chart = None
    if per_day:
        chart = {
            "type": "bar",
            "title": f"近{CLIENT_CALL_DAYS}天数据服务调用",
            "labels": [d.strftime("%m-%d") for d in days],
            "series": [
                {
                    "name": "调用次数",
                    "values": [per_day[d].calls if d in per_day else 0 for d in days],
                },
                {"name": "键数", "values": [per_day[d].keys if d in per_day else 0 for d in days]},
            ],
        }
    return render(
        request,
        "admin/client.html",
        caller,
        status_code=status_code,
        # The page that shows a secret must not be kept by the browser or a proxy.
        headers={"Cache-Control": "no-store"} if secret else None,
        client=client,
        secret=secret,
        settings=settings,
        chart=chart,
        call_days=CLIENT_CALL_DAYS,
        network_text="\n".join(client.allowed_networks or [])
        if network_text is None
        else network_text,
        network_errors=network_errors,
        calls_today=sum(d.calls for d in per_day.values() if d.day == today),
        recent=service.api_client_recent_calls(db, client),
        action_labels=ACTION_LABELS,
        denied_reasons=DENIED_REASONS,
        may_audit=caller.can(Permission.AUDIT_READ),
        values=values
        or {
            "rate_per_second": ""
            if client.rate_per_second is None
            else f"{client.rate_per_second:g}",
            "daily_quota": "" if client.daily_quota is None else str(client.daily_quota),
        },
        errors=errors,
        notice=CLIENT_NOTICES.get(request.query_params.get("done", ""), ""),
    )


# The API lists and registers clients with ``user.admin`` (UserAdmin); the pages too.
@router.get("/admin/clients")
def clients_page(
    request: Request, db: SessionDep, settings: SettingsDep, caller: UserAdmin
) -> Response:
    return _clients_page(request, db, settings, caller)


@router.post("/admin/clients")
def add_client(
    request: Request, form: FormDep, db: SessionDep, settings: SettingsDep, caller: UserAdmin
) -> Response:
    values: dict[str, Any] = {"name": text(form, "name"), **_limit_values(form)}
    values["department_id"] = (
        optional_int(text(form, "department_id")) if caller.is_admin else caller.department_id
    )
    rate, quota, problems = _client_limits(values)
    if not 2 <= len(values["name"]) <= 100:
        problems.insert(0, {"field": "name", "message": "接入系统名称应为 2 至 100 个字符"})
    if not isinstance(values["department_id"], int):
        problems.append({"field": "department_id", "message": "请选择所属部门"})
    if problems:
        errors = FormErrors("接入应用信息不正确", problems, label=_client_label)
    else:
        try:
            client, secret = service.add_api_client(
                db,
                settings,
                caller.actor,
                name=values["name"],
                department_id=values["department_id"],
                rate_per_second=rate,
                daily_quota=quota,
            )
        except (InvalidInput, NotFound) as exc:
            db.rollback()
            details = exc.details or [{"field": "department_id", "message": exc.message}]
            errors = FormErrors(exc.message, details, label=_client_label)
        else:
            db.commit()
            # Shown on this answer only: the secret is kept sealed and never shown again.
            return _client_page(request, db, settings, caller, client, secret=secret)
    return _clients_page(
        request, db, settings, caller, values=values, errors=errors, status_code=422
    )


@router.get("/admin/clients/{client_id}")
def client_page(
    client_id: Id, request: Request, db: SessionDep, settings: SettingsDep, caller: UserAdmin
) -> Response:
    client = service.get_api_client(db, caller, client_id)
    return _client_page(request, db, settings, caller, client)


@router.post("/admin/clients/{client_id}/rotate")
def rotate_client_secret(
    client_id: Id, request: Request, db: SessionDep, settings: SettingsDep, caller: UserAdmin
) -> Response:
    client = service.get_api_client(db, caller, client_id)
    secret = service.rotate_api_client_secret(db, settings, caller.actor, client)
    db.commit()
    return _client_page(request, db, settings, caller, client, secret=secret)


@router.post("/admin/clients/{client_id}/disable")
def disable_client(client_id: Id, db: SessionDep, caller: UserAdmin) -> Response:
    client = service.get_api_client(db, caller, client_id)
    service.set_api_client_active(db, caller.actor, client, False)
    db.commit()
    return redirect(f"/admin/clients/{client.id}?done=client_disabled")


@router.post("/admin/clients/{client_id}/enable")
def enable_client(client_id: Id, db: SessionDep, caller: UserAdmin) -> Response:
    client = service.get_api_client(db, caller, client_id)
    service.set_api_client_active(db, caller.actor, client, True)
    db.commit()
    return redirect(f"/admin/clients/{client.id}?done=client_enabled")


@router.post("/admin/clients/{client_id}/limits")
def set_client_limits(
    client_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: UserAdmin,
) -> Response:
    client = service.get_api_client(db, caller, client_id)
    values = _limit_values(form)
    rate, quota, problems = _client_limits(values)
    if not problems:
        try:
            service.set_api_client_limits(
                db, caller.actor, client, rate_per_second=rate, daily_quota=quota
            )
        except InvalidInput as exc:
            db.rollback()
            problems = exc.details or []
        else:
            db.commit()
            return redirect(f"/admin/clients/{client.id}?done=limits_set")
    errors = FormErrors("调用限额不正确", problems, label=_client_label)
    return _client_page(
        request, db, settings, caller, client, values=values, errors=errors, status_code=422
    )


@router.post("/admin/clients/{client_id}/networks")
def set_client_networks(
    client_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: UserAdmin,
) -> Response:
    client = service.get_api_client(db, caller, client_id)
    entered = text(form, "allowed_networks")
    try:
        service.set_api_client_networks(db, caller.actor, client, entered.splitlines())
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=lambda _f: "地址或网段")
        return _client_page(
            request,
            db,
            settings,
            caller,
            client,
            network_text=entered,
            network_errors=errors,
            status_code=422,
        )
    db.commit()
    return redirect(f"/admin/clients/{client.id}?done=networks_set")


# -- audit log ---------------------------------------------------------------------------

ACTION_LABELS = {
    "auth.login": "登录",
    "auth.login_failed": "登录失败",
    "auth.login_locked": "锁定期内登录",
    "auth.account_locked": "账号锁定",
    "auth.logout": "退出登录",
    "auth.password_expired": "密码过期被拒登录",
    "auth.totp_enabled": "启用动态口令",
    "auth.totp_failed": "动态口令错误",
    "auth.totp_reset": "重置动态口令",
    "auth.totp_recovery_used": "用恢复码代替动态口令登录",
    "auth.totp_enrolment_required": "未启用动态口令被拒登录",
    "auth.revoke": "注销令牌",
    "audit.read": "查阅审计日志",
    "audit.verify": "校验哈希链",
    "audit.archive": "归档并清理审计日志",
    "audit.search": "检索审计日志 (含归档)",
    "audit.export": "导出审计检索结果",
    "ops.backup": "备份平台数据",
    "ops.alert_rule.update": "修改告警规则",
    "ops.alert_rule.reset": "告警规则恢复默认",
    "department.add": "新增部门",
    "user.add": "新增用户",
    "user.set_password": "修改密码",
    "api_client.set_networks": "设置应用 IP 白名单",
    "user.unlock": "解除锁定",
    "user.email": "设置用户邮箱",
    "collab.task.remind": "协同任务到期提醒",
    "auth.address_throttled": "登录地址限流",
    "api_client.add": "登记接入应用",
    "api_client.rotate_secret": "重置接入应用密钥",
    "keys.rotate": "轮换密钥",
    "api_client.disable": "停用接入应用",
    "api_client.enable": "启用接入应用",
    "api_client.set_limits": "设置接入应用调用限额",
    "demo.users": "载入演示用户",
    "demo.reset_passwords": "重置演示账号密码",
    "catalog.resource.add": "编制目录",
    "catalog.resource.update": "修改目录",
    "catalog.resource.delete": "删除目录",
    "catalog.resource.submit": "提交注册",
    "catalog.resource.approve": "注册审核通过",
    "catalog.resource.return": "退回修改",
    "catalog.resource.reject": "注册审核拒绝",
    "catalog.resource.request_publication": "提交发布",
    "catalog.resource.publish": "发布",
    "catalog.resource.reject_publication": "发布审核拒绝",
    "catalog.resource.withdraw": "取消发布",
    "catalog.import": "批量导入",
    "catalog.export": "导出目录",
    "catalog.classification.add": "新增分类",
    "catalog.code_entry.put": "维护代码表",
    "catalog.demand.add": "提出需求",
    "catalog.demand.respond": "响应需求",
    "catalog.demand.close": "关闭需求",
    "catalog.system.add": "登记信息系统",
    "catalog.system.update": "修改信息系统",
    "catalog.system.change": "登记信息系统变更",
    "catalog.duty.declare": "声明部门职责",
    "catalog.duty.change": "调整部门职责",
    "catalog.duty.withdraw": "取消部门职责",
    "catalog.duty.link": "职责关联目录",
    "catalog.duty.unlink": "职责取消关联目录",
    "exchange.node.enroll": "登记前置机",
    "exchange.node.register": "前置机注册",
    "exchange.node.registration_recovered": "前置机取回注册结果",
    "exchange.node.rotate_key": "前置机轮换签名密钥",
    "exchange.node.end_key_overlap": "立即停用前置机旧签名密钥",
    "exchange.node.command": "向前置机下发指令",
    "exchange.snapshot": "交换日志已清理，请提供方重发全量快照",
    "exchange.task.create": "新建交换任务",
    "exchange.task.update": "修改交换任务",
    "exchange.task.start": "启动交换任务",
    "exchange.task.stop": "停止交换任务",
    "exchange.domain.put": "维护交换域",
    "exchange.package.reject": "拒收交换包",
    "exchange.reconcile.request": "发起对账",
    "exchange.reconcile.result": "对账结果",
    "exchange.reconcile.timeout": "对账超时",
    "exchange.alert.resolve": "处理告警",
    "sharing.application.submit": "提交共享申请",
    "sharing.application.approve": "同意共享申请",
    "sharing.application.refuse": "拒绝共享申请",
    "sharing.application.provide": "标记已提供",
    "sharing.application.dispute": "提出争议",
    "sharing.dispute.decide": "裁决争议",
    "sharing.grant.create": "生成授权",
    "sharing.grant.revoke": "撤销授权",
    "sharing.grant.subscribe": "订阅授权数据",
    "sharing.usage.report": "反馈使用情况",
    "sharing.objection.raise": "提出异议",
    "sharing.objection.answer": "答复异议",
    "sharing.objection.corrected": "异议数据已更正",
    "sharing.store.create": "建立共享信息库",
    "sharing.store.reseal": "重新加密共享信息库",
    "basedata.create": "定义基础库",
    "basedata.reseal": "重新加密基础库",
    "compare.job.create": "新建比对任务",
    "compare.job.update": "修改比对任务",
    "compare.run.queue": "运行比对任务",
    "compare.run.cancel": "取消比对运行",
    "compare.run": "比对运行结束",
    "compare.case.step": "核查比对线索",
    "compare.case.export": "下载比对线索",
    "sharing.grant.demo": "演示数据预置授权",
    "quality.rule.update": "修改数据质量规则",
    "basedata.assemble": "重新归集基础库",
    "basedata.record.read": "查看基础库记录来源与历史",
    "basedata.conflict.confirm": "确认基础库冲突中本部门的值",
    "basedata.conflict.accept": "采纳基础库冲突的佐证值",
    "sharing.calendar.enter": "录入节假日安排",
    "collab.definition.upload": "上传流程定义",
    "collab.definition.export": "导出流程定义",
    "collab.case.start": "窗口受理办件",
    "collab.case.notice": "出具办件告知书",
    "collab.case.read": "查看办件",
    "collab.case.lookup": "申请人查询办件",
    "collab.task.claim": "认领协同任务",
    "collab.task.complete": "办理协同任务",
    "collab.task.overdue": "协同任务超期",
    "collab.case.overdue": "协同办件超期",
    "collab.supervision.export": "导出电子监察月报",
    "sharing.calendar.remove": "撤回节假日安排",
    "sharing.deadline.recount": "重算期限",
    "data.lookup": "数据查询 (按键)",
    "data.query": "数据查询 (条件)",
    "data.verify": "数据核验",
    "data.denied": "数据服务调用被拒",
    "data.replay_refused": "拒绝重放请求",
    # 考核评估
    "evaluation.run": "计算月度考核",
    "evaluation.recompute": "重新计算已发布的考核",
    "evaluation.publish": "发布月度考核",
    "evaluation.scheme.save": "保存考核方案",
    # 开放平台: 开发者、密钥、有条件开放申请
    "open.developer_registered": "开发者注册",
    "open.developer_confirmed": "开发者确认邮箱",
    "open.developer_login": "开发者登录",
    "open.developer_login_failed": "开发者登录失败",
    "open.key_created": "创建开放数据密钥",
    "open.key_revoked": "撤销开放数据密钥",
    "open.key_limits_set": "设置密钥额度",
    "open.application_submitted": "提交有条件开放申请",
    "open.application_approved": "批准有条件开放申请",
    "open.application_refused": "不予批准有条件开放申请",
    "open.application_revoked": "撤销有条件开放申请",
    # 开放平台: 数据需求征集、开放文件
    "open_demand.answer": "答复数据需求",
    "open_demand.assign": "分派数据需求",
    "open_demand.hide": "屏蔽数据需求",
    "open_demand.restore": "恢复数据需求",
    "open_file.upload": "上传开放文件",
    "open_file.withdraw": "撤下开放文件",
    # 电子公文交换
    "document.send": "发送公文",
    "document.download": "下载公文",
    "document.sign": "签收公文",
    "document.return": "退回公文",
    "document.verify": "核验公文",
    "document.remind": "催办公文签收",
}
AUDIT_FILTERS = ("actor", "action", "object_type", "object_id", "since", "until", "key_hash")
PAGE_SIZE = 50


def _day(value: str, field: str, problems: list[dict[str, str]]) -> datetime | None:
    """A yyyy-mm-dd in China time as the moment that day starts."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        problems.append({"field": field, "message": "日期格式应为 年-月-日"})
        return None
    return datetime(day.year, day.month, day.day, tzinfo=CHINA)


chain_problem_text = audit.problem_text


def _audit_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    report: audit.ChainReport | None = None,
    problems: list[dict[str, str]] | None = None,
) -> Response:
    qp = request.query_params
    params = {k: qp[k].strip() for k in AUDIT_FILTERS if qp.get(k, "").strip()}
    problems = list(problems or [])
    since = _day(params.get("since", ""), "since", problems)
    until = _day(params.get("until", ""), "until", problems)
    key_hash = params.get("key_hash", "").lower()
    if key_hash and not audit.KEY_HASH.fullmatch(key_hash):
        problems.append({"field": "key_hash", "message": "键哈希应为16位十六进制字符"})
        key_hash = ""
    flt = audit.AuditFilter(
        actor=params.get("actor"),
        action=params.get("action"),
        object_type=params.get("object_type"),
        object_id=params.get("object_id"),
        since=since,
        until=until + timedelta(days=1) if until else None,
        key_hash=key_hash or None,
    )
    before = qp.get("before_seq", "")
    rows = audit.list_entries(db, flt, before_seq=parse_seq(before), limit=PAGE_SIZE)
    key = audit.session_key(db)
    audit.record(
        db,
        caller.actor,
        "audit.read",
        object_type="audit_entry",
        after={"returned": len(rows), **params},
    )
    db.commit()
    return render(
        request,
        "audit/log.html",
        caller,
        rows=rows,
        params=params,
        action_labels=ACTION_LABELS,
        next_before=rows[-1].seq if len(rows) == PAGE_SIZE else None,
        first_page=not before,
        departments={d.id: d.short_name for d in service.list_departments(db)},
        errors=FormErrors("筛选条件有误", problems) if problems else NO_ERRORS,
        report=report,
        chain_problem_text=chain_problem_text,
        journalled_calls=audit.journalled_calls,
        key_hash=key_hash,
        audit_key=key,
        checkpoints=list(reversed(read_checkpoints(key, last=5))) if key else [],
    )


@router.get("/audit")
def audit_page(request: Request, db: SessionDep, caller: AuditReader) -> Response:
    return _audit_page(request, db, caller)


@router.post("/audit/key-hash")
def audit_key_hash(
    request: Request, form: FormDep, db: SessionDep, caller: AuditReader
) -> Response:
    """A query key (公民身份号码 …) typed by the auditor, turned into the hash the log
    holds: posted, so the key itself never appears in an address or an access log."""
    key = text(form, "key")
    if not key:
        return _audit_page(
            request, db, caller, problems=[{"field": "key", "message": "请填写查询键"}]
        )
    hashed = audit.KeyHasher(request.app.state.settings.secret_key)(key)
    return redirect(f"/audit?key_hash={hashed}")


@router.get("/audit/verify")
@router.post("/audit/verify")
def verify_chain(request: Request, db: SessionDep, caller: AuditReader) -> Response:
    """Verify the chain: the button on the audit page (POST), or the address itself
    opened or bookmarked (GET), which shows the page with the report."""
    report = audit.verify_chain(db)
    audit.record(
        db, caller.actor, "audit.verify", object_type="audit_entry", after={"intact": report.intact}
    )
    db.commit()
    if is_fragment_request(request, "chain-report"):
        return render(
            request,
            "audit/_chain.html",
            caller,
            report=report,
            chain_problem_text=chain_problem_text,
        )
    return _audit_page(request, db, caller, report=report)


# -- search across archives and export ---------------------------------------------------

SEARCH_FILTERS = ("key_hash", "actor", "action", "object_type", "object_id", "since", "until")
SEARCH_FLAGS = ("catalog", "refusals")
SEARCH_SHOWN = 200
_SEARCH_LABELS = {"key_hash": "键哈希", "since": "起始日期", "until": "截止日期"}


def _search_query(
    request: Request, problems: list[dict[str, str]]
) -> tuple[audit_search.SearchQuery | None, dict[str, str]]:
    """The search the address asks for (None when it asks for none), and its parameters."""
    qp = request.query_params
    params = {k: qp[k].strip() for k in SEARCH_FILTERS if qp.get(k, "").strip()}
    params |= {k: "1" for k in SEARCH_FLAGS if qp.get(k) == "1"}
    if not params:
        return None, params
    since = _day(params.get("since", ""), "since", problems)
    until = _day(params.get("until", ""), "until", problems)
    key_hash = params.get("key_hash", "").lower() or None
    if key_hash and not audit.KEY_HASH.fullmatch(key_hash):
        problems.append({"field": "key_hash", "message": "键哈希应为16位十六进制字符"})
    if problems:
        return None, params
    return (
        audit_search.SearchQuery(
            key_hash=key_hash,
            actor=params.get("actor"),
            action=params.get("action"),
            object_type=params.get("object_type"),
            object_id=params.get("object_id"),
            since=since,
            until=until + timedelta(days=1) if until else None,
            catalog="catalog" in params,
            refusals="refusals" in params,
        ),
        params,
    )


@router.get("/audit/search")
def audit_search_page(request: Request, db: SessionDep, caller: AuditReader) -> Response:
    """审计检索: the live entries and every archive, metadata only (never the data)."""
    problems: list[dict[str, str]] = []
    q, params = _search_query(request, problems)
    return _search_page(request, db, caller, q, params, problems)


def _search_page(
    request: Request,
    db: Session,
    caller: Principal,
    q: audit_search.SearchQuery | None,
    params: dict[str, str],
    problems: list[dict[str, str]],
) -> Response:
    key = audit.session_key(db)
    hits: list[audit_search.Hit] = []
    if q is not None:
        for hit in audit_search.search(db, key, q):
            hits.append(hit)
            if len(hits) > SEARCH_SHOWN:
                break
        audit.record(
            db,
            caller.actor,
            "audit.search",
            object_type="audit_entry",
            after={"returned": min(len(hits), SEARCH_SHOWN), "archives": True, **q.describe()},
        )
        db.commit()
    return render(
        request,
        "audit/search.html",
        caller,
        hits=hits[:SEARCH_SHOWN],
        more=len(hits) > SEARCH_SHOWN,
        searched=q is not None,
        params=params,
        action_labels=ACTION_LABELS,
        departments={d.id: d.short_name for d in service.list_departments(db)},
        archives=archive.registered(db),
        errors=(
            FormErrors("检索条件有误", problems, label=lambda f: _SEARCH_LABELS.get(f, ""))
            if problems
            else NO_ERRORS
        ),
    )


@router.get("/audit/search/export")
def audit_search_export(request: Request, db: SessionDep, caller: AuditReader) -> Response:
    """The whole search as XLSX with its detached signature, both in one ZIP."""
    problems: list[dict[str, str]] = []
    q, params = _search_query(request, problems)
    key = audit.session_key(db)
    if q is None or key is None:
        if not problems:
            message = "请先给出检索条件再导出" if q is None else "数据目录中没有审计密钥，无法签名"
            problems.append({"field": "", "message": message})
        return _search_page(request, db, caller, None, params, problems)
    now = datetime.now(UTC)
    stem = f"audit-search-{now.astimezone(CHINA):%Y%m%d-%H%M%S}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem}.xlsx"
        count = audit_search.export_xlsx(
            audit_search.search(db, key, q),
            path,
            q=q,
            labels=ACTION_LABELS,
            departments={d.id: d.short_name for d in service.list_departments(db)},
            made_at=now,
            made_by=caller.actor.name,
        )
        signature = audit_search.sign_file(key, path, now=now)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.write(path, path.name)
            bundle.write(signature, signature.name)
    audit.record(
        db,
        caller.actor,
        "audit.export",
        object_type="audit_entry",
        after={"returned": count, "archives": True, **q.describe()},
    )
    db.commit()
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers=attachment(f"{stem}.zip", f"审计检索-{stem[13:]}.zip"),
    )
