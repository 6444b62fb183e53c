"""The open-data catalog (数据开放目录): the one place that decides what the public sees.

A *dataset* is a catalog entry that is listed (published and not withdrawn) and whose
**published version** says it is open (向社会开放). Everything public — the CKAN API,
the DCAT-AP export, and the portal built on them — reads through this module, and this
module reads an entry's text (name, abstract, items, format, update cycle, open
conditions) only from its published snapshot, never from the working copy: an entry in a
change (变更) keeps showing what was published while its draft is reviewed.

- 无条件开放 (:attr:`OpenType.UNCONDITIONAL`): the published open conditions are empty.
- 有条件开放 (:attr:`OpenType.CONDITIONAL`): they are not; they are shown with the dataset.

Filtering, sorting and facet counts run in SQL over the whole catalog (a few statements
per page however large it is); a page's datasets are then loaded from their published
snapshots in one more query. Full-text ``q`` uses the catalog's own search index
(:func:`govshare.catalog.search.matches`), which indexes an entry in a change at its
published version too.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, tuple_, type_coerce
from sqlalchemy.orm import Session, aliased

from govshare.catalog import revision as catalog_revision
from govshare.catalog import search as catalog_search
from govshare.catalog.codes import ResourceStatus
from govshare.catalog.models import (
    Classification,
    Resource,
    ResourceTransition,
    ResourceVersion,
    withheld_from_portal,
)
from govshare.db import UTCDateTime
from govshare.opendata.models import OpenFile
from govshare.rules.masking import MaskingRule
from govshare.security.models import Department
from govshare.sharing.models import SharedStore

# Stable identifiers: the same entry has the same dataset id on every hub and every day.
NAMESPACE = uuid.UUID("6f1d3f4e-3c55-5b8e-9a57-6f70656e6461")  # "open da(ta)"


class OpenType(StrEnum):
    """开放类型."""

    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"

    @property
    def label(self) -> str:
        return {"unconditional": "无条件开放", "conditional": "有条件开放"}[self.value]


# What a portal user downloads, per catalog format (信息资源格式): tables in three formats,
# anything else (documents, images, streams) as the files the department uploads.
TABULAR_FORMATS = frozenset({"database", "spreadsheet", "api", "self_describing"})
TABLE_DOWNLOADS = ("CSV", "XLSX", "JSON")
FILE_DOWNLOADS = ("ZIP",)
# Spreadsheets past this many rows are not offered (Excel's own limit is 1,048,576; a
# workbook of 100,000 rows is already slow to open): CSV and JSON instead.
XLSX_MAX_ROWS = 100_000
DOWNLOAD_FORMATS = (*TABLE_DOWNLOADS, *FILE_DOWNLOADS)


def download_formats(catalog_format: str) -> tuple[str, ...]:
    """The distribution formats of a dataset of the given catalog format."""
    return TABLE_DOWNLOADS if catalog_format in TABULAR_FORMATS else FILE_DOWNLOADS


# Licences by open type (CKAN licence ids; docs/opendata.md explains the choice).
LICENSES: dict[OpenType, tuple[str, str, str]] = {
    OpenType.UNCONDITIONAL: (
        "cc-by-4.0",
        "Creative Commons Attribution 4.0 (署名 4.0 国际)",
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    OpenType.CONDITIONAL: (
        "other-closed",
        "有条件开放 — 按开放条件申请后使用 (Other, not open)",
        "",
    ),
}


@dataclass(frozen=True)
class Publisher:
    """提供方: a department that provides at least one open dataset."""

    id: int
    name: str
    short_name: str
    credit_code: str
    division_code: str
    level: str  # 行政层级: province, city, district
    created: datetime

    @property
    def slug(self) -> str:
        """URL-safe name: the unified social credit code, lower-cased."""
        return self.credit_code.lower()

    @property
    def uuid(self) -> str:
        return name_uuid(f"department:{self.credit_code}")


@dataclass(frozen=True)
class Theme:
    """A node of the classification (分类) as the public sees it: the 项 level groups
    datasets (CKAN groups); every level's name is a keyword (CKAN tags)."""

    code: str
    name: str

    @property
    def slug(self) -> str:
        return f"theme-{self.code.lower()}"

    @property
    def uuid(self) -> str:
        return name_uuid(f"theme:{self.code}")


def theme_code(classification_code: str) -> str:
    """The group of an entry: its 项 (first three characters), or its 类 when it has none."""
    return classification_code[:3] if len(classification_code) >= 3 else classification_code


def _path_codes(code: str) -> list[str]:
    """The codes from the 类 down to ``code`` (类 1, 项 3, 目 6, 细目 longer)."""
    return list(dict.fromkeys(c for c in (code[:1], code[:3], code[:6], code) if c))


@dataclass(frozen=True)
class DatasetItem:
    """信息项 of a published dataset."""

    name: str
    code: str
    data_type: str
    length: int | None
    description: str
    is_key: bool
    code_table: str | None
    masking: MaskingRule = MaskingRule.NONE  # 开放脱敏: how the portal shows its values

    @property
    def masked(self) -> bool:
        return self.masking is not MaskingRule.NONE


@dataclass(frozen=True)
class Distribution:
    """One way to get a dataset's data (CKAN resource, dcat:Distribution)."""

    dataset_slug: str
    dataset_code: str
    format: str  # CSV, XLSX, JSON, ZIP

    @property
    def uuid(self) -> str:
        return distribution_uuid(self.dataset_code, self.format)

    @property
    def path(self) -> str:
        """Where the portal serves it (phase 2), relative to the hub's root."""
        if self.format in TABLE_DOWNLOADS:
            return f"/open/datasets/{self.dataset_slug}/download.{self.format.lower()}"
        return f"/open/datasets/{self.dataset_slug}/files"


@dataclass(frozen=True)
class FileDistribution:
    """A file the department uploaded for a 无条件开放 dataset (开放文件), listed as a CKAN
    resource and a dcat:Distribution of its own beside the table downloads."""

    dataset_slug: str
    dataset_code: str
    file_id: int
    name: str
    description: str
    media_type: str
    size: int
    sha256: str
    uploaded_at: datetime

    @property
    def uuid(self) -> str:
        return file_uuid(self.dataset_code, self.file_id)

    @property
    def path(self) -> str:
        return f"/open/datasets/{self.dataset_slug}/files/{self.file_id}"

    @property
    def format(self) -> str:
        return self.name.rsplit(".", 1)[-1].upper() if "." in self.name else ""


@dataclass(frozen=True)
class Dataset:
    """A published open entry, read from its published snapshot."""

    resource_id: int
    code: str
    title: str
    description: str
    catalog_format: str
    format_detail: str
    update_cycle: str
    open_conditions: str
    items: tuple[DatasetItem, ...]
    publisher: Publisher
    classification: tuple[Theme, ...]  # from the 类 down to the entry's own node
    issued: date | None
    created: datetime
    modified: datetime
    version: int
    row_count: int | None = None  # of the shared store, when there is one
    files: tuple[FileDistribution, ...] = ()  # 开放文件, for 无条件开放 datasets only

    @property
    def slug(self) -> str:
        return slug_of(self.code)

    @property
    def uuid(self) -> str:
        return dataset_uuid(self.code)

    @property
    def open_type(self) -> OpenType:
        return open_type_of(self.open_conditions)

    @property
    def theme(self) -> Theme:
        wanted = theme_code(self.classification[-1].code)
        return next((t for t in self.classification if t.code == wanted), self.classification[-1])

    @property
    def keywords(self) -> list[str]:
        """The classification's names below the 类, most general first."""
        return [t.name for t in self.classification[1:]] or [self.classification[0].name]

    @property
    def license(self) -> tuple[str, str, str]:
        return LICENSES[self.open_type]

    @property
    def distributions(self) -> list[Distribution]:
        return [
            Distribution(dataset_slug=self.slug, dataset_code=self.code, format=f)
            for f in download_formats(self.catalog_format)
            if f != "XLSX" or self.row_count is None or self.row_count <= XLSX_MAX_ROWS
        ]


def open_type_of(conditions: str | None) -> OpenType:
    # Spaces only, as SQL's trim() does, so the SQL facet and this agree on every text.
    return OpenType.CONDITIONAL if (conditions or "").strip(" ") else OpenType.UNCONDITIONAL


_SLUG_BAD = re.compile(r"[^a-z0-9_-]+")


@lru_cache(maxsize=65536)
def slug_of(code: str) -> str:
    """A resource code as a URL-safe name: ``101001/000003`` → ``101001-000003``."""
    return _SLUG_BAD.sub("-", code.lower()).strip("-")


@lru_cache(maxsize=65536)
def name_uuid(name: str) -> str:
    """The stable id of a named thing (``dataset:…``, ``department:…``); cached, since a
    harvest page of 1,000 datasets names each publisher and theme again and again."""
    return str(uuid.uuid5(NAMESPACE, name))


def dataset_uuid(code: str) -> str:
    return name_uuid(f"dataset:{code}")


def distribution_uuid(code: str, fmt: str) -> str:
    return name_uuid(f"distribution:{code}:{fmt}")


def file_uuid(code: str, file_id: int) -> str:
    return name_uuid(f"file:{code}:{file_id}")


# --- SQL: the published columns of every listed entry -----------------------------------

_V = aliased(ResourceVersion, name="published")
# The working copy *is* the published content while no change is under way; only entries
# in a change need their published snapshot read (and JSON extracted) in SQL. A scalar
# subquery in the CASE's other branch reads it for them alone: an outer join probed the
# versions' index for every open entry (a third of a facet count at 10,000 datasets).
_IN_SYNC = Resource.version == Resource.published_version


def _snapshot_value(extracted: Any) -> Any:
    return (
        select(extracted)
        .where(_V.resource_id == Resource.id, _V.version == Resource.published_version)
        .correlate(Resource)
        .scalar_subquery()
    )


def _published_text(column: Any, key: str) -> Any:
    return case((_IN_SYNC, column), else_=_snapshot_value(_V.snapshot[key].as_string()))


IS_OPEN = case(
    (_IN_SYNC, Resource.is_open), else_=_snapshot_value(_V.snapshot["is_open"].as_boolean())
)
TITLE = _published_text(Resource.name, "name")
FORMAT = _published_text(Resource.format, "format")
UPDATE_CYCLE = _published_text(Resource.update_cycle, "update_cycle")
OPEN_CONDITIONS = _published_text(Resource.open_conditions, "open_conditions")
OPEN_TYPE = case(
    (func.coalesce(func.trim(OPEN_CONDITIONS), "") == "", literal(OpenType.UNCONDITIONAL.value)),
    else_=literal(OpenType.CONDITIONAL.value),
)


def _publish_time(fn: Any) -> Any:
    return (
        select(fn(ResourceTransition.at))
        .where(
            ResourceTransition.resource_id == Resource.id, ResourceTransition.action == "publish"
        )
        .correlate(Resource)
        .scalar_subquery()
    )


# metadata_modified: when the published content last changed, i.e. its publication; the
# working copy's time only while it is the published content (a draft's edits never move it).
MODIFIED = type_coerce(
    case((_IN_SYNC, Resource.updated_at), else_=_publish_time(func.max)), UTCDateTime()
)
CREATED = type_coerce(_publish_time(func.min), UTCDateTime())


def open_select(*columns: Any, matched: Any = None) -> Any:
    """``SELECT columns`` over the open datasets only: the single definition of "open".
    With ``matched`` (a full-text ``matches`` subquery) only the matched entries, read
    from the index first: driven from the resource table instead, SQLite ran the
    full-text query once per listed entry (a second per search at 10,000 datasets)."""
    source = Resource if matched is None else catalog_search.index_first(matched)
    return (
        select(*columns)
        .select_from(source)
        .where(
            # Narrows the read to the open catalog's own index; the conditions below are
            # what decides.
            Resource.open_listed.is_(True),
            Resource.listed.is_(True),
            Resource.published_version.is_not(None),
            Resource.status != ResourceStatus.WITHDRAWN,
            IS_OPEN.is_(True),
        )
    )


# --- queries ------------------------------------------------------------------------------


class QueryError(ValueError):
    """A query the catalog cannot answer; ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


FILTER_FIELDS = frozenset(
    {"publisher", "theme", "tag", "format", "license", "open_type", "update_cycle", "name",
     "id", "modified", "created"}
)  # fmt: skip
SORT_KEYS = frozenset({"relevance", "modified", "created", "name", "title"})
FACETS = ("publisher", "theme", "tag", "format", "license", "open_type", "update_cycle")


@dataclass(frozen=True)
class Filter:
    """One condition: ``field`` equals ``value``, or lies in ``[low, high]`` (either end
    None for open) for the date fields; ``negate`` turns it around."""

    field: str
    value: str | None = None
    low: datetime | None = None
    high: datetime | None = None
    negate: bool = False


@dataclass
class DatasetQuery:
    q: str = ""
    filters: list[Filter] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (key, descending)
    start: int = 0
    rows: int = 10
    facets: Sequence[str] = ()
    facet_limit: int = 50  # negative: no limit
    facet_mincount: int = 1


@dataclass
class DatasetPage:
    count: int
    datasets: list[Dataset]
    facets: dict[str, list[tuple[str, str, int]]]  # facet → (value, label, count)


def _dept_ids_by_slug(slug: str) -> Any:
    return select(Department.id).where(func.lower(Department.credit_code) == slug.lower())


def _classification_ids(
    session: Session, *, prefix: str | None = None, name: str | None = None
) -> Any:
    """Ids of the classification nodes under ``prefix``, or under every node named ``name``."""
    if prefix is not None:
        return select(Classification.id).where(
            Classification.code.startswith(prefix, autoescape=True)
        )
    named = [
        c
        for (c,) in session.execute(select(Classification.code).where(Classification.name == name))
    ]
    if not named:
        return select(Classification.id).where(literal(False))
    return select(Classification.id).where(
        or_(*[Classification.code.startswith(c, autoescape=True) for c in named])
    )


def _condition(session: Session, f: Filter) -> Any:
    v = f.value or ""
    cond: Any
    if f.field == "publisher":
        cond = Resource.provider_department_id.in_(_dept_ids_by_slug(v))
    elif f.field == "theme":
        code = v[len("theme-") :] if v.lower().startswith("theme-") else v
        real = session.scalar(
            select(Classification.code).where(func.lower(Classification.code) == code.lower())
        )
        cond = (
            Resource.classification_id.in_(_classification_ids(session, prefix=real))
            if real is not None
            else literal(False)
        )
    elif f.field == "tag":
        cond = Resource.classification_id.in_(_classification_ids(session, name=v))
    elif f.field == "format":
        wanted = v.upper()
        if wanted in TABLE_DOWNLOADS:
            cond = FORMAT.in_(sorted(TABULAR_FORMATS))
        elif wanted in FILE_DOWNLOADS:
            cond = FORMAT.not_in(sorted(TABULAR_FORMATS))
        else:
            cond = literal(False)
    elif f.field == "license":
        types = [t.value for t, lic in LICENSES.items() if lic[0] == v]
        cond = OPEN_TYPE.in_(types) if types else literal(False)
    elif f.field == "open_type":
        cond = OPEN_TYPE.in_([v])
    elif f.field == "update_cycle":
        cond = UPDATE_CYCLE.in_([v])
    elif f.field == "name":
        cond = Resource.code.in_(_codes_for_slug(session, v))
    elif f.field == "id":
        found = code_of_uuid(session, v)
        cond = Resource.code == found if found is not None else literal(False)
    elif f.field in ("modified", "created"):
        column = MODIFIED if f.field == "modified" else CREATED
        parts = []
        if f.low is not None:
            parts.append(column >= literal(f.low, UTCDateTime()))
        if f.high is not None:
            parts.append(column <= literal(f.high, UTCDateTime()))
        cond = and_(column.is_not(None), *parts)
    else:
        raise QueryError("fq", f"unknown field {f.field}")
    return ~cond if f.negate else cond


def _codes_for_slug(session: Session, slug: str) -> list[str]:
    """Resource codes whose slug is ``slug``: the code with its last ``-`` read as ``/``."""
    slug = slug.lower()
    head, sep, tail = slug.rpartition("-")
    guesses = {slug, f"{head}/{tail}"} if sep else {slug}
    found = session.scalars(
        select(Resource.code).where(func.lower(Resource.code).in_(sorted(guesses)))
    )
    return [c for c in found if slug_of(c) == slug]


def code_of_uuid(session: Session, value: str) -> str | None:
    """The code of the open dataset whose id is ``value`` (ids are name-based UUIDs, so
    this scans the open codes; a few milliseconds on 10,000 datasets)."""
    try:
        wanted = str(uuid.UUID(value))
    except ValueError:
        return None
    for (code,) in session.execute(open_select(Resource.code)):
        if dataset_uuid(code) == wanted:
            return str(code)
    return None


def search_datasets(session: Session, query: DatasetQuery) -> DatasetPage:
    """A page of open datasets with the total and the asked facets."""
    for f in query.filters:
        if f.field not in FILTER_FIELDS:
            raise QueryError("fq", f"unknown field {f.field}")
    for key, _desc in query.sort:
        if key not in SORT_KEYS:
            raise QueryError("sort", f"cannot sort by {key}")
    for name in query.facets:
        if name not in FACETS:
            raise QueryError("facet.field", f"unknown facet {name}")
    # Read before anything else the search computes (see catalog.revision).
    revision = catalog_revision.current(session)
    conds = [_condition(session, f) for f in query.filters]
    matched = catalog_search.matches(session, query.q, open_only=True) if query.q.strip() else None
    base = open_select(Resource.id.label("rid"), matched=matched).where(*conds)

    order: list[Any] = []
    sort = query.sort or ([("relevance", False)] if matched is not None else []) + [
        ("modified", True)
    ]
    for key, desc in sort:
        column: Any = {
            "modified": MODIFIED,
            "created": CREATED,
            "name": Resource.code,
            "title": TITLE,
            "relevance": matched.c.score if matched is not None else None,
        }[key]
        if column is None:
            continue
        # Relevance scores are lower for better matches; "score desc" means best first.
        if key == "relevance":
            desc = not desc
        order.append(column.desc() if desc else column.asc())
    order.append(Resource.id.asc())
    # The total is counted once: from the facets' groups when they are asked for,
    # otherwise with the page (a window over the matches, which doubles the page's cost);
    # only a page past the end needs a count of its own. Groups and totals are kept
    # until the catalog's next revision, so a harvester's next pages are read without
    # counting again.
    kept = _Kept(revision, query)
    combos = (
        kept.get("groups", lambda: _count_groups(session, matched, conds)) if query.facets else None
    )
    total = sum(int(c.n) for c in combos) if combos is not None else kept.find("total")
    counted = total is None
    paged = base if total is not None else base.add_columns(func.count().over().label("total"))
    found = (
        session.execute(paged.order_by(*order).offset(query.start).limit(query.rows)).all()
        if query.rows > 0
        else []
    )
    if total is None:
        if found:
            total = int(found[0].total)
        elif query.rows > 0 and query.start == 0:
            total = 0
        else:
            total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if counted:
        kept.keep("total", total)
    facets = _facets(session, combos, query) if combos is not None else {}
    ids = [r.rid for r in found]
    return DatasetPage(count=total, datasets=load_datasets(session, ids), facets=facets)


# What a search counted, kept per (what, database, generation, revision, search terms,
# filters) until the catalog's next revision: its facet groups (counting 10,000 open
# datasets is most of a faceted search) and its total.
_KEPT: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_KEPT_MAX = 512
_KEPT_LOCK = threading.Lock()


class _Kept:
    """A search's view of the kept counts: nothing without a revision (a database whose
    revision triggers are missing)."""

    def __init__(self, revision: tuple[str, str, int] | None, query: DatasetQuery) -> None:
        self.key: tuple[Any, ...] | None = None
        if revision is not None:
            terms = tuple(catalog_search.query_terms(query.q)) if query.q.strip() else ()
            self.key = (*revision, terms, tuple(query.filters))

    def find(self, what: str) -> Any:
        if self.key is None:
            return None
        with _KEPT_LOCK:
            found = _KEPT.get((what, *self.key))
            if found is not None:
                _KEPT.move_to_end((what, *self.key))
            return found

    def keep(self, what: str, value: Any) -> None:
        if self.key is None:
            return
        with _KEPT_LOCK:
            _KEPT[(what, *self.key)] = value
            while len(_KEPT) > _KEPT_MAX:
                _KEPT.popitem(last=False)

    def get(self, what: str, compute: Callable[[], Any]) -> Any:
        """What was kept, or ``compute()`` kept now."""
        found = self.find(what)
        if found is None:
            found = compute()
            self.keep(what, found)
        return found


def _count_groups(session: Session, matched: Any, conds: list[Any]) -> Sequence[Any]:
    """The matched datasets grouped by their combination of facet columns, with counts."""
    keys = [
        Resource.provider_department_id,
        Resource.classification_id,
        FORMAT,
        OPEN_TYPE,
        UPDATE_CYCLE,
    ]
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    return session.execute(
        open_select(*labelled, func.count().label("n"), matched=matched)
        .where(*conds)
        .group_by(*keys)
    ).all()


# The column of ``_facet_groups``' rows each facet is computed from.
_FACET_COLUMN = {
    "publisher": 0,
    "theme": 1,
    "tag": 1,
    "format": 2,
    "license": 3,
    "open_type": 3,
    "update_cycle": 4,
}


def _facets(
    session: Session, combos: Sequence[Any], query: DatasetQuery
) -> dict[str, list[tuple[str, str, int]]]:
    """Counts per facet value over the matched datasets, from their groups."""
    depts = {
        d.id: d
        for d in session.execute(
            select(Department.id, Department.credit_code, Department.name).where(
                Department.id.in_({c[0] for c in combos})
            )
        )
    }
    klass_codes = dict(
        session.execute(
            select(Classification.id, Classification.code).where(
                Classification.id.in_({c[1] for c in combos})
            )
        ).all()
    )
    themes = _themes(session, {p for code in klass_codes.values() for p in _path_codes(code)})

    def values(name: str, key: Any) -> list[tuple[str, str]]:
        """The facet values (value, label) of one group's column."""
        if name == "publisher":
            dept = depts[key]
            return [(dept.credit_code.lower(), dept.name)]
        if name in ("theme", "tag"):
            code = klass_codes[key]
            if name == "theme":
                group = themes.get(theme_code(code))
                return [(group.slug, group.name)] if group else []
            path = [themes[c] for c in _path_codes(code) if c in themes]
            return [(t.name, t.name) for t in (path[1:] or path)]
        if name == "format":
            return [(f, f) for f in download_formats(key)]
        if name == "license":
            return [LICENSES[OpenType(key)][:2]]
        if name == "open_type":
            return [(key, OpenType(key).label)]
        return [(key, key)]  # update_cycle

    # Each facet depends on one column of the groups: add the groups up per value of
    # that column first, then turn each distinct value into its facet values once.
    counts: dict[str, Counter[str]] = {name: Counter() for name in FACETS}
    labels: dict[str, dict[str, str]] = {name: {} for name in FACETS}
    for name in query.facets:
        per_key: Counter[Any] = Counter()
        column = _FACET_COLUMN[name]
        for combo in combos:
            per_key[combo[column]] += int(combo[5])
        for key, n in per_key.items():
            for value, label in values(name, key):
                counts[name][value] += n
                labels[name][value] = label
    out: dict[str, list[tuple[str, str, int]]] = {}
    for name in query.facets:
        ranked = sorted(counts[name].items(), key=lambda p: (-p[1], p[0]))
        ranked = [(v, n) for v, n in ranked if n >= query.facet_mincount]
        if query.facet_limit >= 0:
            ranked = ranked[: query.facet_limit]
        out[name] = [(v, labels[name][v], n) for v, n in ranked]
    return out


def _themes(session: Session, codes: Iterable[str]) -> dict[str, Theme]:
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = session.execute(
        select(Classification.code, Classification.name).where(Classification.code.in_(wanted))
    )
    return {code: Theme(code=code, name=name) for code, name in rows}


def _publisher(dept: Department) -> Publisher:
    return Publisher(
        id=dept.id,
        name=dept.name,
        short_name=dept.short_name,
        credit_code=dept.credit_code,
        division_code=dept.division_code,
        level=str(dept.level),
        created=dept.created_at,
    )


def _items(snapshot: dict[str, Any]) -> tuple[DatasetItem, ...]:
    """The published items the public may see: every item of the published version but
    those marked 不予开放, each with its masking (开放脱敏). Every portal output (page,
    preview, statistics, downloads, row API, CKAN, DCAT) takes a dataset's items from
    here, and only from here."""
    return tuple(
        DatasetItem(
            name=str(it["name"]),
            code=str(it["code"]),
            data_type=str(it["data_type"]),
            length=it.get("length"),
            description=str(it.get("description") or ""),
            is_key=bool(it.get("is_key")),
            code_table=it.get("code_table"),
            # Snapshots carry open_masking only when it is set.
            masking=MaskingRule(it.get("open_masking") or MaskingRule.NONE),
        )
        for it in snapshot.get("items", [])
        if not withheld_from_portal(it)
    )


@dataclass(frozen=True, slots=True)
class PublishedFacts:
    """What a dataset takes from its published version's snapshot. A version's snapshot
    never changes, so these are kept per (resource, version) for the process's life
    (``_FACTS``): a page of datasets reads and parses only the snapshots it has not seen."""

    title: str
    description: str
    catalog_format: str
    format_detail: str
    update_cycle: str
    open_conditions: str
    items: tuple[DatasetItem, ...]
    classification_code: str
    is_open: bool

    @classmethod
    def of(cls, snap: dict[str, Any]) -> PublishedFacts:
        return cls(
            title=str(snap["name"]),
            description=str(snap["abstract"]),
            catalog_format=str(snap["format"]),
            format_detail=str(snap.get("format_detail") or ""),
            update_cycle=str(snap["update_cycle"]),
            open_conditions=str(snap.get("open_conditions") or ""),
            items=_items(snap),
            classification_code=str(snap["classification_code"]),
            # The SQL said open; the snapshot must agree.
            is_open=snap.get("is_open") is True,
        )


# (database, resource id, version) → facts: the database because one process may serve
# several (the test suite's hubs). Bounded by emptying it when full: a plain dict's
# reads and writes are atomic, so the request threads share it without a lock.
_FACTS: dict[tuple[str, int, int], PublishedFacts] = {}
FACTS_KEPT = 20_000


def _published_facts(
    session: Session, versions: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], PublishedFacts]:
    database = str(session.get_bind().engine.url)
    wanted = list(dict.fromkeys(versions))
    found = {key: fact for key in wanted if (fact := _FACTS.get((database, *key))) is not None}
    missing = [key for key in wanted if key not in found]
    for start in range(0, len(missing), 500):
        part = missing[start : start + 500]
        rows = session.execute(
            select(
                ResourceVersion.resource_id, ResourceVersion.version, ResourceVersion.snapshot
            ).where(tuple_(ResourceVersion.resource_id, ResourceVersion.version).in_(part))
        )
        for rid, version, snap in rows:
            found[(rid, version)] = PublishedFacts.of(snap)
    if len(_FACTS) + len(missing) > FACTS_KEPT:
        _FACTS.clear()
    for key in missing:
        if key in found:
            _FACTS[(database, *key)] = found[key]
    return found


def load_datasets(session: Session, ids: Sequence[int]) -> list[Dataset]:
    """The datasets of the given resource ids, in that order, read from their published
    snapshots (ids that are not open datasets are left out)."""
    if not ids:
        return []
    v = aliased(ResourceVersion)
    # The page's ids read first, by primary key: left to itself SQLite walks every listed
    # entry through the index on ``listed`` to find twenty of them.
    wanted = aliased(Resource)
    page = select(wanted.id.label("id")).where(wanted.id.in_(list(ids)))
    rows = session.execute(
        open_select(
            Resource.id,
            Resource.code,
            Resource.provider_department_id,
            Resource.publish_date,
            Resource.published_version,
            MODIFIED.label("modified"),
            CREATED.label("created"),
            matched=page.subquery("page"),
        ).join(v, and_(v.resource_id == Resource.id, v.version == Resource.published_version))
    ).all()
    facts = _published_facts(session, ((r.id, int(r.published_version)) for r in rows))
    depts = {
        d.id: _publisher(d)
        for d in session.scalars(
            select(Department).where(Department.id.in_({r.provider_department_id for r in rows}))
        )
    }
    codes = {p for f in facts.values() for p in _path_codes(f.classification_code)}
    themes = _themes(session, codes)
    row_counts: dict[int, int] = dict(
        session.execute(
            select(SharedStore.resource_id, SharedStore.row_count).where(
                SharedStore.resource_id.in_([r.id for r in rows])
            )
        ).all()
    )
    files = _served_files(
        session,
        [
            r.id
            for r in rows
            if (f := facts.get((r.id, int(r.published_version)))) is not None
            and open_type_of(f.open_conditions) is OpenType.UNCONDITIONAL
        ],
    )
    by_id: dict[int, Dataset] = {}
    for r in rows:
        fact = facts.get((r.id, int(r.published_version)))
        if fact is None or not fact.is_open:
            continue
        path = tuple(themes[c] for c in _path_codes(fact.classification_code) if c in themes)
        by_id[r.id] = Dataset(
            resource_id=r.id,
            code=r.code,
            title=fact.title,
            description=fact.description,
            catalog_format=fact.catalog_format,
            format_detail=fact.format_detail,
            update_cycle=fact.update_cycle,
            open_conditions=fact.open_conditions,
            items=fact.items,
            publisher=depts[r.provider_department_id],
            classification=path,
            issued=r.publish_date,
            created=r.created or r.modified,
            modified=r.modified,
            version=int(r.published_version),
            row_count=row_counts.get(r.id),
            files=tuple(
                FileDistribution(
                    dataset_slug=slug_of(r.code),
                    dataset_code=r.code,
                    file_id=f.id,
                    name=f.name,
                    description=f.description,
                    media_type=f.media_type,
                    size=f.size,
                    sha256=f.sha256,
                    uploaded_at=f.uploaded_at,
                )
                for f in files.get(r.id, ())
            ),
        )
    return [by_id[i] for i in ids if i in by_id]


def get_dataset(session: Session, key: str) -> Dataset | None:
    """The open dataset named by its slug, its resource code or its id; None otherwise."""
    key = key.strip()
    if not key:
        return None
    codes = [key, *_codes_for_slug(session, key)]
    uuid_code = code_of_uuid(session, key)
    if uuid_code is not None:
        codes.append(uuid_code)
    rid = session.scalar(open_select(Resource.id).where(Resource.code.in_(codes)).limit(1))
    if rid is None:
        return None
    found = load_datasets(session, [rid])
    return found[0] if found else None


def is_unconditional(snapshot: dict[str, Any]) -> bool:
    return open_type_of(snapshot.get("open_conditions")) is OpenType.UNCONDITIONAL


def _served_files(session: Session, resource_ids: list[int]) -> dict[int, list[OpenFile]]:
    """The files not withdrawn of the given resources, newest first (as the portal lists
    them)."""
    found: dict[int, list[OpenFile]] = {}
    if not resource_ids:
        return found
    for f in session.scalars(
        select(OpenFile)
        .where(OpenFile.resource_id.in_(resource_ids), OpenFile.withdrawn_at.is_(None))
        .order_by(OpenFile.uploaded_at.desc(), OpenFile.id.desc())
    ):
        found.setdefault(f.resource_id, []).append(f)
    return found


def get_file_distribution(
    session: Session, distribution_id: str
) -> tuple[Dataset, FileDistribution] | None:
    """The open file with the given resource id (a CKAN resource id) and its dataset;
    None unless the file is served to anyone."""
    try:
        wanted = str(uuid.UUID(distribution_id))
    except ValueError:
        return None
    candidates = session.execute(
        select(OpenFile.id, OpenFile.resource_id, Resource.code)
        .join(Resource, Resource.id == OpenFile.resource_id)
        .where(OpenFile.withdrawn_at.is_(None))
    )
    for file_id, rid, code in candidates:
        if file_uuid(code, file_id) == wanted:
            found = load_datasets(session, [rid])  # open, published, unconditional or not
            return next(((d, f) for d in found for f in d.files if f.file_id == file_id), None)
    return None


def get_distribution(session: Session, distribution_id: str) -> tuple[Dataset, Distribution] | None:
    """The distribution with the given id and its dataset; None if no open dataset has it."""
    try:
        wanted = str(uuid.UUID(distribution_id))
    except ValueError:
        return None
    for rid, code, fmt in session.execute(open_select(Resource.id, Resource.code, FORMAT)):
        for f in download_formats(fmt):
            if distribution_uuid(code, f) == wanted:
                found = load_datasets(session, [rid])
                if not found:
                    return None
                return found[0], next(d for d in found[0].distributions if d.format == f)
    return None


def list_slugs(session: Session, *, limit: int | None = None, offset: int = 0) -> list[str]:
    """Names of every open dataset, ordered by name."""
    stmt = open_select(Resource.code).order_by(Resource.code).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [slug_of(c) for c in session.scalars(stmt)]


def list_dataset_ids(
    session: Session, *, limit: int | None = None, offset: int = 0, newest_first: bool = True
) -> list[int]:
    """Resource ids of open datasets, newest published first (or by name)."""
    order = [MODIFIED.desc(), Resource.id.asc()] if newest_first else [Resource.code.asc()]
    stmt = open_select(Resource.id).order_by(*order).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def count_datasets(session: Session) -> int:
    return (
        session.scalar(select(func.count()).select_from(open_select(Resource.id).subquery())) or 0
    )


@dataclass(frozen=True)
class PublisherCount:
    publisher: Publisher
    count: int


def list_publishers(session: Session) -> list[PublisherCount]:
    """Departments with open datasets, by name, with how many each provides."""
    counts = dict(
        session.execute(
            open_select(Resource.provider_department_id, func.count()).group_by(
                Resource.provider_department_id
            )
        ).all()
    )
    depts = session.scalars(
        select(Department).where(Department.id.in_(list(counts))).order_by(Department.credit_code)
    )
    return [PublisherCount(_publisher(d), int(counts[d.id])) for d in depts]


def get_publisher(session: Session, key: str) -> PublisherCount | None:
    """A department with open datasets by slug (credit code), credit code or id."""
    key = key.strip().lower()
    return next(
        (p for p in list_publishers(session) if key in (p.publisher.slug, p.publisher.uuid)), None
    )


@dataclass(frozen=True)
class ThemeCount:
    theme: Theme
    count: int


def list_themes(session: Session) -> list[ThemeCount]:
    """Groups (the 项 of the classification) with open datasets, by code."""
    rows = session.execute(
        open_select(Classification.code, func.count())
        .join(Classification, Classification.id == Resource.classification_id)
        .group_by(Classification.code)
    ).all()
    counts: Counter[str] = Counter()
    for code, n in rows:
        counts[theme_code(code)] += int(n)
    themes = _themes(session, counts)
    return [ThemeCount(themes[c], counts[c]) for c in sorted(counts) if c in themes]


def get_theme(session: Session, key: str) -> ThemeCount | None:
    key = key.strip().lower()
    return next(
        (
            t
            for t in list_themes(session)
            if key in (t.theme.slug, t.theme.uuid, t.theme.code.lower())
        ),
        None,
    )


def list_tags(session: Session) -> list[tuple[str, int]]:
    """Keywords (classification names below the 类) with their dataset counts."""
    rows = session.execute(
        open_select(Classification.code, func.count())
        .join(Classification, Classification.id == Resource.classification_id)
        .group_by(Classification.code)
    ).all()
    paths = {code: _path_codes(code) for code, _ in rows}
    themes = _themes(session, {c for p in paths.values() for c in p})
    counts: Counter[str] = Counter()
    for code, n in rows:
        names = [themes[c].name for c in paths[code] if c in themes]
        for name in dict.fromkeys(names[1:] or names):
            counts[name] += int(n)
    return sorted(counts.items())


def first_published(session: Session) -> datetime | None:
    """When the first open dataset still listed was published."""
    value: datetime | None = session.scalar(open_select(func.min(CREATED)))
    return value


def last_modified(session: Session) -> datetime | None:
    """When the open catalog last changed (its newest publication)."""
    value: datetime | None = session.scalar(open_select(func.max(MODIFIED)))
    return value


__all__ = [
    "DOWNLOAD_FORMATS",
    "FACETS",
    "LICENSES",
    "Dataset",
    "DatasetItem",
    "DatasetPage",
    "DatasetQuery",
    "Distribution",
    "Filter",
    "OpenType",
    "Publisher",
    "QueryError",
    "Theme",
    "count_datasets",
    "get_dataset",
    "get_distribution",
    "get_publisher",
    "get_theme",
    "last_modified",
    "list_dataset_ids",
    "list_publishers",
    "list_slugs",
    "list_tags",
    "list_themes",
    "load_datasets",
    "open_select",
    "search_datasets",
]
