"""Audit for five years: closed ranges of the chain go to signed archive files, are
verified, and only then pruned; ``verify`` spans archives and the live table; tampered
archives are named precisely. Every clock here is injected (entries of 2018-2024, an
archive run "in" 2025), never today's date."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from govshare import db
from govshare.config import Settings
from govshare.security import archive, audit
from govshare.security.anchor import AuditKey
from govshare.security.audit import Actor, Pending
from govshare.security.audit_search import SearchQuery, search
from govshare.security.models import AuditArchive, AuditEntry, AuditHead

NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
OLD = datetime(2019, 3, 1, 8, 0, tzinfo=UTC)  # more than five years before NOW
RECENT = datetime(2024, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def factory(fresh_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(fresh_settings)
    yield db.make_session_factory(engine, fresh_settings)
    engine.dispose()


def _append(
    factory: sessionmaker[Session],
    n: int,
    at: datetime,
    *,
    action: str = "test.action",
    after: dict[str, object] | None = None,
    object_type: str = "thing",
    object_id: str | None = None,
    actor: str = "tester",
) -> None:
    """Append ``n`` entries written at ``at`` (the chain's own rule, with a set clock)."""
    with db.session_scope(factory) as s:
        audit.ensure_head(s)
        claimed = s.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(seq=AuditHead.seq + n)
            .returning(AuditHead.seq, AuditHead.hash)
        ).one()
        key: AuditKey = s.info["audit_key"]
        pending = [
            Pending(
                Actor(name=actor, department_id=1),
                action,
                object_type,
                object_id if object_id is not None else str(i),
                before={"v": i},
                after=after if after is not None else {"v": i + 1, "名称": "人口"},
                request_id=None,
            )
            for i in range(n)
        ]
        rows = audit.chained(
            pending,
            alg=s.info.get("audit_alg", "sm3"),
            mac_key=key.mac_key,
            head=(claimed[0], claimed[1]),
            at=at,
        )
        s.execute(insert(AuditEntry.__table__), rows)
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=rows[-1]["hash"]))


def _checkpoint(factory: sessionmaker[Session], at: datetime) -> None:
    with db.session_scope(factory) as s:
        audit.checkpoint(s, s.info["audit_key"], at)


def _archive(factory: sessionmaker[Session], now: datetime = NOW) -> archive.ArchiveResult | str:
    with factory() as s:
        return archive.archive_due(s, s.info["audit_key"], now=now, years=5)


def _verify(factory: sessionmaker[Session]) -> audit.ChainReport:
    with factory() as s:
        return audit.verify_chain(s)


def _live_seqs(factory: sessionmaker[Session]) -> list[int]:
    with factory() as s:
        return list(s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))


def _key(factory: sessionmaker[Session]) -> AuditKey:
    key: AuditKey = factory.kw["info"]["audit_key"]
    return key


def _setup_two_archives(factory: sessionmaker[Session]) -> None:
    """Entries 1..10 (2012), checkpoint, archived in 2018 (entry 11 says so), 12..17
    (2019), checkpoint, 18..21 (2024), archived in 2025: archives 1..10 and 11..17."""
    _append(factory, 10, datetime(2012, 1, 5, tzinfo=UTC))
    _checkpoint(factory, datetime(2012, 1, 5, 1, tzinfo=UTC))
    first = _archive(factory, now=datetime(2018, 1, 1, tzinfo=UTC))
    assert isinstance(first, archive.ArchiveResult), first
    _append(factory, 6, OLD)
    _checkpoint(factory, datetime(2019, 3, 1, 9, tzinfo=UTC))
    _append(factory, 4, RECENT)
    second = _archive(factory)
    assert isinstance(second, archive.ArchiveResult), second


def test_archive_prunes_only_up_to_the_checkpoint_before_the_retention_cut(
    factory: sessionmaker[Session],
) -> None:
    _append(factory, 10, OLD)
    _checkpoint(factory, datetime(2019, 3, 1, 9, tzinfo=UTC))  # anchors entry 10
    _append(factory, 5, OLD)  # old enough, but no checkpoint anchors them
    _append(factory, 5, RECENT)  # newer than the cut
    _checkpoint(factory, datetime(2024, 11, 2, 9, tzinfo=UTC))
    result = _archive(factory)
    assert isinstance(result, archive.ArchiveResult), result
    assert (result.first_seq, result.last_seq, result.entries) == (1, 10, 10)
    assert _live_seqs(factory) == [*range(11, 21), 21]  # 21: the audit.archive entry
    report = _verify(factory)
    assert report.intact, report.problems
    assert (report.entries, report.archived, report.archives) == (21, 10, 1)
    with factory() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last is not None
        assert last.action == "audit.archive"
        assert last.after is not None
        assert last.after["last_seq"] == 10
    # Nothing more is due: 11..15 have no checkpoint of their own below the cut.
    assert _archive(factory) == (
        "第 11 至 15 条早于保存期限，但其中没有已签名的检查点；"
        "先签署检查点（govshare audit checkpoint），再归档"
    )


def test_nothing_newer_than_the_retention_cut_is_archived(
    factory: sessionmaker[Session],
) -> None:
    _append(factory, 5, RECENT)
    _checkpoint(factory, datetime(2024, 11, 2, 9, tzinfo=UTC))
    assert _archive(factory) == "没有早于保存期限（2020-06-01 之前）的在线记录"
    # The same entries, five years on, are due.
    result = _archive(factory, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert isinstance(result, archive.ArchiveResult)
    assert result.last_seq == 5


def test_the_manifest_is_signed_and_carries_the_range_and_checkpoints(
    factory: sessionmaker[Session],
) -> None:
    _append(factory, 7, OLD)
    _checkpoint(factory, datetime(2019, 3, 1, 9, tzinfo=UTC))
    result = _archive(factory)
    assert isinstance(result, archive.ArchiveResult)
    doc = orjson.loads((result.directory / f"{result.name}.manifest.json").read_bytes())
    assert (doc["first_seq"], doc["last_seq"], doc["entries"]) == (1, 7, 7)
    assert doc["prev_hash"] == audit.GENESIS
    assert [c["seq"] for c in doc["checkpoints"]] == [7]
    assert doc["checkpoints"][0]["hash"] == doc["last_hash"]
    assert doc["signature"]["alg"] == "sm2"
    assert doc["data_digest"]["alg"] == "sm3"
    with gzip.open(result.directory / doc["data_file"]) as f:
        lines = [orjson.loads(line) for line in f]
    assert [line["seq"] for line in lines] == list(range(1, 8))
    assert lines[-1]["hash"] == doc["last_hash"]


def test_verify_spans_archives_and_links_across_each_boundary(
    factory: sessionmaker[Session],
) -> None:
    _setup_two_archives(factory)
    report = _verify(factory)
    assert report.intact, report.problems
    assert report.archives == 2
    assert report.archived == 17
    with factory() as s:
        names = [a.name for a in archive.registered(s)]
    assert names == ["audit-000000000001-000000000010", "audit-000000000011-000000000017"]


def _problems(factory: sessionmaker[Session]) -> list[str]:
    report = _verify(factory)
    assert not report.intact
    return [p.problem for p in report.problems]


def _files(factory: sessionmaker[Session], name: str) -> tuple[Path, Path]:
    d = archive.archive_dir(_key(factory))
    return d / f"{name}.jsonl.gz", d / f"{name}.manifest.json"


FIRST = "audit-000000000001-000000000010"
SECOND = "audit-000000000011-000000000017"


def test_a_changed_byte_in_an_archive_is_found(factory: sessionmaker[Session]) -> None:
    _setup_two_archives(factory)
    data, _ = _files(factory, FIRST)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    problems = _problems(factory)
    assert f"归档 {FIRST}: 数据文件的 SM3 摘要与清单不符（文件被改动或与别的归档调换）" in problems
    assert all(p.startswith(f"归档 {FIRST}") for p in problems), problems


def test_an_edited_entry_recompressed_is_found_by_its_hash(factory: sessionmaker[Session]) -> None:
    """A forger who rewrites an entry and recompresses still breaks the digest and the
    entry's keyed hash."""
    _setup_two_archives(factory)
    data, _ = _files(factory, FIRST)
    with gzip.open(data) as f:
        lines = [orjson.loads(line) for line in f]
    lines[3]["actor"] = "someone-else"
    with gzip.open(data, "wb") as f:
        for line in lines:
            f.write(orjson.dumps(line) + b"\n")
    problems = _problems(factory)
    assert f"归档 {FIRST}: 第 4 条内容与其哈希不符（被篡改）" in problems


def test_a_removed_data_file_is_found(factory: sessionmaker[Session]) -> None:
    _setup_two_archives(factory)
    data, _ = _files(factory, SECOND)
    data.unlink()
    assert _problems(factory) == [f"归档 {SECOND}: 数据文件 {SECOND}.jsonl.gz 缺失（文件被删除）"]


def test_a_removed_manifest_is_found(factory: sessionmaker[Session]) -> None:
    _setup_two_archives(factory)
    _, manifest = _files(factory, FIRST)
    manifest.unlink()
    problems = _problems(factory)
    assert problems[0] == f"归档 {FIRST}: 清单文件 {FIRST}.manifest.json 缺失（文件被删除）"


def test_reordered_archives_are_found(factory: sessionmaker[Session]) -> None:
    """The two archives' files swapped under each other's names."""
    _setup_two_archives(factory)
    (d1, m1), (d2, m2) = _files(factory, FIRST), _files(factory, SECOND)
    for a, b in ((d1, d2), (m1, m2)):
        tmp = a.with_suffix(".swap")
        os.replace(a, tmp)
        os.replace(b, a)
        os.replace(tmp, b)
    problems = _problems(factory)
    assert f"归档 {FIRST}: 清单所载范围为第 11 至 17 条，与文件名不符（归档文件被调换）" in problems
    assert f"归档 {FIRST}: 清单与登记的摘要不符（清单被替换或改动）" in problems


def test_a_removed_archive_with_its_registration_leaves_a_gap(
    factory: sessionmaker[Session],
) -> None:
    _setup_two_archives(factory)
    for path in _files(factory, FIRST):
        path.unlink()
    with db.session_scope(factory) as s:
        s.execute(delete(AuditArchive).where(AuditArchive.name == FIRST))
    problems = _problems(factory)
    assert problems[0] == (
        f"归档 {SECOND}: 从第 11 条开始，而应从第 1 条开始；其间记录缺失（有归档被删除）"
    )


def test_a_forged_manifest_signature_is_found(factory: sessionmaker[Session]) -> None:
    _setup_two_archives(factory)
    _, manifest = _files(factory, SECOND)
    doc = orjson.loads(manifest.read_bytes())
    doc["entries"] = 6
    manifest.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    problems = _problems(factory)
    assert f"归档 {SECOND}: 清单签名无效（清单被改动或伪造）" in problems


def test_a_row_reinserted_into_an_archived_range_is_found(factory: sessionmaker[Session]) -> None:
    _setup_two_archives(factory)
    with factory() as s:
        row = s.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 18)).mappings().one()
    with db.session_scope(factory) as s:
        s.execute(insert(AuditEntry.__table__).values({**row, "seq": 5}))
    report = _verify(factory)
    assert [(p.seq, audit.problem_text(p.problem)) for p in report.problems] == [
        (5, "序号位于已归档并清理的范围内（被重新插入）")
    ]


def test_a_tampered_live_range_is_not_archived_and_nothing_is_pruned(
    factory: sessionmaker[Session],
) -> None:
    _append(factory, 8, OLD)
    _checkpoint(factory, datetime(2019, 3, 1, 9, tzinfo=UTC))
    with db.session_scope(factory) as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="x"))
    with factory() as s, pytest.raises(archive.ArchiveError) as caught:
        archive.archive_due(s, s.info["audit_key"], now=NOW, years=5)
    assert str(caught.value) == "第 3 条内容与其哈希不符（被篡改），未归档"
    assert _live_seqs(factory) == list(range(1, 9))
    assert not list(archive.archive_dir(_key(factory)).glob("audit-*"))


def test_the_search_spans_archives_and_shows_no_data(factory: sessionmaker[Session]) -> None:
    person = audit.KeyHasher("x" * 40)("370202199001011234")
    other = audit.KeyHasher("x" * 40)("110101198001010011")
    call = {"at": "2019-03-01T08:00:00.000+00:00", "nonce": "n1", "keys": 1, "rows": 1}
    _append(
        factory,
        1,
        OLD,
        action="data.lookup",
        object_type="sharing_grant",
        object_id="42",
        actor="app-rsj",
        after={
            "calls": [
                {**call, "key_hashes": [person]},
                {**call, "nonce": "n2", "key_hashes": [other]},
            ]
        },
    )
    _append(
        factory, 1, OLD, action="catalog.resource.update", object_type="resource", object_id="7"
    )
    _append(
        factory,
        1,
        OLD,
        action="data.denied",
        object_type="resource",
        actor="app-x",
        after={"calls": [{**call, "nonce": "n3", "reason": "no_grant", "key_hashes": []}]},
    )
    _checkpoint(factory, datetime(2019, 3, 1, 9, tzinfo=UTC))
    _append(
        factory,
        1,
        RECENT,
        action="data.lookup",
        object_type="sharing_grant",
        object_id="43",
        actor="app-rsj",
        after={"calls": [{**call, "nonce": "n4", "key_hashes": [person]}]},
    )
    assert isinstance(_archive(factory), archive.ArchiveResult)
    key = _key(factory)
    with factory() as s:
        by_person = list(search(s, key, SearchQuery(key_hash=person)))
        catalog = list(search(s, key, SearchQuery(catalog=True)))
        refusals = list(search(s, key, SearchQuery(refusals=True)))
        since_2024 = list(
            search(s, key, SearchQuery(key_hash=person, since=datetime(2024, 1, 1, tzinfo=UTC)))
        )
    assert [(h.nonce, h.grant_id, h.actor, bool(h.kept_in)) for h in by_person] == [
        ("n1", "42", "app-rsj", True),
        ("n4", "43", "app-rsj", False),
    ]
    assert [(h.action, h.object_id, h.changed) for h in catalog] == [
        ("catalog.resource.update", "7", ("v", "名称"))
    ]
    assert [(h.actor, h.reason) for h in refusals] == [("app-x", "no_grant")]
    assert [h.nonce for h in since_2024] == ["n4"]


def test_cli_archive_search_export_and_signature(fresh_settings: Settings) -> None:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    person = audit.KeyHasher(fresh_settings.secret_key)("370202199001011234")
    _append(
        factory,
        3,
        datetime(2001, 5, 1, tzinfo=UTC),  # older than five years before any run of this test
        action="data.lookup",
        object_type="sharing_grant",
        object_id="9",
        after={
            "calls": [
                {
                    "at": "2001-05-01T00:00:00+00:00",
                    "nonce": "n",
                    "keys": 1,
                    "rows": 0,
                    "key_hashes": [person],
                }
            ]
        },
    )
    _checkpoint(factory, datetime(2001, 5, 1, 1, tzinfo=UTC))
    _append(factory, 2, datetime(2001, 5, 2, tzinfo=UTC))
    engine.dispose()

    def cli(*args: str, secret: bool = False) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        if secret:
            env["GOVSHARE_SECRET_KEY"] = fresh_settings.secret_key
        if not fresh_settings.is_sqlite:
            env["GOVSHARE_DATABASE_URL"] = fresh_settings.resolved_database_url
        cmd = [
            sys.executable,
            "-m",
            "govshare.cli",
            *args,
            "--data-dir",
            str(fresh_settings.data_dir),
        ]
        return subprocess.run(
            cmd, env=env, capture_output=True, text=True, check=False, timeout=120
        )

    done = cli("audit", "archive")
    assert done.returncode == 0, done.stderr
    assert "已归档" in done.stdout
    assert "第 1 至 3 条" in done.stdout
    assert cli("audit", "archive").stdout.startswith("无需归档")
    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "其中 3 条在 1 个归档中" in verified.stdout

    out = fresh_settings.data_dir.parent / "检索.xlsx"
    found = cli("audit", "search", "--key", "370202199001011234", "--export", str(out), secret=True)
    assert found.returncode == 0, found.stderr
    assert "共 3 条" in found.stdout
    assert "370202199001011234" not in out.read_bytes().decode("latin-1")
    from openpyxl import load_workbook

    book = load_workbook(out, read_only=True)
    rows = list(book["审计检索"].iter_rows(values_only=True))
    book.close()
    assert rows[0][0] == "审计序号"
    assert [(r[0], r[9], r[18]) for r in rows[1:]] == [
        (1, "9", "audit-000000000001-000000000003"),
        (2, "9", "audit-000000000001-000000000003"),
        (3, "9", "audit-000000000001-000000000003"),
    ]
    ok = cli("audit", "verify-signature", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "签名有效" in ok.stdout
    raw = bytearray(out.read_bytes())
    raw[100] ^= 0x01
    out.write_bytes(bytes(raw))
    bad = cli("audit", "verify-signature", str(out))
    assert bad.returncode == 1
    assert "文件的 SM3 摘要与签名不符：文件在签名后被改动" in bad.stderr

    engine = db.make_engine(fresh_settings)
    with engine.connect() as conn:
        actions = list(conn.execute(select(AuditEntry.action).order_by(AuditEntry.seq)).scalars())
        archived = conn.execute(select(func.count()).select_from(AuditArchive)).scalar_one()
    engine.dispose()
    assert actions == ["test.action", "test.action", "audit.archive", "audit.export"]
    assert archived == 1


def test_cli_search_refuses_a_bad_date_and_a_bad_key_hash(fresh_settings: Settings) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    if not fresh_settings.is_sqlite:
        env["GOVSHARE_DATABASE_URL"] = fresh_settings.resolved_database_url
    base = [
        sys.executable,
        "-m",
        "govshare.cli",
        "audit",
        "search",
        "--data-dir",
        str(fresh_settings.data_dir),
    ]
    r = subprocess.run(
        [*base, "--since", "2025-13-01"], env=env, capture_output=True, text=True, check=False
    )
    assert r.returncode == 2
    assert "--since 应为 年-月-日" in r.stderr
    r = subprocess.run(
        [*base, "--key-hash", "xyz"], env=env, capture_output=True, text=True, check=False
    )
    assert r.returncode == 2
    assert "键哈希应为16位十六进制字符" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_scheduled_archiver_uses_its_clock(factory: sessionmaker[Session]) -> None:
    from govshare.security.tasks import Archiver

    _append(factory, 4, OLD)
    _checkpoint(factory, datetime(2019, 3, 1, 9, tzinfo=UTC))
    early = Archiver(factory, 3600, 5, clock=lambda: datetime(2021, 1, 1, tzinfo=UTC))
    assert isinstance(early.run_once(), str)
    late = Archiver(factory, 3600, 5, clock=lambda: NOW)
    result = late.run_once()
    assert isinstance(result, archive.ArchiveResult)
    assert result.last_seq == 4


def test_an_archive_replaced_by_garbage_is_named_not_a_traceback(
    factory: sessionmaker[Session],
) -> None:
    _setup_two_archives(factory)
    data, manifest = _files(factory, FIRST)
    data.write_bytes(b"not a gzip file")
    problems = _problems(factory)
    assert f"归档 {FIRST}: 数据文件在第 1 条处损坏，无法读出（BadGzipFile）" in problems
    manifest.write_bytes(b"{broken")
    problems = _problems(factory)
    assert problems[0].startswith(f"归档 {FIRST}: 清单文件无法读取或解析")
