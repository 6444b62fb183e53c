"""数据质量 rules and reading: the rules of each item (seeded from the catalog, edited
by the provider), who sees which scans and failing values, and how the values are
masked for the viewer.

Who sees what: a department sees the scans and failing values of its own resources
(as the provider, 提供部门); the platform admin sees every resource. Values are shown
as stored to the provider department — it is its own data and it must find the record
in its own system to correct it. A platform admin of another department sees the
personal identifiers masked (公民身份号码, 电话号码, 姓名, 地址, by the grants' masking
rules), and every item the catalog marks sensitive (敏感信息项) as a grant would mask it
by default: supervising quality does not need the people's data. The failing values
of a store's sealed items (字段加密) are kept masked that way already
(:func:`sealed_masking`), so the hub database holds none in the clear: everyone sees
them masked, the provider too.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.catalog.codes import TYPES_WITH_LENGTH
from govshare.catalog.models import CodeEntry, InformationItem, Resource
from govshare.db import utcnow
from govshare.quality.errors import InvalidRule, NoSharedStore, NotYourResource, ScanNotFound
from govshare.quality.models import (
    DIMENSION_LABELS,
    Dimension,
    ItemFormat,
    QualityProblem,
    QualityRule,
    QualityScan,
)
from govshare.rules.clock import china_date
from govshare.rules.masking import MaskingRule, mask, suggested_rule
from govshare.rules.validators import SEX_CODES, TYPE_NAMES
from govshare.security import audit
from govshare.security.service import Principal
from govshare.sharing.models import SharedStore

SEX_TABLE = "GB/T 2261.1"

# -- seeding rules from the catalog ---------------------------------------------------------

_SEEDS: list[tuple[ItemFormat, re.Pattern[str]]] = [
    (
        ItemFormat.CITIZEN_ID,
        re.compile(r"公民身份号码|身份证号|身份证件号码|^(sfzhm|gmsfhm|sfzh)$"),
    ),
    (ItemFormat.CREDIT_CODE, re.compile(r"统一社会信用代码|^(tyshxydm|shxydm|uscc)$")),
    (ItemFormat.DIVISION, re.compile(r"行政区划|^(xzqhdm|xzqh)$")),
    (ItemFormat.SEX, re.compile(r"性别|^(xb|xbdm)$")),
    (ItemFormat.PHONE, re.compile(r"电话|手机|^(lxdh|sjhm|dh)$")),
]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule says, whether stored or seeded: the scan's view of one item."""

    item_code: str
    required: bool
    data_type: str
    max_length: int | None
    format: ItemFormat
    code_table: str | None
    date_min: date | None
    date_max: date | None

    @classmethod
    def of(cls, rule: QualityRule) -> RuleSpec:
        return cls(
            item_code=rule.item_code,
            required=rule.required,
            data_type=rule.data_type,
            max_length=rule.max_length,
            format=rule.format,
            code_table=rule.code_table,
            date_min=rule.date_min,
            date_max=rule.date_max,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "data_type": self.data_type,
            "max_length": self.max_length,
            "format": self.format.value,
            "code_table": self.code_table,
            "date_min": self.date_min.isoformat() if self.date_min else None,
            "date_max": self.date_max.isoformat() if self.date_max else None,
        }


def seed_rule(item: InformationItem) -> RuleSpec:
    """The rule an item starts with: required when it is the resource's key (the
    catalog has no other 必填 flag), its declared type and length, and the format its
    name, code or code table points to (公民身份号码 → citizen-id check …); date types
    get the date check."""
    fmt = ItemFormat.NONE
    for candidate, pattern in _SEEDS:
        if pattern.search(item.name) or pattern.search(item.code.lower()):
            fmt = candidate
            break
    if fmt is ItemFormat.NONE and item.code_table == SEX_TABLE:
        fmt = ItemFormat.SEX
    elif fmt is ItemFormat.NONE and item.code_table:
        fmt = ItemFormat.CODE_TABLE
    elif fmt is ItemFormat.NONE and item.data_type == "D":
        fmt = ItemFormat.DATE
    elif fmt is ItemFormat.NONE and item.data_type == "T":
        fmt = ItemFormat.DATETIME
    return RuleSpec(
        item_code=item.code,
        required=item.is_key,
        data_type=item.data_type if item.data_type in TYPE_NAMES else "",
        max_length=item.length if item.data_type in TYPES_WITH_LENGTH else None,
        format=fmt,
        code_table=item.code_table if fmt is ItemFormat.CODE_TABLE else None,
        date_min=None,
        date_max=None,
    )


def rules_of(session: Session, resource: Resource) -> list[tuple[InformationItem, RuleSpec, bool]]:
    """Each item of the resource with its rule and whether the rule was edited (stored)
    or is still the seed. Reading stores nothing."""
    stored = {
        r.item_code: r
        for r in session.scalars(select(QualityRule).where(QualityRule.resource_id == resource.id))
    }
    out = []
    for item in resource.items:
        rule = stored.get(item.code)
        out.append((item, RuleSpec.of(rule) if rule else seed_rule(item), rule is not None))
    return out


def rule_specs(session: Session, resource: Resource) -> list[RuleSpec]:
    return [spec for _item, spec, _stored in rules_of(session, resource)]


def code_tables(session: Session, names: set[str]) -> dict[str, dict[str, str]]:
    """The active codes of the named code tables (the catalog's, admin-maintained);
    GB/T 2261.1 falls back to the standard's four codes when a hub has not seeded it."""
    found: dict[str, dict[str, str]] = {name: {} for name in names}
    if names:
        rows = session.execute(
            select(CodeEntry.table_name, CodeEntry.code, CodeEntry.label).where(
                CodeEntry.table_name.in_(names), CodeEntry.active.is_(True)
            )
        )
        for table, code, label in rows:
            found[table][code] = label
    if SEX_TABLE in found and not found[SEX_TABLE]:
        found[SEX_TABLE] = dict(SEX_CODES)
    return found


# -- who may see and change what -------------------------------------------------------------


def is_owner(principal: Principal, resource: Resource) -> bool:
    """The resource's provider department (提供部门), or the platform admin."""
    return principal.is_admin or principal.department_id == resource.provider_department_id


def visible_resource(session: Session, principal: Principal, resource_id: int) -> Resource:
    resource = session.get(Resource, resource_id)
    if resource is None:
        raise NoSharedStore(f"目录 {resource_id} 不存在 (resource not found)")
    if not is_owner(principal, resource):
        raise NotYourResource(
            "只有目录的提供部门和平台管理员可以查看其数据质量 (not your department's resource)"
        )
    return resource


def store_of(session: Session, resource_id: int) -> SharedStore | None:
    return session.scalar(select(SharedStore).where(SharedStore.resource_id == resource_id))


def update_rule(
    session: Session,
    principal: Principal,
    *,
    resource_id: int,
    item_code: str,
    spec: RuleSpec,
) -> QualityRule:
    """Store the rule of one item; only the provider department or the platform admin
    may, and the change is audited with the rule before and after."""
    resource = visible_resource(session, principal, resource_id)
    items = {it.code: it for it in resource.items}
    item = items.get(item_code)
    if item is None:
        raise InvalidRule(
            f"目录没有信息项 {item_code} (unknown item)",
            details=[{"field": "item_code", "message": f"目录没有信息项 {item_code}"}],
        )
    problems = check_rule(session, spec)
    if problems:
        raise InvalidRule("质量规则有误 (invalid rule)", details=problems)
    rule = session.scalar(
        select(QualityRule).where(
            QualityRule.resource_id == resource.id, QualityRule.item_code == item_code
        )
    )
    before = (RuleSpec.of(rule) if rule else seed_rule(item)).as_dict()
    if rule is None:
        rule = QualityRule(resource_id=resource.id, item_code=item_code)
        session.add(rule)
    rule.required = spec.required
    rule.data_type = spec.data_type
    rule.max_length = spec.max_length
    rule.format = spec.format
    rule.code_table = spec.code_table if spec.format is ItemFormat.CODE_TABLE else None
    rule.date_min = spec.date_min
    rule.date_max = spec.date_max
    rule.updated_by = principal.name
    rule.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        principal.actor,
        "quality.rule.update",
        object_type="quality_rule",
        object_id=f"{resource.id}:{item_code}",
        before=before,
        after=RuleSpec.of(rule).as_dict(),
    )
    return rule


def check_rule(session: Session, spec: RuleSpec) -> list[dict[str, str]]:
    """Every problem of a rule, each naming its field."""
    problems: list[dict[str, str]] = []
    if spec.data_type and spec.data_type not in TYPE_NAMES:
        problems.append(
            {"field": "data_type", "message": f"数据类型须为 {'、'.join(TYPE_NAMES)} 之一"}
        )
    if spec.max_length is not None and spec.data_type not in TYPES_WITH_LENGTH:
        problems.append({"field": "max_length", "message": "只有字符型和数值型可以声明长度"})
    if spec.format is ItemFormat.CODE_TABLE:
        if not spec.code_table:
            problems.append({"field": "code_table", "message": "请选择代码表"})
        elif not session.scalar(
            select(func.count())
            .select_from(CodeEntry)
            .where(CodeEntry.table_name == spec.code_table)
        ):
            problems.append({"field": "code_table", "message": f"没有代码表 {spec.code_table}"})
    if (spec.date_min or spec.date_max) and spec.format not in (
        ItemFormat.DATE,
        ItemFormat.DATETIME,
    ):
        problems.append({"field": "date_min", "message": "只有日期规则可以限定日期范围"})
    if spec.date_min and spec.date_max and spec.date_min > spec.date_max:
        problems.append({"field": "date_max", "message": "最晚日期不能早于最早日期"})
    return problems


# -- scans and failing values ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceQuality:
    """One line of the quality overview: a resource with a shared store, its latest scan."""

    resource: Resource
    store: SharedStore
    latest: QualityScan | None


def list_quality(session: Session, principal: Principal) -> list[ResourceQuality]:
    """Resources with a shared store the caller may see, each with its latest scan."""
    q = select(SharedStore).join(Resource, Resource.id == SharedStore.resource_id)
    if not principal.is_admin:
        q = q.where(Resource.provider_department_id == principal.department_id)
    stores = list(session.scalars(q.order_by(Resource.name, SharedStore.id)))
    if not stores:
        return []
    newest = (
        select(QualityScan.store_id, func.max(QualityScan.id).label("id"))
        .where(QualityScan.store_id.in_([s.id for s in stores]))
        .group_by(QualityScan.store_id)
        .subquery()
    )
    latest = {
        scan.store_id: scan
        for scan in session.scalars(select(QualityScan).join(newest, newest.c.id == QualityScan.id))
    }
    return [ResourceQuality(s.resource, s, latest.get(s.id)) for s in stores]


def daily_scores(
    session: Session, principal: Principal, *, since: datetime
) -> list[tuple[date, float]]:
    """The department's (the platform admin: every department's) mean overall score per
    day in China since ``since``: the trend of the quality overview (按部门趋势)."""
    q = select(QualityScan.started_at, QualityScan.overall_score).where(
        QualityScan.started_at >= since, QualityScan.overall_score.isnot(None)
    )
    if not principal.is_admin:
        q = q.where(QualityScan.department_id == principal.department_id)
    days: dict[date, list[float]] = {}
    # One row per scan: a few a day per store, so the days stay small even for a year.
    for started, score in session.execute(q.order_by(QualityScan.started_at)):
        if score is not None:
            days.setdefault(china_date(started), []).append(score)
    return [(day, round(sum(v) / len(v), 2)) for day, v in sorted(days.items())]


def list_scans(
    session: Session,
    principal: Principal,
    resource_id: int,
    *,
    before_id: int | None = None,
    limit: int = 50,
) -> list[QualityScan]:
    """A resource's scans, newest first (keyset paging on the id)."""
    visible_resource(session, principal, resource_id)
    q = select(QualityScan).where(QualityScan.resource_id == resource_id)
    if before_id is not None:
        q = q.where(QualityScan.id < before_id)
    return list(session.scalars(q.order_by(QualityScan.id.desc()).limit(limit)))


def get_scan(session: Session, principal: Principal, scan_id: int) -> QualityScan:
    scan = session.get(QualityScan, scan_id)
    if scan is None:
        raise ScanNotFound(f"质量检测 {scan_id} 不存在 (scan not found)")
    resource = session.get(Resource, scan.resource_id)
    # Visibility follows the provider at scan time and now: a resource handed to another
    # department takes its history along.
    if not principal.is_admin and principal.department_id not in (
        scan.department_id,
        resource.provider_department_id if resource else None,
    ):
        raise ScanNotFound(f"质量检测 {scan_id} 不存在 (scan not found)")
    return scan


def viewer_masking(
    principal: Principal, resource: Resource, specs: Sequence[RuleSpec]
) -> dict[str, MaskingRule]:
    """How each item's values are shown to this viewer (see the module's docstring)."""
    if principal.department_id == resource.provider_department_id:
        return {}
    formats = {s.item_code: s.format for s in specs}
    out: dict[str, MaskingRule] = {}
    for item in resource.items:
        rule = item_masking(item, formats.get(item.code))
        if rule is not None:
            out[item.code] = rule
    return out


def item_masking(item: InformationItem, fmt: ItemFormat | None) -> MaskingRule | None:
    """How an item's values are shown to a viewer outside the provider department
    (None: as they are)."""
    if fmt is ItemFormat.CITIZEN_ID:
        return MaskingRule.ID_NUMBER
    if fmt is ItemFormat.PHONE:
        return MaskingRule.PHONE
    if item.sensitive:
        return suggested_rule(item.name, item.open_masking)
    if "姓名" in item.name:
        return MaskingRule.NAME
    if re.search(r"地址|住址|住所", item.name):
        return MaskingRule.ADDRESS
    return None


def sealed_masking(
    resource: Resource, specs: Sequence[RuleSpec], sealed: Iterable[str]
) -> dict[str, MaskingRule]:
    """How the failing values of a store's sealed items (字段加密) are kept: masked as a
    viewer outside the provider department sees them, so the hub database holds no
    more of them than the console shows; an item that no longer names a rule is kept
    the way a sensitive item is (完全遮蔽 unless its name suggests better)."""
    formats = {s.item_code: s.format for s in specs}
    items = {it.code: it for it in resource.items}
    out: dict[str, MaskingRule] = {}
    for code in sealed:
        item = items.get(code)
        if item is None:
            out[code] = MaskingRule.HIDE
            continue
        out[code] = item_masking(item, formats.get(code)) or suggested_rule(
            item.name, item.open_masking
        )
    return out


def hidden_message(message: str, forms: Iterable[str], shown: str) -> str:
    """A failing value's message with the value, in each of the ``forms`` the
    validators may word it (as read, stripped, normalised, as an ISO date), replaced by
    ``shown``: whole words first, like :func:`_message_masked`; then, so no form of a
    sealed value is kept however it was embedded, any form of four characters or more
    wherever it still stands (shorter ones are codes listed in the message too:
    ``GB/T 2261.1``)."""
    distinct = sorted({f for f in forms if f and f != shown}, key=len, reverse=True)
    for form in distinct:
        message = _message_masked(message, form, shown)
    for form in distinct:
        if len(form) >= 4 and form in message:
            message = message.replace(form, shown)
    return message


@dataclass(frozen=True, slots=True)
class ShownProblem:
    """A failing value as this viewer may see it."""

    id: int
    dimension: Dimension
    row_key: str
    item_code: str
    item_name: str
    value: str | None
    rule: str
    message: str

    @property
    def dimension_label(self) -> str:
        return DIMENSION_LABELS[self.dimension]


def problem_masker(
    session: Session, principal: Principal, scan: QualityScan
) -> Callable[[QualityProblem], ShownProblem]:
    resource = session.get(Resource, scan.resource_id)
    assert resource is not None  # a scan's resource is never deleted (foreign key)
    masking = viewer_masking(principal, resource, rule_specs(session, resource))
    store = session.get(SharedStore, scan.store_id)
    key_rule = masking.get(store.key_item) if store else None
    names = {it.code: it.name for it in resource.items}

    def shown(p: QualityProblem) -> ShownProblem:
        rule = masking.get(p.item_code)
        value = mask(rule, p.value) if rule else p.value
        return ShownProblem(
            id=p.id,
            dimension=Dimension(p.dimension),
            row_key=str(mask(key_rule, p.row_key)) if key_rule else p.row_key,
            item_code=p.item_code,
            item_name=names.get(p.item_code, p.item_code),
            value=value,
            rule=p.rule,
            message=_message_masked(p.message, p.value, value) if rule else p.message,
        )

    return shown


def _message_masked(message: str, value: str | None, shown: str | None) -> str:
    """The message as the viewer may read it: the validators name the failing value
    (``手机号码 13812345678 应为…``), so where the value is masked, so is the message. Only
    whole words are replaced: a value ``1`` leaves ``GB/T 2261.1`` alone."""
    if not value or shown is None or value == shown:
        return message
    return re.sub(rf"(?<!\S){re.escape(value)}(?!\S)", lambda _m: shown, message)


def list_problems(
    session: Session,
    principal: Principal,
    scan: QualityScan,
    *,
    after_id: int | None = None,
    limit: int = 100,
    dimension: Dimension | None = None,
) -> list[ShownProblem]:
    """A page of a scan's failing values in the order found, masked for the viewer."""
    q = select(QualityProblem).where(QualityProblem.scan_id == scan.id)
    if after_id is not None:
        q = q.where(QualityProblem.id > after_id)
    if dimension is not None:
        q = q.where(QualityProblem.dimension == dimension)
    shown = problem_masker(session, principal, scan)
    return [shown(p) for p in session.scalars(q.order_by(QualityProblem.id).limit(limit))]


def iter_problems(
    session: Session, principal: Principal, scan: QualityScan, *, chunk: int = 5000
) -> Iterator[ShownProblem]:
    """Every kept failing value of a scan, masked, read in chunks."""
    after: int | None = None
    while True:
        page = list_problems(session, principal, scan, after_id=after, limit=chunk)
        yield from page
        if len(page) < chunk:
            return
        after = page[-1].id


XLSX_HEADER = ["记录键", "信息项", "信息项代码", "值", "质量维度", "规则", "问题说明"]


def problems_xlsx(session: Session, principal: Principal, scan: QualityScan) -> bytes:
    """问题数据 as a workbook for the provider to correct at the source: one row per
    failing value, masked for the viewer, every cell safe from formula injection."""
    from openpyxl import Workbook

    from govshare.rules.spreadsheet import xlsx_row

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("问题数据")
    ws.append(xlsx_row(ws, XLSX_HEADER))
    for p in iter_problems(session, principal, scan):
        ws.append(
            xlsx_row(
                ws,
                [
                    p.row_key,
                    p.item_name,
                    p.item_code,
                    p.value,
                    p.dimension_label,
                    p.rule,
                    p.message,
                ],
            )
        )
    if scan.problems_dropped:
        ws.append(
            xlsx_row(
                ws,
                [
                    f"另有 {scan.problems_dropped} 条问题超出保留上限，未列出",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ],
            )
        )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
