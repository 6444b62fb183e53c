"""Rules of the hub's exchange: enrolling nodes, tasks and their states, accepting and
routing packages, acknowledgements, commands, reconciliation and monitoring."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from govshare.catalog import service as catalog_service
from govshare.catalog.codes import SharingType
from govshare.catalog.models import Resource
from govshare.catalog.schemas import ItemIn, ResourceIn
from govshare.config import Settings
from govshare.db import utcnow
from govshare.errors import Forbidden, InvalidInput
from govshare.exchange import alertrules, alerts, pruning
from govshare.exchange.errors import (
    EnrollmentFailed,
    NodeKeyAlreadyCurrent,
    NodeNotFound,
    NoKeyInOverlap,
    PackageRejected,
    SequenceConflict,
    TaskNotFound,
)
from govshare.exchange.models import (
    AlertKind,
    CommandStatus,
    DeliveryAck,
    ExchangeDomain,
    ExchangeNode,
    ExchangePackage,
    ExchangeTask,
    NodeCommand,
    NodeStatus,
    Reconciliation,
    TaskKind,
    TaskState,
)
from govshare.exchange.package import Package, PackageError, parse
from govshare.exchange.schemas import (
    FromTableIn,
    HeartbeatIn,
    ProviderConfig,
    SubscriberConfig,
    TaskCreate,
    TaskUpdate,
)
from govshare.exchange.store import PackageStore, keep
from govshare.ids import parse_id, parse_seq
from govshare.security import audit
from govshare.security.atrest import AtRestKeyError
from govshare.security.audit import SYSTEM, Actor
from govshare.security.crypto import (
    constant_time_equal,
    generate_cipher_key,
    public_key_problem,
    seal,
    token_hash,
    unseal,
    verify_signature,
)
from govshare.security.errors import BadSignature, ReplayedRequest
from govshare.security.models import ApiNonce, Department
from govshare.security.roles import Permission
from govshare.security.service import Principal, get_department

# -- nodes -----------------------------------------------------------------------------


def node_toml(hub_url: str, node: ExchangeNode, token: str) -> str:
    """A starting ``node.toml`` for a newly enrolled node (the API and the console show
    it). It names a secret file for sealing the node's store at rest: the node does not
    start until the department makes that file, outside the store directory."""
    return (
        f'hub_url = "{hub_url}"\nnode_id = {node.id}\nenrollment_token = "{token}"\n'
        f'store = "node-{node.id}"\n'
        "# 本地库口令文件 (至少 16 个字符, 权限 0600, 不要放在 store 目录内), 例如:\n"
        f"#   openssl rand -base64 32 > node-{node.id}.secret\n"
        f'secret_file = "node-{node.id}.secret"\n'
        '\n[sources.business]\nurl = "sqlite:///business.db"\n'
    )


def enroll_node(
    session: Session, settings: Settings, principal: Principal, *, name: str, department_id: int
) -> tuple[ExchangeNode, str]:
    """Create a node for a department; returns it with its one-time enrollment token."""
    get_department(session, department_id)
    if session.scalar(select(ExchangeNode.id).where(ExchangeNode.name == name)):
        raise InvalidInput(
            f"前置机名称已存在: {name}", details=[{"field": "name", "message": "名称已存在"}]
        )
    token = secrets.token_urlsafe(24)
    node = ExchangeNode(
        name=name,
        department_id=department_id,
        enrollment_token_hash=token_hash(token),
        sig_alg=settings.exchange_signature,
        cipher=settings.exchange_cipher,
    )
    session.add(node)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "exchange.node.enroll",
        object_type="exchange_node",
        object_id=node.id,
        after={"name": name, "department_id": department_id},
    )
    return node, token


def register_node(
    session: Session, settings: Settings, *, node_id: int, token: str, public_keys: dict[str, str]
) -> tuple[ExchangeNode, str | None]:
    """The node's first call: trade the enrollment token for its keys being known.

    Returns the node and the symmetric key for its hop to the hub (shown only here).
    """
    node = session.get(ExchangeNode, node_id)
    if node is None or node.enrollment_token_hash is None:
        raise EnrollmentFailed("前置机不存在或已注册 (unknown node or already registered)")
    if not constant_time_equal(node.enrollment_token_hash, token_hash(token)):
        raise EnrollmentFailed("注册令牌不正确 (bad enrollment token)")
    public = public_keys.get(node.sig_alg)
    if not public:
        raise EnrollmentFailed(f"缺少 {node.sig_alg} 公钥")
    cipher_key = None if node.cipher == "none" else generate_cipher_key(node.cipher)
    node.public_key = public
    node.cipher_key_sealed = seal(settings.secret_key, cipher_key) if cipher_key else None
    node.enrollment_token_hash = None
    node.status = NodeStatus.ACTIVE
    node.last_seen_at = utcnow()
    node.online = True
    audit.record(
        session,
        Actor(name=f"node:{node.id}", kind="node", department_id=node.department_id),
        "exchange.node.register",
        object_type="exchange_node",
        object_id=node.id,
        after={"sig_alg": node.sig_alg, "cipher": node.cipher},
    )
    return node, cipher_key


def recover_registration(
    session: Session, settings: Settings, node: ExchangeNode
) -> tuple[ExchangeNode, str | None]:
    """What the hub answered a node's registration, told again.

    A node killed after the hub committed its registration but before it kept the answer
    cannot register a second time (the token is spent). It asks here instead, with a
    request signed by the key it registered, so only the holder of that key learns the
    key for its hop to the hub."""
    audit.record(
        session,
        Actor(name=f"node:{node.id}", kind="node", department_id=node.department_id),
        "exchange.node.registration_recovered",
        object_type="exchange_node",
        object_id=node.id,
    )
    return node, node_cipher_key(settings, node)


def get_node(session: Session, node_id: int) -> ExchangeNode:
    node = session.get(ExchangeNode, node_id)
    if node is None:
        raise NodeNotFound(f"前置机 {node_id} 不存在")
    return node


def list_nodes(session: Session, department_id: int | None = None) -> list[ExchangeNode]:
    q = select(ExchangeNode).order_by(ExchangeNode.id)
    if department_id is not None:
        q = q.where(ExchangeNode.department_id == department_id)
    return list(session.scalars(q))


def node_cipher_key(settings: Settings, node: ExchangeNode) -> str | None:
    return unseal(settings.secret_key, node.cipher_key_sealed) if node.cipher_key_sealed else None


# -- signing keys and their rotation (前置机签名密钥轮换) -------------------------------------

CURRENT_KEY = "current"
RETIRED_KEY = "retired"


def _retired_at(entry: dict[str, str]) -> datetime:
    return datetime.fromisoformat(entry["retired_at"])


def overlap_end(settings: Settings, entry: dict[str, str]) -> datetime:
    """When a replaced key stops signing requests and new packages: ``node_key_overlap_hours``
    after its rotation, or earlier when an administrator ended its overlap."""
    end = _retired_at(entry) + timedelta(hours=settings.node_key_overlap_hours)
    if ended := entry.get("overlap_ended_at"):
        end = min(end, datetime.fromisoformat(ended))
    return end


def keys_in_overlap(settings: Settings, node: ExchangeNode, now: datetime) -> list[dict[str, str]]:
    """The keys ``node`` replaced that are still accepted at ``now`` (过渡期内的旧密钥)."""
    return [e for e in node.retired_keys or [] if now < overlap_end(settings, e)]


def accepted_keys(settings: Settings, node: ExchangeNode, now: datetime) -> list[tuple[str, str]]:
    """The keys a request or a newly uploaded package of ``node`` may be signed with, as
    (``CURRENT_KEY``/``RETIRED_KEY``, public key): its current key, then each key it
    replaced whose overlap has not ended (``overlap_end``)."""
    keys = [(CURRENT_KEY, node.public_key)] if node.public_key else []
    keys += [(RETIRED_KEY, e["public_key"]) for e in keys_in_overlap(settings, node, now)]
    return keys


def package_key(node: ExchangeNode, pkg: Package) -> str:
    """The public key of ``node`` that verifies ``pkg``: the current one, else one it
    replaced (a package in the log signed before a rotation verifies for good); the
    current one when none does, so opening the package then fails as it should."""
    current = node.public_key or ""
    if not node.retired_keys or pkg.signed_by(current):
        return current
    for entry in node.retired_keys:
        if pkg.signed_by(entry["public_key"]):
            return entry["public_key"]
    return current


def _lock_keys(session: Session, node: ExchangeNode) -> None:
    """Lock the node's row against another change of its keys, and read it again.

    Two changes of one node's keys at once (rotations, ending an overlap): the second
    sees the first's result. FOR NO KEY UPDATE (key_share) still serialises them but,
    unlike FOR UPDATE, does not block the foreign-key checks of rows other transactions
    add for the node (commands, tasks) while they hold the audit chain's head, which the
    change then waits for. A clean-clone run once saw a rotation deadlock on PostgreSQL
    under FOR UPDATE; which transaction it met was not confirmed."""
    session.execute(
        select(ExchangeNode.id).where(ExchangeNode.id == node.id).with_for_update(key_share=True)
    )
    session.refresh(node)


def rotate_node_key(
    session: Session,
    settings: Settings,
    principal: Principal,
    node: ExchangeNode,
    *,
    public_key: str,
    now: datetime | None = None,
) -> ExchangeNode:
    """Replace the node's signing public key with ``public_key`` (前置机签名密钥轮换).

    The request must be signed with the node's current key. The replaced key is kept:
    packages it signed keep verifying for good, and for ``node_key_overlap_hours``
    requests and new packages signed with it are still accepted. Asking for the key
    the hub already has is ``NodeKeyAlreadyCurrent`` (409), whichever accepted key
    signed it: a node that never kept the hub's answer learns from it that the hub
    took its new key."""
    now = now or utcnow()
    public_key = public_key.strip().lower()
    problem = public_key_problem(node.sig_alg, public_key)
    if problem:
        raise InvalidInput.about(
            f"新公钥不是有效的 {node.sig_alg} 公钥 (invalid public key)", "public_key", problem
        )
    _lock_keys(session, node)
    if public_key == node.public_key:
        raise NodeKeyAlreadyCurrent.about(
            "平台已使用该公钥，无需再次轮换 (key is already the node's current key)",
            "public_key",
            "already current",
        )
    if any(entry["public_key"] == public_key for entry in node.retired_keys or []):
        raise InvalidInput.about(
            "该公钥已被替换停用，不能再次启用 (a replaced key cannot be used again)",
            "public_key",
            "replaced earlier",
        )
    if principal.extra.get("node_key") != CURRENT_KEY:
        raise Forbidden("轮换密钥的请求须以前置机当前密钥签名 (sign with the current key)")
    before = node.public_key
    assert before is not None  # an active node that signed a request has one
    node.retired_keys = [
        {"public_key": before, "retired_at": now.isoformat()},
        *(node.retired_keys or []),
    ]
    node.public_key = public_key
    node.key_rotated_at = now
    audit.record(
        session,
        principal.actor,
        "exchange.node.rotate_key",
        object_type="exchange_node",
        object_id=node.id,
        before={"public_key": before},
        after={
            "public_key": public_key,
            "sig_alg": node.sig_alg,
            "overlap_hours": settings.node_key_overlap_hours,
        },
    )
    return node


def end_key_overlap(
    session: Session,
    settings: Settings,
    principal: Principal,
    node_id: int,
    *,
    now: datetime | None = None,
) -> list[str]:
    """停用旧密钥: refuse from ``now`` on every key the node replaced that is still in its
    overlap — a rotation made because the old key may be in someone else's hands should
    not leave it signing for a day. Packages it signed that are already in the log keep
    verifying (``package_key``). The public keys it ended; ``NoKeyInOverlap`` when none
    was left."""
    now = now or utcnow()
    node = get_node(session, node_id)
    _lock_keys(session, node)
    ending = {e["public_key"] for e in keys_in_overlap(settings, node, now)}
    if not ending:
        raise NoKeyInOverlap.about("该前置机没有仍在过渡期内的旧密钥", "node_id", "旧密钥均已停用")
    node.retired_keys = [
        {**e, "overlap_ended_at": now.isoformat()} if e["public_key"] in ending else e
        for e in node.retired_keys
    ]
    audit.record(
        session,
        principal.actor,
        "exchange.node.end_key_overlap",
        object_type="exchange_node",
        object_id=node.id,
        before={"public_keys": sorted(ending)},
        after={"overlap_ended_at": now.isoformat()},
    )
    return sorted(ending)


NODE_PERMISSIONS = frozenset(
    {Permission.PUBLIC, Permission.AUTHENTICATED, Permission.EXCHANGE_NODE}
)


def principal_from_node_signature(
    session: Session,
    settings: Settings,
    *,
    node_id: str,
    timestamp: str,
    nonce: str,
    signature: str,
    signed: bytes,
    remote_addr: str | None,
    now: datetime | None = None,
) -> Principal:
    """A node signs each request with its private key (SM2 or Ed25519): its current one
    or, for ``node_key_overlap_hours`` after a rotation, the one it replaced. The
    principal's ``extra["node_key"]`` says which (``CURRENT_KEY`` or ``RETIRED_KEY``)."""
    now = now or utcnow()
    # Digits within the columns' ranges: a crafted header is refused, not passed on to
    # the database (which cannot hold it) or to float arithmetic (which overflows).
    number, sent_at = parse_id(node_id), parse_seq(timestamp)
    try:
        sig = bytes.fromhex(signature)
    except ValueError:
        sig = None
    if number is None or sent_at is None or sig is None:
        raise BadSignature("前置机签名头格式不正确")
    node = session.get(ExchangeNode, number)
    if node is None or node.status is not NodeStatus.ACTIVE or not node.public_key:
        raise BadSignature("未知或未启用的前置机")
    if abs(now.timestamp() - sent_at) > settings.signature_max_skew_seconds:
        raise BadSignature("请求时间戳超出允许范围 (stale timestamp)")
    which = next(
        (
            which
            for which, public in accepted_keys(settings, node, now)
            if verify_signature(node.sig_alg, public, signed, sig)
        ),
        None,
    )
    if which is None:
        raise BadSignature("前置机签名不正确")
    key = f"node:{node.id}"
    if session.get(ApiNonce, (key, nonce)) is not None:
        raise ReplayedRequest("重复的请求 (nonce 已使用)")
    session.add(ApiNonce(app_key=key, nonce=nonce, seen_at=now))
    session.flush()
    return Principal(
        kind="node",
        name=key,
        department_id=node.department_id,
        permissions=NODE_PERMISSIONS,
        client_id=node.id,
        remote_addr=remote_addr,
        display_name=node.name,
        department_name=node.department.short_name,
        extra={"node_key": which},
    )


def node_of(session: Session, principal: Principal) -> ExchangeNode:
    if principal.kind != "node" or principal.client_id is None:
        raise Forbidden("只有前置机可以调用该接口")
    return get_node(session, principal.client_id)


# -- tasks -----------------------------------------------------------------------------


def _validated_config(kind: TaskKind, config: dict[str, Any]) -> dict[str, Any]:
    model = ProviderConfig if kind is TaskKind.PROVIDER else SubscriberConfig
    try:
        return model.model_validate(config).model_dump()
    except ValidationError as exc:
        details = [
            {
                "field": "config." + ".".join(str(p) for p in e["loc"]) if e["loc"] else "config",
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        raise InvalidInput("任务配置不正确", details=details) from None


def create_task(session: Session, principal: Principal, data: TaskCreate) -> ExchangeTask:
    node = get_node(session, data.node_id)
    resource = session.get(Resource, data.resource_id)
    if resource is None or not resource.listed:
        raise InvalidInput(
            "只能为已发布的目录创建交换任务",
            details=[{"field": "resource_id", "message": "目录未发布"}],
        )
    config = _validated_config(data.kind, data.config)
    source_task_id = None
    if data.kind is TaskKind.PROVIDER:
        if node.department_id != resource.provider_department_id:
            raise InvalidInput(
                "发送任务须在目录提供部门的前置机上",
                details=[{"field": "node_id", "message": "前置机不属于目录提供部门"}],
            )
    else:
        source = session.get(ExchangeTask, data.source_task_id or 0)
        if (
            source is None
            or source.kind is not TaskKind.PROVIDER
            or source.resource_id != resource.id
        ):
            raise InvalidInput(
                "接收任务须订阅同一目录的发送任务",
                details=[{"field": "source_task_id", "message": "不是该目录的发送任务"}],
            )
        source_task_id = source.id
    task = ExchangeTask(
        name=data.name,
        kind=data.kind,
        node_id=node.id,
        resource_id=resource.id,
        source_task_id=source_task_id,
        config=config,
        created_by=principal.name,
    )
    session.add(task)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "exchange.task.create",
        object_type="exchange_task",
        object_id=task.id,
        after={"name": task.name, "kind": str(task.kind), "node_id": node.id, "config": config},
    )
    return task


def get_task(session: Session, task_id: int) -> ExchangeTask:
    task = session.get(ExchangeTask, task_id)
    if task is None:
        raise TaskNotFound(f"交换任务 {task_id} 不存在")
    return task


def list_tasks(
    session: Session, *, node_id: int | None = None, kind: TaskKind | None = None
) -> list[ExchangeTask]:
    q = select(ExchangeTask).order_by(ExchangeTask.id)
    if node_id is not None:
        q = q.where(ExchangeTask.node_id == node_id)
    if kind is not None:
        q = q.where(ExchangeTask.kind == kind)
    return list(session.scalars(q))


def update_task(
    session: Session, principal: Principal, task_id: int, data: TaskUpdate
) -> ExchangeTask:
    task = get_task(session, task_id)
    before = {"name": task.name, "config": task.config}
    task.name = data.name
    task.config = _validated_config(task.kind, data.config)
    task.config_version += 1
    task.updated_at = utcnow()
    audit.record(
        session,
        principal.actor,
        "exchange.task.update",
        object_type="exchange_task",
        object_id=task.id,
        before=before,
        after={"name": task.name, "config": task.config},
    )
    return task


def set_task_state(
    session: Session, principal: Principal, task_id: int, state: TaskState
) -> ExchangeTask:
    """Deploy/start or stop a task; the node picks the change up at its next heartbeat."""
    task = get_task(session, task_id)
    if state is TaskState.RUNNING:
        # A task made for a grant's subscription runs only while the grant is in force.
        from govshare.sharing.subscriptions import check_may_run

        check_may_run(session, task)
    before = task.state
    task.state = state
    task.config_version += 1
    task.updated_at = utcnow()
    audit.record(
        session,
        principal.actor,
        f"exchange.task.{'start' if state is TaskState.RUNNING else 'stop'}",
        object_type="exchange_task",
        object_id=task.id,
        before={"state": str(before)},
        after={"state": str(state)},
    )
    return task


def task_assignment(session: Session, task: ExchangeTask) -> dict[str, Any]:
    """What a node needs to run a task: its config, the resource's items and keys."""
    out: dict[str, Any] = {
        "id": task.id,
        "name": task.name,
        "kind": str(task.kind),
        "state": str(task.state),
        "config": task.config,
        "config_version": task.config_version,
        "resource_code": task.resource.code,
        "last_seq": task.last_seq,
        "acked_seq": task.acked_seq,
    }
    if task.kind is TaskKind.SUBSCRIBER and task.source_task_id:
        source = get_task(session, task.source_task_id)
        out["source_task_id"] = source.id
        out["source_key"] = source.config.get("key", [])
    return out


# -- heartbeat, commands, node-reported alerts ---------------------------------------------


def heartbeat(session: Session, node: ExchangeNode, report: HeartbeatIn) -> dict[str, Any]:
    was_online = node.online
    node.last_seen_at = utcnow()
    node.online = True
    node.report = report.model_dump()
    if not was_online:
        alerts.resolve_alerts(session, AlertKind.NODE_SILENT, node_id=node.id)
    _watch_store_sealing(session, node, report.store_sealed)
    tasks = [task_assignment(session, t) for t in list_tasks(session, node_id=node.id)]
    commands = list(
        session.scalars(
            select(NodeCommand)
            .where(
                NodeCommand.node_id == node.id,
                NodeCommand.status.in_([CommandStatus.PENDING, CommandStatus.SENT]),
            )
            .order_by(NodeCommand.id)
        )
    )
    # Delivered again at every heartbeat until answered: a node killed while working on
    # one, or whose answer was lost, gets it again (the node answers each id once).
    for c in commands:
        c.status = CommandStatus.SENT
    # Lag per subscriber task, for the monitor and the lag alert.
    for t in tasks:
        if t["kind"] == TaskKind.SUBSCRIBER and t.get("source_task_id"):
            source = get_task(session, t["source_task_id"])
            t["available_seq"] = source.last_seq
    return {
        "tasks": tasks,
        "commands": [
            {"id": c.id, "command": c.command, "task_id": c.task_id, "args": c.args}
            for c in commands
        ],
        "server_time": utcnow(),
        # This hub opens packages whose body comes under a data key wrapped for the hop.
        "data_keys": True,
        # Every command is sent by now: none waits as far as this answer is concerned.
        "assignment_mark": _assignment_mark(
            [(t["id"], t["state"], t["config_version"]) for t in tasks], None
        ),
    }


def assignment_mark(session: Session, node: ExchangeNode) -> str:
    """任务变更标记: differs from the mark of the node's last heartbeat answer as soon as
    its next heartbeat would bring something new (a task assigned, withdrawn, started,
    stopped or reconfigured; a command issued), so a node waiting at the hub hears of it
    at once instead of at its next heartbeat. Progress (sequence numbers) is not part of
    it: the node learns that from the packages themselves."""
    tasks = session.execute(
        select(ExchangeTask.id, ExchangeTask.state, ExchangeTask.config_version)
        .where(ExchangeTask.node_id == node.id)
        .order_by(ExchangeTask.id)
    ).all()
    waiting = session.scalar(
        select(func.max(NodeCommand.id)).where(
            NodeCommand.node_id == node.id, NodeCommand.status == CommandStatus.PENDING
        )
    )
    return _assignment_mark([(i, str(s), v) for i, s, v in tasks], waiting)


def _assignment_mark(tasks: list[tuple[int, str, int]], waiting_command: int | None) -> str:
    text = ";".join(f"{i}:{s}:{v}" for i, s, v in sorted(tasks)) + f"|{waiting_command or ''}"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _watch_store_sealing(session: Session, node: ExchangeNode, sealed: bool | None) -> None:
    """本地库未加密: a node that reports its store in the clear (no secret given) keeps an
    alert open until it reports the store sealed; a node too old to say is not judged."""
    if sealed is None:
        return
    if sealed:
        alerts.resolve_alerts(session, AlertKind.NODE_STORE_UNSEALED, node_id=node.id)
        return
    alerts.raise_alert(
        session,
        AlertKind.NODE_STORE_UNSEALED,
        f"前置机 {node.name} 的本地库未加密：私钥、传输密钥和待发数据包以明文保存，"
        "请为前置机设置口令后重启",
        node_id=node.id,
    )


class NodeStoreUnsealed(Forbidden):
    code = "node_store_unsealed"


def check_store_sealed(settings: Settings, node: ExchangeNode) -> None:
    """Where the hub requires it, a node exchanges only while its last heartbeat said its
    local store is sealed at rest (a node that did not say is refused too)."""
    if settings.node_store_sealing_required and node.report.get("store_sealed") is not True:
        raise NodeStoreUnsealed(
            f"前置机 {node.name} 的本地库未加密，平台要求静态加密后才能交换："
            "请在 node.toml 设置 secret_file (或 GOVSHARE_NODE_SECRET) 后重启前置机"
        )


def issue_command(
    session: Session,
    principal: Principal,
    node_id: int,
    command: str,
    task_id: int | None = None,
    args: dict[str, Any] | None = None,
) -> NodeCommand:
    node = get_node(session, node_id)
    if task_id is not None and get_task(session, task_id).node_id != node.id:
        raise InvalidInput(
            "任务不属于该前置机", details=[{"field": "task_id", "message": "任务不属于该前置机"}]
        )
    cmd = NodeCommand(
        node_id=node.id,
        command=command,
        task_id=task_id,
        args=args or {},
        created_by=principal.name,
    )
    session.add(cmd)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "exchange.node.command",
        object_type="exchange_node",
        object_id=node.id,
        after={"command": command, "task_id": task_id, "args": args or {}},
    )
    return cmd


def command_result(
    session: Session,
    settings: Settings,
    node: ExchangeNode,
    command_id: int,
    ok: bool,
    result: dict[str, Any],
) -> NodeCommand:
    cmd = session.get(NodeCommand, command_id)
    if cmd is None or cmd.node_id != node.id:
        raise NodeNotFound(f"命令 {command_id} 不存在")
    if cmd.status not in (CommandStatus.PENDING, CommandStatus.SENT):
        return cmd  # answered already (the node re-sent an answer it kept) or expired
    cmd.status = CommandStatus.DONE if ok else CommandStatus.FAILED
    cmd.result = result
    cmd.done_at = utcnow()
    if cmd.command == "collect_schema" and ok:
        node.schemas = result.get("schemas", {})
    if cmd.command == "checksum" and ok and cmd.args.get("reconciliation_id"):
        _record_checksum(
            session, settings, int(cmd.args["reconciliation_id"]), cmd.args.get("role", ""), result
        )
    return cmd


def node_alert(
    session: Session,
    settings: Settings,
    node: ExchangeNode,
    kind: str,
    task_id: int | None,
    message: str,
    resolved: bool,
) -> None:
    alert_kind = AlertKind(kind)
    if resolved:
        alerts.resolve_alerts(session, alert_kind, node_id=node.id, task_id=task_id)
        return
    alerts.raise_alert(
        session,
        alert_kind,
        f"{node.name}: {message}",
        node_id=node.id,
        task_id=task_id,
        webhook_url=settings.alert_webhook_url,
    )


# -- packages ------------------------------------------------------------------------------


def receive_package(
    session: Session, settings: Settings, store: PackageStore, node: ExchangeNode, blob: bytes
) -> tuple[ExchangePackage, bool]:
    """Verify and log a provider's package. Returns (row, duplicate?).

    Rejections raise ``PackageRejected``/``SequenceConflict``; the caller records the
    alert and audit entry (``reject_package``) in a transaction of its own.
    """
    try:
        pkg = parse(blob)
    except PackageError as exc:
        raise PackageRejected(f"数据包格式错误: {exc}") from None
    task = session.get(ExchangeTask, pkg.task_id)
    if task is None or task.kind is not TaskKind.PROVIDER or task.node_id != node.id:
        raise PackageRejected(f"数据包所属任务 {pkg.task_id} 不是本前置机的发送任务")
    check_store_sealed(settings, node)
    if int(pkg.header["node"]) != node.id:
        raise PackageRejected("数据包的签发前置机与调用者不一致")
    # Lock the task row so two uploads of one task are ordered (no-op on SQLite).
    session.execute(select(ExchangeTask.id).where(ExchangeTask.id == task.id).with_for_update())
    session.refresh(task)
    if pkg.seq <= task.last_seq:
        existing = session.scalar(
            select(ExchangePackage).where(
                ExchangePackage.task_id == task.id, ExchangePackage.seq == pkg.seq
            )
        )
        if existing is not None and existing.digest == pkg.digest:
            return existing, True  # the node resent after losing our answer
        raise SequenceConflict(f"数据包序号 {pkg.seq} 已使用且内容不同 (replayed)")
    if pkg.seq != task.last_seq + 1:
        raise SequenceConflict(
            f"数据包序号跳跃: 期望 {task.last_seq + 1}，收到 {pkg.seq} (out of order)"
        )
    # Signed with the current key, or with the one it replaced while the overlap lasts
    # (a package waiting in the node's outbox when it rotated).
    keys = [public for _, public in accepted_keys(settings, node, utcnow())] or [""]
    signer = keys[0] if len(keys) == 1 else next((k for k in keys if pkg.signed_by(k)), keys[0])
    if "data_key" in pkg.envelope:  # the form the hub keeps at rest, never sent
        raise PackageRejected("数据包校验失败: package carries its data key in the clear")
    try:
        plaintext, data_key = pkg.open_keyed(signer, node_cipher_key(settings, node))
    except PackageError as exc:
        raise PackageRejected(f"数据包校验失败: {exc}") from None
    counts = pkg.header.get("counts", {})

    row = ExchangePackage(
        task_id=task.id,
        seq=pkg.seq,
        digest=pkg.digest,
        size=len(blob),
        rows=int(pkg.header.get("rows", 0)),
        inserted=int(counts.get("I", 0)),
        updated=int(counts.get("U", 0)),
        deleted=int(counts.get("D", 0)),
        kind=str(pkg.header.get("kind", "rows")),
        created_at=datetime.fromisoformat(str(pkg.header.get("created_at"))),
    )
    session.add(row)
    # The provider's signature still covers it; each receiver's hop is encrypted (or
    # its data key wrapped) when it is served.
    keep(store, session, row, pkg, plaintext, data_key)
    task.last_seq = pkg.seq
    session.flush()
    alerts.resolve_alerts(session, AlertKind.PACKAGE_REJECTED, task_id=task.id)
    return row, False


def reject_package(
    session: Session, settings: Settings, node: ExchangeNode, reason: str, blob: bytes
) -> int | None:
    """Alert and audit a refused package (its own transaction, committed by the caller);
    the id of the task it claimed to belong to, when there is one."""
    task_id = None
    try:
        header = parse(blob).header
        candidate = session.get(ExchangeTask, int(header["task"]))
        task_id = candidate.id if candidate is not None else None
    except (PackageError, ValueError, TypeError):
        header = {}
    alerts.raise_alert(
        session,
        AlertKind.PACKAGE_REJECTED,
        f"{node.name}: {reason}",
        node_id=node.id,
        task_id=task_id,
        details={"seq": header.get("seq"), "size": len(blob)},
        webhook_url=settings.alert_webhook_url,
    )
    audit.record(
        session,
        Actor(name=f"node:{node.id}", kind="node", department_id=node.department_id),
        "exchange.package.reject",
        object_type="exchange_task",
        object_id=task_id,
        after={"reason": reason, "seq": header.get("seq")},
    )
    return task_id


def _subscription(session: Session, node: ExchangeNode, task_id: int) -> ExchangeTask:
    task = get_task(session, task_id)
    if task.kind is not TaskKind.SUBSCRIBER or task.node_id != node.id:
        raise Forbidden("该任务不是本前置机的接收任务")
    if task.state is not TaskState.RUNNING:
        raise Forbidden("接收任务未运行")
    return task


def next_package(
    session: Session,
    settings: Settings,
    store: PackageStore,
    node: ExchangeNode,
    task_id: int,
    after_seq: int,
    *,
    wrap: bool = False,
) -> tuple[bytes, str, ExchangePackage] | None:
    """The next package after ``after_seq`` for a subscriber, sealed for its node, with
    the provider's public key for end-to-end verification; with ``wrap`` (a node that
    opens wrapped envelopes) its data key wrapped for the node, the body as kept."""
    task = _subscription(session, node, task_id)
    check_store_sealed(settings, node)
    row = _package_after(session, task.source_task_id, serve_after(session, task, after_seq))
    if row is None:
        return None
    provider = get_task(session, row.task_id).node
    stored = parse(store.get(session, row))
    try:
        blob = stored.for_hop(node.cipher, node_cipher_key(settings, node), wrap=wrap)
    except PackageError as exc:
        # A kept body that fails its data key's check was changed where it is stored.
        raise AtRestKeyError(f"平台保存的第 {row.seq} 号数据包无法解密: {exc}") from None
    return blob, package_key(provider, stored), row


def _package_after(session: Session, task_id: int | None, seq: int) -> ExchangePackage | None:
    return session.scalar(
        select(ExchangePackage)
        .where(ExchangePackage.task_id == task_id, ExchangePackage.seq > seq)
        .order_by(ExchangePackage.seq)
        .limit(1)
    )


def serve_after(session: Session, task: ExchangeTask, after_seq: int) -> int:
    """Where a subscription's next package is looked for: after ``after_seq``, unless
    the package there was pruned (a subscription created or reset after the log was
    cleaned). Then the subscription resumes after the provider's newest package, and
    the provider's node is asked for the snapshot that follows it (``pruning``)."""
    nearest = _package_after(session, task.source_task_id, after_seq)
    if nearest is None or not pruning.is_pruned(nearest):
        return after_seq
    if task.acked_seq < nearest.seq:
        source = get_task(session, nearest.task_id)
        task.acked_seq = pruning.catch_up(
            session, source, f"接收任务 {task.id} 晚于交换日志清理接入"
        )
        session.flush()
    return max(after_seq, task.acked_seq)


def acknowledge(
    session: Session, node: ExchangeNode, task_id: int, seq: int, counts: dict[str, int]
) -> ExchangeTask:
    """A subscriber applied package ``seq``; acks are idempotent and in order."""
    task = _subscription(session, node, task_id)
    if seq <= task.acked_seq:
        return task
    row = session.scalar(
        select(ExchangePackage).where(
            ExchangePackage.task_id == task.source_task_id, ExchangePackage.seq == seq
        )
    )
    if row is None:
        raise InvalidInput(
            f"确认的数据包 {seq} 不存在", details=[{"field": "seq", "message": "no such package"}]
        )
    skipped = session.scalar(
        select(func.count())
        .select_from(ExchangePackage)
        .where(
            ExchangePackage.task_id == task.source_task_id,
            ExchangePackage.seq > task.acked_seq,
            ExchangePackage.seq < seq,
        )
    )
    if skipped:
        raise SequenceConflict(
            f"确认跳过了 {skipped} 个数据包: 已确认 {task.acked_seq}，收到 {seq}"
        )
    session.add(DeliveryAck(task_id=task.id, package_id=row.id, seq=seq, **counts))
    task.acked_seq = seq
    alerts.resolve_alerts(session, AlertKind.RECEIVE_FAILED, task_id=task.id)
    return task


def list_packages(
    session: Session, task_id: int, *, before_seq: int | None = None, limit: int = 100
) -> list[ExchangePackage]:
    q = (
        select(ExchangePackage)
        .where(ExchangePackage.task_id == task_id)
        .order_by(ExchangePackage.seq.desc())
        .limit(limit)
    )
    if before_seq is not None:
        q = q.where(ExchangePackage.seq < before_seq)
    return list(session.scalars(q))


# -- reconciliation (桥接核对) ------------------------------------------------------------------


def request_reconciliation(
    session: Session, principal: Principal | None, provider_task_id: int, day: date | None = None
) -> list[Reconciliation]:
    """Ask the provider node for its source checksum; subscribers are asked once it answers."""
    task = get_task(session, provider_task_id)
    if task.kind is not TaskKind.PROVIDER:
        raise InvalidInput(
            "核对须针对发送任务", details=[{"field": "task_id", "message": "not a provider task"}]
        )
    subscribers = list(
        session.scalars(
            select(ExchangeTask)
            .where(ExchangeTask.source_task_id == task.id)
            .order_by(ExchangeTask.id)
        )
    )
    actor = principal.actor if principal else SYSTEM
    out = [_start_reconciliation(session, actor.name, task, sub.id, day) for sub in subscribers]
    audit.record(
        session,
        actor,
        "exchange.reconcile.request",
        object_type="exchange_task",
        object_id=task.id,
        after={"reconciliations": [r.id for r in out]},
    )
    return out


def _start_reconciliation(
    session: Session, actor_name: str, provider: ExchangeTask, subscriber_id: int, day: date | None
) -> Reconciliation:
    rec = Reconciliation(provider_task_id=provider.id, subscriber_task_id=subscriber_id, day=day)
    session.add(rec)
    session.flush()
    session.add(
        NodeCommand(
            node_id=provider.node_id,
            command="checksum",
            task_id=provider.id,
            args={"reconciliation_id": rec.id, "role": "source"},
            created_by=actor_name,
        )
    )
    return rec


def _sums(session: Session, model: type[Any], task_id: int, upto_seq: int) -> dict[str, int]:
    i, u, d = session.execute(
        select(
            func.coalesce(func.sum(model.inserted), 0),
            func.coalesce(func.sum(model.updated), 0),
            func.coalesce(func.sum(model.deleted), 0),
        ).where(model.task_id == task_id, model.seq <= upto_seq)
    ).one()
    return {"inserted": int(i), "updated": int(u), "deleted": int(d)}


def _record_checksum(
    session: Session, settings: Settings, rec_id: int, role: str, result: dict[str, Any]
) -> None:
    rec = session.get(Reconciliation, rec_id)
    if rec is None or rec.outcome != "pending":
        return  # a late answer to one that timed out: its retry has its own commands
    if role == "source":
        rec.source = result
        sub = get_task(session, rec.subscriber_task_id)
        session.add(
            NodeCommand(
                node_id=sub.node_id,
                command="checksum",
                task_id=sub.id,
                args={
                    "reconciliation_id": rec.id,
                    "role": "target",
                    "at_seq": int(result.get("seq", 0)),
                },
                created_by="system",
            )
        )
        return
    rec.target = result
    _compare(session, settings, rec)


def _compare(session: Session, settings: Settings, rec: Reconciliation) -> None:
    source, target = rec.source or {}, rec.target or {}
    seq = int(source.get("seq", 0))
    rec.sent = _sums(session, ExchangePackage, rec.provider_task_id, seq)
    rec.received = _sums(session, DeliveryAck, rec.subscriber_task_id, seq)
    problems = []
    if int(target.get("seq", -1)) != seq:
        problems.append(f"目标端已应用到第 {target.get('seq')} 包，源端快照在第 {seq} 包")
    if rec.sent != rec.received:
        problems.append(f"发送 {rec.sent} 与接收 {rec.received} 不一致")
    if source.get("count") != target.get("count"):
        problems.append(f"源表 {source.get('count')} 行，目标表 {target.get('count')} 行")
    if source.get("keyhash") != target.get("keyhash"):
        problems.append("主键校验和不一致")
    rec.outcome = "match" if not problems else "mismatch"
    rec.detail = "；".join(problems)
    rec.completed_at = utcnow()
    if problems:
        alerts.raise_alert(
            session,
            AlertKind.RECONCILIATION_MISMATCH,
            f"交换任务 {rec.provider_task_id}→{rec.subscriber_task_id} 核对不一致: {rec.detail}",
            task_id=rec.subscriber_task_id,
            details={"reconciliation_id": rec.id},
            webhook_url=settings.alert_webhook_url,
        )
    else:
        alerts.resolve_alerts(
            session, AlertKind.RECONCILIATION_MISMATCH, task_id=rec.subscriber_task_id
        )
    alerts.resolve_alerts(session, AlertKind.RECONCILIATION_TIMEOUT, task_id=rec.subscriber_task_id)
    audit.record(
        session,
        SYSTEM,
        "exchange.reconcile.result",
        object_type="exchange_task",
        object_id=rec.subscriber_task_id,
        after={"reconciliation_id": rec.id, "outcome": rec.outcome, "detail": rec.detail},
    )


def list_reconciliations(
    session: Session, task_id: int | None = None, limit: int = 100
) -> list[Reconciliation]:
    q = select(Reconciliation).order_by(Reconciliation.id.desc()).limit(limit)
    if task_id is not None:
        q = q.where(
            (Reconciliation.provider_task_id == task_id)
            | (Reconciliation.subscriber_task_id == task_id)
        )
    return list(session.scalars(q))


# -- monitoring (桥接监控) ----------------------------------------------------------------------


def check_nodes(session: Session, settings: Settings) -> int:
    """Mark nodes silent longer than the threshold (the 前置机失联 rule's, seconds)
    offline and alert once per silence."""
    seconds = int(alertrules.effective(session, settings, AlertKind.NODE_SILENT).threshold or 0)
    cutoff = utcnow() - timedelta(seconds=seconds)
    silent = list(
        session.scalars(
            select(ExchangeNode).where(
                ExchangeNode.status == NodeStatus.ACTIVE,
                ExchangeNode.online.is_(True),
                ExchangeNode.last_seen_at < cutoff,
            )
        )
    )
    for node in silent:
        node.online = False
        alerts.raise_alert(
            session,
            AlertKind.NODE_SILENT,
            f"前置机 {node.name} 已超过 {seconds} 秒未联系平台",
            node_id=node.id,
            webhook_url=settings.alert_webhook_url,
        )
    return len(silent)


def check_lag(session: Session, settings: Settings, *, now: datetime | None = None) -> int:
    """Alert every running subscription whose oldest unapplied package was accepted more
    longer ago than the 交换积压 rule's threshold (seconds; ``lag_alert_seconds`` unless
    edited); resolve the alert once it has caught up. Returns how many subscriptions lag."""
    now = now or utcnow()
    seconds = alertrules.effective(session, settings, AlertKind.LAG).threshold or 0
    cutoff = now - timedelta(seconds=seconds)
    lagging = 0
    for sub in list_tasks(session, kind=TaskKind.SUBSCRIBER):
        if sub.source_task_id is None or sub.state is not TaskState.RUNNING:
            continue
        oldest = session.execute(
            select(ExchangePackage.seq, ExchangePackage.received_at)
            .where(
                ExchangePackage.task_id == sub.source_task_id,
                ExchangePackage.seq > sub.acked_seq,
            )
            .order_by(ExchangePackage.seq)
            .limit(1)
        ).first()
        if oldest is None or oldest.received_at > cutoff:
            alerts.resolve_alerts(session, AlertKind.LAG, task_id=sub.id)
            continue
        lagging += 1
        behind = get_task(session, sub.source_task_id).last_seq - sub.acked_seq
        minutes = int((now - oldest.received_at).total_seconds() // 60)
        alerts.raise_alert(
            session,
            AlertKind.LAG,
            f"接收任务 {sub.name} 积压 {behind} 个数据包，最早一个已等待 {minutes} 分钟",
            node_id=sub.node_id,
            task_id=sub.id,
            details={"packages_behind": behind, "oldest_seq": oldest.seq},
            webhook_url=settings.alert_webhook_url,
        )
    return lagging


def check_reconciliations(
    session: Session, settings: Settings, *, now: datetime | None = None
) -> int:
    """Fail every reconciliation still pending ``reconciliation_timeout_seconds`` after it
    was requested: withdraw its unanswered commands, raise a ``reconciliation_timeout``
    alert on the subscription (resolved when one completes) and request a new one for the
    same pair and day while both tasks run. Returns how many timed out."""
    now = now or utcnow()
    timeout = settings.reconciliation_timeout_seconds
    stale = list(
        session.scalars(
            select(Reconciliation)
            .where(
                Reconciliation.outcome == "pending",
                Reconciliation.requested_at < now - timedelta(seconds=timeout),
            )
            .order_by(Reconciliation.id)
            # Hub processes checking at once each take different ones (PostgreSQL).
            .with_for_update(skip_locked=True)
        )
    )
    if not stale:
        return 0
    open_checksums = list(
        session.scalars(
            select(NodeCommand).where(
                NodeCommand.command == "checksum",
                NodeCommand.status.in_([CommandStatus.PENDING, CommandStatus.SENT]),
            )
        )
    )
    for rec in stale:
        waiting = [c for c in open_checksums if c.args.get("reconciliation_id") == rec.id]
        for c in waiting:
            c.status = CommandStatus.EXPIRED
            c.done_at = now
        provider = session.get(ExchangeTask, rec.provider_task_id)
        subscriber = session.get(ExchangeTask, rec.subscriber_task_id)
        silent = provider if rec.source is None else subscriber
        silent_node = session.get(ExchangeNode, silent.node_id) if silent else None
        side = "源端" if rec.source is None else "目标端"
        rec.outcome = "failed"
        rec.completed_at = now
        rec.detail = (
            f"{timeout} 秒内未收到{side}前置机 {silent_node.name if silent_node else ''} 的校验和"
        )
        retry = None
        if (
            provider is not None
            and subscriber is not None
            and provider.state is TaskState.RUNNING
            and subscriber.state is TaskState.RUNNING
        ):
            retry = _start_reconciliation(session, SYSTEM.name, provider, subscriber.id, rec.day)
            rec.detail += f"，已重新发起核对 #{retry.id}"
        alerts.raise_alert(
            session,
            AlertKind.RECONCILIATION_TIMEOUT,
            f"交换任务 {rec.provider_task_id}→{rec.subscriber_task_id} 核对超时: {rec.detail}",
            node_id=silent_node.id if silent_node else None,
            task_id=rec.subscriber_task_id,
            details={"reconciliation_id": rec.id, "retry_id": retry.id if retry else None},
            webhook_url=settings.alert_webhook_url,
        )
        audit.record(
            session,
            SYSTEM,
            "exchange.reconcile.timeout",
            object_type="exchange_task",
            object_id=rec.subscriber_task_id,
            after={"reconciliation_id": rec.id, "retry_id": retry.id if retry else None},
        )
    return len(stale)


def daily_reconciliations(session: Session, *, today: date | None = None) -> int:
    """Request today's reconciliation for every running provider task that has none today
    completed or still in time (a failed one does not count: its retry, or this, runs)."""
    today = today or utcnow().date()
    done = set(
        session.scalars(
            select(Reconciliation.provider_task_id).where(
                Reconciliation.day == today, Reconciliation.outcome != "failed"
            )
        )
    )
    count = 0
    for task in list_tasks(session, kind=TaskKind.PROVIDER):
        if task.state is TaskState.RUNNING and task.id not in done:
            count += len(request_reconciliation(session, None, task.id, day=today))
    return count


def monitor_summary(session: Session) -> dict[str, Any]:
    """Nodes online, lag per subscription, and hourly volume for the last 24 hours."""
    nodes = list_nodes(session)
    subs = list_tasks(session, kind=TaskKind.SUBSCRIBER)
    lag = []
    for sub in subs:
        if sub.source_task_id is None:
            continue
        rows_behind = session.scalar(
            select(func.coalesce(func.sum(ExchangePackage.rows), 0)).where(
                ExchangePackage.task_id == sub.source_task_id, ExchangePackage.seq > sub.acked_seq
            )
        )
        source = get_task(session, sub.source_task_id)
        lag.append(
            {
                "task_id": sub.id,
                "name": sub.name,
                "node_id": sub.node_id,
                "packages_behind": max(source.last_seq - sub.acked_seq, 0),
                "rows_behind": int(rows_behind or 0),
            }
        )
    since = utcnow() - timedelta(hours=24)
    received = session.execute(
        select(ExchangePackage.received_at, ExchangePackage.rows).where(
            ExchangePackage.received_at >= since
        )
    ).all()
    applied = session.execute(
        select(
            DeliveryAck.applied_at, DeliveryAck.inserted + DeliveryAck.updated + DeliveryAck.deleted
        ).where(DeliveryAck.applied_at >= since)
    ).all()
    hours = [
        (since + timedelta(hours=h + 1)).replace(minute=0, second=0, microsecond=0)
        for h in range(24)
    ]

    def bucket(rows: Sequence[Any]) -> list[int]:
        out = [0] * 24
        for at, n in rows:
            idx = int((at - since).total_seconds() // 3600)
            out[min(max(idx, 0), 23)] += int(n or 0)
        return out

    return {
        "nodes": [
            {
                "id": n.id,
                "name": n.name,
                "online": n.online,
                "last_seen_at": n.last_seen_at,
                "department": n.department.short_name,
            }
            for n in nodes
        ],
        "online": sum(1 for n in nodes if n.online),
        "lag": lag,
        "hours": [h.isoformat() for h in hours],
        "rows_received": bucket(received),
        "rows_applied": bucket(applied),
    }


# -- domains (交换域) ---------------------------------------------------------------------------


def put_domain(
    session: Session,
    principal: Principal,
    *,
    name: str,
    description: str,
    department_ids: list[int],
    domain_id: int | None = None,
) -> ExchangeDomain:
    depts = list(session.scalars(select(Department).where(Department.id.in_(department_ids))))
    missing = set(department_ids) - {d.id for d in depts}
    if missing:
        raise InvalidInput(
            "部门不存在",
            details=[{"field": "department_ids", "message": f"不存在: {sorted(missing)}"}],
        )
    domain = session.get(ExchangeDomain, domain_id) if domain_id else None
    if domain is None:
        if session.scalar(select(ExchangeDomain.id).where(ExchangeDomain.name == name)):
            raise InvalidInput(
                f"交换域已存在: {name}", details=[{"field": "name", "message": "名称已存在"}]
            )
        domain = ExchangeDomain(name=name)
        session.add(domain)
    domain.name, domain.description, domain.departments = name, description, depts
    session.flush()
    audit.record(
        session,
        principal.actor,
        "exchange.domain.put",
        object_type="exchange_domain",
        object_id=domain.id,
        after={"name": name, "department_ids": sorted(department_ids)},
    )
    return domain


def list_domains(session: Session) -> list[ExchangeDomain]:
    return list(session.scalars(select(ExchangeDomain).order_by(ExchangeDomain.id)))


def reset_subscription(session: Session, principal: Principal, task_id: int) -> ExchangeTask:
    """Re-deliver from the first package (the node also clears its target cursor)."""
    task = get_task(session, task_id)
    session.execute(update(ExchangeTask).where(ExchangeTask.id == task.id).values(acked_seq=0))
    issue_command(session, principal, task.node_id, "resync", task.id)
    return task


# -- catalog drafts from discovered tables ------------------------------------------------

# Column kinds a node reports, as catalog item data types.
_ITEM_TYPES = {
    "int": "I",
    "float": "F",
    "decimal": "N",
    "date": "D",
    "datetime": "T",
    "bool": "L",
    "bytes": "G",
}


def resource_draft_from_table(
    session: Session, principal: Principal, data: FromTableIn
) -> Resource:
    """A catalog draft whose items are a discovered table's columns (自动编目)."""
    node = get_node(session, data.node_id)
    table = node.schemas.get(data.source, {}).get(data.table)
    if not table:
        raise InvalidInput(
            f"前置机 {node.name} 未上报表 {data.source}.{data.table} 的结构",
            details=[{"field": "table", "message": "请先下发 collect_schema 命令"}],
        )
    items = []
    for col in table["columns"]:
        data_type = _ITEM_TYPES.get(col.get("kind", "str"), "C")
        default_length = 255 if data_type == "C" else 18 if data_type in ("N", "I", "F") else None
        items.append(
            ItemIn(
                name=col.get("comment") or col["name"],
                code=col["name"],
                data_type=data_type,
                length=col.get("length") or default_length,
                is_key=col["name"] in table.get("key", []),
            )
        )
    draft = ResourceIn(
        classification_code=data.classification_code,
        name=data.name,
        abstract=data.abstract,
        format="database",
        format_detail=f"{data.source}.{data.table}",
        sharing_type=SharingType.CONDITIONAL,
        sharing_conditions="按申请共享",
        sharing_modes=["table"],
        update_cycle="daily",
        provider_department_id=node.department_id,
        items=items,
    )
    # 自动编目 has no "confirm duplicate name" step of its own (yet): a table catalogued
    # twice gives two drafts, as before, which the department reviews.
    return catalog_service.add_resource(session, principal, draft, confirm_duplicates=True)
