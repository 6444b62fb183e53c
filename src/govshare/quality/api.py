"""Data quality API (数据质量): the overview, each resource's rules and scans, the
failing values of a scan (JSON pages or XLSX). Reading needs ``sharing.read`` and
changing rules or starting a scan ``sharing.store``; on top, only the resource's
provider department and the platform admin see or change anything of it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import Response
from sqlalchemy.orm import Session

from govshare.db import utcnow
from govshare.deps import SessionDep, SettingsDep, SharingReader, SharingStoreAdmin
from govshare.ids import Count, Id
from govshare.quality import scan as scanning
from govshare.quality import service
from govshare.quality.errors import NoSharedStore
from govshare.quality.models import Dimension
from govshare.quality.schemas import (
    ProblemPage,
    ProblemPublic,
    ResourceQualityPublic,
    RulePublic,
    RuleUpdate,
    ScanPage,
    ScanPublic,
)
from govshare.security.service import Principal
from govshare.sharing.store import SharedDatabase
from govshare.web.headers import attachment

router = APIRouter(prefix="/quality", tags=["quality"])

ItemCode = Annotated[str, Path(min_length=1, max_length=60, description="信息项代码")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def shared_database(request: Request) -> SharedDatabase:
    db: SharedDatabase = request.app.state.data_services.db
    return db


SharedDbDep = Annotated[SharedDatabase, Depends(shared_database)]


def rules_public(db: Session, principal: Principal, resource_id: int) -> list[RulePublic]:
    resource = service.visible_resource(db, principal, resource_id)
    return [
        RulePublic(
            item_code=item.code,
            item_name=item.name,
            stored=stored,
            required=spec.required,
            data_type=spec.data_type,
            max_length=spec.max_length,
            format=spec.format,
            format_label=spec.format.label,
            code_table=spec.code_table,
            date_min=spec.date_min,
            date_max=spec.date_max,
        )
        for item, spec, stored in service.rules_of(db, resource)
    ]


@router.get("/resources", summary="数据质量概览: 可见目录的共享信息库及最近一次检测")
def list_quality(db: SessionDep, caller: SharingReader) -> list[ResourceQualityPublic]:
    return [
        ResourceQualityPublic(
            resource_id=q.resource.id,
            resource_code=q.resource.code,
            resource_name=q.resource.name,
            provider_department_id=q.resource.provider_department_id,
            store_id=q.store.id,
            row_count=q.store.row_count,
            latest=ScanPublic.of(q.latest) if q.latest else None,
        )
        for q in service.list_quality(db, caller)
    ]


@router.get("/resources/{resource_id}/rules", summary="目录各信息项的质量规则")
def list_rules(resource_id: Id, db: SessionDep, caller: SharingReader) -> list[RulePublic]:
    return rules_public(db, caller, resource_id)


@router.put("/resources/{resource_id}/rules/{item_code}", summary="修改信息项的质量规则")
def update_rule(
    resource_id: Id,
    item_code: ItemCode,
    body: RuleUpdate,
    db: SessionDep,
    caller: SharingStoreAdmin,
) -> RulePublic:
    spec = service.RuleSpec(item_code=item_code, **body.model_dump())
    service.update_rule(db, caller, resource_id=resource_id, item_code=item_code, spec=spec)
    return next(r for r in rules_public(db, caller, resource_id) if r.item_code == item_code)


@router.get("/resources/{resource_id}/scans", summary="目录的质量检测记录 (新的在前)")
def list_scans(
    resource_id: Id,
    db: SessionDep,
    caller: SharingReader,
    before_id: Id | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> ScanPage:
    scans = service.list_scans(db, caller, resource_id, before_id=before_id, limit=limit + 1)
    more = len(scans) > limit
    scans = scans[:limit]
    return ScanPage(
        items=[ScanPublic.of(s) for s in scans],
        next_before_id=scans[-1].id if more and scans else None,
    )


@router.post(
    "/resources/{resource_id}/scans",
    status_code=status.HTTP_201_CREATED,
    summary="立即检测目录的共享信息库",
)
def start_scan(
    resource_id: Id,
    db: SessionDep,
    settings: SettingsDep,
    shared_db: SharedDbDep,
    caller: SharingStoreAdmin,
) -> ScanPublic:
    service.visible_resource(db, caller, resource_id)
    store = service.store_of(db, resource_id)
    if store is None:
        raise NoSharedStore("该目录尚未建立共享信息库 (no shared store)")
    scan = scanning.scan_now(db, shared_db, store, utcnow(), settings)
    return ScanPublic.of(scan)


@router.get("/scans/{scan_id}", summary="一次质量检测的结果")
def get_scan(scan_id: Id, db: SessionDep, caller: SharingReader) -> ScanPublic:
    return ScanPublic.of(service.get_scan(db, caller, scan_id))


@router.get("/scans/{scan_id}/problems", summary="一次检测发现的问题数据 (按查看者脱敏)")
def list_problems(
    scan_id: Id,
    db: SessionDep,
    caller: SharingReader,
    after_id: Annotated[Count | None, Query()] = None,
    dimension: Dimension | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> ProblemPage:
    scan = service.get_scan(db, caller, scan_id)
    found = service.list_problems(
        db, caller, scan, after_id=after_id, limit=limit + 1, dimension=dimension
    )
    more = len(found) > limit
    found = found[:limit]
    return ProblemPage(
        items=[
            ProblemPublic(
                id=p.id,
                dimension=p.dimension,
                row_key=p.row_key,
                item_code=p.item_code,
                item_name=p.item_name,
                value=p.value,
                rule=p.rule,
                message=p.message,
            )
            for p in found
        ],
        next_after_id=found[-1].id if more and found else None,
    )


@router.get(
    "/scans/{scan_id}/problems.xlsx",
    summary="下载问题数据 (XLSX, 按查看者脱敏)",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}}},
)
def download_problems(scan_id: Id, db: SessionDep, caller: SharingReader) -> Response:
    scan = service.get_scan(db, caller, scan_id)
    body = service.problems_xlsx(db, caller, scan)
    name = f"问题数据-检测{scan.id}.xlsx"
    return Response(
        body,
        media_type=XLSX,
        headers=attachment(f"quality-{scan.id}.xlsx", name),
    )
