"""Shaping catalog rows into their public forms, shared by the API and the console."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog import search
from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.catalog.models import Classification, Resource
from govshare.catalog.schemas import FacetValue, ItemPublic, ResourcePublic, ResourceSummary
from govshare.catalog.service import CodeTables
from govshare.security.models import Department


def resource_public(
    resource: Resource, snap: dict[str, Any], *, as_published: bool
) -> ResourcePublic:
    """The entry from a snapshot: the working copy, or the published version for others."""
    return ResourcePublic(
        id=resource.id,
        code=resource.code,
        kind=resource.kind,
        classification_code=resource.classification.code,
        classification_name=resource.classification.name,
        provider_department_id=resource.provider_department_id,
        provider_name=resource.provider.name,
        provider_credit_code=resource.provider.credit_code,
        publish_date=resource.publish_date,
        status=ResourceStatus.PUBLISHED if as_published else resource.status,
        version=resource.published_version
        if as_published and resource.published_version
        else resource.version,
        published_version=resource.published_version,
        updated_at=resource.updated_at,
        name=snap["name"],
        abstract=snap["abstract"],
        format=snap["format"],
        format_detail=snap["format_detail"],
        sharing_type=SharingType(snap["sharing_type"]),
        sharing_conditions=snap["sharing_conditions"],
        not_shared_basis=snap["not_shared_basis"],
        sharing_modes=snap["sharing_modes"],
        is_open=snap["is_open"],
        open_conditions=snap["open_conditions"],
        update_cycle=snap["update_cycle"],
        related_codes=snap["related_codes"],
        source_system_id=snap["source_system_id"],
        secrecy=snap["secrecy"],
        extensions=snap["extensions"],
        items=[ItemPublic(**it) for it in snap["items"]],
    )


def resource_summary(resource: Resource) -> ResourceSummary:
    return ResourceSummary(
        id=resource.id,
        code=resource.code,
        name=resource.name,
        provider_name=resource.provider.short_name,
        kind=resource.kind,
        sharing_type=resource.sharing_type,
        format=resource.format,
        update_cycle=resource.update_cycle,
        is_open=resource.is_open,
        status=resource.status,
        abstract=resource.abstract[:200],
        updated_at=resource.updated_at,
    )


def facet_values(
    session: Session, facets: dict[str, list[tuple[str, int]]], codes: CodeTables
) -> dict[str, list[FacetValue]]:
    """Facet counts with Chinese labels for display."""
    depts = search.department_labels(session, [v for v, _ in facets.get("department", [])])
    wanted = [v for v, _ in facets.get("classification", [])]
    classes = dict(
        session.execute(
            select(Classification.code, Classification.name).where(Classification.code.in_(wanted))
        ).all()
    )

    def label(facet: str, value: str) -> str:
        match facet:
            case "department":
                return depts.get(value, value)
            case "classification":
                return classes.get(value, value)
            case "kind":
                return ResourceKind(value).label
            case "sharing_type":
                return SharingType(value).label
            case "is_open":
                return "向社会开放" if value == "true" else "不开放"
            case _:
                return codes.label(facet, value)

    return {
        facet: [FacetValue(value=v, label=label(facet, v), count=n) for v, n in values]
        for facet, values in facets.items()
    }


def department_name(session: Session, department_id: int) -> str:
    dept = session.get(Department, department_id)
    return dept.name if dept else str(department_id)
