"""Chinese full-text search of the catalog, the same on SQLite and PostgreSQL.

Text is segmented with jieba on the way in and on the way out, so both databases only
see space-separated words: SQLite indexes them with FTS5, PostgreSQL with a GIN index
over a ``tsvector`` built from the word list. Facets are counted in one statement over
the matched set (on SQLite beside the page query, on a second connection); pagination is
keyset (a cursor of the last row's sort key and id).
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from types import SimpleNamespace
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    column,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, lazyload, selectinload
from sqlalchemy.sql.selectable import Join

from govshare.catalog import revision
from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.catalog.models import (
    Classification,
    Resource,
    ResourceVersion,
    withheld_from_portal,
)
from govshare.cursors import codec_of
from govshare.errors import InvalidInput
from govshare.security.models import Department

# Domain words jieba's dictionary lacks; without them 公民身份号码 splits into three.
# fmt: off
DOMAIN_WORDS = [
    "公民身份号码", "统一社会信用代码", "社会保障", "社保", "医保", "公积金", "不动产",
    "出生医学证明", "死亡医学证明", "营业执照", "纳税人识别号", "法定代表人", "行政区划",
    "户籍", "居住证", "婚姻登记", "残疾人证", "低保", "特困", "养老保险", "失业保险",
    "工伤保险", "生育保险", "参保", "停保", "电子证照", "市场监管", "卫健", "人社", "民政",
    "税务", "公安", "住建", "自然资源", "规划",
]
# fmt: on
STOPWORDS = frozenset("的与和及或等之了在是对为以其中并有于、")  # one character each
_TOKEN = re.compile(r"\w", re.UNICODE)
_jieba_lock = threading.Lock()


@cache
def _jieba() -> Any:
    import logging
    import warnings

    with warnings.catch_warnings():
        # jieba (2020) has regex escapes that newer Pythons warn about when compiling.
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        for word in DOMAIN_WORDS:
            jieba.add_word(word, freq=200000)
        jieba.initialize()
    return jieba


# Seconds after the hub's start before the dictionary loads in the background: by then
# the hub answers (its start takes 1-3 s), and the load does not slow the start down.
WARM_UP_DELAY_SECONDS = 3.0


def warm_up() -> None:
    """Load jieba's dictionary now (about a second) instead of during the first search."""
    _jieba()


def warm_up_later(delay: float) -> threading.Timer:
    """:func:`warm_up` on a daemon thread after ``delay`` seconds. A search before then
    loads the dictionary itself."""
    timer = threading.Timer(delay, warm_up)
    timer.name, timer.daemon = "jieba-warm-up", True
    timer.start()
    return timer


def segment(text_: str, *, for_index: bool) -> list[str]:
    """Words of ``text_``, lower-cased, without punctuation or stopwords."""
    jb = _jieba()
    words = jb.cut_for_search(text_) if for_index else jb.cut(text_)
    out = []
    for w in words:
        w = w.strip().lower()
        if w and w not in STOPWORDS and _TOKEN.search(w):
            out.append(w)
    return out


_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2,}")


def bigrams(text_: str) -> list[str]:
    """Every pair of adjacent Chinese characters: indexed beside the words, so a query
    that is any part of a name (出生医学证, 法定代表) matches however jieba split it."""
    return [run[i : i + 2] for run in _CJK_RUN.findall(text_) for i in range(len(run) - 1)]


@functools.lru_cache(maxsize=2048)
def index_terms(text_: str) -> str:
    """What a document column holds: its words and its character pairs. Remembered:
    an entry is re-indexed with the same text at each lifecycle step."""
    return " ".join([*segment(text_, for_index=True), *bigrams(text_)])


def query_terms(q: str) -> list[str]:
    """The terms every match must hold. A run of Chinese characters is cut into words and
    each word stands for its character pairs, so a part of a word matches (出生医学证,
    法定代表) while words typed together still match apart (养犬免疫 finds 养犬登记免疫);
    a one-character word is paired with its neighbour. Everything else by its words."""
    terms: list[str] = []
    for run in _CJK_RUN.findall(q):
        at = 0
        for word in _jieba().cut(run):
            if len(word) > 1:
                terms.extend(bigrams(word))
            else:
                terms.append(run[at - 1 : at + 1] if at else run[:2])
            at += len(word)
    terms += segment(_CJK_RUN.sub(" ", q), for_index=False)
    return list(dict.fromkeys(terms))


FACETS = (
    "department",
    "classification",
    "kind",
    "sharing_type",
    "format",
    "update_cycle",
    "is_open",
)

# Search documents live outside the ORM models: their tables differ per database.
_meta = MetaData()
pg_doc = Table(
    "catalog_search",
    _meta,
    Column("resource_id", Integer, primary_key=True),
    Column("tsv", Text),
)


def in_change(resource: Resource) -> bool:
    """变更: a published entry whose working copy differs from what was published (the
    entry is back in the review cycle); readers outside its department still see, and
    search, the published version."""
    return (
        resource.published_version is not None and resource.status is not ResourceStatus.PUBLISHED
    )


def published_versions(
    session: Session, resources: Sequence[Resource]
) -> dict[int, dict[str, Any]]:
    """The published snapshot of each entry in a change, by id (one query)."""
    pairs = [(r.id, r.published_version) for r in resources if in_change(r)]
    if not pairs:
        return {}
    rows = session.execute(
        select(ResourceVersion.resource_id, ResourceVersion.snapshot).where(
            or_(
                *[
                    and_(ResourceVersion.resource_id == i, ResourceVersion.version == v)
                    for i, v in pairs
                ]
            )
        )
    )
    return {row.resource_id: row.snapshot for row in rows}


def documents(
    *,
    name: str,
    code: str,
    items: Sequence[tuple[str, str, str]],
    abstract: str,
    provider: str,
    provider_short: str,
    classification: str,
    withheld_items: Sequence[tuple[str, str, str]] = (),
) -> tuple[str, str, str, str]:
    """An entry's four search columns, ranked in this order: the name (and code), the
    information items (name, code, description), the rest (abstract, provider,
    classification); and, apart, the items withheld from the open-data portal (不予开放),
    ranked as items in the sharing catalog and left out of the portal's searches."""
    return (
        index_terms(f"{name} {code}"),
        _items_terms(items),
        index_terms(f"{abstract} {provider} {provider_short} {classification}"),
        _items_terms(withheld_items),
    )


def _items_terms(items: Sequence[tuple[str, str, str]]) -> str:
    return index_terms(" ".join(f"{n} {c} {d}" for n, c, d in items))


def _documents(
    resource: Resource, published: dict[str, Any] | None = None
) -> tuple[str, str, str, str]:
    """The search columns of an entry: of its published version while it is in a
    change, so that words only a draft has are found by nobody (not even its department,
    whose 本部门目录 lists the draft all the same)."""
    items: dict[bool, list[tuple[str, str, str]]] = {False: [], True: []}
    if published is None:
        name, abstract = resource.name, resource.abstract
        for it in resource.items:
            items[it.withheld_from_portal].append((it.name, it.code, it.description))
    else:
        name, abstract = published["name"], published["abstract"]
        for snap in published["items"]:
            items[withheld_from_portal(snap)].append(
                (snap["name"], snap["code"], snap["description"])
            )
    return documents(
        name=name,
        code=resource.code,
        items=items[False],
        abstract=abstract,
        provider=resource.provider.name,
        provider_short=resource.provider.short_name,
        classification=resource.classification.name,
        withheld_items=items[True],
    )


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def index_resource(session: Session, resource: Resource) -> None:
    """(Re)index one entry; called in the same transaction as every change."""
    published = published_versions(session, [resource]).get(resource.id)
    write_documents(session, [(resource.id, *_documents(resource, published))])


def index_many(session: Session, resources: list[Resource]) -> None:
    """Bulk indexing for imports and demo loads (one statement per batch)."""
    if not resources:
        return
    published = published_versions(session, resources)
    write_documents(session, [(r.id, *_documents(r, published.get(r.id))) for r in resources])


# PostgreSQL ranks lexemes by weight (A the name, B the items, C the rest, D the withheld
# items); weights live on positions, so each document is written as a tsvector literal
# with positions.
_PG_UPSERT = (
    "INSERT INTO catalog_search (resource_id, tsv) VALUES (:id, CAST(:doc AS tsvector)) "
    "ON CONFLICT (resource_id) DO UPDATE SET tsv = excluded.tsv"
)
_PG_MAX_POSITION = 16383


def _pg_lexeme(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _pg_vector(*columns: tuple[str, str]) -> str:
    """A tsvector literal of (terms, weight) columns: ``'word':1A 'pair':2B …``."""
    out: list[str] = []
    position = 0
    for terms, weight in columns:
        for term in terms.split():
            position = min(position + 1, _PG_MAX_POSITION)
            out.append(f"{_pg_lexeme(term)}:{position}{weight}")
    return " ".join(out)


def write_documents(
    session: Session | Connection, docs: Sequence[tuple[int, str, str, str, str]]
) -> None:
    """Store (id, name, items, rest, withheld items) search columns; ``session`` may be
    a connection (migrations)."""
    if not docs:
        return
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "sqlite":
        session.execute(
            text("DELETE FROM catalog_fts WHERE rowid = :id"), [{"id": d[0]} for d in docs]
        )
        session.execute(
            text(
                "INSERT INTO catalog_fts (rowid, title, items, body, withheld) "
                "VALUES (:id, :t, :i, :b, :w)"
            ),
            [{"id": i, "t": t, "i": it, "b": b, "w": w} for i, t, it, b, w in docs],
        )
        revision.bump(session)
    else:
        session.execute(
            text(_PG_UPSERT),
            [
                {"id": i, "doc": _pg_vector((t, "A"), (it, "B"), (b, "C"), (w, "D"))}
                for i, t, it, b, w in docs
            ],
        )


def remove_resource(session: Session, resource_id: int) -> None:
    if _is_sqlite(session):
        session.execute(text("DELETE FROM catalog_fts WHERE rowid = :id"), {"id": resource_id})
        revision.bump(session)
    else:
        session.execute(delete(pg_doc).where(pg_doc.c.resource_id == resource_id))


def rebuild_index(session: Session, batch: int = 2000) -> int:
    """Re-segment every entry (after a dictionary change); returns the count."""
    if _is_sqlite(session):
        session.execute(text("DELETE FROM catalog_fts"))
        revision.bump(session)
    else:
        session.execute(delete(pg_doc))
    done, last = 0, 0
    while True:
        rows = list(
            session.scalars(
                select(Resource).where(Resource.id > last).order_by(Resource.id).limit(batch)
            )
        )
        if not rows:
            return done
        index_many(session, rows)
        done += len(rows)
        last = rows[-1].id
        session.expunge_all()


@dataclass
class SearchQuery:
    """What a reader asks the catalog: words, facet filters, order and a page."""

    q: str = ""
    department_id: int | None = None
    classification: str | None = None  # a code; matches the node and everything below it
    kind: ResourceKind | None = None
    sharing_type: SharingType | None = None
    format: str | None = None
    update_cycle: str | None = None
    is_open: bool | None = None
    status: ResourceStatus | None = None
    scope: str = "catalog"  # catalog: the published sharing catalog; mine; all (admin)
    sort: str = "relevance"  # relevance | updated | name
    cursor: str | None = None
    limit: int = 20
    with_facets: bool = True
    with_items: bool = False  # load the rows' information items up front (exports)
    viewer_department_id: int | None = None
    viewer_is_admin: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResult:
    rows: list[Resource]
    total: int
    next_cursor: str | None
    facets: dict[str, list[tuple[str, int]]]


def _cursor_scope(sort: str) -> str:
    """Cursors of one order only: a name sort's cursor holds no timestamp."""
    return f"catalog.search:{sort}"


# Matches rank in tiers, then by relevance within a tier: the name holds every term,
# else the items do, else only the whole entry does. Lower scores rank first.
_TIER = 1_000_000.0


def _match(session: Session, words: list[str], *, open_only: bool = False) -> Any:
    """A subquery of (id, score) for entries containing every term; lower is better.
    ``open_only`` leaves the items withheld from the open-data portal out of the match."""
    if _is_sqlite(session):
        terms = " AND ".join('"' + w.replace('"', '""') + '"' for w in words)
        scope, items = (
            ("{title items body} : ", "{items}") if open_only else ("", "{items withheld}")
        )
        fts = (
            text(
                "SELECT rowid AS id, bm25(catalog_fts, 10.0, 3.0, 1.0, 3.0) + CASE "
                "WHEN rowid IN (SELECT rowid FROM catalog_fts WHERE catalog_fts MATCH :title) "
                "THEN 0 "
                "WHEN rowid IN (SELECT rowid FROM catalog_fts WHERE catalog_fts MATCH :items) "
                f"THEN {_TIER} ELSE {2 * _TIER} END AS score "
                "FROM catalog_fts WHERE catalog_fts MATCH :expr"
            )
            .bindparams(
                bindparam("expr", scope + "(" + terms + ")"),
                bindparam("title", "{title} : (" + terms + ")"),
                bindparam("items", items + " : (" + terms + ")"),
            )
            .columns(column("id", Integer), column("score"))
        )
        return fts.subquery("m")

    def tsquery(weight: str) -> str:
        return " & ".join(_pg_lexeme(w) + weight for w in words)

    pg = (
        text(
            "SELECT resource_id AS id, CAST(-ts_rank(tsv, CAST(:tsq AS tsquery)) + CASE "
            "WHEN tsv @@ CAST(:title AS tsquery) THEN 0 "
            f"WHEN tsv @@ CAST(:items AS tsquery) THEN {_TIER} ELSE {2 * _TIER} END "
            "AS double precision) AS score "
            "FROM catalog_search "
            "WHERE tsv @@ CAST(:tsq AS tsquery)"
        )
        .bindparams(
            bindparam("tsq", tsquery(":ABC" if open_only else "")),
            bindparam("title", tsquery(":A")),
            bindparam("items", tsquery(":B" if open_only else ":BD")),
        )
        .columns(column("id", Integer), column("score"))
    )
    return pg.subquery("m")


def matches(session: Session, q: str, *, open_only: bool = False) -> Any | None:
    """A subquery of ``(id, score)`` over the entries whose search document holds every
    term of ``q`` (lower scores rank first), or None when ``q`` has no terms. An entry in a
    change is indexed at its published version, so a draft's words match nothing; with
    ``open_only`` neither do the items withheld from the open-data portal. Other domains
    (the open-data catalog) search the index through this."""
    words = query_terms(q) if q.strip() else []
    return _match(session, words, open_only=open_only) if words else None


def _listed_only(sq: SearchQuery) -> bool:
    """The sharing catalog shows published entries; drafts only to their department (mine)
    and to the platform admin (all)."""
    return sq.scope == "catalog" or not (sq.viewer_is_admin or sq.scope == "mine")


class _IndexFirst(Join):
    """The matches joined to their entries, read in that order on SQLite too.

    Without statistics (a hub never runs ANALYZE) SQLite may instead walk every published
    entry through the index on ``listed`` and run the full-text query once for each:
    seconds instead of milliseconds on a large catalogue. ``CROSS JOIN`` is SQLite's way
    to keep the left table the outer loop; other databases get a plain join.
    """

    inherit_cache = True


@compiles(_IndexFirst, "sqlite")
def _index_first_sqlite(join: _IndexFirst, compiler: Any, **kw: Any) -> str:
    kw.pop("asfrom", None)
    left = compiler.process(join.left, asfrom=True, **kw)
    right = compiler.process(join.right, asfrom=True, **kw)
    return f"{left} CROSS JOIN {right} ON {compiler.process(join.onclause, **kw)}"


def index_first(m: Any) -> Join:
    """The entries matched by ``m`` (a ``matches`` subquery) joined to the resource table
    with the index as the outer loop (see ``_IndexFirst``), for other domains' queries."""
    return _IndexFirst(m, Resource.__table__, m.c.id == Resource.id)


def _filters(sq: SearchQuery) -> list[Any]:
    conds: list[Any] = []
    if _listed_only(sq):
        conds.append(Resource.listed.is_(True))
    if sq.scope == "mine":
        conds.append(Resource.provider_department_id == sq.viewer_department_id)
    if sq.department_id is not None:
        conds.append(Resource.provider_department_id == sq.department_id)
    if sq.classification:
        conds.append(
            Resource.classification_id.in_(
                select(Classification.id).where(Classification.code.startswith(sq.classification))
            )
        )
    if sq.kind is not None:
        conds.append(Resource.kind == sq.kind)
    if sq.sharing_type is not None:
        conds.append(Resource.sharing_type == sq.sharing_type)
    if sq.format:
        conds.append(Resource.format == sq.format)
    if sq.update_cycle:
        conds.append(Resource.update_cycle == sq.update_cycle)
    if sq.is_open is not None:
        conds.append(Resource.is_open.is_(sq.is_open))
    if sq.status is not None:
        conds.append(Resource.status == sq.status)
    return conds


def search(session: Session, sq: SearchQuery) -> SearchResult:
    if not 1 <= sq.limit <= 200:
        raise InvalidInput(
            "每页条数应在1至200之间", details=[{"field": "limit", "message": "1..200"}]
        )
    words = query_terms(sq.q) if sq.q.strip() else []
    conds = _filters(sq)
    base = select(Resource.id.label("rid"))
    m: Any = None
    score: Any = None
    if words:
        m = _match(session, words)
        base = base.select_from(_IndexFirst(m, Resource.__table__, m.c.id == Resource.id))
        score = m.c.score
    sort = sq.sort if (sq.sort != "relevance" or words) else "updated"
    key: Any
    if sort == "relevance":
        key, desc = score, False
    elif sort == "name":
        key, desc = Resource.name, False
    elif sort == "updated":
        key, desc = Resource.updated_at, True
    else:
        raise InvalidInput(
            "排序方式应为 relevance、updated 或 name",
            details=[{"field": "sort", "message": sq.sort}],
        )

    last: tuple[Any, Any] | None = None
    if sq.cursor:
        last_key, last_id = codec_of(session).decode(
            _cursor_scope(sort), sq.cursor, width=2, field="cursor"
        )
        if sort == "updated":
            from datetime import datetime

            last = (datetime.fromisoformat(str(last_key)), last_id)
        else:
            last = (last_key, last_id)
    counting = _start(session, _facet_statement(base.where(*conds))) if sq.with_facets else None
    hits: Sequence[Any] | None = None
    if sort == "relevance" and not _narrowed(sq):
        after = _after(last, m.c.score, m.c.id, desc=False)
        hits = _best_matches(session, m, after, sq.limit + 1, listed_only=_listed_only(sq))
    if hits is None:
        order = [key.desc(), Resource.id.desc()] if desc else [key.asc(), Resource.id.asc()]
        after = _after(last, key, Resource.id, desc=desc)
        page = base.add_columns(key.label("k")).where(*conds, *after)
        hits = session.execute(page.order_by(*order).limit(sq.limit + 1)).all()
    more = len(hits) > sq.limit
    hits = hits[: sq.limit]
    # A page of results shows summaries; items are loaded only for callers that ask
    # (exports) and stay lazily loadable for everyone else.
    items = selectinload(Resource.items) if sq.with_items else lazyload(Resource.items)
    found = session.scalars(
        select(Resource).where(Resource.id.in_([h.rid for h in hits])).options(items)
    )
    by_id = {r.id: r for r in found}
    rows = _as_readers_see(session, sq, [by_id[h.rid] for h in hits])
    next_cursor = None
    if more and hits:
        last_val = hits[-1].k
        next_cursor = codec_of(session).encode(
            _cursor_scope(sort),
            [last_val.isoformat() if hasattr(last_val, "isoformat") else last_val, hits[-1].rid],
        )

    facets: dict[str, list[tuple[str, int]]] = {}
    total = len(rows)
    if counting is not None:
        facets = _facet_counts(counting())
        total = sum(n for _, n in facets.get("kind", []))
    return SearchResult(rows=rows, total=total, next_cursor=next_cursor, facets=facets)


class PublishedView:
    """An entry in a change as readers outside its department see it: the published
    version's content over the entry's identity (id, code, provider, dates)."""

    def __init__(self, resource: Resource, published: dict[str, Any], klass: Classification):
        self._resource = resource
        self._published = published
        self.classification = klass
        self.status = ResourceStatus.PUBLISHED
        self.version = resource.published_version
        self.sharing_type = SharingType(published["sharing_type"])
        # Snapshots carry sensitive, open_withheld and open_masking only when set (older
        # versions never do).
        self.items = [
            SimpleNamespace(
                **{"sensitive": False, "open_withheld": False, "open_masking": "none", **it}
            )
            for it in published["items"]
        ]

    def __getattr__(self, name: str) -> Any:
        if name in self._published:
            return self._published[name]
        return getattr(self._resource, name)


def _as_readers_see(session: Session, sq: SearchQuery, rows: list[Resource]) -> list[Resource]:
    """Rows the viewer may not see the working copy of, shown at their published version."""
    hidden = [
        r
        for r in rows
        if in_change(r)
        and not (sq.viewer_is_admin or r.provider_department_id == sq.viewer_department_id)
    ]
    published = published_versions(session, hidden)
    if not published:
        return rows
    codes = {snap["classification_code"] for snap in published.values()}
    classes = {
        c.code: c
        for c in session.scalars(select(Classification).where(Classification.code.in_(codes)))
    }
    # A view reads as the entry it stands for; consumers (API, pages, exports) only read.
    return [
        cast(
            Resource,
            PublishedView(r, published[r.id], classes[published[r.id]["classification_code"]]),
        )
        if r.id in published
        else r
        for r in rows
    ]


def _after(last: tuple[Any, Any] | None, key: Any, id_: Any, *, desc: bool) -> list[Any]:
    """The keyset condition: rows that sort after the cursor's (key, id)."""
    if last is None:
        return []
    k, i = last
    if desc:
        return [or_(key < k, and_(key == k, id_ < i))]
    return [or_(key > k, and_(key == k, id_ > i))]


def _narrowed(sq: SearchQuery) -> bool:
    """Whether filters beyond the scope's apply (they may leave few best matches standing)."""
    filters = (sq.department_id, sq.classification, sq.kind, sq.sharing_type, sq.format,
               sq.update_cycle, sq.is_open, sq.status)  # fmt: skip
    return sq.scope == "mine" or any(f is not None and f != "" for f in filters)


def _best_matches(
    session: Session, m: Any, after: list[Any], want: int, *, listed_only: bool
) -> list[Any] | None:
    """The first ``want`` entries by relevance within the scope, found among the index's
    best matches alone, or None when too few of those qualify and the full query must decide.

    Ranking needs the score of every match, but only the candidates need their entry row:
    joining every match to its entry first costs as much again on large result sets. Any
    qualifying entry outside the candidates ranks after all of them, so the first ``want``
    qualifying candidates are exactly the first ``want`` of the full query.
    """
    wide = 4 * want
    ranked = select(m.c.id.label("rid"), m.c.score.label("k")).where(*after)
    candidates = session.execute(ranked.order_by(m.c.score, m.c.id).limit(wide)).all()
    # Checked here, not in SQL: without statistics SQLite would answer "id IN (…) AND
    # listed" by walking the index on listed.
    listed = dict(
        session.execute(
            select(Resource.id, Resource.listed).where(Resource.id.in_([c.rid for c in candidates]))
        ).all()
    )
    hits = [c for c in candidates if c.rid in listed and (listed[c.rid] or not listed_only)]
    if len(hits) >= want or len(candidates) < wide:
        return hits[:want]
    return None


# Facets are counted beside the page query, on a second connection, where that gives the
# same answer: on SQLite (whose queries release the GIL, so the two run on two cores) and
# only while this unit of work has written nothing (another connection would not see it).
_WORKERS = 4
_beside = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="catalog-facets")
_side_engines: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()
_side_lock = threading.Lock()


def _start(session: Session, stmt: Any) -> Callable[[], Sequence[Any]]:
    """Run ``stmt`` now and return a function that waits for its rows."""
    bind = session.get_bind()
    if (
        isinstance(bind, Engine)
        and bind.dialect.name == "sqlite"
        and bind.url.database not in (None, "", ":memory:")
        and "memory" not in bind.url.query.get("mode", "")
        and not (session.new or session.dirty or session.deleted)
        and not _wrote(session)
    ):
        return _beside.submit(_fetch_all, _side_engine(bind), stmt).result
    return lambda: session.execute(stmt).all()


def _wrote(session: Session) -> bool:
    """Whether this unit of work has uncommitted writes (pysqlite opens its transaction
    only at the first write)."""
    raw = session.connection().connection.dbapi_connection
    return bool(getattr(raw, "in_transaction", True))


def _side_engine(bind: Engine) -> Engine:
    """A pool of the workers' own, as large as their number: a worker never waits for a
    connection that a request, itself waiting for the worker, would have to give back."""
    with _side_lock:
        side = _side_engines.get(bind)
        if side is None:
            side = create_engine(
                bind.url,
                pool_size=_WORKERS,
                max_overflow=0,
                connect_args={"check_same_thread": False},
            )
            event.listen(side, "connect", _read_only)
            weakref.finalize(bind, side.dispose)
            _side_engines[bind] = side
        return side


def _read_only(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA query_only = 1")
    dbapi_conn.execute("PRAGMA busy_timeout = 10000")


def _fetch_all(bind: Engine, stmt: Any) -> Sequence[Any]:
    with bind.connect() as conn:
        return conn.execute(stmt).all()


def _facet_statement(matched: Any) -> Any:
    """Every facet's counts in one statement over the matched set.

    The matched entries are grouped once by their whole combination of facet values (a
    few hundred combinations even when tens of thousands of entries match) and the
    combinations are summed per facet in ``_facet_counts``: one grouping instead of one
    per facet over a materialised match set, which costs several times more on large
    result sets.
    """
    keys = [
        Resource.provider_department_id,
        Resource.classification_id,
        Resource.kind,
        Resource.sharing_type,
        Resource.format,
        Resource.update_cycle,
        Resource.is_open,
    ]
    combos = (
        matched.with_only_columns(*keys, func.count().label("n")).group_by(*keys).subquery("combos")
    )
    return select(
        combos.c.provider_department_id,
        func.substr(Classification.code, 1, 3),
        combos.c.kind,
        combos.c.sharing_type,
        combos.c.format,
        combos.c.update_cycle,
        combos.c.is_open,
        combos.c.n,
    ).join(Classification, Classification.id == combos.c.classification_id)


def _facet_counts(combos: Sequence[Any]) -> dict[str, list[tuple[str, int]]]:
    counts: dict[str, Counter[str]] = {name: Counter() for name in FACETS}
    for dept, klass, kind, sharing, fmt, cycle, is_open, n in combos:
        values = (dept, klass, kind, sharing, fmt, cycle, "true" if is_open else "false")
        for name, value in zip(FACETS, values, strict=True):
            counts[name][str(value)] += int(n)
    return {name: sorted(counts[name].items(), key=lambda p: (-p[1], p[0])) for name in FACETS}


def department_labels(session: Session, ids: list[str]) -> dict[str, str]:
    wanted = [int(i) for i in ids if i.isdigit()]
    return {
        str(i): n
        for i, n in session.execute(
            select(Department.id, Department.short_name).where(Department.id.in_(wanted))
        )
    }
