"""The command line: help text, migration, import with a report, the demo server."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from govshare import db
from govshare.catalog.spreadsheet import HEADERS
from govshare.config import Settings
from govshare.opendata.developers import key_access
from govshare.security.audit import KeyHasher
from govshare.sharing.journal import Call, CallJournal
from tests.conftest import TEST_SECRET
from tests.pg import free_port


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GOVSHARE_SECRET_KEY": TEST_SECRET, **(env or {})}
    full_env.pop("GOVSHARE_DEMO", None)
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_help_lists_commands() -> None:
    out = _run("--help").stdout
    for name in ["serve", "db", "audit", "catalog", "settings"]:
        assert name in out
    assert "--data-dir" in _run("serve", "--help").stdout


def test_refuses_default_secret_outside_demo(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "govshare.cli", "db", "upgrade", "--data-dir", str(tmp_path)],
        env={k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert "GOVSHARE_SECRET_KEY" in r.stderr


def test_a_wrong_setting_is_told_in_chinese_naming_its_variable(tmp_path: Path) -> None:
    r = _run("db", "upgrade", "--data-dir", str(tmp_path), env={"GOVSHARE_PORT": "eighty"})
    assert r.returncode == 2
    assert "配置错误: port (环境变量 GOVSHARE_PORT): 应为整数" in r.stderr
    assert "Input should" not in r.stderr  # pydantic's English stays out
    # A validator's own sentence is told as it is.
    r = _run(
        "db", "upgrade", "--data-dir", str(tmp_path), env={"GOVSHARE_TOTP_REQUIRED_ROLES": "king"}
    )
    assert r.returncode == 2
    assert "角色名称有误" in r.stderr
    assert not (tmp_path / "govshare.db").exists()  # nothing was started


def test_upgrade_then_import_reports_bad_rows(tmp_path: Path) -> None:
    assert _run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    # No user yet: the import names the problem instead of crashing.
    out = io.StringIO()
    csv.writer(out).writerows([HEADERS, ["1", "测试", "101001"]])
    f = tmp_path / "bad.csv"
    f.write_text(out.getvalue(), encoding="utf-8")
    r = _run("catalog", "import", str(f), "--as", "nobody", "--data-dir", str(tmp_path))
    assert r.returncode == 1
    assert "用户不存在" in r.stderr


def test_settings_lists_every_variable() -> None:
    out = _run("settings").stdout
    assert "GOVSHARE_DATABASE_URL" in out
    assert "GOVSHARE_AUDIT_DIGEST" in out


def test_demo_server_serves_health_and_prints_login(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "GOVSHARE_DEMO": "true", "GOVSHARE_ADMIN_PASSWORD": "demo-admin-pass"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "govshare.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.time() < deadline
            time.sleep(0.3)
        # The demo loads its departments and nodes while these calls come in; on a loaded
        # machine one answer can take longer than httpx's 5 s default.
        slow = httpx.Timeout(60)
        token = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/token",
            json={"username": "admin", "password": "demo-admin-pass"},
            timeout=slow,
        ).json()["access_token"]
        page = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/catalog/resources",
            params={"q": "人口"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=slow,
        ).json()
        assert page["total"] > 0
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=slow).status_code == 200
        # The demo's front-end nodes move 公安's population table to 人社 and 民政.
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.time() + 120
        while True:
            monitor = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/exchange/monitor", headers=headers, timeout=slow
            ).json()
            if sum(monitor["rows_applied"]) >= 2 * 3000:
                break
            assert time.time() < deadline, monitor
            time.sleep(1)
        assert monitor["online"] == 9  # 8 departments and 大数据局
        # 户籍地址 is marked sensitive: the hub's population store keeps it sealed.
        while True:
            stores = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/sharing/stores", headers=headers, timeout=slow
            )
            sealed = [s for s in stores.json() if s["sealed_items"] == ["hjdz"]]
            if sealed and sealed[0]["row_count"] > 0:
                break
            assert time.time() < deadline, stores.text
            time.sleep(1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "admin" in output
    assert "demo-admin-pass" in output
    # The open-data portal's demo developer and the key printed for it, which is the one
    # stored (as its keyed hash) and reaches an approved 有条件开放 dataset.
    assert "developer@example.cn" in output
    printed = re.search(r"API 密钥 (od_[\w-]+)", output)
    assert printed is not None, output
    settings = Settings(data_dir=tmp_path, demo=True)  # type: ignore[call-arg]
    addresses = create_engine(settings.resolved_shared_store_url)
    with addresses.connect() as conn:
        kept = [a for (a,) in conn.execute(text(f"SELECT hjdz FROM ss_{sealed[0]['resource_id']}"))]
    addresses.dispose()
    assert kept
    assert all(a.startswith("~") and "青岛" not in a for a in kept)
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as session:
        access = key_access(session, settings, printed.group(1))
        assert access is not None
        assert access.granted
    engine.dispose()


def test_key_hash_matches_what_the_audit_log_holds() -> None:
    r = _run("audit", "key-hash", "370202199001011234")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == KeyHasher(TEST_SECRET)("370202199001011234")
    assert r.stdout.strip() != KeyHasher(TEST_SECRET + "x")("370202199001011234")


def test_key_hash_find_lists_each_call_that_asked_for_the_key(tmp_path: Path) -> None:
    """Calls answered in one journal batch share an audit entry; ``--find`` still lists
    every call for the key on a line of its own, and only those."""
    assert _run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET)  # type: ignore[call-arg]
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    hashed = KeyHasher(TEST_SECRET)
    journal = CallJournal(
        engine,
        audit_alg=settings.audit_digest,
        audit_key=factory.kw["info"]["audit_key"],
        nonce_ttl_seconds=600,
    )
    try:
        journal.write(
            [
                Call(
                    client_id=1,
                    app_key="app-renshe",
                    department_id=None,  # type: ignore[arg-type]
                    remote_addr="127.0.0.1",
                    nonce=nonce,
                    action="data.lookup",
                    resource_id=7,
                    grant_id=None,
                    keys=len(keys),
                    rows=len(keys),
                    key_hashes=[hashed(k) for k in keys],
                )
                for nonce, keys in [
                    ("nonce-a", ["370202199001011234"]),
                    ("nonce-b", ["370202199001019999"]),
                    ("nonce-c", ["370202199001019999", "370202199001011234"]),
                ]
            ]
        )
    finally:
        journal.close()
        engine.dispose()

    r = _run(
        "audit",
        "key-hash",
        "370202199001011234",
        "--find",
        "--data-dir",
        str(tmp_path),
        env={"COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == hashed("370202199001011234")
    assert "nonce-a" in r.stdout
    assert "nonce-c" in r.stdout
    assert "nonce-b" not in r.stdout
    assert "最近 2 次" in r.stdout


# The collection it starts may finalise what earlier tests in this process left open.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_serving_process_freezes_its_start_up_heap_and_collects_young_objects_less_often() -> (
    None
):
    import gc

    from govshare.cli import SERVER_GC_THRESHOLD, _server_gc

    before = gc.get_threshold()
    try:
        _server_gc()
        assert gc.get_threshold() == (SERVER_GC_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_user_unlock_lifts_a_lockout_and_is_audited(tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from govshare import db
    from govshare.db import utcnow
    from govshare.security.audit import SYSTEM
    from govshare.security.models import AuditEntry, User
    from govshare.security.roles import Role
    from govshare.security.service import add_department, add_user
    from tests.conftest import make_settings
    from tests.factories import valid_credit_code

    assert _run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    settings = make_settings(tmp_path)
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    with db.session_scope(factory) as s:
        dept = add_department(
            s,
            SYSTEM,
            name="青岛市大数据局",
            short_name="大数据局",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        admin = add_user(
            s,
            SYSTEM,
            username="only_admin",
            password="Correct-Horse-9",
            display_name="唯一的管理员",
            department_id=dept.id,
            roles=[Role.PLATFORM_ADMIN],
        )
        admin.locked_until = utcnow() + timedelta(minutes=15)
        admin.failed_logins = 2
    r = _run("users", "unlock", "only_admin", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "已解除 only_admin 的登录锁定" in r.stdout
    missing = _run("users", "unlock", "nobody", "--data-dir", str(tmp_path))
    assert missing.returncode == 1
    assert "用户不存在" in missing.stderr
    with db.session_scope(factory) as s:
        user = s.scalars(select(User).where(User.username == "only_admin")).one()
        assert (user.locked_until, user.failed_logins) == (None, 0)
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "user.unlock")).one()
        assert entry.actor == "cli"
    engine.dispose()


# -- the first platform admin of a production install -----------------------------------

CREDIT = "11370200MB12345674"  # GB 32100 check digit valid


def _admin_cli(data_dir: Path, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GOVSHARE_SECRET_KEY": TEST_SECRET}
    full_env.pop("GOVSHARE_DEMO", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "govshare.cli",
            "users",
            "create-admin",
            "--data-dir",
            str(data_dir),
            "--password-stdin",
            *args,
        ],
        env=full_env,
        input=password + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_create_admin_on_an_empty_data_dir_then_sign_in(tmp_path: Path) -> None:
    from govshare.security.models import AuditEntry
    from tests.conftest import make_settings
    from tests.live import start_live_hub

    data_dir = tmp_path / "data"
    assert _run("db", "upgrade", "--data-dir", str(data_dir)).returncode == 0
    password = "a-strong-passphrase-1"
    r = _admin_cli(
        data_dir,
        "--username",
        "root_admin",
        "--department",
        CREDIT,
        "--department-name",
        "青岛市大数据发展管理局",
        "--division-code",
        "370200",
        password=password,
    )
    assert r.returncode == 0, r.stderr
    assert "已创建平台管理员" in r.stdout
    hub = start_live_hub(make_settings(data_dir))
    try:
        with hub.client() as c:
            token = c.post(
                "/api/v1/auth/token", json={"username": "root_admin", "password": password}
            )
            assert token.status_code == 200, token.text
            me = c.get(
                "/api/v1/me",
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            ).json()
        with hub.session_factory() as s:
            actions = [
                (e.actor_kind, e.action)
                for e in s.query(AuditEntry).filter(AuditEntry.actor_kind == "cli")
            ]
    finally:
        hub.stop()
    assert "platform_admin" in me["roles"], me
    assert actions == [("cli", "department.add"), ("cli", "user.add")]
    verify = _run("audit", "verify", "--data-dir", str(data_dir))
    assert verify.returncode == 0, verify.stdout


def test_create_admin_refuses_a_weak_password_and_keeps_the_hub_unchanged(
    tmp_path: Path,
) -> None:
    assert _run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    args = [
        "--username",
        "root_admin",
        "--department",
        CREDIT,
        "--department-name",
        "青岛市大数据发展管理局",
        "--division-code",
        "370200",
    ]
    weak = _admin_cli(tmp_path, *args, password="short")
    assert weak.returncode == 1
    assert "密码应为 8 至 200 位" in weak.stderr
    assert "Traceback" not in weak.stderr
    bad_name = _admin_cli(tmp_path, "--username", "a b", password="a-strong-passphrase-1")
    assert bad_name.returncode == 1
    assert "登录名" in bad_name.stderr
    nodept = _admin_cli(tmp_path, "--username", "root_admin", password="a-strong-passphrase-1")
    assert nodept.returncode == 1
    assert "平台还没有部门" in nodept.stderr
    # Nothing was written: the same name can still be created.
    ok = _admin_cli(tmp_path, *args, password="a-strong-passphrase-1")
    assert ok.returncode == 0, ok.stderr
    again = _admin_cli(tmp_path, *args, password="a-strong-passphrase-1")
    assert again.returncode == 1
    assert "用户名已存在" in again.stderr


def test_create_admin_takes_no_password_in_argv(tmp_path: Path) -> None:
    assert _run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    r = _run(
        "users",
        "create-admin",
        "--data-dir",
        str(tmp_path),
        "--username",
        "x_admin",
        "--password",
        "a-strong-passphrase-1",
    )
    assert r.returncode == 2
    assert "No such option" in r.stderr


def test_create_admin_prompts_for_the_password_twice(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from govshare.cli import app

    assert _run("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    args = [
        "users",
        "create-admin",
        "--data-dir",
        str(tmp_path),
        "--username",
        "root_admin",
        "--department",
        CREDIT,
        "--department-name",
        "青岛市大数据发展管理局",
        "--division-code",
        "370200",
    ]
    runner = CliRunner()
    env = {"GOVSHARE_SECRET_KEY": TEST_SECRET, "GOVSHARE_DEMO": "false"}
    mismatch = runner.invoke(app, args, input="First-passphrase-1\nother-passphrase\n", env=env)
    assert mismatch.exit_code == 1
    assert "未输入密码" in mismatch.output
    ok = runner.invoke(app, args, input="First-passphrase-1\nFirst-passphrase-1\n", env=env)
    assert ok.exit_code == 0, ok.output
    assert "First-passphrase-1" not in ok.output
    assert "已创建平台管理员" in ok.output


def test_create_admin_without_a_hub_says_so(tmp_path: Path) -> None:
    r = _admin_cli(tmp_path / "empty", "--username", "root_admin", password="a-strong-pass-1")
    assert r.returncode == 2
    assert "govshare db upgrade" in r.stderr
    assert not (tmp_path / "empty").exists()


def test_import_refuses_duplicate_names_unless_confirmed(tmp_path: Path) -> None:
    from govshare import db
    from govshare.security.audit import SYSTEM
    from govshare.security.roles import Role
    from govshare.security.service import add_department, add_user
    from tests.catalog.test_import import _csv, _row
    from tests.conftest import make_settings, migrated
    from tests.factories import PASSWORD, valid_credit_code

    settings = migrated(make_settings(tmp_path))
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as s:
        dept = add_department(
            s,
            SYSTEM,
            name="青岛市命令行测试局",
            short_name="命令行",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        add_user(
            s,
            SYSTEM,
            username="cli_reg",
            password=PASSWORD,
            display_name="命令行编目员",
            department_id=dept.id,
            roles=[Role.CATALOG_REGISTRAR],
        )
    engine.dispose()
    f = tmp_path / "dup.csv"
    f.write_bytes(
        _csv([_row("1", "命令行重名", "姓名", "xm"), _row("2", "命令行重名", "姓名", "xm")])
    )
    args = ["catalog", "import", str(f), "--as", "cli_reg", "--data-dir", str(tmp_path)]
    r = _run(*args)
    assert r.returncode == 1, r.stdout
    assert "第3行 [信息资源名称]" in r.stderr
    assert "与第2行" in r.stderr
    r = _run(*args, "--confirm-duplicates")
    assert r.returncode == 0, r.stderr
    assert "已导入 2 条目录" in r.stdout
