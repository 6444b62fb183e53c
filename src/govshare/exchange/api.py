"""Exchange API: nodes and their calls (signed by the node's key), tasks, the package
log, reconciliation, alerts, monitoring and exchange domains."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from govshare import telemetry
from govshare.catalog import service as catalog_service
from govshare.catalog.schemas import ResourcePublic
from govshare.catalog.views import resource_public
from govshare.config import Settings
from govshare.db import utcnow
from govshare.deps import (
    CatalogWriter,
    ExchangeAdmin,
    ExchangeNode,
    ExchangeReader,
    Public,
    SessionDep,
    SettingsDep,
)
from govshare.errors import GovshareError, InvalidInput
from govshare.exchange import alerts, service
from govshare.exchange.models import ExchangeNode as ExchangeNodeRow
from govshare.exchange.models import ExchangePackage as ExchangePackageRow
from govshare.exchange.models import TaskKind, TaskState
from govshare.exchange.schemas import (
    AckIn,
    AlertPublic,
    CommandIn,
    CommandResult,
    DomainIn,
    DomainPublic,
    FromTableIn,
    HeartbeatIn,
    HeartbeatOut,
    NodeAlertIn,
    NodeCreate,
    NodeEnrolled,
    NodeKeyOverlapEnded,
    NodeKeyRotate,
    NodeKeyRotated,
    NodePublic,
    NodeRegister,
    NodeRegistered,
    PackageAccepted,
    PackageInfo,
    ReconciliationPublic,
    TaskCreate,
    TaskPublic,
    TaskUpdate,
    WakeOut,
)
from govshare.ids import Id, Seq

router = APIRouter(prefix="/exchange", tags=["exchange"])
MAX_PACKAGE_BYTES = 256 * 1024 * 1024
MAX_WAIT_SECONDS = 30.0


# -- calls made by nodes -----------------------------------------------------------------


def _registered(
    node: ExchangeNodeRow, cipher_key: str | None, settings: Settings
) -> NodeRegistered:
    return NodeRegistered(
        node_id=node.id,
        sig_alg=node.sig_alg,
        digest_alg=settings.exchange_digest,
        cipher=node.cipher,
        cipher_key=cipher_key,
    )


@router.post("/nodes/register", summary="前置机首次注册 (一次性令牌)")
def register_node(
    body: NodeRegister, db: SessionDep, settings: SettingsDep, _c: Public
) -> NodeRegistered:
    node, cipher_key = service.register_node(
        db, settings, node_id=body.node_id, token=body.token, public_keys=body.public_keys
    )
    return _registered(node, cipher_key, settings)


@router.post("/node/registration", summary="前置机取回注册结果 (注册应答丢失后, 以已注册密钥签名)")
def recover_registration(
    db: SessionDep, settings: SettingsDep, caller: ExchangeNode
) -> NodeRegistered:
    node, cipher_key = service.recover_registration(db, settings, service.node_of(db, caller))
    return _registered(node, cipher_key, settings)


@router.post("/node/key", summary="前置机签名密钥轮换 (以当前密钥签名, 携带新公钥)")
def rotate_node_key(
    body: NodeKeyRotate, db: SessionDep, settings: SettingsDep, caller: ExchangeNode
) -> NodeKeyRotated:
    node = service.rotate_node_key(
        db, settings, caller, service.node_of(db, caller), public_key=body.public_key
    )
    assert node.key_rotated_at is not None
    return NodeKeyRotated(
        node_id=node.id,
        sig_alg=node.sig_alg,
        key_rotated_at=node.key_rotated_at,
        overlap_until=node.key_rotated_at + timedelta(hours=settings.node_key_overlap_hours),
    )


@router.post("/node/heartbeat", summary="前置机心跳: 上报状态, 领取任务与命令")
def heartbeat(
    body: HeartbeatIn, db: SessionDep, settings: SettingsDep, caller: ExchangeNode
) -> HeartbeatOut:
    node = service.node_of(db, caller)
    answer = service.heartbeat(db, node, body)
    # The report and its alert are kept even when the node is refused, so the operator
    # sees why it stands still.
    db.commit()
    service.check_store_sealed(settings, node)
    return HeartbeatOut.model_validate(answer)


WAKE_RECHECK_SECONDS = 0.25
KnownMark = Query(max_length=64, description="前置机上次心跳应答中的 assignment_mark")


@router.get("/node/wake", summary="前置机等待任务变更 (long poll): 标记变化即答")
async def wake(
    db: SessionDep,
    caller: ExchangeNode,
    known: Annotated[str, KnownMark] = "",
    wait: float = Query(
        default=0, ge=0, le=MAX_WAIT_SECONDS, description="标记未变时最多等待的秒数"
    ),
) -> WakeOut:
    """Answers as soon as the node's assignment mark differs from ``known`` (a task
    started, stopped, reconfigured, assigned or withdrawn; a command issued), or when
    ``wait`` runs out. Changes made by any hub process are found by looking again every
    ``WAKE_RECHECK_SECONDS``, the same way a waiting subscriber finds new packages."""

    def look() -> str:
        mark = service.assignment_mark(db, service.node_of(db, caller))
        db.commit()  # end the read: the next look sees what was committed meanwhile
        return mark

    deadline = time.monotonic() + wait
    mark = await run_in_threadpool(look)
    while mark == known and (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(remaining, WAKE_RECHECK_SECONDS))
        mark = await run_in_threadpool(look)
    return WakeOut(assignment_mark=mark)


@router.post("/node/packages", summary="上传数据包 (application/octet-stream)")
async def upload_package(
    request: Request, db: SessionDep, settings: SettingsDep, caller: ExchangeNode
) -> PackageAccepted:
    blob = await request.body()
    if len(blob) > MAX_PACKAGE_BYTES:
        raise InvalidInput(
            "数据包过大", details=[{"field": "body", "message": f"> {MAX_PACKAGE_BYTES} bytes"}]
        )
    store = request.app.state.package_store

    def receive() -> tuple[ExchangePackageRow, bool]:
        # Verification, the database and the bus all block: keep them off the event loop.
        node = service.node_of(db, caller)
        try:
            accepted = service.receive_package(db, settings, store, node, blob)
            db.commit()  # before waiting subscribers are woken
        except GovshareError as exc:
            db.rollback()
            task_id = service.reject_package(
                db, settings, service.node_of(db, caller), exc.message, blob
            )
            db.commit()
            telemetry.package_refused(task_id)
            raise
        if not accepted[1]:
            telemetry.package_accepted(accepted[0].task_id, accepted[0].rows)
        return accepted

    row, duplicate = await run_in_threadpool(receive)
    if not duplicate:
        package_arrivals(request).notify()
    return PackageAccepted(
        task_id=row.task_id, seq=row.seq, status="duplicate" if duplicate else "accepted"
    )


class PackageArrivals:
    """Wakes long-polling subscribers of this hub process when a package is accepted.
    Other hub processes' packages are found by looking again every ``RECHECK_SECONDS``."""

    RECHECK_SECONDS = 0.25

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(timeout, self.RECHECK_SECONDS))


def package_arrivals(request: Request) -> PackageArrivals:
    arrivals = getattr(request.app.state, "package_arrivals", None)
    if arrivals is None:
        arrivals = request.app.state.package_arrivals = PackageArrivals()
    return arrivals


@router.get("/node/tasks/{task_id}/packages/next", summary="领取下一个数据包 (接收任务)")
async def next_package(
    task_id: Id,
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: ExchangeNode,
    after: Annotated[Seq, Query()],
    wait: float = Query(
        default=0, ge=0, le=MAX_WAIT_SECONDS, description="无新数据包时最多等待的秒数 (long poll)"
    ),
    known: Annotated[str, KnownMark] = "",
    wrapped: bool = Query(
        default=False,
        description=(
            "前置机能解开封装的数据密钥: 数据包正文按平台保存的原样发出, "
            "只为本前置机重新封装数据密钥"
        ),
    ),
) -> Response:
    """With ``known`` (the node's assignment mark), a wait also ends, with 204 and the
    new mark in ``X-Assignment-Mark``, when the node's tasks change: a subscriber that
    spends its idle time here hears of them as soon as an idle node does (``/node/wake``)."""
    store = request.app.state.package_store
    arrivals = package_arrivals(request)

    def look() -> tuple[tuple[bytes, str, ExchangePackageRow] | None, str]:
        node = service.node_of(db, caller)
        found = service.next_package(db, settings, store, node, task_id, after, wrap=wrapped)
        mark = known
        if found is None:
            if known:
                mark = service.assignment_mark(db, node)
            db.commit()  # end the read: the next look sees packages committed meanwhile
        return found, mark

    deadline = time.monotonic() + wait
    event = arrivals.current()
    found, mark = await run_in_threadpool(look)
    while found is None and mark == known and (remaining := deadline - time.monotonic()) > 0:
        await arrivals.wait(event, remaining)
        event = arrivals.current()
        found, mark = await run_in_threadpool(look)
    if found is None:
        headers = {"X-Assignment-Mark": mark} if known else None
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers=headers)
    blob, provider_key, row = found
    return Response(
        blob,
        media_type="application/octet-stream",
        headers={"X-Package-Seq": str(row.seq), "X-Provider-Key": provider_key},
    )


@router.post("/node/tasks/{task_id}/ack", summary="回执: 数据包已入库")
def ack(task_id: Id, body: AckIn, db: SessionDep, caller: ExchangeNode) -> TaskPublic:
    node = service.node_of(db, caller)
    counts = {"inserted": body.inserted, "updated": body.updated, "deleted": body.deleted}
    return TaskPublic.model_validate(service.acknowledge(db, node, task_id, body.seq, counts))


@router.post("/node/commands/{command_id}/result", summary="命令执行结果")
def command_result(
    command_id: Id,
    body: CommandResult,
    db: SessionDep,
    settings: SettingsDep,
    caller: ExchangeNode,
) -> dict[str, str]:
    node = service.node_of(db, caller)
    cmd = service.command_result(db, settings, node, command_id, body.ok, body.result)
    return {"status": cmd.status}


@router.post("/node/alerts", status_code=status.HTTP_204_NO_CONTENT, summary="前置机上报故障或恢复")
def node_alert(
    body: NodeAlertIn, db: SessionDep, settings: SettingsDep, caller: ExchangeNode
) -> None:
    node = service.node_of(db, caller)
    service.node_alert(db, settings, node, body.kind, body.task_id, body.message, body.resolved)


# -- management (桥接管理) ----------------------------------------------------------------------


@router.get("/nodes", summary="前置机列表")
def list_nodes(db: SessionDep, _c: ExchangeReader) -> list[NodePublic]:
    return [NodePublic.model_validate(n) for n in service.list_nodes(db)]


@router.post(
    "/nodes", status_code=status.HTTP_201_CREATED, summary="登记前置机 (返回一次性注册令牌)"
)
def enroll_node(
    body: NodeCreate, request: Request, db: SessionDep, settings: SettingsDep, caller: ExchangeAdmin
) -> NodeEnrolled:
    node, token = service.enroll_node(
        db, settings, caller, name=body.name, department_id=body.department_id
    )
    hub_url = str(request.base_url).rstrip("/")
    return NodeEnrolled(
        **NodePublic.model_validate(node).model_dump(),
        enrollment_token=token,
        node_toml=service.node_toml(hub_url, node, token),
    )


@router.get("/nodes/{node_id}", summary="前置机详情")
def get_node(node_id: Id, db: SessionDep, _c: ExchangeReader) -> NodePublic:
    return NodePublic.model_validate(service.get_node(db, node_id))


@router.post("/nodes/{node_id}/key/end-overlap", summary="立即停用前置机过渡期内的旧签名密钥")
def end_key_overlap(
    node_id: Id, db: SessionDep, settings: SettingsDep, caller: ExchangeAdmin
) -> NodeKeyOverlapEnded:
    """After a rotation the replaced key still signs for ``GOVSHARE_NODE_KEY_OVERLAP_HOURS``;
    when it may be stolen, end that now. Packages it signed before stay verifiable;
    ``no_key_in_overlap`` (409) when no replaced key is still accepted."""
    now = utcnow()
    ended = service.end_key_overlap(db, settings, caller, node_id, now=now)
    return NodeKeyOverlapEnded(node_id=node_id, ended_keys=ended, ended_at=now)


@router.get("/nodes/{node_id}/schemas", summary="前置机采集到的表结构")
def node_schemas(node_id: Id, db: SessionDep, _c: ExchangeReader) -> dict[str, object]:
    return service.get_node(db, node_id).schemas


@router.post(
    "/nodes/{node_id}/commands", status_code=status.HTTP_201_CREATED, summary="向前置机下发命令"
)
def issue_command(
    node_id: Id, body: CommandIn, db: SessionDep, caller: ExchangeAdmin
) -> dict[str, int]:
    return {"id": service.issue_command(db, caller, node_id, body.command, body.task_id).id}


@router.get("/tasks", summary="交换任务列表")
def list_tasks(
    db: SessionDep, _c: ExchangeReader, node_id: Id | None = None, kind: TaskKind | None = None
) -> list[TaskPublic]:
    return [
        TaskPublic.model_validate(t) for t in service.list_tasks(db, node_id=node_id, kind=kind)
    ]


@router.post("/tasks", status_code=status.HTTP_201_CREATED, summary="创建交换任务 (未部署)")
def create_task(body: TaskCreate, db: SessionDep, caller: ExchangeAdmin) -> TaskPublic:
    return TaskPublic.model_validate(service.create_task(db, caller, body))


@router.get("/tasks/{task_id}", summary="交换任务详情")
def get_task(task_id: Id, db: SessionDep, _c: ExchangeReader) -> TaskPublic:
    return TaskPublic.model_validate(service.get_task(db, task_id))


@router.put("/tasks/{task_id}", summary="修改交换任务")
def update_task(task_id: Id, body: TaskUpdate, db: SessionDep, caller: ExchangeAdmin) -> TaskPublic:
    return TaskPublic.model_validate(service.update_task(db, caller, task_id, body))


@router.post("/tasks/{task_id}/start", summary="部署并启动任务")
def start_task(task_id: Id, db: SessionDep, caller: ExchangeAdmin) -> TaskPublic:
    return TaskPublic.model_validate(service.set_task_state(db, caller, task_id, TaskState.RUNNING))


@router.post("/tasks/{task_id}/stop", summary="停止任务")
def stop_task(task_id: Id, db: SessionDep, caller: ExchangeAdmin) -> TaskPublic:
    return TaskPublic.model_validate(service.set_task_state(db, caller, task_id, TaskState.STOPPED))


@router.get("/tasks/{task_id}/packages", summary="交换日志: 任务的数据包")
def list_packages(
    task_id: Id,
    db: SessionDep,
    _c: ExchangeReader,
    before_seq: Seq | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[PackageInfo]:
    service.get_task(db, task_id)
    return [
        PackageInfo.model_validate(p)
        for p in service.list_packages(db, task_id, before_seq=before_seq, limit=limit)
    ]


@router.post(
    "/tasks/{task_id}/reconcile", status_code=status.HTTP_201_CREATED, summary="发起桥接核对"
)
def reconcile(task_id: Id, db: SessionDep, caller: ExchangeAdmin) -> list[ReconciliationPublic]:
    return [
        ReconciliationPublic.model_validate(r)
        for r in service.request_reconciliation(db, caller, task_id)
    ]


@router.get("/reconciliations", summary="核对结果")
def list_reconciliations(
    db: SessionDep, _c: ExchangeReader, task_id: Id | None = None
) -> list[ReconciliationPublic]:
    return [
        ReconciliationPublic.model_validate(r) for r in service.list_reconciliations(db, task_id)
    ]


@router.get("/alerts", summary="告警")
def list_alerts(db: SessionDep, _c: ExchangeReader, open_only: bool = False) -> list[AlertPublic]:
    return [AlertPublic.model_validate(a) for a in alerts.list_alerts(db, open_only=open_only)]


@router.get("/monitor", summary="桥接监控: 在线、积压与吞吐")
def monitor(db: SessionDep, _c: ExchangeReader) -> dict[str, object]:
    return service.monitor_summary(db)


@router.get("/domains", summary="交换域")
def list_domains(db: SessionDep, _c: ExchangeReader) -> list[DomainPublic]:
    return [
        DomainPublic(
            id=d.id,
            name=d.name,
            description=d.description,
            department_ids=[x.id for x in d.departments],
        )
        for d in service.list_domains(db)
    ]


@router.post("/domains", status_code=status.HTTP_201_CREATED, summary="新增交换域")
def add_domain(body: DomainIn, db: SessionDep, caller: ExchangeAdmin) -> DomainPublic:
    d = service.put_domain(
        db, caller, name=body.name, description=body.description, department_ids=body.department_ids
    )
    return DomainPublic(
        id=d.id,
        name=d.name,
        description=d.description,
        department_ids=[x.id for x in d.departments],
    )


# Types a node reports for its columns, mapped to catalog item data types.
@router.post(
    "/resources/from-table",
    status_code=status.HTTP_201_CREATED,
    summary="由前置机发现的表生成目录草稿",
)
def resource_from_table(body: FromTableIn, db: SessionDep, caller: CatalogWriter) -> ResourcePublic:
    resource = service.resource_draft_from_table(db, caller, body)
    return resource_public(resource, catalog_service.snapshot(resource), as_published=False)
