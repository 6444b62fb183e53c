"""Catalog search benchmark: a large SQLite hub, searched through the real HTTP API.

Builds a fresh hub in a temporary directory (migrations, the demo departments and
users), adds ``--rows`` realistic catalog entries in bulk, indexes them with
``govshare.catalog.search.index_many``, starts ``govshare serve`` as a subprocess and
times 20 Chinese queries through ``GET /api/v1/catalog/resources``. The same queries are
then run straight against the FTS5 index with ``sqlite3`` as the reference, and a
10,000-row XLSX import is timed in-process. See ``bench/README.md`` for what each
figure means. The last line of output is machine-readable::

    p95_ms=… raw_p95_ms=… ratio=… p50_ms=… import_rows_per_s=…

Usage: ``.venv/bin/python bench/catalog_search.py --rows 100000`` (``--rows 2000`` for a
quick run).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from openpyxl import Workbook
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from govshare import db, demo
from govshare.catalog import search, spreadsheet
from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.catalog.models import Classification, InformationItem, Resource
from govshare.config import Settings
from govshare.security.models import Department, User
from govshare.security.service import Principal, permissions_for

QUERIES = [
    "人口",
    "公民身份号码",
    "企业登记",
    "社会保险 参保",
    "不动产",
    "婚姻登记",
    "残疾人",
    "纳税 信用",
    "营业执照",
    "住房公积金",
    "死亡",
    "出生医学证明",
    "低保",
    "医保 结算",
    "学籍",
    "排污许可",
    "食品经营",
    "市场监管 处罚",
    "养老金 发放",
    "居住证",
]
PASSWORD = "Bench-Password-2024"
READER = "gaj_reg"  # a department registrar searching the sharing catalog
DISTRICTS = [
    "",
    "",
    "",
    "市南区",
    "市北区",
    "李沧区",
    "崂山区",
    "黄岛区",
    "城阳区",
    "即墨区",
    "胶州市",
    "平度市",
    "莱西市",
]
VARIANTS = [
    "",
    "",
    "",
    "（历史数据）",
    "（{year}年度）",
    "（{year}年）",
    "（汇总）",
    "（明细）",
    "（共享版）",
    "（接口版）",
]
SUFFIXES = [
    ("登记信息", "daily"),
    ("审批结果信息", "daily"),
    ("办件信息", "daily"),
    ("核验信息", "realtime"),
    ("变更记录", "daily"),
    ("统计汇总", "monthly"),
    ("年度报告", "yearly"),
    ("注销信息", "daily"),
    ("许可信息", "daily"),
    ("监管检查信息", "weekly"),
    ("电子证照信息", "daily"),
    ("办理进度", "realtime"),
]
Item = tuple[str, str, str, int | None, str]  # name, code, data type, length, description


def _item(name: str, code: str, t: str = "C", length: int | None = 50, desc: str = "") -> Item:
    return (name, code, t, length if t in "CNYBIF" else None, desc)


# Extra information items entries draw from, on top of their template's own items.
EXTRA_ITEMS: list[Item] = [
    _item("联系电话", "lxdh", "C", 20),
    _item("联系地址", "lxdz", "C", 200),
    _item("经办人", "jbr", "C", 50),
    _item("经办机构", "jbjg", "C", 100),
    _item("办理日期", "blrq", "D"),
    _item("办理结果", "bljg", "C", 2, "01 通过 02 不通过"),
    _item("审批部门", "spbm", "C", 100),
    _item("行政区划代码", "xzqhdm", "C", 6, "GB/T 2260 行政区划代码"),
    _item("数据来源", "sjly", "C", 100),
    _item("更新时间", "gxsj", "T"),
    _item("备注", "bz", "M"),
    _item("证照编号", "zzbh", "C", 50),
    _item("有效期起", "yxqq", "D"),
    _item("有效期至", "yxqz", "D"),
    _item("状态", "zt", "C", 2),
    _item("业务流水号", "ywlsh", "C", 40),
    _item("申请人", "sqr", "C", 100),
    _item("受理日期", "slrq", "D"),
    _item("受理机构", "sljg", "C", 100),
    _item("统计月份", "tjyf", "C", 6),
    _item("办件量", "bjl", "I", 10),
    _item("金额", "je", "Y", 14),
]
console = Console(soft_wrap=True)


# -- the hub ------------------------------------------------------------------------------


def make_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, demo=True, admin_password=PASSWORD)


@dataclass(frozen=True)
class Template:
    """The shape of a family of entries: provider, 分类, topic, items, sharing."""

    dept: str
    classification: str  # "3" means the department's own 项 under 部门信息资源
    topic: str
    abstract: str
    items: list[Item]
    sharing: SharingType = SharingType.CONDITIONAL
    modes: tuple[str, ...] = ("table", "api", "query")
    cycle: str = "daily"
    fmt: str = "database"
    is_open: bool = False

    @classmethod
    def from_demo(cls, e: demo.Entry) -> Template:
        return cls(e.dept, e.classification, e.name, e.abstract, e.items, e.sharing, e.modes,
                   e.cycle, e.fmt, e.is_open)  # fmt: skip


ENTERPRISE_DEPARTMENTS = ("scj", "swj", "zjj", "sthj", "yjj", "jtj")  # as in the demo
DEPT_CLASS = {abbr: f"3{i:02d}" for i, (abbr, _, _) in enumerate(demo.DEPARTMENTS, start=1)}


def templates() -> list[Template]:
    """Entry shapes from the demo vocabulary: the named entries and every business topic."""
    out = [Template.from_demo(e) for e in demo.ENTRIES if e.sharing is not SharingType.NOT_SHARED]
    licence = [*demo.ENTERPRISE, _item("营业执照注册号", "yyzzzch", "C", 30)]
    out.append(
        Template(
            "scj",
            "105002",
            "营业执照信息",
            "市场主体营业执照电子证照信息",
            licence,
            sharing=SharingType.UNCONDITIONAL,
            modes=("api", "query"),
        )
    )
    for dept, topics in demo.BUSINESS.items():
        holder = demo.ENTERPRISE if dept in ENTERPRISE_DEPARTMENTS else demo.PERSON
        out += [Template(dept, "3", topic, f"{topic}业务", [*holder]) for topic in topics]
    return out


def _item_rows(rng: random.Random, tpl: Template, resource_id: int) -> list[dict[str, Any]]:
    wanted = rng.randint(4, 10)
    chosen = list(tpl.items[:wanted])
    codes = {it[1] for it in chosen}
    for extra in rng.sample(EXTRA_ITEMS, len(EXTRA_ITEMS)):
        if len(chosen) >= wanted:
            break
        if extra[1] not in codes:
            chosen.append(extra)
            codes.add(extra[1])
    return [
        {
            "resource_id": resource_id,
            "position": pos,
            "name": name,
            "code": code,
            "data_type": t,
            "length": length,
            "description": desc,
            "code_table": None,
            "is_key": pos == 1,
        }
        for pos, (name, code, t, length, desc) in enumerate(chosen, start=1)
    ]


STATUSES = [  # (status, cumulative share): most of a mature catalog is published
    (ResourceStatus.PUBLISHED, 0.88),
    (ResourceStatus.DRAFT, 0.93),
    (ResourceStatus.PENDING_REGISTRATION, 0.97),
    (ResourceStatus.WITHDRAWN, 1.0),
]


@dataclass
class Generator:
    """Realistic entries from the demo vocabulary, as rows for a bulk insert."""

    rng: random.Random
    dept_id: dict[str, int]  # demo abbreviation -> department id
    class_id: dict[str, int]  # classification code -> id
    sequence: dict[int, int]  # classification id -> last 顺序码 used
    next_id: int
    shapes: list[Template]
    now: datetime

    @classmethod
    def for_hub(cls, session: Session, seed: int) -> Generator:
        depts = {d.short_name: d.id for d in session.scalars(select(Department))}
        last = select(Resource.classification_id, func.max(Resource.sequence))
        return cls(
            rng=random.Random(seed),
            dept_id={abbr: depts[short] for abbr, _, short in demo.DEPARTMENTS},
            class_id={c.code: c.id for c in session.scalars(select(Classification))},
            sequence=dict(session.execute(last.group_by(Resource.classification_id)).all()),
            next_id=(session.scalar(select(func.max(Resource.id))) or 0) + 1,
            shapes=templates(),
            now=datetime.now(UTC),
        )

    def entry(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One resource row and its information-item rows."""
        rng, tpl = self.rng, self.rng.choice(self.shapes)
        suffix, cycle = rng.choice(SUFFIXES)
        district = rng.choice(DISTRICTS)
        variant = rng.choice(VARIANTS).format(year=rng.randint(2015, 2025))
        by_department = tpl.classification == "3"  # 部门信息资源: the department's own 项
        topic = f"{tpl.topic}{suffix}" if by_department else tpl.topic
        class_code = DEPT_CLASS[tpl.dept] if by_department else tpl.classification
        cid = self.class_id[class_code]
        self.sequence[cid] = self.sequence.get(cid, 0) + 1
        roll = rng.random()
        status = next(st for st, share in STATUSES if roll < share)
        was_published = status in (ResourceStatus.PUBLISHED, ResourceStatus.WITHDRAWN)
        sharing = tpl.sharing
        if rng.random() < 0.2:
            sharing = rng.choice([SharingType.UNCONDITIONAL, SharingType.CONDITIONAL])
        conditional = sharing is SharingType.CONDITIONAL
        updated = self.now - timedelta(seconds=rng.randint(0, 3 * 365 * 86400))
        row = {
            "id": self.next_id,
            "code": f"{class_code}/{self.sequence[cid]:06d}",
            "sequence": self.sequence[cid],
            "classification_id": cid,
            "kind": ResourceKind.from_class_code(class_code),
            "name": f"{district}{topic}{variant}",
            "provider_department_id": self.dept_id[tpl.dept],
            "abstract": f"{district or '全市'}{tpl.abstract}，{suffix}由业务系统产生，"
            "供各部门按共享条件使用。",
            "format": tpl.fmt,
            "format_detail": "",
            "sharing_type": sharing,
            "sharing_conditions": "仅限用于本部门法定职责范围内的业务办理" if conditional else "",
            "not_shared_basis": "",
            "sharing_modes": list(tpl.modes),
            "is_open": tpl.is_open or (not conditional and rng.random() < 0.3),
            "open_conditions": "",
            "update_cycle": tpl.cycle if rng.random() < 0.7 else cycle,
            "publish_date": updated.date() if was_published else None,
            "related_codes": [],
            "source_system_id": None,
            "secrecy": "public",
            "extensions": {},
            "status": status,
            "version": 1,
            "published_version": 1 if was_published else None,
            "listed": status is ResourceStatus.PUBLISHED,
            "created_by": f"{tpl.dept}_reg",
            "created_at": updated - timedelta(days=rng.randint(0, 30)),
            "updated_at": updated,
        }
        items = _item_rows(rng, tpl, self.next_id)
        self.next_id += 1
        return row, items


def generate(session: Session, rows: int, *, seed: int = 20240601, batch: int = 2000) -> int:
    """Insert ``rows`` entries (and their items) in bulk and index them; returns listed count."""
    gen = Generator.for_hub(session, seed)
    listed = 0
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("生成并索引目录", total=rows)
        for start in range(0, rows, batch):
            resources, items = [], []
            for _ in range(min(batch, rows - start)):
                row, its = gen.entry()
                resources.append(row)
                items += its
            listed += sum(r["listed"] for r in resources)
            session.execute(insert(Resource), resources)
            session.execute(insert(InformationItem), items)
            ids = Resource.id.between(resources[0]["id"], resources[-1]["id"])
            search.index_many(session, list(session.scalars(select(Resource).where(ids))))
            session.commit()
            session.expunge_all()
            progress.update(task, advance=len(resources))
    return listed


def build_hub(data_dir: Path, rows: int) -> dict[str, int]:
    settings = make_settings(data_dir)
    db.upgrade(settings)
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    started = time.perf_counter()
    with db.session_scope(factory) as session, console.status("载入演示数据…"):
        counts = demo.load_demo(session, PASSWORD)
    console.print(
        f"演示数据: {counts['resources']} 条目录, {counts['users']} 个用户 "
        f"({time.perf_counter() - started:.1f} s)"
    )
    started = time.perf_counter()
    with db.session_scope(factory) as session:
        listed = generate(session, rows)
    took = time.perf_counter() - started
    console.print(
        f"生成 {rows} 条目录 ({listed} 条已发布) 用时 {took:.1f} s ({rows / took:.0f} 条/秒)"
    )
    # No ANALYZE: a hub never runs it, so the query planner works without statistics here too.
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return {"listed": listed, "total": rows + counts["resources"]}


# -- the API ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    exe = Path(sys.executable).with_name("govshare")
    env = {
        **os.environ,
        "GOVSHARE_DEMO_EXCHANGE": "false",
        "GOVSHARE_DEMO": "true",
        "GOVSHARE_ADMIN_PASSWORD": PASSWORD,
        # bench/open_catalog.py times hundreds of anonymous CKAN calls from one address.
        "GOVSHARE_OPEN_ANONYMOUS_PER_MINUTE": "100000000",
    }
    log = (data_dir / "hub.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "serve", "--data-dir", str(data_dir), "--port", str(port), "--demo"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hub exited: {(data_dir / 'hub.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise RuntimeError("hub did not start within 120 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], p: int) -> float:
    """The p-th percentile with linear interpolation between ranks (numpy's default)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@dataclass
class ApiRun:
    latencies: dict[str, list[float]]  # per query, milliseconds
    totals: dict[str, int]  # matched entries per query
    first_ms: float  # the hub's very first search (jieba loads its dictionary)


def bench_api(base: str, rounds: int, warmup: int, limit: int) -> ApiRun:
    with httpx.Client(base_url=base, timeout=60) as client:
        r = client.post("/api/v1/auth/token", json={"username": READER, "password": PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

        def get(q: str) -> tuple[float, int]:
            started = time.perf_counter()
            r = client.get("/api/v1/catalog/resources", params={"q": q, "limit": limit})
            took = (time.perf_counter() - started) * 1000
            r.raise_for_status()
            return took, r.json()["total"]

        first_ms, _ = get(QUERIES[0])
        totals: dict[str, int] = {}
        for _ in range(warmup):
            for q in QUERIES:
                totals[q] = get(q)[1]
        latencies: dict[str, list[float]] = {q: [] for q in QUERIES}
        for _ in range(rounds):
            for q in QUERIES:
                latencies[q].append(get(q)[0])
        return ApiRun(latencies, totals, first_ms)


# -- the reference: straight against the index -----------------------------------------------

RAW_TOP = (
    "SELECT rowid, bm25(catalog_fts, 10.0, 3.0, 1.0) AS score FROM catalog_fts "
    "WHERE catalog_fts MATCH ? ORDER BY score LIMIT ?"
)
# Like-for-like with the SQL the hub runs per request, one statement after the other: the
# index's best 4 × (limit + 1) matches, whether those entries are published, and the facets
# (matched published entries grouped by their combination of facet values). CROSS JOIN
# keeps the index as the outer loop, as in the hub's plan; without statistics SQLite would
# otherwise walk the published entries and probe the index once for each.
# The hub ranks in tiers: name matches, then item matches, then the rest.
RAW_FULL_CANDIDATES = (
    "SELECT rowid, bm25(catalog_fts, 10.0, 3.0, 1.0) + CASE "
    "WHEN rowid IN (SELECT rowid FROM catalog_fts WHERE catalog_fts MATCH ?) THEN 0 "
    "WHEN rowid IN (SELECT rowid FROM catalog_fts WHERE catalog_fts MATCH ?) THEN 1000000.0 "
    "ELSE 2000000.0 END AS score FROM catalog_fts "
    "WHERE catalog_fts MATCH ? ORDER BY score, rowid LIMIT ?"
)
RAW_FULL_LISTED = "SELECT id, listed FROM resource WHERE id IN ({})"
RAW_FULL_FACETS = (
    "SELECT g.provider_department_id, substr(c.code, 1, 3), g.kind, g.sharing_type, g.format, "
    "g.update_cycle, g.is_open, g.n FROM (SELECT r.provider_department_id, r.classification_id, "
    "r.kind, r.sharing_type, r.format, r.update_cycle, r.is_open, count(*) AS n "
    "FROM catalog_fts f CROSS JOIN resource r ON r.id = f.rowid "
    "WHERE catalog_fts MATCH ? AND r.listed = 1 GROUP BY 1, 2, 3, 4, 5, 6, 7) g "
    "JOIN classification c ON c.id = g.classification_id"
)


def match_expression(q: str) -> str:
    words = search.query_terms(q)
    return " AND ".join('"' + w.replace('"', '""') + '"' for w in words)


def bench_raw(
    db_file: Path, rounds: int, warmup: int, limit: int
) -> tuple[list[float], list[float]]:
    conn = sqlite3.connect(db_file)
    exprs = [match_expression(q) for q in QUERIES]  # segmentation is outside the timing

    def top(expr: str) -> None:
        conn.execute(RAW_TOP, (expr, limit)).fetchall()

    def full(expr: str) -> None:
        tiers = (f"{{title}} : ({expr})", f"{{items}} : ({expr})")
        ids = [i for i, _ in conn.execute(RAW_FULL_CANDIDATES, (*tiers, expr, 4 * (limit + 1)))]
        conn.execute(RAW_FULL_LISTED.format(",".join("?" * len(ids))), ids).fetchall()
        conn.execute(RAW_FULL_FACETS, (expr,)).fetchall()

    out: list[list[float]] = []
    for run in (top, full):
        for _ in range(warmup):
            for expr in exprs:
                run(expr)
        latencies = []
        for _ in range(rounds):
            for expr in exprs:
                started = time.perf_counter()
                run(expr)
                latencies.append((time.perf_counter() - started) * 1000)
        out.append(latencies)
    conn.close()
    return out[0], out[1]


# -- spreadsheet import ---------------------------------------------------------------------


def import_workbook(entries: int, items_per_entry: int, seed: int = 99) -> bytes:
    """A workbook in the template layout: one row per information item."""
    rng = random.Random(seed)
    shapes = [t for t in templates() if t.classification != "3"]
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("目录")
    ws.append(spreadsheet.HEADERS)
    pool = [*demo.PERSON, *demo.ENTERPRISE, *EXTRA_ITEMS]
    for key in range(1, entries + 1):
        tpl = rng.choice(shapes)
        district = rng.choice(DISTRICTS)
        conditional = tpl.sharing is SharingType.CONDITIONAL
        head = {
            "key": str(key),
            "name": f"{district}{tpl.topic}（导入{key}）",
            "classification_code": tpl.classification,
            "abstract": f"{district or '全市'}{tpl.abstract}",
            "format": "数据库",
            "format_detail": "关系型数据库表",
            "sharing_type": "有条件共享" if conditional else "无条件共享",
            "sharing_conditions": "仅限用于本部门法定职责范围内的业务办理" if conditional else "",
            "not_shared_basis": "",
            "sharing_modes": "库表交换、接口调用",
            "is_open": "否",
            "open_conditions": "",
            "update_cycle": "每日",
            "related_codes": "",
            "secrecy": "非涉密",
        }
        chosen, seen = [], set()
        for it in [*tpl.items, *rng.sample(pool, len(pool))]:
            if it[1] not in seen:
                chosen.append(it)
                seen.add(it[1])
            if len(chosen) == items_per_entry:
                break
        for pos, (name, code, t, length, desc) in enumerate(chosen):
            row = {
                **(head if pos == 0 else {"key": str(key)}),
                "item_name": name,
                "item_code": code,
                "data_type": t,
                "length": "" if length is None else str(length),
                "description": desc,
                "code_table": "",
                "is_key": "是" if pos == 0 else "否",
            }
            ws.append([row.get(c.field, "") for c in spreadsheet.COLUMNS])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def bench_import(data_dir: Path, entries: int, items_per_entry: int) -> tuple[int, float]:
    content = import_workbook(entries, items_per_entry)
    settings = make_settings(data_dir)
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    with db.session_scope(factory) as session:
        user = session.scalar(select(User).where(User.username == "rsj_reg"))
        assert user is not None
        principal = Principal(
            kind="user",
            name=user.username,
            department_id=user.department_id,
            permissions=permissions_for(user.roles),
            user_id=user.id,
            roles=tuple(user.roles),
        )
    rows = entries * items_per_entry
    started = time.perf_counter()
    with db.session_scope(factory) as session:
        # A hub benchmarked again already holds these names: knowingly imported again.
        created = spreadsheet.import_resources(
            session, principal, "bench.xlsx", content, confirm_duplicates=True
        )
    took = time.perf_counter() - started
    engine.dispose()
    assert len(created) == entries
    return rows, took


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="generated catalog entries")
    parser.add_argument("--queries-per-term", type=int, default=10, help="timed requests per query")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed rounds over all queries first"
    )
    parser.add_argument("--limit", type=int, default=20, help="page size")
    parser.add_argument(
        "--import-entries", type=int, default=1000, help="entries in the import workbook"
    )
    parser.add_argument(
        "--import-items", type=int, default=10, help="information items per imported entry"
    )
    parser.add_argument("--keep", type=Path, help="build the hub in this directory and keep it")
    parser.add_argument(
        "--reuse", type=Path, help="reuse a hub built earlier with --keep (skips generation)"
    )
    args = parser.parse_args(argv)

    tmp = None
    if args.reuse:
        data_dir = args.reuse
        listed = None
    else:
        if args.keep:
            data_dir = args.keep
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            tmp = tempfile.mkdtemp(prefix="govshare-bench-")
            data_dir = Path(tmp)
        listed = build_hub(data_dir, args.rows)["listed"]
    try:
        db_file = data_dir / "govshare.db"
        console.print(f"数据库: {db_file} ({db_file.stat().st_size / 2**20:.0f} MiB)")

        load_before = os.getloadavg()[0]
        with serve(data_dir) as (base, proc):
            run = bench_api(base, args.queries_per_term, args.warmup, args.limit)
            rss = peak_rss_mb(proc.pid)
        latencies = [ms for q in QUERIES for ms in run.latencies[q]]
        console.print(
            f"已发布目录: {listed if listed is not None else '?'}; "
            "各检索词 命中数 / 中位耗时 / 最大耗时 (ms):"
        )
        for q in QUERIES:
            ms = run.latencies[q]
            console.print(
                f"  {q:　<8}{run.totals[q]:>7}{statistics.median(ms):>8.1f}{max(ms):>8.1f}"
            )
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        console.print(
            f"API (HTTP, {len(latencies)} 次请求, limit={args.limit}, 含总数与分面): "
            f"p50={p50:.1f} ms p95={p95:.1f} ms max={max(latencies):.1f} ms "
            f"mean={statistics.fmean(latencies):.1f} ms; 平台启动后首次检索 {run.first_ms:.0f} ms"
        )
        raw_top, raw_full = bench_raw(db_file, args.queries_per_term, args.warmup, args.limit)
        raw_p50, raw_p95 = percentile(raw_top, 50), percentile(raw_top, 95)
        console.print(
            f"索引直查 raw (sqlite3: FTS5 MATCH + bm25 前{args.limit}条, 不含总数与分面; "
            f"即最后一行的 raw_p95_ms): p50={raw_p50:.2f} ms p95={raw_p95:.2f} ms"
        )
        console.print(
            "索引直查 full (sqlite3: 与平台同样的 SQL 依次执行, "
            "bm25 候选 + 发布状态 + 分面组合计数): "
            f"p50={percentile(raw_full, 50):.2f} ms p95={percentile(raw_full, 95):.2f} ms"
        )
        console.print(
            f"负载 (1 分钟平均): 开始 {load_before:.2f}, 结束 {os.getloadavg()[0]:.2f}, "
            f"CPU {os.cpu_count()} 核"
        )
        if rss is not None:
            console.print(f"平台进程峰值内存 (VmHWM): {rss:.0f} MiB")

        rows, took = bench_import(data_dir, args.import_entries, args.import_items)
        import_rate = rows / took
        console.print(
            f"XLSX 导入: {rows} 行 ({args.import_entries} 条目录 × {args.import_items} 个信息项) "
            f"用时 {took:.1f} s, {import_rate:.0f} 行/秒"
        )
        print(
            f"p95_ms={p95:.1f} raw_p95_ms={raw_p95:.2f} ratio={p95 / raw_p95:.1f} "
            f"p50_ms={p50:.1f} import_rows_per_s={import_rate:.0f}",
            flush=True,
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
