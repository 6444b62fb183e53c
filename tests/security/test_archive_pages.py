"""The auditor's console search across the archives and its signed export."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from govshare.security import archive
from govshare.security.audit_search import verify_file
from tests.security.test_archive import _append, _checkpoint
from tests.web.test_pages import Console, console

__all__ = ["console"]

FAR = datetime(2100, 1, 1, tzinfo=UTC)  # every entry of this hub is past five years then


def _archived_refusal(console: Console) -> str:
    factory = console.app.state.session_factory
    _append(
        factory,
        1,
        datetime(2019, 3, 1, 8, tzinfo=UTC),
        action="data.denied",
        object_type="resource",
        actor="app-refused",
        after={"calls": [{"at": "2019-03-01T08:00:00+00:00", "nonce": "nx", "reason": "no_grant"}]},
    )
    _checkpoint(factory, datetime(2019, 3, 1, 9, tzinfo=UTC))
    with factory() as s:
        result = archive.archive_due(s, s.info["audit_key"], now=FAR, years=5)
    assert isinstance(result, archive.ArchiveResult), result
    return result.name


def test_the_auditor_finds_an_archived_refusal_and_exports_it_signed(
    console: Console, tmp_path: Path
) -> None:
    name = _archived_refusal(console)
    client = console.signed_in(console.auditor)
    page = client.get("/audit/search", params={"refusals": "1", "actor": "app-refused"})
    assert page.status_code == 200
    assert 'id="audit-search-table"' in page.text
    assert "no_grant" in page.text
    assert name in page.text
    assert "共 1 条" in page.text

    r = client.get("/audit/search/export", params={"refusals": "1", "actor": "app-refused"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as bundle:
        names = sorted(bundle.namelist())
        assert [n.rsplit(".", 1)[1] for n in names] == ["xlsx", "sig"]
        bundle.extractall(tmp_path)
    xlsx, sig = tmp_path / names[0], tmp_path / names[1]
    key = console.app.state.session_factory.kw["info"]["audit_key"]
    assert verify_file(xlsx, sig, key.public) is None
    xlsx.write_bytes(xlsx.read_bytes() + b"\0")
    assert verify_file(xlsx, sig, key.public) == ("文件的 SM3 摘要与签名不符：文件在签名后被改动")
    log = client.get("/audit", params={"action": "audit.export"}).text
    assert "导出审计检索结果" in log


def test_bad_conditions_are_named_in_chinese(console: Console) -> None:
    client = console.signed_in(console.auditor)
    page = client.get("/audit/search", params={"key_hash": "xyz", "since": "2025-02-30"})
    assert page.status_code == 200
    assert "键哈希：键哈希应为16位十六进制字符" in page.text
    assert "起始日期：日期格式应为 年-月-日" in page.text
    empty = client.get("/audit/search/export")
    assert empty.status_code == 200
    assert "请先给出检索条件再导出" in empty.text


def test_only_auditors_search(console: Console) -> None:
    client = console.signed_in(console.registrar)
    assert client.get("/audit/search", params={"refusals": "1"}).status_code == 403
    assert client.get("/audit/search/export", params={"refusals": "1"}).status_code == 403
