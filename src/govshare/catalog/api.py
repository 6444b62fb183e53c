"""Catalog API: search, compile, lifecycle, versions, import/export, demands, systems."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Header, Query, Request, Response, UploadFile, status
from sqlalchemy.orm import Session

from govshare.catalog import duties, imports, search, service, spreadsheet
from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.catalog.errors import ImportRejected
from govshare.catalog.models import (
    CatalogChangeEvent,
    ChangeKind,
    DepartmentDuty,
    ImportJob,
    ImportJobStatus,
)
from govshare.catalog.schemas import (
    ChangeEventPage,
    ChangeEventPublic,
    ChangeIn,
    ClassificationIn,
    ClassificationPublic,
    CodeEntryIn,
    CodeEntryPublic,
    DemandIn,
    DemandPublic,
    DemandResponseIn,
    DemandResponsePublic,
    DutyChange,
    DutyCreate,
    DutyPage,
    DutyPublic,
    DutyResourceRef,
    DutyWithdraw,
    ImportJobPublic,
    ResourceIn,
    ResourcePage,
    ResourcePublic,
    ResourceSummary,
    SystemChangeIn,
    SystemIn,
    SystemPublic,
    TransitionIn,
    TransitionPublic,
    VersionDiff,
    VersionPublic,
)
from govshare.catalog.views import facet_values, resource_public, resource_summary
from govshare.deps import (
    Authenticated,
    CatalogAdmin,
    CatalogPublisher,
    CatalogReader,
    CatalogReviewer,
    CatalogWriter,
    DemandWriter,
    DutyReader,
    DutyWriter,
    SessionDep,
    SettingsDep,
    SystemWriter,
)
from govshare.errors import InvalidInput
from govshare.ids import Count, Id
from govshare.security import audit
from govshare.security.service import Principal


@asynccontextmanager
async def _lifespan(_app: object) -> AsyncIterator[None]:
    # Segmentation loads a dictionary on first use (about a second of CPU); load it in
    # the background once the hub answers, so the first reader's search seldom waits for
    # it and the start itself does not share the processor with it.
    search.warm_up_later(search.WARM_UP_DELAY_SECONDS)
    # What the hub has built by now (modules, routes, mappers, templates: some 180,000
    # objects) lives as long as the process. Left with the collector, each full collection
    # walks all of it: a 50-100 ms pause on whichever search is running. Frozen, it is
    # skipped; collections then walk only what requests leave behind. No collection
    # first: at this point one finds nothing and costs 0.1-0.4 s of the start.
    gc.freeze()
    yield


router = APIRouter(prefix="/catalog", tags=["catalog"], lifespan=_lifespan)

ConfirmDuplicates = Annotated[
    bool,
    Query(
        description="本部门已有同名目录 (或文件内重名) 时确认确属不同资源, 仍然保存; "
        "否则以 duplicate_resource_name / import_rejected 拒绝"
    ),
]


def search_query(
    q: str = Query(default="", max_length=200, description="中文检索词"),
    department_id: Id | None = None,
    classification: str | None = Query(default=None, max_length=20),
    kind: ResourceKind | None = None,
    sharing_type: SharingType | None = None,
    format: str | None = None,
    update_cycle: str | None = None,
    is_open: bool | None = None,
    status_: ResourceStatus | None = Query(default=None, alias="status"),
    scope: Literal["catalog", "mine", "all"] = "catalog",
    sort: Literal["relevance", "updated", "name"] = "relevance",
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=20, ge=1, le=200),
) -> search.SearchQuery:
    return search.SearchQuery(
        q=q,
        department_id=department_id,
        classification=classification,
        kind=kind,
        sharing_type=sharing_type,
        format=format,
        update_cycle=update_cycle,
        is_open=is_open,
        status=status_,
        scope=scope,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )


SearchDep = Annotated[search.SearchQuery, Depends(search_query)]


def _for(caller: Principal, sq: search.SearchQuery) -> search.SearchQuery:
    sq.viewer_department_id = caller.department_id
    sq.viewer_is_admin = caller.is_admin
    return sq


def run_search(db: Session, caller: Principal, sq: search.SearchQuery) -> ResourcePage:
    result = search.search(db, _for(caller, sq))
    return ResourcePage(
        items=[resource_summary(r) for r in result.rows],
        total=result.total,
        next_cursor=result.next_cursor,
        facets=facet_values(db, result.facets, service.CodeTables(db)),
    )


@router.get("/resources", summary="检索目录 (中文全文检索、分面、键集分页)")
def search_resources(db: SessionDep, caller: CatalogReader, sq: SearchDep) -> ResourcePage:
    return run_search(db, caller, sq)


@router.get("/resources/export", summary="导出检索结果 (XLSX/CSV)")
def export_resources(
    db: SessionDep,
    caller: CatalogReader,
    sq: SearchDep,
    fmt: Literal["xlsx", "csv"] = Query(
        "xlsx", alias="as", description="文件格式 (format 是检索条件)"
    ),
) -> Response:
    sq = _for(caller, sq)
    sq.limit, sq.with_facets, sq.with_items = 200, False, True
    rows: list[service.Resource] = []
    while len(rows) < 50_000:
        result = search.search(db, sq)
        rows.extend(result.rows)
        if not result.next_cursor:
            break
        sq.cursor = result.next_cursor
    codes = service.CodeTables(db)
    audit.record(
        db,
        caller.actor,
        "catalog.export",
        object_type="resource",
        after={"q": sq.q, "entries": len(rows), "format": fmt},
    )
    if fmt == "csv":
        return Response(
            spreadsheet.export_csv(rows, codes),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="catalog.csv"'},
        )
    return Response(
        spreadsheet.export_xlsx(rows, codes),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": 'attachment; filename="catalog.xlsx"'},
    )


@router.get("/import/template", summary="下载导入模板")
def import_template(
    _c: CatalogReader, fmt: Literal["xlsx", "csv"] = Query("xlsx", alias="format")
) -> Response:
    if fmt == "csv":
        return Response(
            spreadsheet.template_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="catalog-template.csv"'},
        )
    return Response(
        spreadsheet.template_xlsx(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": 'attachment; filename="catalog-template.xlsx"'},
    )


def import_job_public(job: ImportJob) -> ImportJobPublic:
    total = job.entries_total
    done = job.status is ImportJobStatus.DONE
    return ImportJobPublic(
        id=job.id,
        status=str(job.status),
        status_label=job.status.label,
        filename=job.filename,
        created_by=job.created_by,
        created_at=job.created_at,
        finished_at=job.finished_at,
        rows=job.rows,
        entries_total=total,
        entries_done=job.entries_done,
        progress=1.0 if done else (job.entries_done / total if total else 0.0),
        resource_ids=list(job.resource_ids),
        error=job.error,
    )


@router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    summary="批量导入目录: 立即返回导入任务, 全部成功或全部不导入",
    responses={200: {"description": "同一文件或同一 Idempotency-Key 的已有任务 (不重复导入)"}},
)
def import_resources(
    request: Request,
    response: Response,
    db: SessionDep,
    caller: CatalogWriter,
    file: Annotated[UploadFile, File(description="XLSX 或 CSV")],
    provider_department_id: Id | None = None,
    confirm_duplicates: ConfirmDuplicates = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=100,
            description="重试时带上同一个键, 返回第一次的任务而不重复导入",
        ),
    ] = None,
) -> ImportJobPublic:
    content = file.file.read()
    filename = file.filename or "upload"
    if not filename.lower().endswith((".xlsx", ".csv")):
        raise ImportRejected("只支持 .xlsx 或 .csv 文件")
    job, new = imports.submit(
        db,
        caller,
        filename=filename,
        content=content,
        provider_department_id=provider_department_id,
        confirm_duplicates=confirm_duplicates,
        idempotency_key=idempotency_key,
    )
    db.commit()
    if new:
        request.app.state.import_worker.submit(
            imports.ImportRequest(
                job.id, caller, content, provider_department_id, confirm_duplicates
            )
        )
    else:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/catalog/import/jobs/{job.id}"
    return import_job_public(job)


@router.get("/import/jobs", summary="本部门最近的导入任务")
def list_import_jobs(db: SessionDep, caller: CatalogWriter) -> list[ImportJobPublic]:
    return [import_job_public(j) for j in imports.list_jobs(db, caller)]


@router.get("/import/jobs/{job_id}", summary="导入任务的进度与结果")
def get_import_job(job_id: Id, db: SessionDep, caller: CatalogWriter) -> ImportJobPublic:
    return import_job_public(imports.get_job(db, caller, job_id))


@router.post("/resources", status_code=status.HTTP_201_CREATED, summary="编制目录 (草稿)")
def add_resource(
    body: ResourceIn,
    db: SessionDep,
    caller: CatalogWriter,
    confirm_duplicates: ConfirmDuplicates = False,
) -> ResourcePublic:
    resource = service.add_resource(db, caller, body, confirm_duplicates=confirm_duplicates)
    return resource_public(resource, service.snapshot(resource), as_published=False)


@router.get("/resources/by-code/{code:path}", summary="按资源代码查看目录")
def get_resource_by_code(code: str, db: SessionDep, caller: CatalogReader) -> ResourcePublic:
    resource = service.get_resource_by_code(db, code)
    return get_resource(resource.id, db, caller)


@router.get("/resources/{resource_id}", summary="查看目录")
def get_resource(resource_id: Id, db: SessionDep, caller: CatalogReader) -> ResourcePublic:
    resource, snap = service.visible_resource(db, caller, resource_id)
    return resource_public(
        resource, snap, as_published=not service.can_see_working_copy(caller, resource)
    )


@router.put("/resources/{resource_id}", summary="修改或变更目录")
def update_resource(
    resource_id: Id,
    body: ChangeIn,
    db: SessionDep,
    caller: CatalogWriter,
    confirm_duplicates: ConfirmDuplicates = False,
) -> ResourcePublic:
    resource = service.update_resource(
        db, caller, resource_id, body, confirm_duplicates=confirm_duplicates
    )
    return resource_public(resource, service.snapshot(resource), as_published=False)


@router.delete(
    "/resources/{resource_id}", status_code=status.HTTP_204_NO_CONTENT, summary="删除草稿"
)
def delete_resource(resource_id: Id, db: SessionDep, caller: CatalogWriter) -> None:
    service.delete_resource(db, caller, resource_id)


@router.post(
    "/resources/{resource_id}/transitions/{step}",
    summary="目录流转",
    description="step: submit, approve, return, reject, request_publication, publish, "
    "reject_publication, withdraw",
)
def transition(
    resource_id: Id, step: str, body: TransitionIn, db: SessionDep, caller: Authenticated
) -> ResourcePublic:
    # Each step names its own permission; the service checks it with the department.
    resource = service.transition(db, caller, resource_id, step, body.reason)
    return resource_public(resource, service.snapshot(resource), as_published=False)


def _own(db: Session, caller: Principal, resource_id: Id) -> service.Resource:
    return service.own_resource(db, caller, resource_id, "只能查看本部门目录的版本与流转记录")


@router.get("/resources/{resource_id}/versions", summary="版本列表")
def list_versions(resource_id: Id, db: SessionDep, caller: CatalogReader) -> list[VersionPublic]:
    resource = _own(db, caller, resource_id)
    return [VersionPublic.model_validate(v) for v in service.list_versions(db, resource)]


@router.get("/resources/{resource_id}/versions/{version}", summary="某一版本的内容")
def get_version(
    resource_id: Id, version: Id, db: SessionDep, caller: CatalogReader
) -> ResourcePublic:
    resource = _own(db, caller, resource_id)
    snap = service.get_version(db, resource, version).snapshot
    public = resource_public(resource, snap, as_published=False)
    return public.model_copy(update={"version": version})


@router.get("/resources/{resource_id}/diff", summary="两个版本的字段级差异")
def diff_versions(
    resource_id: Id,
    db: SessionDep,
    caller: CatalogReader,
    from_version: Annotated[Id, Query(alias="from")],
    to_version: Annotated[Id, Query(alias="to")],
) -> VersionDiff:
    resource = _own(db, caller, resource_id)
    return service.diff_versions(db, resource, from_version, to_version)


@router.get("/resources/{resource_id}/history", summary="流转记录")
def history(resource_id: Id, db: SessionDep, caller: CatalogReader) -> list[TransitionPublic]:
    resource = _own(db, caller, resource_id)
    return [TransitionPublic.model_validate(t) for t in service.list_transitions(db, resource)]


@router.get("/review/registration", summary="注册审核队列 (本部门)")
def registration_queue(db: SessionDep, caller: CatalogReviewer) -> list[ResourceSummary]:
    rows = service.review_queue(db, caller, ResourceStatus.PENDING_REGISTRATION)
    return [resource_summary(r) for r in rows]


@router.get("/review/publication", summary="发布审核队列 (平台)")
def publication_queue(db: SessionDep, caller: CatalogPublisher) -> list[ResourceSummary]:
    rows = service.review_queue(db, caller, ResourceStatus.PENDING_PUBLICATION)
    return [resource_summary(r) for r in rows]


@router.get("/classifications", summary="信息资源分类树")
def list_classifications(db: SessionDep, _c: CatalogReader) -> list[ClassificationPublic]:
    return [ClassificationPublic.model_validate(c) for c in service.list_classifications(db)]


@router.post("/classifications", status_code=status.HTTP_201_CREATED, summary="新增分类节点")
def add_classification(
    body: ClassificationIn, db: SessionDep, caller: CatalogAdmin
) -> ClassificationPublic:
    return ClassificationPublic.model_validate(
        service.add_classification(db, caller, code=body.code, name=body.name)
    )


@router.get("/code-tables", summary="代码表")
def list_code_tables(db: SessionDep, _c: CatalogReader) -> dict[str, list[CodeEntryPublic]]:
    return {
        name: [CodeEntryPublic.model_validate(e) for e in entries]
        for name, entries in service.list_code_tables(db).items()
    }


@router.put("/code-tables/{table}/{code}", summary="新增或修改代码表的值")
def put_code_entry(
    table: str, code: str, body: CodeEntryIn, db: SessionDep, caller: CatalogAdmin
) -> CodeEntryPublic:
    if body.code != code:
        raise InvalidInput(
            "路径中的代码与请求体不一致", details=[{"field": "code", "message": "mismatch"}]
        )
    entry = service.put_code_entry(
        db, caller, table=table, code=code, label=body.label, sort_order=body.sort_order
    )
    return CodeEntryPublic.model_validate(entry)


# -- demand catalog --------------------------------------------------------------------


def demand_public(d: service.Demand) -> DemandPublic:
    return DemandPublic(
        id=d.id,
        department_id=d.department_id,
        department_name=d.department.name,
        title=d.title,
        description=d.description,
        wanted_items=d.wanted_items,
        purpose=d.purpose,
        status=d.status,
        created_by=d.created_by,
        created_at=d.created_at,
        responses=[
            DemandResponsePublic(
                id=r.id,
                resource_code=r.resource.code,
                resource_name=r.resource.name,
                department_name=r.department.name,
                note=r.note,
                created_by=r.created_by,
                created_at=r.created_at,
            )
            for r in d.responses
        ],
    )


@router.get("/demands", summary="需求目录")
def list_demands(
    db: SessionDep, _c: CatalogReader, status_: str | None = Query(None, alias="status")
) -> list[DemandPublic]:
    return [demand_public(d) for d in service.list_demands(db, status_)]


@router.post("/demands", status_code=status.HTTP_201_CREATED, summary="发布数据需求")
def add_demand(body: DemandIn, db: SessionDep, caller: DemandWriter) -> DemandPublic:
    return demand_public(service.add_demand(db, caller, body))


@router.get("/demands/{demand_id}", summary="查看需求")
def get_demand(demand_id: Id, db: SessionDep, _c: CatalogReader) -> DemandPublic:
    return demand_public(service.get_demand(db, demand_id))


@router.post(
    "/demands/{demand_id}/responses",
    status_code=status.HTTP_201_CREATED,
    summary="以本部门资源响应需求",
)
def respond_to_demand(
    demand_id: Id, body: DemandResponseIn, db: SessionDep, caller: CatalogWriter
) -> DemandPublic:
    service.respond_to_demand(db, caller, demand_id, body)
    return demand_public(service.get_demand(db, demand_id))


@router.post("/demands/{demand_id}/close", summary="关闭需求")
def close_demand(demand_id: Id, db: SessionDep, caller: DemandWriter) -> DemandPublic:
    return demand_public(service.close_demand(db, caller, demand_id))


# -- information systems ------------------------------------------------------------------


def system_public(s: service.InformationSystem, count: int) -> SystemPublic:
    return SystemPublic(
        **SystemIn.model_validate(s, from_attributes=True).model_dump(),
        id=s.id,
        department_id=s.department_id,
        department_name=s.department.name,
        resource_count=count,
    )


@router.get("/systems", summary="信息系统清单")
def list_systems(
    db: SessionDep, _c: CatalogReader, department_id: Id | None = None
) -> list[SystemPublic]:
    return [system_public(s, n) for s, n in service.list_systems(db, department_id)]


@router.post("/systems", status_code=status.HTTP_201_CREATED, summary="登记信息系统")
def add_system(body: SystemIn, db: SessionDep, caller: SystemWriter) -> SystemPublic:
    return system_public(service.add_system(db, caller, body), 0)


@router.put("/systems/{system_id}", summary="修改信息系统")
def update_system(
    system_id: Id, body: SystemIn, db: SessionDep, caller: SystemWriter
) -> SystemPublic:
    system = service.update_system(db, caller, system_id, body)
    counts = {s.id: n for s, n in service.list_systems(db, system.department_id)}
    return system_public(system, counts.get(system.id, 0))


# -- department duties (部门职责 / 权责清单) and catalog change events ----------------------------


def duty_public(d: DepartmentDuty) -> DutyPublic:
    return DutyPublic(
        id=d.id,
        department_id=d.department_id,
        department_name=d.department.name,
        code=d.code,
        name=d.name,
        basis=d.basis,
        declared_on=d.declared_on,
        withdrawn_on=d.withdrawn_on,
        in_force=d.withdrawn_on is None,
        resources=[
            DutyResourceRef(id=r.id, code=r.code, name=r.name, status=r.status) for r in d.resources
        ],
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def event_public(e: CatalogChangeEvent) -> ChangeEventPublic:
    return ChangeEventPublic(
        id=e.id,
        department_id=e.department_id,
        kind=str(e.kind),
        kind_label=e.kind.label,
        duty_id=e.duty_id,
        duty_code=e.duty.code if e.duty else None,
        duty_name=e.duty.name if e.duty else None,
        system_id=e.system_id,
        system_name=e.system.name if e.system else None,
        changed_on=e.changed_on,
        catalog_due=e.catalog_due,
        catalog_due_provisional=e.catalog_due_provisional,
        description=e.description,
        recorded_by=e.recorded_by,
        created_at=e.created_at,
    )


PageLimit = Annotated[int, Query(ge=1, le=500, description="每页条数")]
PageOffset = Annotated[Count, Query(description="跳过的条数")]


@router.get("/duties", summary="职责清单 (本部门; 平台管理员与审计员可查全部)")
def list_duties(
    db: SessionDep,
    caller: DutyReader,
    department_id: Id | None = None,
    in_force: Annotated[bool, Query(description="只列出未取消的职责")] = False,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> DutyPage:
    page = duties.list_duties(
        db,
        caller,
        department_id=department_id,
        in_force_only=in_force,
        limit=limit,
        offset=offset,
    )
    return DutyPage(items=[duty_public(d) for d in page.items], total=page.total)


@router.post("/duties", status_code=status.HTTP_201_CREATED, summary="声明职责")
def declare_duty(
    body: DutyCreate, db: SessionDep, caller: DutyWriter, settings: SettingsDep
) -> DutyPublic:
    duty = duties.declare_duty(db, caller, body, working_days=settings.catalog_update_working_days)
    return duty_public(duty)


@router.get("/duties/events", summary="职责调整与系统变更 (目录更新期限)")
def list_change_events(
    db: SessionDep,
    caller: DutyReader,
    department_id: Id | None = None,
    kind: ChangeKind | None = None,
    duty_id: Id | None = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> ChangeEventPage:
    page = duties.list_events(
        db,
        caller,
        department_id=department_id,
        kind=kind,
        duty_id=duty_id,
        limit=limit,
        offset=offset,
    )
    return ChangeEventPage(items=[event_public(e) for e in page.items], total=page.total)


@router.get("/duties/{duty_id}", summary="查看职责")
def get_duty(duty_id: Id, db: SessionDep, caller: DutyReader) -> DutyPublic:
    return duty_public(duties.get_duty(db, caller, duty_id))


@router.put("/duties/{duty_id}", summary="调整职责 (名称或设定依据, 须说明原因)")
def change_duty(
    duty_id: Id, body: DutyChange, db: SessionDep, caller: DutyWriter, settings: SettingsDep
) -> DutyPublic:
    duty = duties.change_duty(
        db, caller, duty_id, body, working_days=settings.catalog_update_working_days
    )
    return duty_public(duty)


@router.post("/duties/{duty_id}/withdraw", summary="取消职责")
def withdraw_duty(
    duty_id: Id, body: DutyWithdraw, db: SessionDep, caller: DutyWriter, settings: SettingsDep
) -> DutyPublic:
    duty = duties.withdraw_duty(
        db, caller, duty_id, body, working_days=settings.catalog_update_working_days
    )
    return duty_public(duty)


@router.put("/duties/{duty_id}/resources/{resource_id}", summary="职责关联本部门目录")
def link_duty_resource(
    duty_id: Id, resource_id: Id, db: SessionDep, caller: DutyWriter
) -> DutyPublic:
    return duty_public(duties.link_resource(db, caller, duty_id, resource_id))


@router.delete("/duties/{duty_id}/resources/{resource_id}", summary="取消职责与目录的关联")
def unlink_duty_resource(
    duty_id: Id, resource_id: Id, db: SessionDep, caller: DutyWriter
) -> DutyPublic:
    return duty_public(duties.unlink_resource(db, caller, duty_id, resource_id))


@router.post(
    "/systems/{system_id}/changes",
    status_code=status.HTTP_201_CREATED,
    summary="登记信息系统变更 (起算目录更新期限)",
)
def record_system_change(
    system_id: Id,
    body: SystemChangeIn,
    db: SessionDep,
    caller: SystemWriter,
    settings: SettingsDep,
) -> ChangeEventPublic:
    event = duties.record_system_change(
        db, caller, system_id, body, working_days=settings.catalog_update_working_days
    )
    return event_public(event)


@router.get("/systems/{system_id}/changes", summary="信息系统的变更记录")
def list_system_changes(
    system_id: Id,
    db: SessionDep,
    caller: DutyReader,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> ChangeEventPage:
    page = duties.list_events(db, caller, system_id=system_id, limit=limit, offset=offset)
    return ChangeEventPage(items=[event_public(e) for e in page.items], total=page.total)
