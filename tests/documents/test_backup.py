"""A backup carries what verifying and reading a document needs: the database rows and
``documents/key.json``; restored with the same secret key, the document verifies and
its PDF decrypts. Without the key file, verification says which key is missing."""

from __future__ import annotations

import io
import secrets
import sqlite3
from pathlib import Path

from govshare import db
from govshare.config import Settings
from govshare.documents import keys, service, verify
from govshare.ops.backup import create_backup, restore_backup
from tests.conftest import make_settings, migrated
from tests.documents.builders import FROZEN, doc_number, pdf
from tests.documents.test_tasks import _departments, clerk


def _verify(settings: Settings, document_id: int) -> verify.VerifyReport:
    engine = db.make_engine(settings)
    try:
        with db.session_scope(db.make_session_factory(engine, settings)) as s:
            return verify.verify_document(s, settings.data_dir, settings.secret_key, document_id)
    finally:
        engine.dispose()


def test_a_restored_backup_verifies_and_reads_documents(tmp_path: Path) -> None:
    settings = migrated(make_settings(tmp_path / "data"))
    sqlite3.connect(settings.data_dir / "shared.db").close()  # the (empty) shared stores
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    sender, police = _departments(factory, "大数据局", "公安局")
    with db.session_scope(factory) as s:
        doc_id = service.send_document(
            s,
            settings,
            clerk(sender),
            title="关于备份演练的通知",
            doc_number=doc_number(),
            secrecy="public",
            urgency="normal",
            recipient_ids=[police],
            pdf=service.Upload("正文.pdf", io.BytesIO(pdf("备份"))),
            now=FROZEN,
        ).id
    engine.dispose()
    assert keys.key_path(settings.data_dir).stat().st_mode & 0o777 == 0o600
    key = secrets.token_bytes(32)
    create_backup(settings, tmp_path / "backup", key=key)
    restored = settings.model_copy(update={"data_dir": tmp_path / "restored"})
    restore_backup(tmp_path / "backup", restored.data_dir, key=key)

    assert _verify(restored, doc_id).ok
    engine = db.make_engine(restored)
    with db.session_scope(db.make_session_factory(engine, restored)) as s:
        _, data = service.read_file(s, restored, clerk(police), doc_id, 0, now=FROZEN)
    engine.dispose()
    assert data == pdf("备份")

    keys.key_path(restored.data_dir).unlink()
    report = _verify(restored, doc_id)
    assert [c.subject for c in report.failures] == ["签名密钥"]
    assert "不在平台的公文密钥文件中" in report.failures[0].reason
