"""异议: a consumer department flags a shared record as wrong, with evidence; the provider
answers within working days; an accepted correction is made in the provider's own
system (数源部门负责更正), reaches the hub and every subscriber through the exchange,
and the objection is archived when the shared store shows the corrected values.
Objections left unanswered past their deadline alert the platform authority.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.db import utcnow
from govshare.exchange import alertrules, alerts
from govshare.exchange.models import AlertKind
from govshare.rules import workdays
from govshare.rules.clock import china_today
from govshare.security import audit
from govshare.security.audit import KeyHasher
from govshare.security.fieldseal import FieldSealer
from govshare.security.service import Principal
from govshare.sharing import service
from govshare.sharing import store as shared
from govshare.sharing.errors import (
    InvalidApplication,
    NotYourDepartment,
    ObjectionNotFound,
    StepNotAllowed,
)
from govshare.sharing.models import Objection, ObjectionStatus, SharedStore
from govshare.sharing.schemas import ObjectionAnswer, ObjectionCreate
from govshare.sharing.shared_db import hub_field_sealer

# -- what an objection says, kept sealed (字段加密) ---------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectionText:
    """An objection's record key (an ID number) and the values claimed and corrected, in
    the clear. With encryption at rest on (``GOVSHARE_FIELD_SEALING``) the hub database
    keeps them sealed with the field key, item codes in the clear."""

    record_key: str
    claimed: dict[str, str]
    correction: dict[str, str] | None = None


def sealer_for(settings: Settings) -> FieldSealer | None:
    """What new objections are sealed with; None with encryption at rest off."""
    if not settings.field_sealing:
        return None
    sealer = hub_field_sealer(settings)
    return sealer.under(sealer.newest())


def text_of(obj: Objection, settings: Settings) -> ObjectionText:
    """``obj``'s record key and values in the clear, however it keeps them."""
    if not obj.sealed:
        return ObjectionText(obj.record_key, dict(obj.claimed), obj.correction)
    opener = hub_field_sealer(settings)

    def opened(values: dict[str, Any]) -> dict[str, str]:
        return dict(zip(values, map(str, opener.open_texts(values.values())), strict=True))

    return ObjectionText(
        opener.open(obj.record_key),
        opened(obj.claimed),
        None if obj.correction is None else opened(obj.correction),
    )


def keep(obj: Objection, text: ObjectionText, sealer: FieldSealer | None) -> None:
    """Store ``text`` in ``obj``: sealed with ``sealer``, in the clear without one."""
    if sealer is None:
        obj.record_key, obj.claimed, obj.correction = text.record_key, text.claimed, text.correction
        obj.sealed = False
        return

    def sealed(values: dict[str, str]) -> dict[str, str]:
        return dict(zip(values, map(str, sealer.seal_texts(values.values())), strict=True))

    obj.record_key = sealer.seal(text.record_key)
    obj.claimed = sealed(text.claimed)
    obj.correction = None if text.correction is None else sealed(text.correction)
    obj.sealed = True


def _snapshot(obj: Objection, text: ObjectionText, hash_key: KeyHasher) -> dict[str, Any]:
    # The record key only as its keyed hash: the audit log never holds ID numbers.
    return {
        "status": str(obj.status),
        "resource_id": obj.resource_id,
        "grant_id": obj.grant_id,
        "record_key_hash": hash_key(text.record_key),
        "items": sorted(text.claimed),
        "answer_due": obj.answer_due,
    }


# -- the flow ---------------------------------------------------------------------------


def raise_objection(
    session: Session,
    settings: Settings,
    principal: Principal,
    data: ObjectionCreate,
    *,
    today: date | None = None,
) -> Objection:
    """A consumer holding a grant in force flags one record's granted items."""
    today = today or china_today()
    grant = service.get_grant(session, data.grant_id)
    if principal.department_id != grant.consumer_department_id:
        raise NotYourDepartment("只能对本部门所持授权的数据提出异议")
    if not service.is_active(grant, today):
        raise StepNotAllowed("该授权已撤销或过期，不能再提出异议")
    outside = [k for k in data.claimed if k not in grant.items]
    if outside:
        raise InvalidApplication(
            "异议只能针对授权的信息项",
            details=[{"field": f"claimed.{k}", "message": "不在授权的信息项中"} for k in outside],
        )
    text = ObjectionText(data.record_key.strip(), {k: v.strip() for k, v in data.claimed.items()})
    obj = Objection(
        resource_id=grant.resource_id,
        grant_id=grant.id,
        consumer_department_id=grant.consumer_department_id,
        provider_department_id=grant.provider_department_id,
        evidence=data.evidence.strip(),
        status=ObjectionStatus.OPEN,
        raised_by=principal.name,
        raised_on=today,
    )
    keep(obj, text, sealer_for(settings))
    due = workdays.deadline(today, settings.objection_working_days)
    obj.answer_due, obj.answer_due_provisional = due.due, due.provisional
    session.add(obj)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "sharing.objection.raise",
        object_type="sharing_objection",
        object_id=obj.id,
        after=_snapshot(obj, text, KeyHasher(settings.secret_key)),
    )
    return obj


def get_visible(session: Session, principal: Principal, objection_id: int) -> Objection:
    obj = session.get(Objection, objection_id)
    if obj is None or not (
        principal.is_admin
        or principal.department_id in (obj.consumer_department_id, obj.provider_department_id)
    ):
        raise ObjectionNotFound(f"异议 {objection_id} 不存在")
    return obj


def list_objections(
    session: Session, principal: Principal, *, side: str, status: ObjectionStatus | None = None
) -> list[Objection]:
    """``mine`` (raised by my department), ``provider`` (on my data) or ``all``."""
    q = service.scoped(
        select(Objection).order_by(Objection.id.desc()),
        principal,
        side,
        Objection.consumer_department_id,
        Objection.provider_department_id,
    )
    if status is not None:
        q = q.where(Objection.status == status)
    return list(session.scalars(q))


def answer(
    session: Session,
    settings: Settings,
    principal: Principal,
    obj: Objection,
    data: ObjectionAnswer,
    *,
    today: date | None = None,
) -> Objection:
    """The provider accepts (with the corrected values, by default those claimed) or
    rejects with its reasons; a rejection archives the objection at once."""
    if principal.department_id != obj.provider_department_id:
        raise NotYourDepartment("只有数据提供部门可以答复异议")
    if obj.status is not ObjectionStatus.OPEN:
        raise StepNotAllowed(f"异议当前为“{obj.status.label}”，不能再答复")
    hash_key = KeyHasher(settings.secret_key)
    text = text_of(obj, settings)
    before = _snapshot(obj, text, hash_key)
    obj.answered_by = principal.name
    obj.answered_on = today or china_today()
    obj.answer = data.answer.strip()
    if data.accept:
        correction = dict(data.correction or text.claimed)
        known = {item.code for item in obj.resource.items}
        wrong = [k for k in correction if k not in known]
        if wrong or not correction:
            raise InvalidApplication(
                "更正值须针对目录的信息项",
                details=[{"field": f"correction.{k}", "message": "目录没有该信息项"} for k in wrong]
                or [{"field": "correction", "message": "不能为空"}],
            )
        text = dataclasses.replace(text, correction=correction)
        keep(obj, text, sealer_for(settings))
        obj.status = ObjectionStatus.ACCEPTED
    else:
        obj.status = ObjectionStatus.REJECTED
        obj.archived_at = utcnow()
    audit.record(
        session,
        principal.actor,
        "sharing.objection.answer",
        object_type="sharing_objection",
        object_id=obj.id,
        before=before,
        after=_snapshot(obj, text, hash_key) | {"answer": obj.answer},
    )
    return obj


def check_corrections(
    session: Session, settings: Settings, db: shared.SharedDatabase, store: SharedStore
) -> int:
    """After packages were applied: archive accepted objections whose record now shows
    the corrected values in the shared store. Returns how many were archived."""
    waiting = list(
        session.scalars(
            select(Objection).where(
                Objection.resource_id == store.resource_id,
                Objection.status == ObjectionStatus.ACCEPTED,
            )
        )
    )
    done = 0
    for obj in waiting:
        text = text_of(obj, settings)
        correction = text.correction or {}
        records = list(shared.lookup(db, store, [text.record_key], list(correction), None))
        if records and all(
            any(str(r.get(k)) == str(v) for r in records) for k, v in correction.items()
        ):
            obj.status = ObjectionStatus.CORRECTED
            obj.corrected_seq = store.applied_seq
            obj.archived_at = utcnow()
            audit.record(
                session,
                audit.SYSTEM,
                "sharing.objection.corrected",
                object_type="sharing_objection",
                object_id=obj.id,
                after={"status": str(obj.status), "seq": store.applied_seq},
            )
            done += 1
    return done


def seal_kept_in_clear(session: Session, settings: Settings, limit: int = 500) -> int:
    """Seal objections a version before sealing kept in the clear (a batch per call;
    the feeder calls it with its alert checks); how many were sealed."""
    sealer = sealer_for(settings)
    if sealer is None:
        return 0
    found = list(
        session.scalars(
            select(Objection).where(Objection.sealed.is_(False)).order_by(Objection.id).limit(limit)
        )
    )
    for obj in found:
        keep(obj, text_of(obj, settings), sealer)
    return len(found)


def alert_overdue(session: Session, settings: Settings, today: date | None = None) -> int:
    """Open objections past their answer deadline by more than the 异议答复超期 rule's
    days (0 unless edited), alerted to the platform authority as one alert kept up to
    date; resolved once none is overdue."""
    today = today or china_today()
    grace = int(alertrules.effective(session, settings, AlertKind.OBJECTION_OVERDUE).threshold or 0)
    overdue = list(
        session.scalars(
            select(Objection).where(
                Objection.status == ObjectionStatus.OPEN,
                Objection.answer_due < today - timedelta(days=grace),
            )
        )
    )
    if not overdue:
        alerts.resolve_alerts(session, AlertKind.OBJECTION_OVERDUE)
        return 0
    names = "、".join(sorted({o.provider.short_name for o in overdue}))
    alerts.raise_alert(
        session,
        AlertKind.OBJECTION_OVERDUE,
        f"{len(overdue)} 件异议超期未答复 ({names})",
        details={"objections": [o.id for o in overdue]},
        webhook_url=settings.alert_webhook_url,
    )
    return len(overdue)
