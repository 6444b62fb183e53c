"""The CKAN Action API's read actions over the open catalog (:mod:`.datasets`).

Each action takes the request's parameters (query string, JSON body or form, already
merged into one dict) and returns CKAN's ``result``; refusals are :mod:`.errors`. The
shapes follow CKAN 2.10's ``package_show`` / ``organization_show`` dictionaries, so
harvesters (ckanext-harvest, the EU and national portals) and clients (ckanapi) read
them unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy.orm import Session

from govshare import __version__
from govshare.opendata import datasets as ds
from govshare.opendata.errors import NotFound, SearchQueryFailed, ValidationFailed
from govshare.opendata.vocab import FREQUENCY, MEDIA_TYPES

MAX_ROWS = 1000
SITE_TITLE = "政务数据开放平台"
CKAN_VERSION = "2.10.0"  # the API version this one answers like

# CKAN field names in fq / facet.field → the catalog's.
FIELDS = {
    "organization": "publisher",
    "owner_org": "publisher",
    "groups": "theme",
    "tags": "tag",
    "res_format": "format",
    "license_id": "license",
    "open_type": "open_type",
    "update_cycle": "update_cycle",
    "name": "name",
    "id": "id",
    "metadata_modified": "modified",
    "metadata_created": "created",
}
FACET_NAMES = {v: k for k, v in FIELDS.items() if k not in ("owner_org",)}
# Constant fields clients send: true for every open dataset (CKAN's own values).
CONSTANTS = {
    "dataset_type": "dataset",
    "type": "dataset",
    "state": "active",
    "capacity": "public",
    "private": "false",
}
SORT_FIELDS = {
    "score": "relevance",
    "metadata_modified": "modified",
    "metadata_created": "created",
    "name": "name",
    "title": "title",
    "title_string": "title",
}


@dataclass(frozen=True)
class Site:
    """Where the hub is reached, for the absolute URLs in the answers."""

    base_url: str  # without a trailing slash

    def url(self, path: str) -> str:
        return self.base_url + path


# --- parameters ---------------------------------------------------------------------------


def _int(
    params: dict[str, Any], name: str, default: int, *, low: int = 0, high: int | None = None
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationFailed(name, "Invalid integer")
    if isinstance(raw, str):
        if not re.fullmatch(r"[+-]?\d{1,9}", raw.strip()):
            raise ValidationFailed(name, "Invalid integer")
        raw = int(raw.strip())
    if raw < low:
        raise ValidationFailed(name, f"Must be a natural number >= {low}")
    if high is not None and raw > high:
        raise ValidationFailed(name, f"Must be less than or equal to {high}")
    return int(raw)


def _bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "yes", "on", "t"):
        return True
    if isinstance(raw, str) and raw.strip().lower() in ("false", "0", "no", "off", "f"):
        return False
    raise ValidationFailed(name, "Invalid boolean")


def _str(params: dict[str, Any], name: str, default: str = "") -> str:
    raw = params.get(name, default)
    if raw is None:
        return default
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise ValidationFailed(name, "Must be a string")
    return str(raw)


def _required(params: dict[str, Any], name: str = "id") -> str:
    value = _str(params, name).strip()
    if not value:
        raise ValidationFailed(name, "Missing value")
    return value


_TOKEN = re.compile(
    r"""\s*(?P<sign>[+-])?(?P<field>[A-Za-z_][A-Za-z0-9_.]*):
        (?P<value>"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|[^\s"\[\]{}()]+)\s*""",
    re.VERBOSE,
)


def _when(text: str, *, field: str) -> datetime | None:
    """A range end: ``*`` or an ISO time (``2020-01-01T00:00:00Z``, a date, microseconds);
    a time without a zone is UTC, as CKAN's are."""
    if text == "*":
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SearchQueryFailed(
            f"Search Query is invalid: {field}: cannot read the time {text!r} "
            "(expected e.g. 2020-01-01T00:00:00Z or *)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_fq(fq: str) -> list[ds.Filter]:
    """The conditions of a Solr-style ``fq`` as CKAN clients write it: ``field:value``,
    ``field:"quoted value"``, ``metadata_modified:[2020-01-01T00:00:00Z TO *]``, each
    optionally prefixed ``+`` (must) or ``-`` (must not), joined by spaces or ``AND``."""
    out: list[ds.Filter] = []
    rest = fq.strip()
    while rest:
        if re.match(r"AND\s", rest) or rest == "AND":
            rest = rest[3:].lstrip()
            continue
        m = _TOKEN.match(rest)
        if m is None:
            raise SearchQueryFailed(f"Search Query is invalid: cannot read fq near {rest[:40]!r}")
        rest = rest[m.end() :]
        name, raw, negate = m["field"], m["value"], m["sign"] == "-"
        if raw.startswith(("[", "{")):
            parts = raw[1:-1].split(" TO ")
            if len(parts) != 2 or FIELDS.get(name) not in ("modified", "created"):
                raise SearchQueryFailed(
                    f"Search Query is invalid: {name}: ranges are [FROM TO UNTIL] on "
                    "metadata_modified or metadata_created"
                )
            low, high = (_when(p.strip(), field=name) for p in parts)
            out.append(ds.Filter(FIELDS[name], low=low, high=high, negate=negate))
            continue
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        if name in CONSTANTS:
            if value.lower() != CONSTANTS[name]:
                out.append(ds.Filter("id", value="-", negate=negate))  # matches nothing
            elif negate:
                out.append(ds.Filter("id", value="-"))
            continue
        if name not in FIELDS:
            raise SearchQueryFailed(f"Search Query is invalid: undefined field {name}")
        if FIELDS[name] in ("modified", "created"):
            when = _when(value, field=name)
            out.append(ds.Filter(FIELDS[name], low=when, high=when, negate=negate))
            continue
        out.append(ds.Filter(FIELDS[name], value=value, negate=negate))
    return out


def parse_sort(sort: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for part in sort.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or words[0] not in SORT_FIELDS:
            raise ValidationFailed("sort", f"Cannot sort by {part.strip()!r}")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ValidationFailed("sort", f"Sort direction must be asc or desc, not {words[1]!r}")
        out.append((SORT_FIELDS[words[0]], direction == "desc"))
    return out


def _list_param(params: dict[str, Any], name: str) -> list[str]:
    """A list parameter: a JSON list (as CKAN expects in a query string) or a list."""
    raw = params.get(name)
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = [raw]
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ValidationFailed(name, "Must be a list of field names")
    return raw


# --- shapes ---------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _time(value: datetime | None) -> str | None:
    """CKAN's timestamps: ISO 8601, UTC, without the zone (cached: a package repeats its
    times in every resource)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


def organization_dict(p: ds.Publisher, count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.uuid,
        "name": p.slug,
        "title": p.name,
        "display_name": p.name,
        "description": f"{p.name}（统一社会信用代码 {p.credit_code}，行政区划 {p.division_code}）",
        "image_url": "",
        "image_display_url": "",
        "created": _time(p.created),
        "type": "organization",
        "is_organization": True,
        "approval_status": "approved",
        "state": "active",
    }
    if count is not None:
        out["package_count"] = count
    return out


def group_dict(t: ds.Theme, count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.uuid,
        "name": t.slug,
        "title": t.name,
        "display_name": t.name,
        "description": f"目录分类 {t.code} {t.name}",
        "image_url": "",
        "image_display_url": "",
        "type": "group",
        "is_organization": False,
        "approval_status": "approved",
        "state": "active",
    }
    if count is not None:
        out["package_count"] = count
    return out


def tag_dict(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "display_name": name,
        "state": "active",
        "vocabulary_id": None,
    }


def resource_dict(
    site: Site, d: ds.Dataset, dist: ds.Distribution, position: int
) -> dict[str, Any]:
    return {
        "id": dist.uuid,
        "package_id": d.uuid,
        "name": f"{d.title} ({dist.format})",
        "description": f"{d.title}，{dist.format} 格式"
        + ("（须按开放条件申请）" if d.open_type is ds.OpenType.CONDITIONAL else ""),
        "format": dist.format,
        "mimetype": MEDIA_TYPES[dist.format],
        "url": site.url(dist.path),
        "url_type": None,
        "resource_type": None,
        "state": "active",
        "position": position,
        "created": _time(d.created),
        "last_modified": _time(d.modified),
        "metadata_modified": _time(d.modified),
        "size": None,
        "hash": "",
        "datastore_active": False,
    }


def file_resource_dict(
    site: Site, d: ds.Dataset, f: ds.FileDistribution, position: int
) -> dict[str, Any]:
    """An uploaded file (开放文件) as a CKAN resource, with its size and digest."""
    return {
        "id": f.uuid,
        "package_id": d.uuid,
        "name": f.name,
        "description": f.description or f"{d.title} 的开放文件",
        "format": f.format,
        "mimetype": f.media_type.split(";")[0].strip(),
        "url": site.url(f.path),
        "url_type": None,
        "resource_type": "file",
        "state": "active",
        "position": position,
        "created": _time(f.uploaded_at),
        "last_modified": _time(f.uploaded_at),
        "metadata_modified": _time(f.uploaded_at),
        "size": f.size,
        "hash": f"sha256:{f.sha256}",
        "datastore_active": False,
    }


def _resources(site: Site, d: ds.Dataset) -> list[dict[str, Any]]:
    resources = [resource_dict(site, d, dist, i) for i, dist in enumerate(d.distributions)]
    first = len(resources)
    resources += [file_resource_dict(site, d, f, first + i) for i, f in enumerate(d.files)]
    return resources


def package_dict(site: Site, d: ds.Dataset) -> dict[str, Any]:
    license_id, license_title, license_url = d.license
    resources = _resources(site, d)
    tags = [tag_dict(k) for k in d.keywords]
    extras = {
        "identifier": d.code,
        "open_type": d.open_type.value,
        "open_type_label": d.open_type.label,
        "open_conditions": d.open_conditions,
        "update_cycle": d.update_cycle,
        "frequency": FREQUENCY.get(d.update_cycle, FREQUENCY["unknown"]),
        "issued": d.issued.isoformat() if d.issued else "",
        "catalog_format": d.catalog_format,
        "format_detail": d.format_detail,
        "classification_code": d.classification[-1].code if d.classification else "",
        "items": orjson.dumps(
            [{"name": it.name, "code": it.code, "data_type": it.data_type, "length": it.length,
              "description": it.description, "is_key": it.is_key, "masking": it.masking.value}
             for it in d.items],
        ).decode(),
        "dcat": site.url(f"/open/datasets/{d.slug}.ttl"),
    }  # fmt: skip
    return {
        "id": d.uuid,
        "name": d.slug,
        "title": d.title,
        "notes": d.description,
        "url": site.url(f"/open/datasets/{d.slug}"),
        "author": d.publisher.name,
        "author_email": None,
        "maintainer": d.publisher.name,
        "maintainer_email": None,
        "license_id": license_id,
        "license_title": license_title,
        "license_url": license_url,
        "isopen": d.open_type is ds.OpenType.UNCONDITIONAL,
        "version": str(d.version),
        "state": "active",
        "private": False,
        "type": "dataset",
        "creator_user_id": None,
        "metadata_created": _time(d.created),
        "metadata_modified": _time(d.modified),
        "owner_org": d.publisher.uuid,
        "organization": organization_dict(d.publisher),
        "groups": [group_dict(d.theme)],
        "tags": tags,
        "num_tags": len(tags),
        "resources": resources,
        "num_resources": len(resources),
        "extras": [{"key": k, "value": v} for k, v in extras.items()],
        "relationships_as_object": [],
        "relationships_as_subject": [],
    }


# Encoded packages by (site, dataset): a dataset is a frozen value of everything its
# package shows (snapshot facts, publisher, themes, times, row count, files), so an equal
# one encodes to the same bytes and a changed one misses. Bounded by emptying it when
# full (about 5 kB a package); a plain dict's reads and writes are atomic, so request
# threads share it without a lock.
_PACKAGES: dict[tuple[str, ds.Dataset], bytes] = {}
PACKAGES_KEPT = 2048


def package_json(site: Site, d: ds.Dataset) -> orjson.Fragment:
    """The package of ``d`` as encoded JSON, for answers of many packages (a harvest
    page of 1,000 is 5 MB): built and encoded once while the dataset stays the same."""
    key = (site.base_url, d)
    encoded = _PACKAGES.get(key)
    if encoded is None:
        encoded = orjson.dumps(package_dict(site, d))
        if len(_PACKAGES) >= PACKAGES_KEPT:
            _PACKAGES.clear()
        _PACKAGES[key] = encoded
    return orjson.Fragment(encoded)


# --- actions --------------------------------------------------------------------------------

Action = Callable[[Session, Site, dict[str, Any]], Any]


def package_search(session: Session, site: Site, params: dict[str, Any]) -> dict[str, Any]:
    rows = _int(params, "rows", 10, high=MAX_ROWS)
    start = _int(params, "start", 0)
    q = _str(params, "q").strip()
    if q in ("*:*", "*"):
        q = ""
    facet_fields = _list_param(params, "facet.field")
    unknown = [f for f in facet_fields if f not in FIELDS or FIELDS[f] not in ds.FACETS]
    if unknown:
        raise ValidationFailed("facet.field", f"Unknown facet field {unknown[0]!r}")
    facet_limit = _int(params, "facet.limit", 50, low=-1)
    facet_mincount = _int(params, "facet.mincount", 1)
    if not _bool(params, "facet", True):
        facet_fields = []
    fq = _str(params, "fq")
    for extra in _list_param(params, "fq_list"):
        fq = f"{fq} {extra}"
    query = ds.DatasetQuery(
        q=q,
        filters=parse_fq(fq),
        sort=parse_sort(_str(params, "sort")),
        start=start,
        rows=rows,
        facets=[FIELDS[f] for f in facet_fields],
        facet_limit=facet_limit,
        facet_mincount=facet_mincount,
    )
    try:
        page = ds.search_datasets(session, query)
    except ds.QueryError as exc:
        raise ValidationFailed(exc.field, exc.message) from None
    facets = {
        name: {value: n for value, _label, n in page.facets[FIELDS[name]]} for name in facet_fields
    }
    search_facets = {
        name: {
            "title": name,
            "items": [
                {"name": value, "display_name": label, "count": n}
                for value, label, n in page.facets[FIELDS[name]]
            ],
        }
        for name in facet_fields
    }
    return {
        "count": page.count,
        "sort": _str(params, "sort")
        or ("score desc, metadata_modified desc" if q else "metadata_modified desc"),
        "facets": facets,
        "search_facets": search_facets,
        "results": [package_json(site, d) for d in page.datasets],
    }


def package_show(session: Session, site: Site, params: dict[str, Any]) -> dict[str, Any]:
    key = (
        _required(params, "id") if params.get("id") not in (None, "") else _required(params, "name")
    )
    found = ds.get_dataset(session, key)
    if found is None:
        raise NotFound("Not found: no such open dataset")
    return package_dict(site, found)


def package_list(session: Session, _site: Site, params: dict[str, Any]) -> list[str]:
    limit = _int(params, "limit", -1, low=-1)
    offset = _int(params, "offset", 0)
    return ds.list_slugs(session, limit=None if limit < 0 else limit, offset=offset)


def current_package_list_with_resources(
    session: Session, site: Site, params: dict[str, Any]
) -> list[orjson.Fragment]:
    limit = _int(params, "limit", 100, low=0, high=MAX_ROWS)
    page = _int(params, "page", 0, low=0)
    offset = _int(params, "offset", 0)
    if page:
        offset = (page - 1) * limit
    ids = ds.list_dataset_ids(session, limit=limit, offset=offset)
    return [package_json(site, d) for d in ds.load_datasets(session, ids)]


def _paged(params: dict[str, Any], items: list[Any]) -> list[Any]:
    limit = _int(params, "limit", -1, low=-1)
    offset = _int(params, "offset", 0)
    return items[offset:] if limit < 0 else items[offset : offset + limit]


def organization_list(session: Session, _site: Site, params: dict[str, Any]) -> list[Any]:
    pubs = ds.list_publishers(session)
    wanted = _list_param(params, "organizations")
    if wanted:
        pubs = [p for p in pubs if p.publisher.slug in wanted]
    if _bool(params, "all_fields"):
        return _paged(params, [organization_dict(p.publisher, p.count) for p in pubs])
    return _paged(params, [p.publisher.slug for p in pubs])


def _with_datasets(
    session: Session, site: Site, params: dict[str, Any], field: str, value: str
) -> list[dict[str, Any]]:
    if not _bool(params, "include_datasets"):
        return []
    page = ds.search_datasets(
        session, ds.DatasetQuery(filters=[ds.Filter(field, value=value)], rows=MAX_ROWS)
    )
    return [package_dict(site, d) for d in page.datasets]


def organization_show(session: Session, site: Site, params: dict[str, Any]) -> dict[str, Any]:
    key = _required(params)
    found = ds.get_publisher(session, key)
    if found is None:
        raise NotFound("Not found: no such organization with open datasets")
    out = organization_dict(found.publisher, found.count)
    out["packages"] = _with_datasets(session, site, params, "publisher", found.publisher.slug)
    out["users"], out["extras"], out["groups"], out["tags"] = [], [], [], []
    return out


def group_list(session: Session, _site: Site, params: dict[str, Any]) -> list[Any]:
    themes = ds.list_themes(session)
    wanted = _list_param(params, "groups")
    if wanted:
        themes = [t for t in themes if t.theme.slug in wanted]
    if _bool(params, "all_fields"):
        return _paged(params, [group_dict(t.theme, t.count) for t in themes])
    return _paged(params, [t.theme.slug for t in themes])


def group_show(session: Session, site: Site, params: dict[str, Any]) -> dict[str, Any]:
    key = _required(params)
    found = ds.get_theme(session, key)
    if found is None:
        raise NotFound("Not found: no such group with open datasets")
    out = group_dict(found.theme, found.count)
    out["packages"] = _with_datasets(session, site, params, "theme", found.theme.slug)
    out["users"], out["extras"], out["groups"], out["tags"] = [], [], [], []
    return out


def tag_list(session: Session, _site: Site, params: dict[str, Any]) -> list[Any]:
    query = _str(params, "query").strip()
    tags = [name for name, _n in ds.list_tags(session) if query in name]
    if _bool(params, "all_fields"):
        return [tag_dict(t) for t in tags]
    return tags


def resource_show(session: Session, site: Site, params: dict[str, Any]) -> dict[str, Any]:
    key = _required(params)
    found = ds.get_distribution(session, key)
    if found is not None:
        dataset, dist = found
        return resource_dict(site, dataset, dist, dataset.distributions.index(dist))
    file = ds.get_file_distribution(session, key)
    if file is None:
        raise NotFound("Not found: no such resource of an open dataset")
    dataset, f = file
    return file_resource_dict(site, dataset, f, len(dataset.distributions) + dataset.files.index(f))


def status_show(_session: Session, site: Site, _params: dict[str, Any]) -> dict[str, Any]:
    return {
        "site_title": SITE_TITLE,
        "site_description": "政务数据开放目录：部门向社会开放的数据资源 (government open data)",
        "site_url": site.base_url,
        "ckan_version": CKAN_VERSION,
        "govshare_version": __version__,
        "error_emails_to": None,
        "locale_default": "zh_Hans_CN",
        "extensions": ["dcat"],
    }


def site_read(_session: Session, _site: Site, _params: dict[str, Any]) -> bool:
    return True


ACTIONS: dict[str, Action] = {
    "package_search": package_search,
    "package_show": package_show,
    "package_list": package_list,
    "current_package_list_with_resources": current_package_list_with_resources,
    "organization_list": organization_list,
    "organization_show": organization_show,
    "group_list": group_list,
    "group_show": group_show,
    "tag_list": tag_list,
    "resource_show": resource_show,
    "status_show": status_show,
    "site_read": site_read,
}
