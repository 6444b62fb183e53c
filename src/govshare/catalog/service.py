"""Rules of the catalog: compiling entries, the lifecycle, versions and diffs, the
classification tree and code tables, the demand catalog and the system inventory.

Every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.catalog import search
from govshare.catalog.codes import (
    CODE_TABLE_TITLES,
    DEFAULT_CLASSIFICATION,
    DEFAULT_CODE_TABLES,
    TYPES_WITH_LENGTH,
    CodeTableName,
    ResourceKind,
    ResourceStatus,
    SharingType,
)
from govshare.catalog.errors import (
    ClassificationNotFound,
    DemandNotFound,
    DuplicateResourceName,
    InvalidResource,
    NotYourDepartment,
    ResourceNotFound,
    SystemNameTaken,
    SystemNotFound,
    TransitionNotAllowed,
)
from govshare.catalog.models import (
    Classification,
    CodeEntry,
    Demand,
    DemandResponse,
    InformationItem,
    InformationSystem,
    Resource,
    ResourceTransition,
    ResourceVersion,
)
from govshare.catalog.schemas import (
    ChangeIn,
    DemandIn,
    DemandResponseIn,
    FieldChange,
    ResourceIn,
    SystemIn,
    VersionDiff,
)
from govshare.db import utcnow
from govshare.errors import Conflict, InvalidInput, SeparationOfDuties
from govshare.security import audit
from govshare.security.models import Department
from govshare.security.roles import Permission
from govshare.security.service import Principal

Problem = dict[str, Any]

# -- code tables and classification ---------------------------------------------------


def seed_reference_data(session: Session) -> None:
    """Seed code tables and the classification tree where they are still empty."""
    if session.scalar(select(func.count()).select_from(CodeEntry)) == 0:
        for table, entries in DEFAULT_CODE_TABLES.items():
            for order, (code, label) in enumerate(entries):
                session.add(
                    CodeEntry(table_name=str(table), code=code, label=label, sort_order=order)
                )
    if session.scalar(select(func.count()).select_from(Classification)) == 0:
        by_code: dict[str, Classification] = {}
        for code, name in DEFAULT_CLASSIFICATION:
            parent = by_code.get(_parent_code(code)) if len(code) > 1 else None
            node = Classification(code=code, name=name, level=_level_of(code), parent=parent)
            session.add(node)
            by_code[code] = node
    session.flush()


def _level_of(code: str) -> int:
    """类 1 digit, 项 3, 目 6, 细目 longer."""
    if len(code) == 1:
        return 1
    if len(code) == 3:
        return 2
    if len(code) == 6:
        return 3
    return 4


def _parent_code(code: str) -> str:
    return {1: "", 2: code[:1], 3: code[:3]}.get(_level_of(code), code[:6])


class CodeTables:
    """The active code tables, loaded once per unit of work."""

    def __init__(self, session: Session) -> None:
        self.entries: dict[str, dict[str, str]] = {}
        for e in session.scalars(
            select(CodeEntry).where(CodeEntry.active.is_(True)).order_by(CodeEntry.sort_order)
        ):
            self.entries.setdefault(e.table_name, {})[e.code] = e.label

    def label(self, table: str, code: str) -> str:
        return self.entries.get(table, {}).get(code, code)

    def codes(self, table: str) -> dict[str, str]:
        return self.entries.get(table, {})

    def resolve(self, table: str, value: str) -> str | None:
        """Accept a code or its label (spreadsheets use labels); None when unknown."""
        values = self.entries.get(table, {})
        value = value.strip()
        if value in values:
            return value
        for code, label in values.items():
            if label == value:
                return code
        return None


def list_code_tables(session: Session) -> dict[str, list[CodeEntry]]:
    tables: dict[str, list[CodeEntry]] = {}
    for e in session.scalars(
        select(CodeEntry).order_by(CodeEntry.table_name, CodeEntry.sort_order)
    ):
        tables.setdefault(e.table_name, []).append(e)
    return tables


def code_table_title(name: str) -> str:
    return CODE_TABLE_TITLES.get(name, name)


def put_code_entry(
    session: Session, principal: Principal, *, table: str, code: str, label: str, sort_order: int
) -> CodeEntry:
    entry = session.scalar(
        select(CodeEntry).where(CodeEntry.table_name == table, CodeEntry.code == code)
    )
    before = {"label": entry.label, "sort_order": entry.sort_order} if entry else None
    if entry is None:
        entry = CodeEntry(table_name=table, code=code, label=label, sort_order=sort_order)
        session.add(entry)
    else:
        entry.label, entry.sort_order, entry.active = label, sort_order, True
    session.flush()
    audit.record(
        session,
        principal.actor,
        "catalog.code_entry.put",
        object_type="code_entry",
        object_id=f"{table}:{code}",
        before=before,
        after={"label": label, "sort_order": sort_order},
    )
    return entry


def list_classifications(session: Session) -> list[Classification]:
    return list(session.scalars(select(Classification).order_by(Classification.code)))


def get_classification_by_code(session: Session, code: str) -> Classification:
    node = session.scalar(select(Classification).where(Classification.code == code))
    if node is None:
        raise ClassificationNotFound(f"信息资源分类 {code} 不存在")
    return node


def add_classification(
    session: Session, principal: Principal, *, code: str, name: str
) -> Classification:
    """Add a node; its parent is the code without its last segment and must exist."""
    if session.scalar(select(Classification.id).where(Classification.code == code)):
        raise Conflict(f"分类代码 {code} 已存在")
    if len(code) not in (1, 3, 6) and len(code) < 7:
        raise InvalidInput(
            "分类代码应为 类(1位)、项(3位)、目(6位) 或 细目(7位以上)",
            details=[{"field": "code", "message": "长度不符合 类/项/目/细目 规则"}],
        )
    parent = None
    if len(code) > 1:
        parent = session.scalar(
            select(Classification).where(Classification.code == _parent_code(code))
        )
        if parent is None:
            raise InvalidInput(
                f"上级分类 {_parent_code(code)} 不存在",
                details=[{"field": "code", "message": f"上级分类 {_parent_code(code)} 不存在"}],
            )
    node = Classification(code=code, name=name, level=_level_of(code), parent=parent)
    session.add(node)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "catalog.classification.add",
        object_type="classification",
        object_id=code,
        after={"code": code, "name": name},
    )
    return node


# -- validation ----------------------------------------------------------------------


def validate_resource(
    session: Session, data: ResourceIn, codes: CodeTables
) -> tuple[list[Problem], Classification | None]:
    """Check an entry against the compilation guide; every problem names its field."""
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    node = session.scalar(
        select(Classification).where(Classification.code == data.classification_code)
    )
    if node is None:
        bad("classification_code", f"信息资源分类 {data.classification_code} 不存在")
    elif node.level < 2:
        bad("classification_code", "信息资源分类应至少细分到“项”一级")
    if data.format not in codes.codes(CodeTableName.FORMAT):
        bad("format", f"信息资源格式 {data.format} 不在代码表中")
    if data.update_cycle not in codes.codes(CodeTableName.UPDATE_CYCLE):
        bad("update_cycle", f"更新周期 {data.update_cycle} 不在代码表中")
    if data.secrecy not in codes.codes(CodeTableName.SECRECY):
        bad("secrecy", f"涉密属性 {data.secrecy} 不在代码表中")
    for i, mode in enumerate(data.sharing_modes):
        if mode not in codes.codes(CodeTableName.SHARING_MODE):
            bad(f"sharing_modes[{i}]", f"共享方式 {mode} 不在代码表中")
    if data.sharing_type is SharingType.CONDITIONAL and not data.sharing_conditions.strip():
        bad("sharing_conditions", "有条件共享必须填写共享条件")
    if data.sharing_type is SharingType.NOT_SHARED:
        if not data.not_shared_basis.strip():
            bad("not_shared_basis", "不予共享必须注明法律、行政法规或党中央、国务院政策依据")
        if data.is_open:
            bad("is_open", "不予共享的资源不能向社会开放")
    elif not data.sharing_modes:
        bad("sharing_modes", "可共享的资源至少选择一种共享方式")
    if data.is_open and data.secrecy != "public":
        bad("is_open", "涉密资源不能向社会开放")
    for i, code in enumerate(data.related_codes):
        if not session.scalar(select(Resource.id).where(Resource.code == code)):
            bad(f"related_codes[{i}]", f"关联资源代码 {code} 不存在")
    if (
        data.source_system_id is not None
        and session.get(InformationSystem, data.source_system_id) is None
    ):
        bad("source_system_id", f"来源信息系统 {data.source_system_id} 不存在")
    seen: set[str] = set()
    for i, item in enumerate(data.items):
        where = f"items[{i}]"
        if item.code.lower() in seen:
            bad(f"{where}.code", f"信息项代码 {item.code} 重复")
        seen.add(item.code.lower())
        if item.data_type not in codes.codes(CodeTableName.DATA_TYPE):
            bad(f"{where}.data_type", f"数据类型 {item.data_type} 应为 C/N/Y/D/T/L/M/G/B/I/F 之一")
        elif item.data_type in TYPES_WITH_LENGTH and item.length is None:
            bad(f"{where}.length", f"{item.name}: 结构化信息项必须注明数据长度")
        if item.code_table and item.code_table not in codes.entries:
            bad(f"{where}.code_table", f"代码表 {item.code_table} 不存在")
    return problems, node


# -- duplicate names ---------------------------------------------------------------

DUPLICATE_NAME = "duplicate_name"  # the ``code`` of a duplicate-name problem


def name_key(name: str) -> str:
    """A resource name as compared for duplicates: NFKC (full-width → half-width), no
    white space, case-folded — "人口 信息" and "人口信息" are the same name."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name)).casefold()


def entries_by_name(
    session: Session, *, department_id: int, exclude_id: int | None = None
) -> dict[str, list[tuple[str, str]]]:
    """The department's entries (not withdrawn) as name key → [(code, name)]."""
    found: dict[str, list[tuple[str, str]]] = {}
    rows = session.execute(
        select(Resource.id, Resource.code, Resource.name)
        .where(
            Resource.provider_department_id == department_id,
            Resource.status != ResourceStatus.WITHDRAWN,
        )
        .order_by(Resource.id)
    )
    for id_, code, name in rows:
        if id_ != exclude_id:
            found.setdefault(name_key(name), []).append((code, name))
    return found


def duplicate_name_message(same: list[tuple[str, str]], *, then: str = "再保存") -> str:
    listed = "、".join(f"“{name}”({code})" for code, name in same[:3])
    more = f" 等 {len(same)} 条" if len(same) > 3 else ""
    return f"本部门已有同名目录 {listed}{more}；确属不同资源请勾选“确认重名”后{then}"


def duplicate_name_problems(
    session: Session, *, department_id: int | None, name: str, exclude_id: int | None = None
) -> list[Problem]:
    """A problem on ``name`` when the department already has an entry of that name."""
    if department_id is None or not name.strip():
        return []
    same = entries_by_name(session, department_id=department_id, exclude_id=exclude_id).get(
        name_key(name), []
    )
    if not same:
        return []
    return [{"field": "name", "message": duplicate_name_message(same), "code": DUPLICATE_NAME}]


def _refuse(problems: list[Problem]) -> None:
    if problems and all(p.get("code") == DUPLICATE_NAME for p in problems):
        raise DuplicateResourceName("本部门已有同名目录", details=problems)
    if problems:
        raise InvalidResource("目录信息不符合编制要求", details=problems)


# -- resources -----------------------------------------------------------------------


def _check_department(
    principal: Principal, department_id: int, refusal: str = "只能操作本部门的目录"
) -> None:
    if not principal.is_admin and principal.department_id != department_id:
        raise NotYourDepartment(refusal)


def snapshot(resource: Resource) -> dict[str, Any]:
    """The content of an entry as a plain dict: what a version stores and a diff compares."""
    return {
        "classification_code": resource.classification.code,
        "name": resource.name,
        "abstract": resource.abstract,
        "format": resource.format,
        "format_detail": resource.format_detail,
        "sharing_type": str(resource.sharing_type),
        "sharing_conditions": resource.sharing_conditions,
        "not_shared_basis": resource.not_shared_basis,
        "sharing_modes": list(resource.sharing_modes),
        "is_open": resource.is_open,
        "open_conditions": resource.open_conditions,
        "update_cycle": resource.update_cycle,
        "related_codes": list(resource.related_codes),
        "source_system_id": resource.source_system_id,
        "secrecy": resource.secrecy,
        "extensions": dict(resource.extensions),
        "provider_department_id": resource.provider_department_id,
        "items": [
            {
                "name": it.name,
                "code": it.code,
                "data_type": it.data_type,
                "length": it.length,
                "description": it.description,
                "code_table": it.code_table,
                "is_key": it.is_key,
                # Only when set, so the versions stored before it existed compare equal.
                **({"sensitive": True} if it.sensitive else {}),
                **({"open_withheld": True} if it.open_withheld else {}),
                **({"open_masking": str(it.open_masking)} if it.open_masking != "none" else {}),
            }
            for it in resource.items
        ],
    }


def _apply(resource: Resource, data: ResourceIn, node: Classification) -> None:
    resource.classification = node
    resource.classification_id = node.id
    resource.kind = ResourceKind.from_class_code(node.code)
    resource.name = data.name.strip()
    resource.abstract = data.abstract.strip()
    resource.format = data.format
    resource.format_detail = data.format_detail
    resource.sharing_type = data.sharing_type
    resource.sharing_conditions = data.sharing_conditions
    resource.not_shared_basis = data.not_shared_basis
    resource.sharing_modes = (
        [] if data.sharing_type is SharingType.NOT_SHARED else list(data.sharing_modes)
    )
    resource.is_open = data.is_open
    resource.open_conditions = data.open_conditions
    resource.update_cycle = data.update_cycle
    resource.related_codes = list(data.related_codes)
    resource.source_system_id = data.source_system_id
    resource.secrecy = data.secrecy
    resource.extensions = dict(data.extensions)
    resource.items = [
        InformationItem(position=i + 1, **item.model_dump()) for i, item in enumerate(data.items)
    ]
    resource.updated_at = utcnow()


def _published_is_open(session: Session, resource: Resource) -> bool:
    """Whether the published version says 是否向社会开放 = 是 (in a change, the working
    copy may say otherwise until the change is published)."""
    if resource.version == resource.published_version:
        return bool(resource.is_open)
    snap = session.scalar(
        select(ResourceVersion.snapshot).where(
            ResourceVersion.resource_id == resource.id,
            ResourceVersion.version == resource.published_version,
        )
    )
    return bool((snap or {}).get("is_open"))


def _next_sequence(session: Session, classification_id: int) -> int:
    current = session.scalar(
        select(func.max(Resource.sequence)).where(Resource.classification_id == classification_id)
    )
    return (current or 0) + 1


def _save_version(session: Session, resource: Resource, actor: str, note: str) -> None:
    session.add(
        ResourceVersion(
            resource_id=resource.id,
            version=resource.version,
            snapshot=snapshot(resource),
            created_by=actor,
            note=note,
        )
    )


def _provider_for(session: Session, principal: Principal, data: ResourceIn) -> int:
    if data.provider_department_id is None:
        if principal.department_id is None:
            raise InvalidResource("未指定提供方部门")
        return principal.department_id
    _check_department(principal, data.provider_department_id)
    if session.get(Department, data.provider_department_id) is None:
        raise InvalidResource(
            "提供方部门不存在",
            details=[{"field": "provider_department_id", "message": "提供方部门不存在"}],
        )
    return data.provider_department_id


def add_resource(
    session: Session,
    principal: Principal,
    data: ResourceIn,
    *,
    codes: CodeTables | None = None,
    index: bool = True,
    confirm_duplicates: bool = False,
    audit_to: list[audit.Pending] | None = None,
) -> Resource:
    """Compile a new entry as a draft (草稿) with a fresh 分类码/顺序码.

    A name the department already uses is refused unless ``confirm_duplicates``. Bulk
    callers pass ``audit_to`` to collect the audit entries and append them to the chain
    in one claim on its head (``audit.record_many``) in the same transaction."""
    codes = codes or CodeTables(session)
    provider_id = _provider_for(session, principal, data)
    # Every entry added before is flushed already (below): the checks' reads need not
    # flush the versions and audit records still pending, which bulk imports pay for.
    with session.no_autoflush:
        problems, node = validate_resource(session, data, codes)
        if not confirm_duplicates:
            problems += duplicate_name_problems(session, department_id=provider_id, name=data.name)
        _refuse(problems)
        if node is None:
            raise InvalidResource("目录信息不符合编制要求", details=problems)
        sequence = _next_sequence(session, node.id)
    resource = Resource(
        code=f"{node.code}/{sequence:06d}",
        sequence=sequence,
        provider_department_id=provider_id,
        status=ResourceStatus.DRAFT,
        version=1,
        created_by=principal.name,
    )
    _apply(resource, data, node)
    session.add(resource)
    session.flush()
    _save_version(session, resource, principal.name, "新建")
    entry = audit.Pending(
        principal.actor,
        "catalog.resource.add",
        "resource",
        resource.code,
        None,
        snapshot(resource),
    )
    if audit_to is None:
        audit.record_many(session, [entry])
    else:
        audit_to.append(entry)
    if index:
        search.index_resource(session, resource)
    return resource


def get_resource(session: Session, resource_id: int) -> Resource:
    resource = session.get(Resource, resource_id)
    if resource is None:
        raise ResourceNotFound(f"目录 {resource_id} 不存在")
    return resource


def get_resource_by_code(session: Session, code: str) -> Resource:
    resource = session.scalar(select(Resource).where(Resource.code == code))
    if resource is None:
        raise ResourceNotFound(f"目录 {code} 不存在")
    return resource


def can_see_working_copy(principal: Principal, resource: Resource) -> bool:
    return principal.is_admin or principal.department_id == resource.provider_department_id


def _known_resource(session: Session, principal: Principal, resource_id: int) -> Resource:
    """The entry if the caller may know it exists: its own department's (or any, for the
    platform) or a listed one. Another department's draft answers exactly as a missing
    id does, so ids cannot be probed for drafts."""
    resource = session.get(Resource, resource_id)
    if resource is None or not (
        can_see_working_copy(principal, resource)
        or (resource.listed and resource.published_version is not None)
    ):
        raise ResourceNotFound(f"目录 {resource_id} 不存在或未发布")
    return resource


def own_resource(
    session: Session, principal: Principal, resource_id: int, refusal: str = "只能操作本部门的目录"
) -> Resource:
    """The caller's own department's entry (any, for the platform); another department's
    listed entry is refused with ``refusal``, its draft is not found."""
    resource = _known_resource(session, principal, resource_id)
    _check_department(principal, resource.provider_department_id, refusal)
    return resource


def visible_resource(
    session: Session, principal: Principal, resource_id: int
) -> tuple[Resource, dict[str, Any]]:
    """The entry as this reader may see it: the working copy for its own department and
    admins, otherwise the published version (and nothing if never published)."""
    resource = _known_resource(session, principal, resource_id)
    if can_see_working_copy(principal, resource):
        return resource, snapshot(resource)
    assert resource.published_version is not None  # _known_resource let a listed one by
    return resource, get_version(session, resource, resource.published_version).snapshot


EDITABLE = {
    ResourceStatus.DRAFT,
    ResourceStatus.RETURNED,
    ResourceStatus.PUBLICATION_REJECTED,
    ResourceStatus.PUBLISHED,
    ResourceStatus.WITHDRAWN,
}


def update_resource(
    session: Session,
    principal: Principal,
    resource_id: int,
    data: ChangeIn,
    *,
    confirm_duplicates: bool = False,
) -> Resource:
    """Edit an entry. Editing a published entry is a 变更: it needs a reason, becomes a new
    draft version and stays in the sharing catalog at its published version meanwhile.

    Renaming to a name another entry of the department uses is refused unless
    ``confirm_duplicates``; keeping the entry's own name never is."""
    resource = own_resource(session, principal, resource_id)
    if resource.status not in EDITABLE:
        raise TransitionNotAllowed(f"“{resource.status.label}”状态的目录不能修改")
    if resource.status is ResourceStatus.PUBLISHED and not data.reason.strip():
        raise InvalidResource(
            "变更已发布目录须填写变更原因",
            details=[{"field": "reason", "message": "请填写变更原因"}],
        )
    if data.provider_department_id not in (None, resource.provider_department_id):
        raise InvalidResource(
            "不能更改提供方部门",
            details=[{"field": "provider_department_id", "message": "提供方部门不可变更"}],
        )
    codes = CodeTables(session)
    problems, node = validate_resource(session, data, codes)
    if not confirm_duplicates and name_key(data.name) != name_key(resource.name):
        problems += duplicate_name_problems(
            session,
            department_id=resource.provider_department_id,
            name=data.name,
            exclude_id=resource.id,
        )
    _refuse(problems)
    if node is None:
        raise InvalidResource("目录信息不符合编制要求", details=problems)
    before = snapshot(resource)
    if node.id != resource.classification_id:
        if resource.published_version is not None:
            raise InvalidResource(
                "已发布目录不能更改分类 (资源代码不可变)",
                details=[{"field": "classification_code", "message": "已发布目录的分类不可变更"}],
            )
        resource.sequence = _next_sequence(session, node.id)
        resource.code = f"{node.code}/{resource.sequence:06d}"
    # Old items go first: the unit of work would insert the new ones before deleting,
    # tripping the (resource, code) unique constraint.
    resource.items.clear()
    session.flush()
    _apply(resource, data, node)
    after = snapshot(resource)
    if after == before:
        return resource
    from_status = resource.status
    resource.version += 1
    if from_status in (
        ResourceStatus.PUBLISHED,
        ResourceStatus.WITHDRAWN,
        ResourceStatus.PUBLICATION_REJECTED,
    ):
        resource.status = ResourceStatus.DRAFT
    session.flush()
    _save_version(session, resource, principal.name, data.reason or "修改")
    if from_status is ResourceStatus.PUBLISHED:
        _log_transition(session, principal, resource, "change", from_status, data.reason)
    audit.record(
        session,
        principal.actor,
        "catalog.resource.update",
        object_type="resource",
        object_id=resource.code,
        before=before,
        after=after,
    )
    search.index_resource(session, resource)
    return resource


def delete_resource(session: Session, principal: Principal, resource_id: int) -> None:
    """Only never-published drafts and rejected registrations can be deleted."""
    resource = own_resource(session, principal, resource_id)
    deletable = resource.published_version is None and resource.status in (
        ResourceStatus.DRAFT,
        ResourceStatus.REGISTRATION_REJECTED,
        ResourceStatus.RETURNED,
    )
    if not deletable:
        raise TransitionNotAllowed("只有从未发布的草稿或被拒绝的目录可以删除")
    if session.scalar(select(DemandResponse.id).where(DemandResponse.resource_id == resource.id)):
        raise TransitionNotAllowed("该目录已被需求响应引用，不能删除")
    audit.record(
        session,
        principal.actor,
        "catalog.resource.delete",
        object_type="resource",
        object_id=resource.code,
        before=snapshot(resource),
    )
    search.remove_resource(session, resource.id)
    session.delete(resource)
    session.flush()


@dataclass(frozen=True, slots=True)
class Step:
    """One lifecycle step: from which states, to which, by which permission."""

    name: str
    label: str
    sources: frozenset[ResourceStatus]
    target: ResourceStatus
    permission: Permission
    reason_required: bool = False
    own_department: bool = True
    reviews: bool = False  # judges the step that led here: never by whoever took that


S = ResourceStatus
STEPS: dict[str, Step] = {
    s.name: s
    for s in [
        Step(
            "submit",
            "提交注册",
            frozenset({S.DRAFT, S.RETURNED}),
            S.PENDING_REGISTRATION,
            Permission.CATALOG_WRITE,
        ),
        Step(
            "approve",
            "注册审核通过",
            frozenset({S.PENDING_REGISTRATION}),
            S.REGISTERED,
            Permission.CATALOG_REVIEW,
            reviews=True,
        ),
        Step(
            "return",
            "退回修改",
            frozenset({S.PENDING_REGISTRATION}),
            S.RETURNED,
            Permission.CATALOG_REVIEW,
            reason_required=True,
            reviews=True,
        ),
        Step(
            "reject",
            "注册审核拒绝",
            frozenset({S.PENDING_REGISTRATION}),
            S.REGISTRATION_REJECTED,
            Permission.CATALOG_REVIEW,
            reason_required=True,
            reviews=True,
        ),
        Step(
            "request_publication",
            "提交发布",
            frozenset({S.REGISTERED}),
            S.PENDING_PUBLICATION,
            Permission.CATALOG_WRITE,
        ),
        Step(
            "publish",
            "发布审核通过",
            frozenset({S.PENDING_PUBLICATION}),
            S.PUBLISHED,
            Permission.CATALOG_PUBLISH,
            own_department=False,
            reviews=True,
        ),
        Step(
            "reject_publication",
            "发布审核拒绝",
            frozenset({S.PENDING_PUBLICATION}),
            S.PUBLICATION_REJECTED,
            Permission.CATALOG_PUBLISH,
            reason_required=True,
            own_department=False,
            reviews=True,
        ),
        Step(
            "withdraw",
            "取消发布",
            frozenset({S.PUBLISHED, S.DRAFT}),
            S.WITHDRAWN,
            Permission.CATALOG_WRITE,
            reason_required=True,
        ),
    ]
}


def submitted_by(session: Session, resource: Resource) -> str | None:
    """Who took the step that put the entry in its present state (the submitter a
    review judges)."""
    return session.scalar(
        select(ResourceTransition.actor)
        .where(
            ResourceTransition.resource_id == resource.id,
            ResourceTransition.to_status == str(resource.status),
        )
        .order_by(ResourceTransition.id.desc())
        .limit(1)
    )


def available_steps(session: Session, principal: Principal, resource: Resource) -> list[Step]:
    steps = []
    submitter = submitted_by(session, resource)
    for step in STEPS.values():
        if resource.status not in step.sources or not principal.can(step.permission):
            continue
        if step.reviews and submitter == principal.name:
            continue
        if step.name == "withdraw" and resource.published_version is None:
            continue
        if step.own_department and not can_see_working_copy(principal, resource):
            continue
        steps.append(step)
    return steps


def _log_transition(
    session: Session,
    principal: Principal,
    resource: Resource,
    action: str,
    from_status: ResourceStatus,
    reason: str,
) -> None:
    session.add(
        ResourceTransition(
            resource_id=resource.id,
            action=action,
            from_status=str(from_status),
            to_status=str(resource.status),
            version=resource.version,
            actor=principal.name,
            reason=reason,
        )
    )


def conformance_problems(session: Session, resource: Resource) -> list[Problem]:
    """The platform's standard-conformance check (规范性审核) before publication."""
    data = ResourceIn.model_validate({**snapshot(resource), "provider_department_id": None})
    problems, _ = validate_resource(session, data, CodeTables(session))
    if not any(item.is_key for item in resource.items) and resource.format == "database":
        problems.append({"field": "items", "message": "库表类资源应至少标明一个主键信息项"})
    return problems


def transition(
    session: Session, principal: Principal, resource_id: int, step_name: str, reason: str = ""
) -> Resource:
    """Take one lifecycle step, checking state, permission, department and reason."""
    step = STEPS.get(step_name)
    if step is None:
        raise TransitionNotAllowed(f"未知的操作: {step_name}")
    resource = _known_resource(session, principal, resource_id)
    if not principal.can(step.permission):
        from govshare.security.errors import PermissionDenied

        raise PermissionDenied(f"无权执行“{step.label}”")
    if step.own_department:
        _check_department(principal, resource.provider_department_id)
    if resource.status not in step.sources or (
        step.name == "withdraw" and resource.published_version is None
    ):
        raise TransitionNotAllowed(f"“{resource.status.label}”状态的目录不能执行“{step.label}”")
    if step.reviews and submitted_by(session, resource) == principal.name:
        raise SeparationOfDuties(
            f"不能对本人提交的目录执行“{step.label}”，须由其他审核人办理 (separation of duties)"
        )
    if step.reason_required and not reason.strip():
        raise InvalidInput(
            f"“{step.label}”须填写原因", details=[{"field": "reason", "message": "请填写原因"}]
        )
    if step.name == "publish" and (problems := conformance_problems(session, resource)):
        raise InvalidResource("目录未通过规范性审核，不能发布", details=problems)
    from_status = resource.status
    resource.status = step.target
    if step.name == "publish":
        resource.published_version = resource.version
        resource.publish_date = utcnow().date()
    resource.listed = resource.published_version is not None and resource.status is not S.WITHDRAWN
    resource.open_listed = resource.listed and _published_is_open(session, resource)
    resource.updated_at = utcnow()
    _log_transition(session, principal, resource, step.name, from_status, reason)
    session.flush()
    audit.record(
        session,
        principal.actor,
        f"catalog.resource.{step.name}",
        object_type="resource",
        object_id=resource.code,
        before={"status": str(from_status)},
        after={"status": str(resource.status), "version": resource.version, "reason": reason},
    )
    search.index_resource(session, resource)
    return resource


def list_versions(session: Session, resource: Resource) -> list[ResourceVersion]:
    return list(
        session.scalars(
            select(ResourceVersion)
            .where(ResourceVersion.resource_id == resource.id)
            .order_by(ResourceVersion.version.desc())
        )
    )


def get_version(session: Session, resource: Resource, version: int) -> ResourceVersion:
    row = session.scalar(
        select(ResourceVersion).where(
            ResourceVersion.resource_id == resource.id, ResourceVersion.version == version
        )
    )
    if row is None:
        raise ResourceNotFound(f"目录 {resource.code} 没有第 {version} 版")
    return row


def list_transitions(session: Session, resource: Resource) -> list[ResourceTransition]:
    return list(
        session.scalars(
            select(ResourceTransition)
            .where(ResourceTransition.resource_id == resource.id)
            .order_by(ResourceTransition.id.desc())
        )
    )


def diff_snapshots(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """Field-level differences; items are matched by their code."""
    changes = [
        FieldChange(field=key, before=old.get(key), after=new.get(key))
        for key in sorted(set(old) | set(new) - {"items"})
        if key != "items" and old.get(key) != new.get(key)
    ]
    old_items = {it["code"]: it for it in old.get("items", [])}
    new_items = {it["code"]: it for it in new.get("items", [])}
    for code in sorted(set(old_items) | set(new_items)):
        a, b = old_items.get(code), new_items.get(code)
        if a is None or b is None:
            changes.append(FieldChange(field=f"items.{code}", before=a, after=b))
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                changes.append(
                    FieldChange(field=f"items.{code}.{key}", before=a.get(key), after=b.get(key))
                )
    return changes


def diff_versions(session: Session, resource: Resource, old: int, new: int) -> VersionDiff:
    a, b = get_version(session, resource, old), get_version(session, resource, new)
    return VersionDiff(
        from_version=old, to_version=new, changes=diff_snapshots(a.snapshot, b.snapshot)
    )


def review_queue(
    session: Session, principal: Principal, status: ResourceStatus, limit: int = 200
) -> list[Resource]:
    """Entries waiting for this reviewer: their department's, or all for the platform."""
    q = select(Resource).where(Resource.status == status).order_by(Resource.updated_at).limit(limit)
    if not principal.is_admin:
        q = q.where(Resource.provider_department_id == principal.department_id)
    return list(session.scalars(q))


def department_resources(
    session: Session,
    department_id: int,
    statuses: Iterable[ResourceStatus] | None = None,
    limit: int = 500,
) -> list[Resource]:
    q = (
        select(Resource)
        .where(Resource.provider_department_id == department_id)
        .order_by(Resource.updated_at.desc())
        .limit(limit)
    )
    if statuses:
        q = q.where(Resource.status.in_(list(statuses)))
    return list(session.scalars(q))


# -- demand catalog (需求目录) -----------------------------------------------------------


def add_demand(session: Session, principal: Principal, data: DemandIn) -> Demand:
    if principal.department_id is None:
        raise InvalidInput("需求须由部门提出")
    demand = Demand(
        department_id=principal.department_id, created_by=principal.name, **data.model_dump()
    )
    session.add(demand)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "catalog.demand.add",
        object_type="demand",
        object_id=demand.id,
        after=data.model_dump(),
    )
    return demand


def get_demand(session: Session, demand_id: int) -> Demand:
    demand = session.get(Demand, demand_id)
    if demand is None:
        raise DemandNotFound(f"需求 {demand_id} 不存在")
    return demand


def list_demands(session: Session, status: str | None = None, limit: int = 200) -> list[Demand]:
    q = select(Demand).order_by(Demand.id.desc()).limit(limit)
    if status:
        q = q.where(Demand.status == status)
    return list(session.scalars(q))


def respond_to_demand(
    session: Session, principal: Principal, demand_id: int, data: DemandResponseIn
) -> DemandResponse:
    """Answer a demand with one of the responder's own listed resources."""
    demand = get_demand(session, demand_id)
    if demand.status == "closed":
        raise TransitionNotAllowed("需求已关闭")
    resource = get_resource_by_code(session, data.resource_code)
    _check_department(principal, resource.provider_department_id)
    if not resource.listed:
        raise InvalidInput(
            "只能以已发布的目录响应需求",
            details=[{"field": "resource_code", "message": "该目录尚未发布"}],
        )
    response = DemandResponse(
        demand_id=demand.id,
        resource_id=resource.id,
        department_id=resource.provider_department_id,
        note=data.note,
        created_by=principal.name,
    )
    session.add(response)
    demand.status = "answered"
    session.flush()
    audit.record(
        session,
        principal.actor,
        "catalog.demand.respond",
        object_type="demand",
        object_id=demand.id,
        after={"resource_code": resource.code, "note": data.note},
    )
    return response


def close_demand(session: Session, principal: Principal, demand_id: int) -> Demand:
    demand = get_demand(session, demand_id)
    _check_department(principal, demand.department_id)
    demand.status = "closed"
    audit.record(
        session, principal.actor, "catalog.demand.close", object_type="demand", object_id=demand.id
    )
    return demand


# -- information-system inventory (信息系统普查) ------------------------------------------


def _validate_system(codes: CodeTables, data: SystemIn) -> None:
    problems = []
    if data.usage_frequency not in codes.codes(CodeTableName.USAGE_FREQUENCY):
        problems.append(
            {"field": "usage_frequency", "message": f"使用频度 {data.usage_frequency} 不在代码表中"}
        )
    if data.network not in codes.codes(CodeTableName.NETWORK):
        problems.append({"field": "network", "message": f"部署网络 {data.network} 不在代码表中"})
    if problems:
        raise InvalidInput("信息系统信息不正确", details=problems)


def _check_system_name(
    session: Session, department_id: int, name: str, *, system_id: int | None = None
) -> None:
    """One name per information system within a department (uq_information_system_dept_name)."""
    clash = select(InformationSystem.id).where(
        InformationSystem.department_id == department_id, InformationSystem.name == name
    )
    if system_id is not None:
        clash = clash.where(InformationSystem.id != system_id)
    if session.scalar(clash):
        raise SystemNameTaken(
            f"本部门已登记同名信息系统: {name}",
            details=[{"field": "name", "message": "本部门已有同名信息系统，请换一个名称"}],
        )


def add_system(
    session: Session, principal: Principal, data: SystemIn, department_id: int | None = None
) -> InformationSystem:
    dept_id = department_id or principal.department_id
    if dept_id is None:
        raise InvalidInput("未指定部门")
    _check_department(principal, dept_id)
    _validate_system(CodeTables(session), data)
    _check_system_name(session, dept_id, data.name)
    system = InformationSystem(department_id=dept_id, **data.model_dump())
    session.add(system)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "catalog.system.add",
        object_type="information_system",
        object_id=system.id,
        after=data.model_dump(),
    )
    return system


def update_system(
    session: Session, principal: Principal, system_id: int, data: SystemIn
) -> InformationSystem:
    system = get_system(session, system_id)
    _check_department(principal, system.department_id)
    _validate_system(CodeTables(session), data)
    _check_system_name(session, system.department_id, data.name, system_id=system.id)
    before = SystemIn.model_validate(system, from_attributes=True).model_dump()
    for key, value in data.model_dump().items():
        setattr(system, key, value)
    audit.record(
        session,
        principal.actor,
        "catalog.system.update",
        object_type="information_system",
        object_id=system.id,
        before=before,
        after=data.model_dump(),
    )
    return system


def get_system(session: Session, system_id: int) -> InformationSystem:
    system = session.get(InformationSystem, system_id)
    if system is None:
        raise SystemNotFound(f"信息系统 {system_id} 不存在")
    return system


def list_systems(
    session: Session, department_id: int | None = None
) -> list[tuple[InformationSystem, int]]:
    """Systems with the number of resources each produces; zero hints at a 僵尸系统."""
    counts = (
        select(Resource.source_system_id, func.count().label("n"))
        .group_by(Resource.source_system_id)
        .subquery()
    )
    q = (
        select(InformationSystem, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.source_system_id == InformationSystem.id)
        .order_by(InformationSystem.department_id, InformationSystem.name)
    )
    if department_id is not None:
        q = q.where(InformationSystem.department_id == department_id)
    return [(s, n) for s, n in session.execute(q).all()]
