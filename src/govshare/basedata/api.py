"""Base-database API: definitions, a record with its provenance and history, and the
conflicts (多元校核) each authoritative department works. The records themselves are
served by the data services under grants, like any shared store."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from sqlalchemy.orm import Session

from govshare.basedata import assembly, service
from govshare.basedata.errors import BaseNotFound
from govshare.basedata.models import BaseConflict, BaseDatabase, ConflictStatus
from govshare.basedata.schemas import (
    BaseCreate,
    BasePublic,
    ConflictConfirm,
    ConflictPage,
    ConflictPublic,
    ItemValue,
    RecordOut,
)
from govshare.basedata.sealed_conflicts import opened
from govshare.db import utcnow
from govshare.deps import (
    SessionDep,
    SettingsDep,
    SharingReader,
    SharingReviewer,
    SharingStoreAdmin,
)
from govshare.ids import Id
from govshare.rules.clock import china_today
from govshare.security import audit
from govshare.security.fieldseal import FieldSealer
from govshare.sharing.errors import NotYourDepartment
from govshare.sharing.models import SharedStore
from govshare.sharing.reseal import newest_key
from govshare.sharing.store import SharedDatabase

router = APIRouter(prefix="/base-databases", tags=["basedata"])
conflicts = APIRouter(prefix="/base-conflicts", tags=["basedata"])


def _shared(request: Request) -> SharedDatabase:
    db: SharedDatabase = request.app.state.data_services.db
    return db


def base_public(db: Session, base: BaseDatabase) -> BasePublic:
    served = db.get(SharedStore, base.store_id) if base.store_id else None
    return BasePublic(
        id=base.id,
        resource_id=base.resource_id,
        resource_name=base.resource.name,
        store_id=base.store_id,
        key_item=base.key_item,
        items=base.items,
        keys=base.keys,
        table_name=base.table_name,
        version_column=assembly.VERSION,
        row_count=served.row_count if served is not None else 0,
        assembled_at=base.assembled_at,
        last_error=base.last_error,
        conflicts=service.stats(db, base),
    )


def conflict_public(c: BaseConflict, sealer: FieldSealer) -> ConflictPublic:
    """The conflict with its key and values in the clear (kept sealed where the base keeps
    them sealed); the caller is the authoritative department or the platform admin."""
    out = ConflictPublic.model_validate(c, from_attributes=True)
    clear = opened(sealer, c)
    out.record_key, out.value, out.evidence_value = (
        clear.record_key,
        clear.value,
        clear.evidence_value,
    )
    out.status = str(c.status)
    return out


@router.post("", status_code=status.HTTP_201_CREATED, summary="定义基础库")
def create_base(
    body: BaseCreate, db: SessionDep, settings: SettingsDep, caller: SharingStoreAdmin
) -> BasePublic:
    base = service.create_base(
        db, caller, body, sealing=settings.field_sealing, seal_key=newest_key(settings)
    )
    return base_public(db, base)


@router.get("", summary="基础库列表")
def list_bases(db: SessionDep, _c: SharingReader) -> list[BasePublic]:
    return [base_public(db, b) for b in service.list_bases(db)]


@router.get("/{base_id}", summary="基础库定义与归集状态")
def get_base(base_id: Annotated[Id, Path()], db: SessionDep, _c: SharingReader) -> BasePublic:
    return base_public(db, service.get_base(db, base_id))


@router.get("/{base_id}/records/{key}", summary="一条记录的值、来源与历史（平台管理员）")
def get_record(
    request: Request,
    base_id: Annotated[Id, Path()],
    key: Annotated[str, Path(min_length=1, max_length=200)],
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingStoreAdmin,
    as_of: Annotated[date | None, Query(description="截至该日（含）的值")] = None,
) -> RecordOut:
    when, found = service.read_record(db, settings, _shared(request), caller, base_id, key, as_of)
    if found is None:
        raise BaseNotFound("基础库中没有该记录")
    return RecordOut(key=key, as_of=when, items={k: ItemValue(**v) for k, v in found.items()})


@router.post("/{base_id}/assemble", summary="立即全量归集（平台管理员）")
def assemble_now(
    request: Request, base_id: Annotated[Id, Path()], db: SessionDep, caller: SharingStoreAdmin
) -> BasePublic:
    if not caller.is_admin:
        raise NotYourDepartment("只有平台管理员可以重新归集基础库")
    base = service.get_base(db, base_id)
    audit.record(
        db, caller.actor, "basedata.assemble", object_type="base_database", object_id=base.id
    )
    db.commit()
    service.assemble(
        db, _shared(request), request.app.state.package_store, base, utcnow(), full=True
    )
    return base_public(db, service.get_base(db, base_id))


@conflicts.get("", summary="本部门的基础库冲突（平台管理员看全部）")
def list_conflicts(
    request: Request,
    db: SessionDep,
    caller: SharingReader,
    base_id: Annotated[Id | None, Query()] = None,
    status_: Annotated[ConflictStatus | None, Query(alias="status")] = None,
    after: Annotated[Id | None, Query(description="上一页最后一条的 id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ConflictPage:
    rows = service.list_conflicts(
        db,
        caller,
        base_id=base_id,
        status=[status_] if status_ is not None else [],
        after=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return ConflictPage(
        items=[conflict_public(c, _shared(request).sealer) for c in rows],
        next=rows[-1].id if more and rows else None,
    )


@conflicts.get("/{conflict_id}", summary="一条冲突")
def get_conflict(
    request: Request, conflict_id: Annotated[Id, Path()], db: SessionDep, caller: SharingReader
) -> ConflictPublic:
    return conflict_public(service.get_conflict(db, caller, conflict_id), _shared(request).sealer)


@conflicts.post("/{conflict_id}/confirm", summary="确认本部门的值（须说明理由）")
def confirm(
    request: Request,
    conflict_id: Annotated[Id, Path()],
    body: ConflictConfirm,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
) -> ConflictPublic:
    sealer = _shared(request).sealer
    c = service.confirm_conflict(db, settings, sealer, caller, conflict_id, body, utcnow())
    return conflict_public(c, sealer)


@conflicts.post("/{conflict_id}/accept", summary="采纳佐证值：本部门更正业务系统")
def accept(
    request: Request,
    conflict_id: Annotated[Id, Path()],
    body: ConflictConfirm,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
) -> ConflictPublic:
    sealer = _shared(request).sealer
    c = service.accept_conflict(
        db, settings, sealer, caller, conflict_id, body, utcnow(), china_today()
    )
    return conflict_public(c, sealer)
