"""Exchange console pages: monitoring (桥接监控), nodes, tasks and domains (桥接管理),
reconciliation results (桥接核对) and alerts.

Each handler parses the request, calls the exchange service and renders. Reading needs
``exchange.read``; everything that changes the exchange needs ``exchange.admin``, and
turning a discovered table into a catalog draft needs ``catalog.write``. Forms the
service rejects come back with every problem beside its field (and nothing stored).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from govshare.catalog import search
from govshare.catalog import service as catalog_service
from govshare.catalog.errors import ResourceNotFound
from govshare.config import Settings
from govshare.db import utcnow
from govshare.deps import (
    CatalogWriter,
    ExchangeAdmin,
    ExchangeReader,
    SessionDep,
    SettingsDep,
)
from govshare.errors import GovshareError, InvalidInput, NotFound
from govshare.exchange import alerts, service
from govshare.exchange.models import (
    Alert,
    ExchangeTask,
    NodeCommand,
    TaskKind,
    TaskState,
)
from govshare.exchange.schemas import (
    IDENT,
    DomainIn,
    FromTableIn,
    NodeCreate,
    ProviderConfig,
    SubscriberConfig,
    TaskCreate,
)
from govshare.ids import Id, parse_id, parse_seq
from govshare.security import audit
from govshare.security import service as identity
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.charts import chart as _chart
from govshare.web.filters import local_time
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    optional_int,
    redirect,
    render,
    safe_next,
    text,
    texts,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

PACKAGE_PAGE = 50

# Notices after a redirect (``?done=key``); fixed texts only, like web.filters.NOTICES.
NOTICES: dict[str, str] = {
    "node_command": "命令已下发，前置机在线时通常 1 秒内开始执行",
    "key_overlap_ended": "旧签名密钥已停用：此后以其签名的请求和数据包一律拒绝",
    "task_added": "交换任务已创建（未部署），核对配置后请启动",
    "task_started": "任务已启动，前置机在线时通常 1 秒内开始执行",
    "task_stopped": "任务已停止",
    "reconcile_requested": "已发起核对，源端与目标端回报校验结果后显示在下方",
    "alert_resolved": "告警已处理",
    "domain_saved": "交换域已保存",
}
NODE_STATUS = {"enrolling": "待注册", "active": "已启用", "disabled": "已停用"}
TASK_KINDS = {"provider": "发送任务", "subscriber": "接收任务"}
COMMANDS = {
    "collect_schema": "采集表结构",
    "keyset": "键集比对",
    "resync": "重新同步",
    "checksum": "核对校验",
    "snapshot": "全量快照",
}
COMMAND_STATUS = {
    "pending": "待领取",
    "sent": "已下发",
    "done": "已完成",
    "failed": "失败",
    "expired": "已撤回",
}
OUTCOMES = {"pending": "核对中", "match": "一致", "mismatch": "不一致", "failed": "超时失败"}
MODES = {
    "incremental": "增量（按游标列）",
    "snapshot": "全量快照",
    "log": "日志捕获（逻辑复制 / 二进制日志）",
}
DELETE_DETECTION = {
    "keyset": "键集比对",
    "soft_delete": "软删除标记",
    "none": "不识别删除",
}

# Every field of the two task forms, by its Chinese name.
TASK_LABELS: dict[str, str] = {
    "name": "任务名称",
    "node_id": "前置机",
    "resource_code": "目录",
    "resource_id": "目录",
    "source_task_id": "订阅的发送任务",
    "source": "数据源",
    "table": "表名",
    "query": "只读查询",
    "key": "主键列",
    "columns": "交换列",
    "mode": "抽取方式",
    "cursor_column": "游标列",
    "delete_detection": "删除识别",
    "soft_delete_column": "软删除标记列",
    "soft_delete_value": "软删除标记值",
    "keyset_every_seconds": "键集比对周期",
    "batch_rows": "每包行数",
    "schedule_interval_seconds": "执行间隔",
    "schedule_cron": "定时表达式",
    "target": "目标库",
    "mapping": "列映射",
    "code_maps": "代码转换",
}
PATTERN_HINTS = {IDENT: "应以英文字母或下划线开头，只含英文字母、数字、下划线和点"}
# A schema's ``model_validator`` reports against the whole config; these words in its
# message say which field the person must change.
_MODEL_PROBLEM_FIELDS = ("cursor_column", "soft_delete_column", "table", "query")


def _labels(names: dict[str, str]) -> Callable[[str], str]:
    """A field's Chinese name for the error summary; ``key[1]`` is named as ``key``."""
    return lambda field: names.get(field.split("[")[0], field)


def _ago(value: datetime | None) -> str:
    """``3 分钟前`` for a last-seen time; empty when never seen."""
    if value is None:
        return ""
    seconds = max(int((utcnow() - value).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} 秒前"
    if seconds < 3600:
        return f"{seconds // 60} 分钟前"
    if seconds < 86400:
        return f"{seconds // 3600} 小时前"
    return f"{seconds // 86400} 天前"


def _page(
    request: Request, template: str, caller: Principal, *, status_code: int = 200, **context: Any
) -> Response:
    done = request.query_params.get("done", "")
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        notice=NOTICES.get(done, ""),
        ago=_ago,
        task_kinds=TASK_KINDS,
        **context,
    )


# -- monitor (桥接监控) ----------------------------------------------------------------------


@router.get("/exchange")
def monitor_page(request: Request, db: SessionDep, caller: ExchangeReader) -> Response:
    summary = service.monitor_summary(db)
    hours = [local_time(datetime.fromisoformat(h), "%H:00") for h in summary["hours"]]
    lag = sorted(summary["lag"], key=lambda x: -x["rows_behind"])
    tasks = service.list_tasks(db)
    open_alerts = alerts.list_alerts(db, open_only=True)
    charts = [
        _chart(
            "line",
            "近24小时交换行数（每小时）",
            hours,
            series=[
                {"name": "平台接收", "values": summary["rows_received"]},
                {"name": "订阅方入库", "values": summary["rows_applied"]},
            ],
        ),
        _chart(
            "bar",
            "各订阅积压行数",
            [f"#{x['task_id']} {x['name']}" for x in lag],
            values=[x["rows_behind"] for x in lag],
        ),
    ]
    cards = [
        ("前置机在线", f"{summary['online']} / {len(summary['nodes'])}", "/exchange/nodes"),
        (
            "运行中任务",
            sum(1 for t in tasks if t.state is TaskState.RUNNING),
            "/exchange/tasks",
        ),
        ("有积压的订阅", sum(1 for x in lag if x["packages_behind"]), "/exchange/tasks"),
        ("未处理告警", len(open_alerts), "/exchange/alerts"),
    ]
    return _page(
        request,
        "exchange/monitor.html",
        caller,
        summary=summary,
        lag=lag,
        charts=charts,
        cards=cards,
        open_alerts=open_alerts[:10],
        open_count=len(open_alerts),
        nodes={n.id: n for n in service.list_nodes(db)},
        tasks={t.id: t for t in tasks},
    )


# -- nodes (前置机) ------------------------------------------------------------------------


def _nodes_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    enrolled: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    nodes = service.list_nodes(db)
    tasks = service.list_tasks(db)
    response = _page(
        request,
        "exchange/nodes.html",
        caller,
        status_code=status_code,
        nodes=nodes,
        tasks_by_node={n.id: [t for t in tasks if t.node_id == n.id] for n in nodes},
        node_status=NODE_STATUS,
        departments=identity.list_departments(db),
        values=values or {},
        errors=errors,
        enrolled=enrolled,
    )
    if enrolled:
        # The token is shown once: keep the page out of every cache and history store.
        response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/exchange/nodes")
def nodes_page(request: Request, db: SessionDep, caller: ExchangeReader) -> Response:
    return _nodes_page(request, db, caller)


@router.post("/exchange/nodes")
def enroll_node(
    request: Request, form: FormDep, db: SessionDep, settings: SettingsDep, caller: ExchangeAdmin
) -> Response:
    values = {"name": text(form, "name"), "department_id": text(form, "department_id")}
    label = _labels({"name": "前置机名称", "department_id": "所属部门"})
    try:
        data = NodeCreate.model_validate(
            {**values, "department_id": optional_int(values["department_id"])}
        )
        node, token = service.enroll_node(
            db, settings, caller, name=data.name, department_id=data.department_id
        )
    except ValidationError as exc:
        errors = FormErrors("前置机信息不完整", validation_problems(exc), label=label)
    except (InvalidInput, NotFound) as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=label)
    else:
        db.commit()
        hub_url = str(request.base_url).rstrip("/")
        enrolled = {"node": node, "token": token, "toml": service.node_toml(hub_url, node, token)}
        return _nodes_page(request, db, caller, enrolled=enrolled)
    return _nodes_page(request, db, caller, values=values, errors=errors, status_code=422)


def _recent_commands(db: Session, node_id: Id, limit: int = 20) -> list[NodeCommand]:
    return list(
        db.scalars(
            select(NodeCommand)
            .where(NodeCommand.node_id == node_id)
            .order_by(NodeCommand.id.desc())
            .limit(limit)
        )
    )


def _node_page(
    request: Request,
    db: Session,
    caller: Principal,
    node_id: Id,
    *,
    draft_for: str = "",
    draft_values: dict[str, Any] | None = None,
    draft_errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    node = service.get_node(db, node_id)
    known = {f"{source}.{table}" for source, tables in node.schemas.items() for table in tables}
    settings: Settings = request.app.state.settings
    # Replaced keys still accepted, and until when (停用旧密钥 ends that at once).
    old_keys = [
        (e["public_key"], service.overlap_end(settings, e))
        for e in service.keys_in_overlap(settings, node, utcnow())
    ]
    return _page(
        request,
        "exchange/node.html",
        caller,
        status_code=status_code,
        nav="/exchange/nodes",
        node=node,
        old_keys=old_keys,
        node_status=NODE_STATUS,
        tasks=service.list_tasks(db, node_id=node.id),
        commands=_recent_commands(db, node.id),
        command_labels=COMMANDS,
        command_status=COMMAND_STATUS,
        alerts=[a for a in alerts.list_alerts(db, open_only=True) if a.node_id == node.id],
        classifications=catalog_service.list_classifications(db)
        if caller.can(Permission.CATALOG_WRITE)
        else [],
        draft_for=draft_for,
        draft_values=draft_values or {},
        draft_errors=draft_errors,
        # Problems with a table the node never reported have no form to sit beside.
        stray_errors=draft_errors if draft_for not in known else NO_ERRORS,
    )


@router.get("/exchange/nodes/{node_id}")
def node_page(node_id: Id, request: Request, db: SessionDep, caller: ExchangeReader) -> Response:
    return _node_page(request, db, caller, node_id)


@router.post("/exchange/nodes/{node_id}/key/end-overlap")
def end_key_overlap(
    node_id: Id, db: SessionDep, settings: SettingsDep, caller: ExchangeAdmin
) -> Response:
    service.end_key_overlap(db, settings, caller, node_id)
    db.commit()
    return redirect(f"/exchange/nodes/{node_id}?done=key_overlap_ended")


@router.post("/exchange/nodes/{node_id}/commands")
def send_command(node_id: Id, form: FormDep, db: SessionDep, caller: ExchangeAdmin) -> Response:
    """collect_schema for the node, keyset or resync for one of its tasks."""
    command = text(form, "command")
    task_id = optional_int(text(form, "task_id"))
    back = safe_next(text(form, "next"), f"/exchange/nodes/{node_id}")
    if command not in ("collect_schema", "keyset", "resync"):
        raise InvalidInput(
            "不支持的命令",
            details=[{"field": "command", "message": "应为采集表结构、键集比对或重新同步"}],
        )
    if command == "collect_schema":
        service.issue_command(db, caller, node_id, command)
    else:
        if not isinstance(task_id, int):
            raise InvalidInput(
                f"“{COMMANDS[command]}”须选择任务",
                details=[{"field": "task_id", "message": "请选择该前置机上的任务"}],
            )
        task = service.get_task(db, task_id)
        if command == "keyset" and task.kind is not TaskKind.PROVIDER:
            raise InvalidInput(
                "键集比对只适用于发送任务",
                details=[{"field": "task_id", "message": "不是发送任务"}],
            )
        if command == "resync" and task.kind is TaskKind.SUBSCRIBER:
            if task.node_id != node_id:
                raise InvalidInput(
                    "任务不属于该前置机",
                    details=[{"field": "task_id", "message": "任务不属于该前置机"}],
                )
            service.reset_subscription(db, caller, task.id)  # redeliver from package 1
        else:
            service.issue_command(db, caller, node_id, command, task.id)
    db.commit()
    return redirect(_with_done(back, "node_command"))


def _with_done(url: str, done: str) -> str:
    """``url`` with ``?done=`` set to the notice to show after the redirect."""
    url = re.sub(r"([?&])done=[^&#]*&?", r"\1", url).rstrip("?&")
    return f"{url}{'&' if '?' in url else '?'}done={done}"


@router.post("/exchange/nodes/{node_id}/resources")
def draft_from_table(
    node_id: Id, request: Request, form: FormDep, db: SessionDep, caller: CatalogWriter
) -> Response:
    """Compile a catalog draft from a table the node reported (生成目录草稿)."""
    values = {
        k: text(form, k) for k in ("source", "table", "classification_code", "name", "abstract")
    }
    label = _labels(
        {
            "classification_code": "信息资源分类",
            "name": "信息资源名称",
            "abstract": "信息资源摘要",
            "table": "表",
        }
    )
    problems: list[Problem] = []
    if not values["classification_code"]:
        problems.append({"field": "classification_code", "message": "请选择信息资源分类"})
    try:
        body = FromTableIn.model_validate({**values, "node_id": node_id})
    except ValidationError as exc:
        problems += validation_problems(exc, pattern_hints=PATTERN_HINTS)
    if problems:
        errors = FormErrors("目录信息不完整", problems, label=label)
    else:
        try:
            created = service.resource_draft_from_table(db, caller, body)
        except InvalidInput as exc:
            db.rollback()
            errors = FormErrors(f"{exc.message}，请按提示修改", exc.details, label=label)
        else:
            db.commit()
            return redirect(f"/catalog/resources/{created.id}?done=created")
    return _node_page(
        request,
        db,
        caller,
        node_id,
        draft_for=f"{values['source']}.{values['table']}",
        draft_values=values,
        draft_errors=errors,
        status_code=422,
    )


# -- tasks (交换任务) -------------------------------------------------------------------------


def _names(value: str) -> list[str]:
    """Column names typed as ``id, sfzhm`` or ``id sfzhm`` or one per line."""
    return [v for v in re.split(r"[、,，;；\s]+", value) if v]


def _pairs(value: str, field: str, form_hint: str) -> tuple[dict[str, str], list[Problem]]:
    out: dict[str, str] = {}
    problems: list[Problem] = []
    for number, line in enumerate(value.splitlines(), start=1):
        if not line.strip():
            continue
        left, sep, right = line.partition("=")
        if not sep or not left.strip() or not right.strip():
            problems.append({"field": field, "message": f"第{number}行应写成“{form_hint}”"})
        else:
            out[left.strip()] = right.strip()
    return out, problems


def _config_problems(exc: ValidationError) -> list[Problem]:
    """The schema's errors in Chinese, each against the form field to change."""
    problems = validation_problems(exc, pattern_hints=PATTERN_HINTS)
    for problem, err in zip(problems, exc.errors(), strict=True):
        if err.get("input") == "":
            problem["message"] = "必填"
        elif err["type"] == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")
            problem["message"] = message
            if not err["loc"]:
                problem["field"] = next((f for f in _MODEL_PROBLEM_FIELDS if f in message), "")
        elif err["type"] in ("float_parsing", "float_type"):
            problem["message"] = "应为数字"
        problem["field"] = problem["field"].replace("schedule.", "schedule_")
    return problems


def _schedule(form: FormData) -> dict[str, Any]:
    interval, cron = text(form, "schedule_interval_seconds"), text(form, "schedule_cron")
    schedule: dict[str, Any] = {"cron": cron or None}
    schedule["interval_seconds"] = interval or (None if cron else 5)
    return schedule


def _provider_config(form: FormData) -> dict[str, Any]:
    return {
        "source": text(form, "source"),
        "table": text(form, "table") or None,
        "query": text(form, "query") or None,
        "key": _names(text(form, "key")),
        "columns": _names(text(form, "columns")) or None,
        "mode": text(form, "mode") or "incremental",
        "cursor_column": text(form, "cursor_column") or None,
        "delete_detection": text(form, "delete_detection") or "keyset",
        "soft_delete_column": text(form, "soft_delete_column") or None,
        "soft_delete_value": text(form, "soft_delete_value") or "1",
        "keyset_every_seconds": text(form, "keyset_every_seconds") or 300,
        "batch_rows": text(form, "batch_rows") or 50_000,
        "schedule": _schedule(form),
    }


def _subscriber_config(form: FormData) -> tuple[dict[str, Any], list[Problem]]:
    mapping, problems = _pairs(text(form, "mapping"), "mapping", "源列=目标列")
    code_maps: dict[str, dict[str, str]] = {}
    raw, more = _pairs(text(form, "code_maps"), "code_maps", "列:源代码=目标代码")
    problems += more
    for left, right in raw.items():
        column, sep, code = left.partition(":")
        if not sep or not column.strip() or not code.strip():
            problems.append({"field": "code_maps", "message": f"“{left}”应写成“列:源代码”"})
            continue
        code_maps.setdefault(column.strip(), {})[code.strip()] = right
    config: dict[str, Any] = {
        "target": text(form, "target"),
        "table": text(form, "table"),
        "mapping": mapping,
        "code_maps": code_maps,
        "schedule": _schedule(form),
    }
    return config, problems


FORM_DEFAULTS = {
    "provider": {
        "mode": "incremental",
        "delete_detection": "keyset",
        "soft_delete_value": "1",
        "keyset_every_seconds": "300",
        "batch_rows": "50000",
        "schedule_interval_seconds": "5",
    },
    "subscriber": {"schedule_interval_seconds": "5"},
}


def _task_payload(db: Session, kind: str, form: FormData) -> tuple[dict[str, Any], list[Problem]]:
    """The service's input and every problem the form reveals before the service runs:
    the config schema's, the task schema's and references that do not resolve."""
    problems: list[Problem] = []
    if kind == "provider":
        config = _provider_config(form)
        schema: type[BaseModel] = ProviderConfig
    else:
        config, problems = _subscriber_config(form)
        schema = SubscriberConfig
    try:
        schema.model_validate(config)
    except ValidationError as exc:
        problems += _config_problems(exc)
    payload: dict[str, Any] = {
        "name": text(form, "name"),
        "kind": kind,
        "node_id": optional_int(text(form, "node_id")),
        "config": config,
    }
    if not isinstance(payload["node_id"], int):
        problems.append({"field": "node_id", "message": "请选择前置机"})
    if kind == "provider":
        code = text(form, "resource_code")
        payload["resource_id"] = None
        if not code:
            problems.append({"field": "resource_code", "message": "请填写已发布目录的资源代码"})
        else:
            try:
                payload["resource_id"] = catalog_service.get_resource_by_code(db, code).id
            except ResourceNotFound:
                problems.append(
                    {"field": "resource_code", "message": f"没有资源代码为 {code} 的目录"}
                )
    else:
        source_id = optional_int(text(form, "source_task_id"))
        payload["source_task_id"] = source_id
        source = db.get(ExchangeTask, source_id) if isinstance(source_id, int) else None
        if source is None or source.kind is not TaskKind.PROVIDER:
            problems.append({"field": "source_task_id", "message": "请选择要订阅的发送任务"})
            payload["resource_id"] = None
        else:
            payload["resource_id"] = source.resource_id
    try:
        TaskCreate.model_validate(payload)
    except ValidationError as exc:
        problems += [
            p
            for p in validation_problems(exc)
            if not p["field"].startswith(("config", "resource_id", "source_task_id", "node_id"))
        ]
    return payload, problems


def _service_problems(kind: str, details: list[dict[str, Any]]) -> list[Problem]:
    """The service's problem fields as the form's: ``config.key`` → ``key``."""
    out = []
    for p in details:
        field = str(p.get("field") or "").removeprefix("config.").replace("schedule.", "schedule_")
        if field == "resource_id":
            field = "resource_code" if kind == "provider" else "source_task_id"
        out.append({"field": field, "message": p.get("message", "")})
    return out


def _published_resources(db: Session) -> list[Any]:
    """Suggestions for the resource code field: the newest published entries."""
    sq = search.SearchQuery(scope="catalog", sort="updated", limit=200, with_facets=False)
    return search.search(db, sq).rows


def _tasks_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    node_id: Id | None = None,
    kind: TaskKind | None = None,
    form_kind: str = "",
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    tasks = service.list_tasks(db, node_id=node_id, kind=kind)
    everything = service.list_tasks(db) if node_id or kind else tasks
    providers = [t for t in everything if t.kind is TaskKind.PROVIDER]
    nodes = service.list_nodes(db)
    forms = {
        k: dict(FORM_DEFAULTS[k]) | (values if form_kind == k and values else {})
        for k in ("provider", "subscriber")
    }
    return _page(
        request,
        "exchange/tasks.html",
        caller,
        status_code=status_code,
        tasks=tasks,
        by_id={t.id: t for t in everything},
        nodes=nodes,
        node_options=[("", "请选择")]
        + [(n.id, f"{n.name}（{n.department.short_name}）") for n in nodes],
        source_options=[("", "请选择")]
        + [(t.id, f"#{t.id} {t.name} · {t.resource.name}") for t in providers],
        node_id=node_id,
        kind=kind,
        form_kind=form_kind,
        forms=forms,
        errors=errors,
        resources=_published_resources(db) if caller.can(Permission.EXCHANGE_ADMIN) else [],
        modes=MODES,
        delete_detection=DELETE_DETECTION,
    )


@router.get("/exchange/tasks")
def tasks_page(
    request: Request, db: SessionDep, caller: ExchangeReader, node_id: str = "", kind: str = ""
) -> Response:
    return _tasks_page(
        request,
        db,
        caller,
        node_id=parse_id(node_id),
        kind=TaskKind(kind) if kind in TASK_KINDS else None,
    )


@router.post("/exchange/tasks")
def add_task(request: Request, form: FormDep, db: SessionDep, caller: ExchangeAdmin) -> Response:
    kind = text(form, "kind")
    if kind not in TASK_KINDS:
        raise InvalidInput("任务类型应为发送任务或接收任务")
    payload, problems = _task_payload(db, kind, form)
    if not problems:
        try:
            task = service.create_task(db, caller, TaskCreate.model_validate(payload))
        except (InvalidInput, NotFound) as exc:
            db.rollback()
            problems = _service_problems(kind, exc.details) or [
                {"field": "", "message": exc.message}
            ]
        else:
            db.commit()
            return redirect(f"/exchange/tasks/{task.id}?done=task_added")
    errors = FormErrors(
        f"{TASK_KINDS[kind]}配置有误，请按提示修改", problems, label=_labels(TASK_LABELS)
    )
    return _tasks_page(
        request,
        db,
        caller,
        form_kind=kind,
        values={k: text(form, k) for k in TASK_LABELS},
        errors=errors,
        status_code=422,
    )


def _config_rows(task: ExchangeTask) -> list[tuple[str, str]]:
    """The task's config as label/value rows in the form's words."""
    c = task.config
    schedule = c.get("schedule") or {}
    when = (
        f"定时表达式 {schedule['cron']}"
        if schedule.get("cron")
        else f"每 {schedule.get('interval_seconds') or 0:g} 秒"
    )
    if task.kind is TaskKind.PROVIDER:
        rows = [
            ("数据源", c.get("source", "")),
            ("源表" if c.get("table") else "只读查询", c.get("table") or c.get("query") or ""),
            ("主键列", "、".join(c.get("key", []))),
            ("交换列", "、".join(c.get("columns") or []) or "全部列"),
            ("抽取方式", MODES.get(c.get("mode", ""), c.get("mode", ""))),
            ("游标列", c.get("cursor_column") or "—"),
            (
                "删除识别",
                DELETE_DETECTION.get(c.get("delete_detection", ""), c.get("delete_detection", "")),
            ),
        ]
        if c.get("delete_detection") == "soft_delete":
            rows.append(
                ("软删除标记", f"{c.get('soft_delete_column')} = {c.get('soft_delete_value')}")
            )
        if c.get("delete_detection") == "keyset":
            rows.append(("键集比对周期", f"{c.get('keyset_every_seconds', 0):g} 秒"))
        rows += [("每包行数", str(c.get("batch_rows", ""))), ("执行计划", when)]
        return rows
    mapping = "；".join(f"{k} → {v}" for k, v in (c.get("mapping") or {}).items())
    code_maps = "；".join(
        f"{col}: " + "、".join(f"{a}→{b}" for a, b in m.items())
        for col, m in (c.get("code_maps") or {}).items()
    )
    return [
        ("目标库", c.get("target", "")),
        ("目标表", c.get("table", "")),
        ("列映射", mapping or "同名"),
        ("代码转换", code_maps or "无"),
        ("执行计划", when),
    ]


@router.get("/exchange/tasks/{task_id}")
def task_page(
    task_id: Id,
    request: Request,
    db: SessionDep,
    caller: ExchangeReader,
    before: str = "",
) -> Response:
    task = service.get_task(db, task_id)
    source = service.get_task(db, task.source_task_id) if task.source_task_id else None
    log_task = task if task.kind is TaskKind.PROVIDER else source
    before_seq = parse_seq(before)
    packages = (
        service.list_packages(db, log_task.id, before_seq=before_seq, limit=PACKAGE_PAGE + 1)
        if log_task
        else []
    )
    more = len(packages) > PACKAGE_PAGE
    packages = packages[:PACKAGE_PAGE]
    shown = list(reversed(packages))
    chart = _chart(
        "stack",
        "每个数据包的行数",
        [f"#{p.seq}" for p in shown],
        series=[
            {"name": "新增", "values": [p.inserted for p in shown]},
            {"name": "修改", "values": [p.updated for p in shown]},
            {"name": "删除", "values": [p.deleted for p in shown]},
        ],
        colors=["#2f9e72", "#1f5fa8", "#c23531"],
    )
    subscribers = (
        [t for t in service.list_tasks(db, kind=TaskKind.SUBSCRIBER) if t.source_task_id == task.id]
        if task.kind is TaskKind.PROVIDER
        else []
    )
    return _page(
        request,
        "exchange/task.html",
        caller,
        nav="/exchange/tasks",
        task=task,
        source=source,
        subscribers=subscribers,
        config_rows=_config_rows(task),
        report=(task.node.report or {}).get("tasks", {}).get(str(task.id)),
        packages=packages,
        next_before=packages[-1].seq if more and packages else None,
        paged=before_seq is not None,
        chart=chart,
        reconciliations=service.list_reconciliations(db, task.id, limit=20),
        outcomes=OUTCOMES,
        alerts=[a for a in alerts.list_alerts(db, open_only=True) if a.task_id == task.id],
        states=TaskState,
    )


@router.post("/exchange/tasks/{task_id}/start")
def start_task(task_id: Id, db: SessionDep, caller: ExchangeAdmin) -> Response:
    service.set_task_state(db, caller, task_id, TaskState.RUNNING)
    db.commit()
    return redirect(f"/exchange/tasks/{task_id}?done=task_started")


@router.post("/exchange/tasks/{task_id}/stop")
def stop_task(task_id: Id, db: SessionDep, caller: ExchangeAdmin) -> Response:
    service.set_task_state(db, caller, task_id, TaskState.STOPPED)
    db.commit()
    return redirect(f"/exchange/tasks/{task_id}?done=task_stopped")


@router.post("/exchange/tasks/{task_id}/reconcile")
def reconcile_task(task_id: Id, db: SessionDep, caller: ExchangeAdmin) -> Response:
    requested = service.request_reconciliation(db, caller, task_id)
    if not requested:
        raise InvalidInput(
            "该发送任务还没有接收任务，无需核对",
            details=[{"field": "task_id", "message": "没有订阅方"}],
        )
    db.commit()
    return redirect(f"/exchange/tasks/{task_id}?done=reconcile_requested#reconciliations")


# -- alerts (告警) ----------------------------------------------------------------------------


@router.get("/exchange/alerts")
def alerts_page(
    request: Request, db: SessionDep, caller: ExchangeReader, show: str = "open"
) -> Response:
    current = show if show in ("open", "all") else "open"
    return _page(
        request,
        "exchange/alerts.html",
        caller,
        alerts=alerts.list_alerts(db, open_only=current == "open"),
        current=current,
        nodes={n.id: n for n in service.list_nodes(db)},
        tasks={t.id: t for t in service.list_tasks(db)},
    )


@router.post("/exchange/alerts/{alert_id}/resolve")
def resolve_alert(alert_id: Id, form: FormDep, db: SessionDep, caller: ExchangeAdmin) -> Response:
    """Mark an alert's condition handled; it opens again if the condition recurs."""
    alert = db.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"告警 {alert_id} 不存在")
    if alert.resolved_at is None:
        alerts.resolve_alerts(db, alert.kind, node_id=alert.node_id, task_id=alert.task_id)
        audit.record(
            db,
            caller.actor,
            "exchange.alert.resolve",
            object_type="alert",
            object_id=alert.id,
            after={"kind": str(alert.kind), "node_id": alert.node_id, "task_id": alert.task_id},
        )
    db.commit()
    return redirect(_with_done(safe_next(text(form, "next"), "/exchange/alerts"), "alert_resolved"))


# -- domains (交换域) ---------------------------------------------------------------------------

DOMAIN_LABELS = {"name": "交换域名称", "description": "说明", "department_ids": "成员部门"}


def _domains_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    return _page(
        request,
        "exchange/domains.html",
        caller,
        status_code=status_code,
        domains=service.list_domains(db),
        departments=identity.list_departments(db),
        values=values or {"department_ids": []},
        errors=errors,
    )


@router.get("/exchange/domains")
def domains_page(
    request: Request, db: SessionDep, caller: ExchangeReader, edit: str = ""
) -> Response:
    values = None
    if (edit_id := parse_id(edit)) is not None:
        domain = next((d for d in service.list_domains(db) if d.id == edit_id), None)
        if domain is None:
            raise NotFound(f"交换域 {edit} 不存在")
        values = {
            "domain_id": domain.id,
            "name": domain.name,
            "description": domain.description,
            "department_ids": [d.id for d in domain.departments],
        }
    return _domains_page(request, db, caller, values=values)


@router.post("/exchange/domains")
def save_domain(request: Request, form: FormDep, db: SessionDep, caller: ExchangeAdmin) -> Response:
    domain_id = optional_int(text(form, "domain_id"))
    department_ids = [i for v in texts(form, "department_ids") if (i := parse_id(v)) is not None]
    values: dict[str, Any] = {
        "domain_id": domain_id if isinstance(domain_id, int) else None,
        "name": text(form, "name"),
        "description": text(form, "description"),
        "department_ids": department_ids,
    }
    label = _labels(DOMAIN_LABELS)
    try:
        data = DomainIn.model_validate({k: v for k, v in values.items() if k != "domain_id"})
        service.put_domain(
            db,
            caller,
            name=data.name,
            description=data.description,
            department_ids=data.department_ids,
            domain_id=values["domain_id"],
        )
    except ValidationError as exc:
        errors = FormErrors("交换域信息不完整", validation_problems(exc), label=label)
    except GovshareError as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=label)
    else:
        db.commit()
        return redirect("/exchange/domains?done=domain_saved")
    return _domains_page(request, db, caller, values=values, errors=errors, status_code=422)
