"""What the public portal shows beyond one page of search results: the totals of the home
page, a dataset's related datasets, its ``schema.org/Dataset`` description, and the
download counter. Everything reads the open catalog through
:mod:`govshare.opendata.datasets`, which alone decides what is open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource, ResourceVersion
from govshare.db import dialect_insert
from govshare.opendata import datasets as ds
from govshare.opendata.models import OpenDownload
from govshare.rules.clock import china_today
from govshare.sharing.models import SharedStore

PORTAL_TITLE = "公共数据开放平台"
FEATURED = 6
NEWEST = 8
RELATED = 6


@dataclass(frozen=True)
class Totals:
    datasets: int
    departments: int
    rows: int  # rows downloadable by anyone: the stores of 无条件开放 datasets


def totals(session: Session) -> Totals:
    rows = session.scalar(
        ds.open_select(func.coalesce(func.sum(SharedStore.row_count), 0))
        .join(SharedStore, SharedStore.resource_id == Resource.id)
        .where(
            ds.OPEN_TYPE.in_([ds.OpenType.UNCONDITIONAL.value]), ds.FORMAT.in_(ds.TABULAR_FORMATS)
        )
    )
    return Totals(
        datasets=ds.count_datasets(session),
        departments=len(ds.list_publishers(session)),
        rows=int(rows or 0),
    )


def featured(session: Session, limit: int = FEATURED) -> list[ds.Dataset]:
    """无条件开放 datasets with the most rows to download (the ones people come for)."""
    ids = list(
        session.scalars(
            ds.open_select(Resource.id)
            .join(SharedStore, SharedStore.resource_id == Resource.id)
            .where(ds.OPEN_TYPE.in_([ds.OpenType.UNCONDITIONAL.value]), SharedStore.row_count > 0)
            .order_by(SharedStore.row_count.desc(), Resource.id)
            .limit(limit)
        )
    )
    return ds.load_datasets(session, ids)


def newest(session: Session, limit: int = NEWEST) -> list[ds.Dataset]:
    return ds.load_datasets(session, ds.list_dataset_ids(session, limit=limit))


def related(session: Session, dataset: ds.Dataset, limit: int = RELATED) -> list[ds.Dataset]:
    """The open datasets among its published 关联资源代码, then others of its theme."""
    snap = session.scalar(
        select(ResourceVersion.snapshot).where(
            ResourceVersion.resource_id == dataset.resource_id,
            ResourceVersion.version == dataset.version,
        )
    )
    codes = [str(c) for c in (snap or {}).get("related_codes") or []]
    out: dict[str, ds.Dataset] = {}
    for code in codes:
        found = ds.get_dataset(session, code)
        if found is not None and found.code != dataset.code:
            out[found.code] = found
    if len(out) < limit:
        page = ds.search_datasets(
            session,
            ds.DatasetQuery(filters=[ds.Filter("theme", dataset.theme.slug)], rows=limit + 1),
        )
        for d in page.datasets:
            if d.code != dataset.code and d.code not in out:
                out[d.code] = d
    return list(out.values())[:limit]


def schema_org(dataset: ds.Dataset, base_url: str) -> dict[str, Any]:
    """``schema.org/Dataset`` for search engines (JSON-LD in the dataset's page)."""
    page = f"{base_url}/open/datasets/{dataset.slug}"
    body: dict[str, Any] = {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "@id": page,
        "url": page,
        "name": dataset.title,
        "description": dataset.description,
        "identifier": dataset.code,
        "keywords": dataset.keywords,
        "inLanguage": "zh-CN",
        "isAccessibleForFree": True,
        "creator": {"@type": "GovernmentOrganization", "name": dataset.publisher.name},
        "publisher": {"@type": "GovernmentOrganization", "name": dataset.publisher.name},
        "dateModified": dataset.modified.isoformat(),
        "variableMeasured": [i.name for i in dataset.items],
    }
    if dataset.issued is not None:
        body["datePublished"] = dataset.issued.isoformat()
    license_url = dataset.license[2]
    if license_url:
        body["license"] = license_url
    if dataset.open_type is ds.OpenType.CONDITIONAL:
        body["conditionsOfAccess"] = dataset.open_conditions
    return body


def count_download(
    session: Session, resource_id: int, fmt: str, *, n: int = 1, day: date | None = None
) -> None:
    """``n`` more uses of the dataset in ``fmt`` on ``day`` (today): a download format,
    ``api`` for row-API calls, ``view`` for page views (:mod:`govshare.opendata.usage`)."""
    table = OpenDownload.__table__
    stmt = dialect_insert(table, session.get_bind().dialect).values(  # type: ignore[arg-type]
        resource_id=resource_id, day=day or china_today(), format=fmt, count=n
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["resource_id", "day", "format"],
        set_={"count": table.c["count"] + n},  # type: ignore[attr-defined]
    )
    session.execute(stmt)


def download_counts(session: Session, resource_id: int) -> dict[str, int]:
    """Downloads of the dataset so far, per format."""
    rows = session.execute(
        select(OpenDownload.format, func.sum(OpenDownload.count))
        .where(OpenDownload.resource_id == resource_id)
        .group_by(OpenDownload.format)
    )
    return {f: int(n) for f, n in rows}
