"""Spreadsheet import and export of catalog entries (XLSX and CSV).

One row per information item; the rows of one entry share its 资源序号 and the entry's
columns are read from its first row. An import checks every row and stores all
entries or none, reporting each bad row with its number, column and reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from govshare.catalog import search, service
from govshare.catalog.codes import CodeTableName, SharingType
from govshare.catalog.errors import ImportRejected, InvalidResource
from govshare.catalog.models import Resource
from govshare.catalog.schemas import MAX_LENGTH, MIN_LENGTH, ItemIn, ResourceIn
from govshare.rules import spreadsheet as cells
from govshare.rules.masking import MaskingRule
from govshare.security import audit
from govshare.security.service import Principal


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    field: str
    level: str  # "resource" | "item"
    required: bool = False
    hint: str = ""


COLUMNS: list[Column] = [
    Column("资源序号", "key", "resource", True, "同一资源的多行信息项填写相同序号"),
    Column("信息资源名称", "name", "resource", True),
    Column("信息资源分类", "classification_code", "resource", True, "分类代码, 如 101001"),
    Column("信息资源摘要", "abstract", "resource", True),
    Column(
        "信息资源格式",
        "format",
        "resource",
        True,
        "电子文件/电子表格/数据库/图形图像/流媒体/自描述格式/服务接口",
    ),
    Column("格式说明", "format_detail", "resource"),
    Column("共享类型", "sharing_type", "resource", True, "无条件共享/有条件共享/不予共享 或 1/2/3"),
    Column("共享条件", "sharing_conditions", "resource"),
    Column("不予共享依据", "not_shared_basis", "resource"),
    Column("共享方式", "sharing_modes", "resource", False, "多个用“、”分隔, 如 库表交换、接口调用"),
    Column("是否向社会开放", "is_open", "resource", False, "是/否"),
    Column("开放条件", "open_conditions", "resource"),
    Column(
        "更新周期",
        "update_cycle",
        "resource",
        True,
        "实时/每日/每周/每月/每季度/每半年/每年/不定期",
    ),
    Column("关联资源代码", "related_codes", "resource", False, "多个用“、”分隔"),
    Column("涉密属性", "secrecy", "resource", False, "非涉密/涉密"),
    Column("信息项名称", "item_name", "item", True),
    Column("信息项代码", "item_code", "item", True, "英文字段名"),
    Column("数据类型", "data_type", "item", True, "C/N/Y/D/T/L/M/G/B/I/F 或 字符型C 等"),
    Column("数据长度", "length", "item"),
    Column("信息项描述", "description", "item"),
    Column("代码表", "code_table", "item"),
    Column("是否主键", "is_key", "item", False, "是/否"),
    Column(
        "敏感信息项",
        "sensitive",
        "item",
        False,
        "是/否：是则该信息项属个人信息等敏感信息，不随开放数据发布，批准共享时默认脱敏",
    ),
    Column("不予开放", "open_withheld", "item", False, "是/否：是则该信息项不随开放数据发布"),
    Column(
        "开放脱敏",
        "open_masking",
        "item",
        False,
        "不脱敏/证件号码/电话号码/姓名/地址/完全遮蔽：开放数据中该信息项的值如何显示",
    ),
]
HEADERS = [c.header for c in COLUMNS]
BY_FIELD = {c.field: c for c in COLUMNS}
RESOURCE_FIELDS = [c.field for c in COLUMNS if c.level == "resource" and c.field != "key"]
MAX_ROWS = 200_000
SEPARATORS = ("、", ",", "，", ";", "；")
# C0 controls other than tab, LF and CR, and DEL: PostgreSQL refuses NUL in text.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Row = dict[str, str]


def _split(value: str) -> list[str]:
    for sep in SEPARATORS[1:]:
        value = value.replace(sep, SEPARATORS[0])
    return [v.strip() for v in value.split(SEPARATORS[0]) if v.strip()]


def _yes_no(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("是", "y", "yes", "true", "1"):
        return True
    if v in ("", "否", "n", "no", "false", "0"):
        return False
    return None


def _masking(value: str) -> MaskingRule | None:
    """开放脱敏 by its Chinese label or its code; empty is 不脱敏, anything else None."""
    v = value.strip()
    if not v:
        return MaskingRule.NONE
    for rule in MaskingRule:
        if v in (rule.label, rule.value):
            return rule
    return None


def _length(text: str) -> int | None:
    """数据长度 as an int, or None when empty or not a whole number in range.

    ``str.isdigit`` also holds for "²" and "①", which ``int`` refuses; ``isdecimal``
    holds only for digits ``int`` reads (including full-width ones, "１８")."""
    if not text.isdecimal() or len(text) > 9:
        return None
    value = int(text)
    return value if MIN_LENGTH <= value <= MAX_LENGTH else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    # An exported cell that began with a formula character carries a quote; take it off.
    return cells.restore_text(str(value).strip())


def _csv_rows(reader: Any) -> Iterator[list[str]]:
    """The reader's rows; a row the csv module cannot parse (a field over its 128 KiB
    limit …) rejects the file with its line number."""
    try:
        yield from reader
    except csv.Error as exc:
        raise ImportRejected(f"CSV 文件第 {reader.line_num} 行无法解析: {exc}") from None


def read_rows(filename: str, content: bytes) -> Iterator[tuple[int, Row]]:
    """Rows as {field: text} with their spreadsheet row numbers (header is row 1)."""
    lower = filename.lower()
    if lower.endswith(".xlsx"):
        try:
            from openpyxl import load_workbook  # half a second: not at every hub start

            wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise ImportRejected(f"无法读取 XLSX 文件: {exc}") from None
        ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = [_cell(v) for v in next(rows, ())]
        body: Iterable[Iterable[Any]] = rows
    elif lower.endswith(".csv"):
        try:
            text_ = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text_ = content.decode("gb18030")
            except UnicodeDecodeError:
                raise ImportRejected("CSV 文件编码应为 UTF-8 或 GB18030") from None
        reader = _csv_rows(csv.reader(io.StringIO(text_)))
        header = [h.strip() for h in next(reader, [])]
        body = reader
    else:
        raise ImportRejected("只支持 .xlsx 或 .csv 文件")
    missing = [c.header for c in COLUMNS if c.required and c.header not in header]
    if missing:
        raise ImportRejected(
            "表头缺少必填列: " + "、".join(missing),
            details=[{"row": 1, "column": m, "message": "缺少该列"} for m in missing],
        )
    index = {h: i for i, h in enumerate(header) if h in HEADERS}
    fields = {h: c.field for h, c in zip(HEADERS, COLUMNS, strict=True)}
    for number, raw in enumerate(body, start=2):
        values = [_cell(v) for v in raw]
        if not any(values):
            continue
        if number - 1 > MAX_ROWS:
            raise ImportRejected(f"单次导入不超过 {MAX_ROWS} 行")
        yield number, {fields[h]: (values[i] if i < len(values) else "") for h, i in index.items()}


@dataclass
class _Group:
    key: str
    first_row: int
    resource: Row
    items: list[tuple[int, Row]]


def _problem(row: int, field: str, message: str) -> dict[str, Any]:
    col = BY_FIELD.get(field)
    return {"row": row, "column": col.header if col else field, "message": message}


_ITEM_FIELD_TO_COLUMN = {"name": "item_name", "code": "item_code"}


def _item_payload(
    number: int, it: Row, codes: service.CodeTables, problems: list[dict[str, Any]]
) -> dict[str, Any]:
    """The item columns of row ``number`` as ItemIn's input; unreadable cells reported."""
    length_text = it.get("length", "")
    length = _length(length_text)
    if length_text and length is None:
        problems.append(
            _problem(
                number,
                "length",
                f"数据长度“{length_text}”应为 {MIN_LENGTH} 至 {MAX_LENGTH} 之间的整数",
            )
        )
    data_type = codes.resolve(CodeTableName.DATA_TYPE, it.get("data_type", "")) or it.get(
        "data_type", ""
    )
    is_key = _yes_no(it.get("is_key", ""))
    if is_key is None:
        problems.append(_problem(number, "is_key", "是否主键应填“是”或“否”"))
    sensitive = _yes_no(it.get("sensitive", ""))
    if sensitive is None:
        problems.append(_problem(number, "sensitive", "敏感信息项应填“是”或“否”"))
    withheld = _yes_no(it.get("open_withheld", ""))
    if withheld is None:
        problems.append(_problem(number, "open_withheld", "不予开放应填“是”或“否”"))
    masking = _masking(it.get("open_masking", ""))
    if masking is None:
        labels = "、".join(r.label for r in MaskingRule)
        problems.append(_problem(number, "open_masking", f"开放脱敏应填 {labels} 之一，或留空"))
    return {
        "name": it.get("item_name", ""),
        "code": it.get("item_code", ""),
        "data_type": data_type,
        "length": length,
        "description": it.get("description", ""),
        "code_table": it.get("code_table") or None,
        "is_key": bool(is_key),
        "sensitive": bool(sensitive),
        "open_withheld": bool(withheld),
        "open_masking": str(masking or MaskingRule.NONE),
    }


def _keyless_row_problems(
    number: int, row: Row, codes: service.CodeTables
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A row without 资源序号 belongs to no entry, but its item cells can still be
    checked, so that fixing the key does not reveal another round of errors."""
    cell_problems: list[dict[str, Any]] = []
    payload = _item_payload(number, row, codes, cell_problems)
    schema_problems = []
    try:
        ItemIn.model_validate(payload)
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "item_name"
            schema_problems.append(
                _problem(number, _ITEM_FIELD_TO_COLUMN.get(field, field), err["msg"])
            )
    return cell_problems, schema_problems


class _Report:
    """The problems of one file, at most one reason per cell from each stage of checks.

    The stages run in order — the cells as read, the schema, the catalog's rules — and a
    later stage says nothing about a cell an earlier one has already explained (an
    unreadable 数据长度 is not also "missing"), so every error appears once.
    """

    def __init__(self) -> None:
        self.problems: list[dict[str, Any]] = []
        self._earlier: set[tuple[int, str]] = set()
        self._stage: set[tuple[int, str, str]] = set()

    def add(self, problem: dict[str, Any]) -> None:
        cell = (problem["row"], problem["column"])
        if cell in self._earlier or (*cell, problem["message"]) in self._stage:
            return
        self._stage.add((*cell, problem["message"]))
        self.problems.append(problem)

    def extend(self, problems: Iterable[dict[str, Any]]) -> None:
        for p in problems:
            self.add(p)

    def next_stage(self) -> None:
        self._earlier |= {(row, column) for row, column, _ in self._stage}
        self._stage = set()


def _to_resource_in(
    group: _Group, codes: service.CodeTables, provider_department_id: int | None
) -> tuple[ResourceIn, bool, list[dict[str, Any]], list[dict[str, Any]]]:
    """The group as an entry, whether the schema accepted it (if not, the entry is
    a draft built without validation, for the catalog's rules to check as far as its
    values allow), the problems of its cells and the schema's problems."""
    problems: list[dict[str, Any]] = []
    r, row = group.resource, group.first_row

    def code_of(table: str, field: str, label: str) -> str:
        value = r.get(field, "")
        if not value:
            return ""
        found = codes.resolve(table, value)
        if found is None:
            problems.append(_problem(row, field, f"{label}“{value}”不在代码表中"))
            return value
        return found

    sharing = r.get("sharing_type", "")
    sharing_type = {"无条件共享": "1", "有条件共享": "2", "不予共享": "3"}.get(sharing, sharing)
    if sharing_type not in ("1", "2", "3"):
        problems.append(
            _problem(row, "sharing_type", f"共享类型“{sharing}”应为 无条件共享/有条件共享/不予共享")
        )
        sharing_type = "1"
    modes = []
    for mode in _split(r.get("sharing_modes", "")):
        found = codes.resolve(CodeTableName.SHARING_MODE, mode)
        if found is None:
            problems.append(_problem(row, "sharing_modes", f"共享方式“{mode}”不在代码表中"))
        else:
            modes.append(found)
    is_open = _yes_no(r.get("is_open", ""))
    if is_open is None:
        problems.append(_problem(row, "is_open", "是否向社会开放应填“是”或“否”"))
    items = [_item_payload(item_row, it, codes, problems) for item_row, it in group.items]
    payload: dict[str, Any] = {
        "classification_code": r.get("classification_code", ""),
        "name": r.get("name", ""),
        "abstract": r.get("abstract", ""),
        "format": code_of(CodeTableName.FORMAT, "format", "信息资源格式"),
        "format_detail": r.get("format_detail", ""),
        "sharing_type": SharingType(sharing_type),
        "sharing_conditions": r.get("sharing_conditions", ""),
        "not_shared_basis": r.get("not_shared_basis", ""),
        "sharing_modes": modes,
        "is_open": bool(is_open),
        "open_conditions": r.get("open_conditions", ""),
        "update_cycle": code_of(CodeTableName.UPDATE_CYCLE, "update_cycle", "更新周期"),
        "related_codes": _split(r.get("related_codes", "")),
        "secrecy": code_of(CodeTableName.SECRECY, "secrecy", "涉密属性") or "public",
        "provider_department_id": provider_department_id,
        "items": items,
    }
    try:
        return ResourceIn.model_validate(payload), True, problems, []
    except ValidationError as exc:
        schema_problems = []
        for err in exc.errors():
            loc = err["loc"]
            if loc and loc[0] == "items" and len(loc) >= 3 and isinstance(loc[1], int):
                item_row = group.items[loc[1]][0]
                field = _ITEM_FIELD_TO_COLUMN.get(str(loc[2]), str(loc[2]))
                schema_problems.append(_problem(item_row, field, err["msg"]))
            else:
                schema_problems.append(_problem(row, str(loc[0]) if loc else "", err["msg"]))
    draft = ResourceIn.model_construct(**payload)
    draft.items = [ItemIn.model_construct(**it) for it in items]
    return draft, False, problems, schema_problems


def _map_service_problem(group: _Group, problem: dict[str, Any]) -> dict[str, Any]:
    field: str = problem["field"]
    if field.startswith("items["):
        idx = int(field[6 : field.index("]")])
        sub = field.split(".", 1)[1] if "." in field else "item_name"
        return _problem(
            group.items[idx][0], _ITEM_FIELD_TO_COLUMN.get(sub, sub), problem["message"]
        )
    return _problem(group.first_row, field.split("[")[0], problem["message"])


def _duplicate_names(
    session: Session, department_id: int | None, groups: list[_Group]
) -> Iterator[dict[str, Any]]:
    """A problem on the name of each entry named like an earlier one of the file or
    like an entry the department already has."""
    existing = (
        service.entries_by_name(session, department_id=department_id)
        if department_id is not None
        else {}
    )
    first_of: dict[str, _Group] = {}
    for group in groups:
        name = group.resource.get("name", "")
        if not name:
            continue
        key = service.name_key(name)
        message = ""
        if key in existing:
            message = service.duplicate_name_message(existing[key], then="重新导入")
        elif key in first_of:
            earlier = first_of[key]
            message = (
                f"与第{earlier.first_row}行的“{earlier.resource.get('name', '')}”重名；"
                "确属不同资源请勾选“确认重名”后重新导入"
            )
        first_of.setdefault(key, group)
        if message:
            yield {**_problem(group.first_row, "name", message), "code": service.DUPLICATE_NAME}


@dataclass(frozen=True, slots=True)
class CheckedImport:
    """A file that passed every check: its entries ready to store, in file order."""

    filename: str
    entries: list[ResourceIn]
    rows: int


def check_import(
    session: Session,
    principal: Principal,
    filename: str,
    content: bytes,
    *,
    provider_department_id: int | None = None,
    confirm_duplicates: bool = False,
) -> CheckedImport:
    """Validate every row of a file, reading only (no write lock is taken); raises
    ``ImportRejected`` with every problem of the file at once.

    Entries named like another entry of the file, or like an entry the department
    already has, are reported and refuse the file unless ``confirm_duplicates``."""
    groups: dict[str, _Group] = {}
    keyless: list[tuple[int, Row]] = []
    report = _Report()
    problems = report.problems
    for number, row in read_rows(filename, content):
        for field, value in row.items():
            if CONTROL_CHARACTERS.search(value):
                report.add(_problem(number, field, "含有不可见的控制字符 (如 NUL)，请删除"))
                # Taken out so that later checks (and the database) never see them.
                row[field] = CONTROL_CHARACTERS.sub("", value)
        key = row.get("key", "")
        if not key:
            report.add(_problem(number, "key", "资源序号不能为空"))
            keyless.append((number, row))
            continue
        group = groups.get(key)
        if group is None:
            groups[key] = _Group(key, number, row, [(number, row)])
            for field in (
                "name",
                "classification_code",
                "abstract",
                "format",
                "sharing_type",
                "update_cycle",
            ):
                if not row.get(field):
                    report.add(_problem(number, field, f"{BY_FIELD[field].header}不能为空"))
            continue
        for field in RESOURCE_FIELDS:
            if row.get(field) and row[field] != group.resource.get(field):
                report.add(
                    _problem(
                        number, field, f"与资源序号 {key} 第一行(第{group.first_row}行)的值不一致"
                    )
                )
        group.items.append((number, row))
    if not groups and not problems:
        raise ImportRejected("文件中没有数据行")

    codes = service.CodeTables(session)
    prepared: list[ResourceIn] = []
    checked: list[tuple[_Group, ResourceIn, list[dict[str, Any]]]] = []
    keyless_schema_problems: list[dict[str, Any]] = []
    for number, row in keyless:
        cell_problems, schema_problems = _keyless_row_problems(number, row, codes)
        report.extend(cell_problems)
        keyless_schema_problems += schema_problems
    for group in groups.values():
        data, valid, cell_problems, schema_problems = _to_resource_in(
            group, codes, provider_department_id
        )
        report.extend(cell_problems)
        checked.append((group, data, schema_problems))
        if valid:
            prepared.append(data)
    report.next_stage()
    report.extend(keyless_schema_problems)
    for _, _, schema_problems in checked:
        report.extend(schema_problems)
    report.next_stage()
    for group, data, _ in checked:
        found, _node = service.validate_resource(session, data, codes)
        report.extend(_map_service_problem(group, p) for p in found)
    if not confirm_duplicates:
        department_id = provider_department_id or principal.department_id
        report.extend(_duplicate_names(session, department_id, list(groups.values())))
    if problems:
        problems.sort(
            key=lambda p: (p["row"], HEADERS.index(p["column"]) if p["column"] in HEADERS else 99)
        )
        raise ImportRejected(f"导入失败: {len(problems)} 处错误，未导入任何数据", details=problems)

    return CheckedImport(filename, prepared, sum(len(g.items) for g in groups.values()))


def store_entries(
    session: Session,
    principal: Principal,
    entries: Sequence[ResourceIn],
    *,
    progress: Callable[[int], None] | None = None,
) -> list[Resource]:
    """Store checked entries as drafts (in the caller's transaction) and index them."""
    codes = service.CodeTables(session)
    created: list[Resource] = []
    entries_audit: list[audit.Pending] = []
    try:
        for i, data in enumerate(entries, start=1):
            created.append(
                # Duplicate names were checked with the file, its own included.
                service.add_resource(
                    session,
                    principal,
                    data,
                    codes=codes,
                    index=False,
                    confirm_duplicates=True,
                    audit_to=entries_audit,
                )
            )
            if progress and i % 100 == 0:
                progress(i)
    except InvalidResource as exc:  # a rule that depends on rows imported just before
        raise ImportRejected(exc.message, details=exc.details) from None
    audit.record_many(session, entries_audit)
    search.index_many(session, created)
    return created


def record_import(
    session: Session, principal: Principal, checked: CheckedImport, entries: int
) -> None:
    audit.record(
        session,
        principal.actor,
        "catalog.import",
        object_type="resource",
        object_id=checked.filename[:80],
        after={"entries": entries, "rows": checked.rows},
    )


def import_resources(
    session: Session,
    principal: Principal,
    filename: str,
    content: bytes,
    *,
    provider_department_id: int | None = None,
    progress: Callable[[int], None] | None = None,
    confirm_duplicates: bool = False,
) -> list[Resource]:
    """Check every row, then store every entry as a draft in the caller's transaction —
    or nothing at all (the CLI; the hub imports as a job, ``catalog.imports``)."""
    checked = check_import(
        session,
        principal,
        filename,
        content,
        provider_department_id=provider_department_id,
        confirm_duplicates=confirm_duplicates,
    )
    created = store_entries(session, principal, checked.entries, progress=progress)
    record_import(session, principal, checked, len(created))
    return created


def _row_values(resource: Resource, codes: service.CodeTables, key: int) -> Iterator[list[Any]]:
    base = {
        "key": key,
        "name": resource.name,
        "classification_code": resource.classification.code,
        "abstract": resource.abstract,
        "format": codes.label(CodeTableName.FORMAT, resource.format),
        "format_detail": resource.format_detail,
        "sharing_type": resource.sharing_type.label,
        "sharing_conditions": resource.sharing_conditions,
        "not_shared_basis": resource.not_shared_basis,
        "sharing_modes": "、".join(
            codes.label(CodeTableName.SHARING_MODE, m) for m in resource.sharing_modes
        ),
        "is_open": "是" if resource.is_open else "否",
        "open_conditions": resource.open_conditions,
        "update_cycle": codes.label(CodeTableName.UPDATE_CYCLE, resource.update_cycle),
        "related_codes": "、".join(resource.related_codes),
        "secrecy": codes.label(CodeTableName.SECRECY, resource.secrecy),
    }
    for item in resource.items:
        values = {
            **base,
            "item_name": item.name,
            "item_code": item.code,
            "data_type": item.data_type,
            "length": item.length if item.length is not None else "",
            "description": item.description,
            "code_table": item.code_table or "",
            "is_key": "是" if item.is_key else "否",
            "sensitive": "是" if item.sensitive else "否",
            "open_withheld": "是" if item.open_withheld else "否",
            "open_masking": MaskingRule(item.open_masking).label,
        }
        yield [values[c.field] for c in COLUMNS]


def _all_rows(resources: Iterable[Resource], codes: service.CodeTables) -> Iterator[list[Any]]:
    for key, resource in enumerate(resources, start=1):
        yield from _row_values(resource, codes, key)


def export_csv(resources: Iterable[Resource], codes: service.CodeTables) -> bytes:
    return cells.csv_bytes(HEADERS, _all_rows(resources, codes))


def export_xlsx(
    resources: Iterable[Resource], codes: service.CodeTables, *, with_hints: bool = False
) -> bytes:
    return _workbook(_all_rows(resources, codes), with_hints=with_hints)


def prefilled_xlsx(rows: Iterable[dict[str, Any]]) -> bytes:
    """A workbook in the import layout, with its 填写说明, holding ``rows`` (one per
    information item, field → value; a field left out stays empty for the person who
    fills it in and imports the file)."""
    return _workbook(([row.get(c.field, "") for c in COLUMNS] for row in rows), with_hints=True)


def _workbook(rows: Iterable[list[Any]], *, with_hints: bool) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=not with_hints)
    ws = wb.active if with_hints else wb.create_sheet("目录")
    assert ws is not None
    ws.title = "目录"
    ws.append(HEADERS)
    if with_hints:
        bold = Font(bold=True)
        required = PatternFill("solid", fgColor="FDE9D9")
        for i, col in enumerate(COLUMNS, start=1):
            cell = ws.cell(row=1, column=i)
            cell.font = bold
            if col.required:
                cell.fill = required
            ws.column_dimensions[get_column_letter(i)].width = max(12, len(col.header) * 2 + 2)
        notes = wb.create_sheet("填写说明")
        notes.append(["列名", "是否必填", "说明"])
        for col in COLUMNS:
            notes.append([col.header, "必填" if col.required else "选填", col.hint])
    for values in rows:
        ws.append(cells.xlsx_row(ws, values))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


TEMPLATE_EXAMPLE: list[list[str]] = [
    [
        "1",
        "企业登记基本信息",
        "102001",
        "市场主体登记的基本信息",
        "数据库",
        "MySQL 表",
        "有条件共享",
        "用于本部门法定职责范围内的业务办理",
        "",
        "库表交换、接口调用",
        "否",
        "",
        "每日",
        "",
        "非涉密",
        "统一社会信用代码",
        "uscc",
        "C",
        "18",
        "市场主体统一社会信用代码",
        "",
        "是",
    ],
    [
        "1",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "企业名称",
        "name",
        "C",
        "200",
        "",
        "",
        "否",
    ],
]


def template_csv() -> bytes:
    return cells.csv_bytes(HEADERS, TEMPLATE_EXAMPLE)


def template_xlsx() -> bytes:
    from openpyxl import load_workbook

    data = export_xlsx([], service.CodeTables.__new__(service.CodeTables), with_hints=True)
    wb = load_workbook(io.BytesIO(data))
    ws = wb["目录"]
    for row in TEMPLATE_EXAMPLE:
        ws.append(cells.xlsx_row(ws, row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
