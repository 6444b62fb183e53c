"""The auditor's console search across the archives and its signed export."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from govshare.security import archive
from govshare.security.audit_search import verify_file
from govshare.security.models import AuditEntry
from tests.factories import PASSWORD, unique
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


def _refusals(calls: list[tuple[str, str]]) -> dict[str, object]:
    return {"calls": [{"at": at, "nonce": nonce, "reason": "no_grant"} for at, nonce in calls]}


def test_the_api_searches_archives_then_live_entries_page_by_page(console: Console) -> None:
    factory = console.app.state.session_factory
    actor = unique("app-api")
    old = [("2019-04-01T08:00:00+00:00", "n1"), ("2019-04-01T08:00:01+00:00", "n2")]
    _append(
        factory,
        2,
        datetime(2019, 4, 1, 8, tzinfo=UTC),
        action="data.denied",
        object_type="resource",
        actor=actor,
        after=_refusals(old),
    )
    _checkpoint(factory, datetime(2019, 4, 1, 9, tzinfo=UTC))
    with factory() as s:
        # Past FAR: an earlier test's archive run left its own entry, dated FAR, live.
        result = archive.archive_due(s, s.info["audit_key"], now=FAR.replace(year=2200), years=5)
    assert isinstance(result, archive.ArchiveResult), result
    _append(
        factory,
        1,
        datetime(2026, 1, 5, tzinfo=UTC),
        action="data.denied",
        object_type="resource",
        actor=actor,
        after=_refusals([("2026-01-05T00:00:00+00:00", "n3")]),
    )
    client = console.anonymous()

    def bearer(username: str) -> dict[str, str]:
        r = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    auditor = bearer(console.auditor)
    searches_before = _searches(factory)
    pages: list[list[dict[str, Any]]] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"actor": actor, "refusals": "true", "limit": 1}
        r = client.get(
            "/api/v1/audit/search",
            params=params | ({"after_seq": after} if after else {}),
            headers=auditor,
        )
        assert r.status_code == 200, r.text
        pages.append(r.json()["items"])
        after = r.json()["next_after_seq"]
        if after is None:
            break
    # A page holds one entry's calls whole: two archived entries of two calls, one live.
    assert [[(h["nonce"], h["kept_in"]) for h in p] for p in pages] == [
        [("n1", result.name), ("n2", result.name)],
        [("n1", result.name), ("n2", result.name)],
        [("n3", "")],
    ]
    assert all(h["reason"] == "no_grant" and h["action"] == "data.denied" for p in pages for h in p)
    live_only = client.get(
        "/api/v1/audit/search",
        params={"actor": actor, "since": "2026-01-01T00:00:00"},
        headers=auditor,
    )
    assert [h["nonce"] for h in live_only.json()["items"]] == ["n3"]
    bad = client.get("/api/v1/audit/search", params={"key_hash": "xyz"}, headers=auditor)
    assert bad.status_code == 422
    refused = client.get("/api/v1/audit/search", headers=bearer(console.registrar))
    assert refused.status_code == 403
    assert _searches(factory) == searches_before + len(pages) + 1


def _searches(factory: Any) -> int:
    with factory() as s:
        found = s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "audit.search")
        )
    return found or 0
