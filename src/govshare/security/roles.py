"""Roles and permissions. Every route names exactly one permission it needs."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """角色."""

    PLATFORM_ADMIN = "platform_admin"  # 平台管理员 (信息共享主管部门)
    CATALOG_REGISTRAR = "catalog_registrar"  # 目录编目员
    CATALOG_REVIEWER = "catalog_reviewer"  # 目录审核员
    RESOURCE_ADMIN = "resource_admin"  # 信息资源管理员 (共享审核人)
    AUDITOR = "auditor"  # 审计员: reads logs, never data
    DOCUMENT_CLERK = "document_clerk"  # 公文收发员: sends and receives the department's 公文
    WINDOW_OFFICER = "window_officer"  # 窗口受理员: one-window acceptance (一口受理)
    CASE_HANDLER = "case_handler"  # 协同办理员: decides the department's case tasks

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS: dict[Role, str] = {
    Role.PLATFORM_ADMIN: "平台管理员",
    Role.CATALOG_REGISTRAR: "目录编目员",
    Role.CATALOG_REVIEWER: "目录审核员",
    Role.RESOURCE_ADMIN: "信息资源管理员",
    Role.AUDITOR: "审计员",
    Role.DOCUMENT_CLERK: "公文收发员",
    Role.WINDOW_OFFICER: "窗口受理员",
    Role.CASE_HANDLER: "协同办理员",
}


class Permission(StrEnum):
    PUBLIC = "public"  # no identity needed (health, login, static)
    AUTHENTICATED = "authenticated"  # any signed-in person or client
    CATALOG_READ = "catalog.read"
    CATALOG_WRITE = "catalog.write"  # compile and submit the own department's entries
    CATALOG_REVIEW = "catalog.review"  # department review (注册审核)
    CATALOG_PUBLISH = "catalog.publish"  # platform conformance check (发布审核)
    CATALOG_ADMIN = "catalog.admin"  # classification tree and code tables
    DEMAND_WRITE = "demand.write"
    SYSTEM_WRITE = "system.write"  # information-system inventory
    DUTY_READ = "duty.read"  # the duty register (own department; platform and auditors all)
    DUTY_WRITE = "duty.write"  # declare, change, withdraw the own department's duties
    DEPARTMENT_ADMIN = "department.admin"
    USER_ADMIN = "user.admin"
    AUDIT_READ = "audit.read"
    EXCHANGE_READ = "exchange.read"  # see nodes, tasks, lag and alerts
    EXCHANGE_ADMIN = "exchange.admin"  # create, deploy, start and stop tasks; enroll nodes
    EXCHANGE_NODE = "exchange.node"  # held only by front-end nodes (前置机) themselves
    SHARING_READ = "sharing.read"  # the own department's applications, grants and usage
    SHARING_APPLY = "sharing.apply"  # apply, dispute a refusal, report usage (as consumer)
    SHARING_REVIEW = "sharing.review"  # answer applications, revoke grants (as provider)
    SHARING_ARBITRATE = "sharing.arbitrate"  # decide disputes (平台共享主管部门)
    SHARING_STORE = "sharing.store"  # set up shared stores (共享信息库) of a resource
    CALENDAR_ADMIN = "calendar.admin"  # enter years' holiday schedules (节假日安排)
    DATA_SERVICE = "data.service"  # call data services under the department's grants
    EVALUATION_READ = "evaluation.read"  # the ranking and the own department's evaluation
    EVALUATION_ADMIN = "evaluation.admin"  # every department, the scheme, runs, publishing
    OPS_READ = "ops.read"  # the operations dashboard (运维监控)
    DOCUMENT_READ = "document.read"  # the department's sent and received 公文, verifying them
    DOCUMENT_SEND = "document.send"  # send 公文 in the department's name (发文)
    DOCUMENT_RECEIVE = "document.receive"  # sign for (签收) or return (退回) received 公文
    COLLAB_READ = "collab.read"  # process definitions and the cases the department is in
    COLLAB_DEFINE = "collab.define"  # upload process definitions (流程定义)
    COLLAB_ACCEPT = "collab.accept"  # accept applications at the window (窗口受理)
    COLLAB_HANDLE = "collab.handle"  # claim and decide the department's case tasks

    @property
    def label(self) -> str:
        return PERMISSION_LABELS[self]


PERMISSION_LABELS: dict[Permission, str] = {
    Permission.PUBLIC: "公开访问",
    Permission.AUTHENTICATED: "登录使用",
    Permission.CATALOG_READ: "查阅资源目录",
    Permission.CATALOG_WRITE: "编制资源目录",
    Permission.CATALOG_REVIEW: "目录注册审核",
    Permission.CATALOG_PUBLISH: "目录发布审核",
    Permission.CATALOG_ADMIN: "管理目录分类和代码表",
    Permission.DEMAND_WRITE: "登记共享需求",
    Permission.SYSTEM_WRITE: "登记信息系统",
    Permission.DUTY_READ: "查阅职责清单",
    Permission.DUTY_WRITE: "维护职责清单",
    Permission.DEPARTMENT_ADMIN: "部门管理",
    Permission.USER_ADMIN: "用户管理",
    Permission.AUDIT_READ: "查阅审计日志",
    Permission.EXCHANGE_READ: "查看数据交换",
    Permission.EXCHANGE_ADMIN: "管理数据交换",
    Permission.EXCHANGE_NODE: "前置机接入",
    Permission.SHARING_READ: "查看数据共享",
    Permission.SHARING_APPLY: "申请共享数据",
    Permission.SHARING_REVIEW: "答复共享申请",
    Permission.SHARING_ARBITRATE: "裁决共享争议",
    Permission.SHARING_STORE: "管理共享信息库",
    Permission.CALENDAR_ADMIN: "维护节假日安排",
    Permission.DATA_SERVICE: "调用数据服务",
    Permission.EVALUATION_READ: "查看考核评估",
    Permission.EVALUATION_ADMIN: "管理考核评估",
    Permission.OPS_READ: "查看运维监控",
    Permission.DOCUMENT_READ: "查看公文",
    Permission.DOCUMENT_SEND: "发送公文",
    Permission.DOCUMENT_RECEIVE: "签收公文",
    Permission.COLLAB_READ: "查看业务协同",
    Permission.COLLAB_DEFINE: "管理流程定义",
    Permission.COLLAB_ACCEPT: "窗口受理",
    Permission.COLLAB_HANDLE: "协同办理",
}


_CATALOG_USER = {Permission.AUTHENTICATED, Permission.CATALOG_READ, Permission.EVALUATION_READ}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Data services answer department systems (API clients), never people.
    Role.PLATFORM_ADMIN: frozenset(Permission)
    - {Permission.AUDIT_READ, Permission.EXCHANGE_NODE, Permission.DATA_SERVICE},
    Role.CATALOG_REGISTRAR: frozenset(
        _CATALOG_USER
        | {
            Permission.CATALOG_WRITE,
            Permission.DEMAND_WRITE,
            Permission.SYSTEM_WRITE,
            Permission.DUTY_READ,
            Permission.DUTY_WRITE,
        }
    ),
    Role.CATALOG_REVIEWER: frozenset(
        _CATALOG_USER | {Permission.CATALOG_REVIEW, Permission.DUTY_READ}
    ),
    Role.RESOURCE_ADMIN: frozenset(
        _CATALOG_USER
        | {
            Permission.DEMAND_WRITE,
            Permission.DUTY_READ,
            Permission.EXCHANGE_READ,
            Permission.SHARING_READ,
            Permission.SHARING_APPLY,
            Permission.SHARING_REVIEW,
            Permission.SHARING_STORE,
        }
    ),
    # The duty register is evidence the auditor checks the catalog's timeliness against.
    Role.AUDITOR: frozenset(
        {Permission.AUTHENTICATED, Permission.AUDIT_READ, Permission.DUTY_READ}
    ),
    Role.DOCUMENT_CLERK: frozenset(
        {
            Permission.AUTHENTICATED,
            Permission.DOCUMENT_READ,
            Permission.DOCUMENT_SEND,
            Permission.DOCUMENT_RECEIVE,
        }
    ),
    Role.WINDOW_OFFICER: frozenset(
        {Permission.AUTHENTICATED, Permission.COLLAB_READ, Permission.COLLAB_ACCEPT}
    ),
    Role.CASE_HANDLER: frozenset(
        {Permission.AUTHENTICATED, Permission.COLLAB_READ, Permission.COLLAB_HANDLE}
    ),
}

# An API client (a department's system) may hold at most these.
CLIENT_PERMISSIONS = frozenset(
    {Permission.AUTHENTICATED, Permission.CATALOG_READ, Permission.DATA_SERVICE}
)


def permissions_for(roles: list[Role] | list[str]) -> frozenset[Permission]:
    granted: set[Permission] = {Permission.PUBLIC}
    for role in roles:
        granted |= ROLE_PERMISSIONS[Role(role)]
    return frozenset(granted)
