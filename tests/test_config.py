"""Settings: typed, documented, and unsafe values refused outside demo mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from govshare.config import Settings, UnsafeSettingError

README = Path(__file__).parent.parent / "README.md"


def test_default_secret_refused_outside_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVSHARE_SECRET_KEY", raising=False)
    with pytest.raises(UnsafeSettingError, match="GOVSHARE_SECRET_KEY"):
        Settings(demo=False)


def test_short_secret_refused() -> None:
    with pytest.raises(UnsafeSettingError, match="32"):
        Settings(demo=False, secret_key="short")


def test_totp_roles_are_checked_by_name() -> None:
    assert Settings(demo=True, totp_required_roles=" auditor, platform_admin ,").totp_roles == {
        "auditor",
        "platform_admin",
    }
    with pytest.raises(ValueError, match=r"unknown roles \['admin'\]"):
        Settings(demo=True, totp_required_roles="auditor,admin")


def test_demo_mode_allows_built_in_secret() -> None:
    assert Settings(demo=True).demo


def test_settings_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_DEMO", "true")
    monkeypatch.setenv("GOVSHARE_PORT", "9001")
    monkeypatch.setenv("GOVSHARE_AUDIT_DIGEST", "sha256")
    s = Settings()
    assert (s.port, s.audit_digest) == (9001, "sha256")


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_AUDIT_DIGEST", "md5")
    with pytest.raises(ValueError, match="audit_digest"):
        Settings(demo=True)


def test_every_setting_is_documented() -> None:
    readme = README.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert f"`GOVSHARE_{name.upper()}`" in readme, name
        assert field.description, name


def test_every_cli_command_is_documented() -> None:
    from typer.main import get_command

    from govshare.cli import app

    readme = README.read_text(encoding="utf-8")
    root = get_command(app)
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        for full in [f"govshare {name} {s}" for s in subs] if subs else [f"govshare {name}"]:
            assert f"`{full}" in readme, full
