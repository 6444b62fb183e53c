"""带出: filling an application from a base database (基础库) instead of retyping it.

A process's forms may name one resource — typically the 法人库, keyed by
统一社会信用代码 — and the items to bring over with their labels (``prefill`` in the
forms JSON). At the window the officer types the key; the platform looks the record up
under the accepting department's query grant (查询授权) like any data-service call: only
granted items, the grant's row filter and masking, refused without a grant, and audited
as a ``data.lookup`` with the key as a keyed hash, so an auditor asking who looked at
company Y finds the window too. The values become the case's particulars (申请信息),
which the officer may correct before accepting: the base record is where they start, not
a lock on what the applicant declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from govshare.collab.errors import NoPrefill, PrefillNotFound
from govshare.errors import GovshareError, InvalidInput
from govshare.rules.fields import has_control_characters
from govshare.rules.validators import citizen_id_problem, credit_code_problem
from govshare.security import audit
from govshare.security.service import Principal
from govshare.sharing import data
from govshare.sharing.data import Caller, DataServices
from govshare.sharing.errors import NoGrant, StoreNotFound
from govshare.sharing.models import SharingMode

KEY_KINDS = {"credit_code": credit_code_problem, "citizen_id": citizen_id_problem}
MAX_ITEMS = 20
MAX_LABEL = 40
MAX_VALUE = 200


@dataclass(frozen=True, slots=True)
class PrefillSpec:
    """What a process brings over: ``items`` maps the resource's item codes to the
    labels the application shows; ``key_label`` names the key's own field."""

    resource: str
    key_label: str
    key_kind: str
    items: dict[str, str]

    @property
    def labels(self) -> list[str]:
        return [self.key_label, *self.items.values()]


@dataclass(frozen=True, slots=True)
class Prefilled:
    """What the lookup gave: ``values`` (label → value, masked as the grant says, the
    key included), or the ``refusal`` to raise once the audit entry is committed."""

    key: str
    values: dict[str, str]
    refusal: GovshareError | None = None

    def or_raise(self) -> Prefilled:
        if self.refusal is not None:
            raise self.refusal
        return self


def clean_spec(raw: Any) -> dict[str, Any] | None:
    """The ``prefill`` of uploaded forms, checked; None when there is none. A wrong one
    is refused with the field at fault, so a process never fails at the window."""
    if raw is None:
        return None

    def bad(message: str) -> InvalidInput:
        return InvalidInput.about("表单定义的带出设置 (prefill) 不正确", "forms.prefill", message)

    if not isinstance(raw, dict):
        raise bad("须为 JSON 对象：resource、key_label、items")
    resource = str(raw.get("resource") or "").strip()
    if not resource or len(resource) > 64:
        raise bad("resource 须为目录代码（1 到 64 个字符）")
    key_label = str(raw.get("key_label") or "").strip()
    if not key_label or len(key_label) > MAX_LABEL:
        raise bad(f"key_label 须为 1 到 {MAX_LABEL} 个字")
    key_kind = str(raw.get("key_kind") or "")
    if key_kind and key_kind not in KEY_KINDS:
        raise bad("key_kind 只能是 credit_code（统一社会信用代码）或 citizen_id（公民身份号码）")
    items = raw.get("items")
    if not isinstance(items, dict) or not 1 <= len(items) <= MAX_ITEMS:
        raise bad(f"items 须为 1 到 {MAX_ITEMS} 个“信息项代码: 显示名称”")
    cleaned = {str(code).strip(): str(label).strip() for code, label in items.items()}
    labels = [key_label, *cleaned.values()]
    if any(not c or len(c) > 64 for c in cleaned) or any(
        not label or len(label) > MAX_LABEL for label in labels
    ):
        raise bad(f"信息项代码须为 1 到 64 个字符，显示名称须为 1 到 {MAX_LABEL} 个字")
    if len(set(labels)) != len(labels):
        raise bad("显示名称不能重复")
    # Kept as pairs: PostgreSQL's JSONB does not keep an object's key order, and the form
    # shows the items in the order the process lists them.
    pairs = [[code, label] for code, label in cleaned.items()]
    return {"resource": resource, "key_label": key_label, "key_kind": key_kind, "items": pairs}


def spec_of(forms: dict[str, Any]) -> PrefillSpec | None:
    raw = forms.get("prefill")
    if not raw:
        return None
    # Stored as [code, label] pairs (clean_spec), which dict() reads in their order.
    return PrefillSpec(raw["resource"], raw["key_label"], raw["key_kind"], dict(raw["items"]))


def key_problem(spec: PrefillSpec, key: str) -> str | None:
    if not key or len(key) > 64 or has_control_characters(key):
        return f"请填写{spec.key_label}"
    check = KEY_KINDS.get(spec.key_kind)
    return check(key) if check else None


def particulars_problems(spec: PrefillSpec | None, given: dict[str, str]) -> list[dict[str, str]]:
    """What is wrong with an application's particulars: only the process's own labels,
    values of at most 200 characters, and a well-formed key when one is given."""
    if not given:
        return []
    if spec is None:
        return [{"field": "particulars", "message": "本流程没有需要填写的申请信息"}]
    problems = []
    for label, value in given.items():
        field = f"particulars.{label}"
        if label not in spec.labels:
            problems.append({"field": field, "message": "不是本流程的申请信息项"})
        elif len(value) > MAX_VALUE or has_control_characters(value):
            problems.append({"field": field, "message": f"最多 {MAX_VALUE} 个字，且不含控制字符"})
        elif label == spec.key_label and value and (msg := key_problem(spec, value)):
            problems.append({"field": field, "message": msg})
    return problems


def bring_over(
    session: Session,
    ds: DataServices,
    principal: Principal,
    forms: dict[str, Any],
    key: str,
    today: date,
) -> Prefilled:
    """The record of ``key`` in the process's prefill resource, as the caller's
    department may see it. The lookup — or its refusal (no grant, no store, no record)
    — is in the audit log either way: the caller commits, then ``or_raise()``."""
    spec = spec_of(forms)
    if spec is None:
        raise NoPrefill("本流程没有设置从基础库带出的信息")
    key = key.strip().upper()
    if msg := key_problem(spec, key):
        raise InvalidInput.about("带出的查询条件不正确", "key", msg)
    if principal.department_id is None:
        raise NoPrefill("只有部门用户可以从基础库带出信息")
    caller = Caller.platform(principal.name, principal.department_id, principal.remote_addr)
    try:
        auth = data.authorize(session, caller, spec.resource, [SharingMode.QUERY], today)
    except (NoGrant, StoreNotFound) as refused:
        audit.record(
            session,
            principal.actor,
            "data.denied",
            object_type="resource",
            after={
                "keys": 1,
                "rows": 0,
                "key_hashes": [ds.hash_key(key)],
                "resource_code": spec.resource,
                "wanted": "data.lookup",
                "reason": refused.message,
                "purpose": "collab.prefill",
            },
        )
        return Prefilled(key, {}, refused)
    records = data.lookup(ds, auth, [key])
    audit.record(
        session,
        principal.actor,
        "data.lookup",
        object_type="sharing_grant",
        object_id=auth.grant.id,
        after={
            "resource_id": auth.resource_id,
            "keys": 1,
            "rows": len(records),
            "key_hashes": [ds.hash_key(key)],
            "purpose": "collab.prefill",
        },
    )
    if not records:
        missing = f"基础库中没有{spec.key_label}为 {key} 的记录（或不在本部门的授权范围内）"
        return Prefilled(key, {}, PrefillNotFound(missing))
    record = records[0]
    values = {spec.key_label: key}
    for code, label in spec.items.items():
        value = record.get(code)
        if value is not None:
            values[label] = str(value)[:MAX_VALUE]
    return Prefilled(key, values)
