"""The auditor's search across the live audit table and the archives (审计检索), its
export as XLSX, and the detached signature that lets anyone check an export.

A hit says who, when, from where, which action on which object and under which grant,
and for a data-service call its time, nonce and counts — never the data itself: the
log holds query keys only as keyed hashes, and a change is shown by the names of the
fields it changed, not their values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from govshare.security import audit
from govshare.security.anchor import SIGNATURE_ALG, AuditKey
from govshare.security.archive import file_digest, iter_all
from govshare.security.crypto import sign, verify_signature

REFUSALS = frozenset(
    {
        "data.denied",
        "data.replay_refused",
        "auth.login_failed",
        "auth.login_locked",
        "auth.address_throttled",
        "open.developer_login_failed",
        "exchange.package.reject",
    }
)
"""Actions that record a refusal: a data-service call, a sign-in or a package turned away."""

CATALOG_PREFIX = "catalog."


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What the auditor looks for; every given condition must hold."""

    key_hash: str | None = None  # the data-service calls that asked for this key
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    refusals: bool = False  # only refusals (``REFUSALS``)
    catalog: bool = False  # only changes to the catalog

    def __post_init__(self) -> None:
        if self.key_hash is not None and not audit.KEY_HASH.fullmatch(self.key_hash):
            raise ValueError(f"键哈希应为16位十六进制字符: {self.key_hash!r}")

    def describe(self) -> dict[str, str]:
        given = {
            "键哈希": self.key_hash,
            "操作人": self.actor,
            "动作": self.action,
            "对象类型": self.object_type,
            "对象标识": self.object_id,
            "起始": self.since.isoformat() if self.since else None,
            "截止(不含)": self.until.isoformat() if self.until else None,
            "仅拒绝": "是" if self.refusals else None,
            "仅目录变更": "是" if self.catalog else None,
        }
        return {k: v for k, v in given.items() if v}


@dataclass(frozen=True, slots=True)
class Hit:
    """One finding: an audit entry, or one data-service call inside a batch entry."""

    seq: int
    at: datetime
    actor: str
    actor_kind: str
    department_id: int | None
    action: str
    object_type: str
    object_id: str | None
    grant_id: str | None
    remote_addr: str | None
    request_id: str | None
    call_at: str | None = None
    nonce: str | None = None
    keys: int | None = None
    rows: int | None = None
    reason: str | None = None
    changed: tuple[str, ...] = ()
    kept_in: str = ""  # the archive's name, or "" for the live table


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _changed(before: Any, after: Any) -> tuple[str, ...]:
    """The names of the fields a change touched (their values stay out of the search)."""
    b = before if isinstance(before, dict) else {}
    a = after if isinstance(after, dict) else {}
    return tuple(sorted(k for k in b.keys() | a.keys() if b.get(k) != a.get(k)))


def _matches(row: Mapping[Any, Any], q: SearchQuery, at: datetime) -> bool:
    action = row["action"]
    if q.actor and row["actor"] != q.actor:
        return False
    if q.action and action != q.action:
        return False
    if q.object_type and row["object_type"] != q.object_type:
        return False
    if q.object_id and row["object_id"] != q.object_id:
        return False
    if q.since and at < q.since:
        return False
    if q.until and at >= q.until:
        return False
    if q.refusals and action not in REFUSALS:
        return False
    if q.catalog and not action.startswith(CATALOG_PREFIX):
        return False
    return not (q.key_hash and not action.startswith("data."))


def hits_of(row: Mapping[Any, Any], q: SearchQuery, kept_in: str) -> Iterator[Hit]:
    """The hits one entry gives for ``q``: none, the entry, or its matching calls."""
    at = _at(row["at"])
    if not _matches(row, q, at):
        return
    object_type, object_id = row["object_type"], row["object_id"]
    base = {
        "seq": row["seq"],
        "at": at,
        "actor": row["actor"],
        "actor_kind": row["actor_kind"],
        "department_id": row["department_id"],
        "action": row["action"],
        "object_type": object_type,
        "object_id": object_id,
        "grant_id": object_id if object_type == "sharing_grant" else None,
        "remote_addr": row["remote_addr"],
        "request_id": row.get("request_id"),
        "kept_in": kept_in,
    }
    calls = audit.journalled_calls(row["after"]) if row["action"].startswith("data.") else []
    if q.key_hash:
        calls = [c for c in calls if q.key_hash in (c.get("key_hashes") or [])]
        if not calls:
            return
    if not calls:
        changed = () if row["action"].startswith("data.") else _changed(row["before"], row["after"])
        yield Hit(**base, changed=changed)
        return
    for c in calls:
        yield Hit(
            **base,
            call_at=str(c.get("at") or ""),
            nonce=c.get("nonce"),
            keys=c.get("keys"),
            rows=c.get("rows"),
            reason=c.get("reason"),
        )


def search(
    session: Session, key: AuditKey | None, q: SearchQuery, *, after_seq: int = 0
) -> Iterator[Hit]:
    """Every hit of the entries after ``after_seq``, oldest first: the archives (those
    overlapping the period), then the live table; streamed, so a search of five years
    holds one batch at a time."""
    for kept_in, row in iter_all(session, key, since=q.since, until=q.until, after_seq=after_seq):
        yield from hits_of(row, q, kept_in)


def page(
    session: Session, key: AuditKey | None, q: SearchQuery, *, after_seq: int, limit: int
) -> tuple[list[Hit], int | None]:
    """At least ``limit`` hits (when there are that many) after ``after_seq``, ending
    with the last call of an entry, so that the next page starts at the next entry; and
    that entry's seq to resume after, or None on the last page."""
    hits: list[Hit] = []
    for hit in search(session, key, q, after_seq=after_seq):
        if len(hits) >= limit and hit.seq != hits[-1].seq:
            return hits, hits[-1].seq
        hits.append(hit)
    return hits, None


# -- export -------------------------------------------------------------------------------

HEADER = (
    "审计序号",
    "时间(UTC)",
    "操作人",
    "操作人类型",
    "部门",
    "动作",
    "动作代码",
    "对象类型",
    "对象标识",
    "授权编号",
    "调用时间",
    "请求nonce",
    "键数",
    "行数",
    "拒绝原因",
    "变更字段",
    "来源地址",
    "请求编号",
    "保存位置",
)


def export_xlsx(
    hits: Iterable[Hit],
    path: Path,
    *,
    q: SearchQuery,
    labels: Mapping[str, str],
    departments: Mapping[int, str],
    made_at: datetime,
    made_by: str,
) -> int:
    """Write the hits to an XLSX file (write-only, streamed); the number written."""
    from openpyxl import Workbook

    from govshare.rules.spreadsheet import xlsx_cell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("审计检索")
    ws.append(list(HEADER))
    count = 0
    for h in hits:
        count += 1
        values: list[Any] = [
            h.seq,
            h.at.isoformat(timespec="seconds"),
            h.actor,
            h.actor_kind,
            departments.get(h.department_id, "") if h.department_id is not None else "",
            labels.get(h.action, h.action),
            h.action,
            h.object_type,
            h.object_id or "",
            h.grant_id or "",
            h.call_at or "",
            h.nonce or "",
            h.keys if h.keys is not None else "",
            h.rows if h.rows is not None else "",
            h.reason or "",
            "、".join(h.changed),
            h.remote_addr or "",
            h.request_id or "",
            h.kept_in or "在线",
        ]
        ws.append([xlsx_cell(ws, v) for v in values])
    about = wb.create_sheet("检索条件")
    about.append(["导出时间", made_at.isoformat(timespec="seconds")])
    about.append(["导出人", xlsx_cell(about, made_by)])
    about.append(["结果条数", count])
    for name, value in q.describe().items():
        about.append([name, xlsx_cell(about, value)])
    tmp = path.with_name(f".{path.name}.tmp")
    wb.save(tmp)
    tmp.replace(path)
    return count


# -- detached signatures ------------------------------------------------------------------

SIGNATURE_SUFFIX = ".sig"


def _signed_statement(doc: Mapping[str, Any]) -> bytes:
    fields = {k: doc[k] for k in ("file", "bytes", "sm3", "signed_at")}
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def sign_file(key: AuditKey, path: Path, *, now: datetime) -> Path:
    """Write ``PATH.sig``: the file's SM3 digest and size, signed (SM2) with the hub's
    audit signing key — the key that signs the chain's checkpoints."""
    value, size = file_digest(path)
    doc: dict[str, Any] = {
        "file": path.name,
        "bytes": size,
        "sm3": value,
        "signed_at": now.isoformat(),
        "alg": SIGNATURE_ALG,
        "public": key.public,
    }
    doc["signature"] = sign(SIGNATURE_ALG, key.private, _signed_statement(doc)).hex()
    target = path.with_name(path.name + SIGNATURE_SUFFIX)
    target.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return target


def verify_file(path: Path, signature: Path, public: str) -> str | None:
    """Why ``signature`` does not vouch for ``path`` under ``public`` (Chinese), or None."""
    try:
        doc = orjson.loads(signature.read_bytes())
        statement = _signed_statement(doc)
        value = bytes.fromhex(doc["signature"])
    except FileNotFoundError:
        return f"签名文件 {signature} 不存在"
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return f"签名文件 {signature} 无法解析（不是平台签发的签名文件）"
    if doc.get("alg") != SIGNATURE_ALG or not verify_signature(
        SIGNATURE_ALG, public, statement, value
    ):
        return "签名无效：签名文件不是用该公钥签发的，或其内容被改动"
    try:
        actual, size = file_digest(path)
    except FileNotFoundError:
        return f"文件 {path} 不存在"
    if (actual, size) != (doc["sm3"], doc["bytes"]):
        return "文件的 SM3 摘要与签名不符：文件在签名后被改动"
    return None
