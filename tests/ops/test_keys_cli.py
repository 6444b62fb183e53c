"""``govshare keys list|rotate`` as a real subprocess on a migrated hub: the list names
every watched key with its due date and exits 1 when one is past it; rotating the
documents key signs with a new key while the old one still verifies; rotating an API
client's secret prints the new one once and the old one stops working; both audited."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from govshare import db
from govshare.config import Settings
from govshare.documents import keys as document_keys
from govshare.security import atrest
from govshare.security.audit import SYSTEM
from govshare.security.crypto import sign, unseal, verify_signature
from govshare.security.models import ApiClient, AuditEntry
from govshare.security.service import add_department
from tests.factories import valid_credit_code

NOTICE = "关于开展数据普查的通知".encode()


def keys_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env |= {
        "GOVSHARE_SECRET_KEY": settings.secret_key,
        "GOVSHARE_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _client(settings: Settings, app_key: str, made: datetime) -> None:
    factory = db.make_session_factory(db.make_engine(settings), settings)
    with db.session_scope(factory) as s:
        dept = add_department(
            s,
            SYSTEM,
            name=f"密钥测试局{app_key}",
            short_name="密钥局",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        s.add(
            ApiClient(
                app_key=app_key,
                secret_sealed="x",
                name=f"业务系统 {app_key}",
                department_id=dept.id,
                permissions=["data.service"],
                created_at=made,
            )
        )


def _audited(settings: Settings, action: str) -> list[AuditEntry]:
    factory = db.make_session_factory(db.make_engine(settings), settings)
    with db.session_scope(factory) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_rotating_the_documents_key_keeps_the_old_one_verifying(
    fresh_settings: Settings,
) -> None:
    old = document_keys.signing_key(fresh_settings.data_dir, fresh_settings.secret_key, "sm2")
    signature = sign("sm2", old.private(fresh_settings.secret_key), NOTICE)
    run = keys_cli(fresh_settings, "rotate", "documents", "--alg", "sm2")
    assert run.returncode == 0, run.stdout + run.stderr
    new = document_keys.signing_key(fresh_settings.data_dir, fresh_settings.secret_key, "sm2")
    assert new.id != old.id
    assert new.id in run.stdout
    kept = document_keys.find_key(fresh_settings.data_dir, old.id)
    assert kept is not None
    assert verify_signature("sm2", kept.public, NOTICE, signature)
    (entry,) = _audited(fresh_settings, "keys.rotate")
    assert entry.object_id == new.id
    assert entry.before == {"alg": "sm2", "keys": [old.id]}
    bad = keys_cli(fresh_settings, "rotate", "documents", "--alg", "rsa")
    assert bad.returncode == 2
    assert "sm2 或 ed25519" in bad.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_list_names_each_key_and_fails_on_an_expired_one(fresh_settings: Settings) -> None:
    document_keys.signing_key(fresh_settings.data_dir, fresh_settings.secret_key, "ed25519")
    sealer = atrest.add_key(fresh_settings.data_dir, fresh_settings.secret_key, "sm4")
    _client(fresh_settings, "fresh-app", datetime.now(UTC))
    run = keys_cli(fresh_settings, "list")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "公文签名密钥 ED25519" in run.stdout
    assert f"静态加密密钥 SM4 {sealer.id}" in run.stdout
    assert "fresh-app" in run.stdout
    _client(fresh_settings, "old-app", datetime(2020, 1, 1, tzinfo=UTC))
    expired = keys_cli(fresh_settings, "list")
    assert expired.returncode == 1
    assert "old-app" in expired.stdout


@pytest.mark.parametrize("backend", ["sqlite"])
def test_rotating_an_api_clients_secret_prints_it_once(fresh_settings: Settings) -> None:
    _client(fresh_settings, "rotate-app", datetime.now(UTC))
    run = keys_cli(fresh_settings, "rotate", "api-client", "rotate-app")
    assert run.returncode == 0, run.stdout + run.stderr
    printed = run.stdout.strip().splitlines()[-1].strip()
    factory = db.make_session_factory(db.make_engine(fresh_settings), fresh_settings)
    with db.session_scope(factory) as s:
        client = s.scalar(select(ApiClient).where(ApiClient.app_key == "rotate-app"))
        assert client is not None
        assert unseal(fresh_settings.secret_key, client.secret_sealed) == printed
    assert [e.object_id for e in _audited(fresh_settings, "api_client.rotate_secret")] == [
        "rotate-app"
    ]
    missing = keys_cli(fresh_settings, "rotate", "api-client", "no-such-app")
    assert missing.returncode == 2
    assert "没有接入应用" in missing.stderr
