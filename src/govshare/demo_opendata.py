"""Demo data of the developer centre: one confirmed developer with an API key and an
approved application for a 有条件开放 dataset, so a first-run user can call the row API
and the CKAN API with a key and see the console's 开放数据申请 page with content.

The key's secret is stored only hashed, so the demo gives the key a new secret on every
start (:func:`refresh_demo_key`) and ``govshare demo`` prints it with the password.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.db import utcnow
from govshare.opendata import datasets as ds
from govshare.opendata import developers as dev
from govshare.opendata.models import OpenApiKey, OpenDeveloper
from govshare.security.models import User
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal

DEMO_EMAIL = "developer@example.cn"
DEMO_KEY_NAME = "演示密钥"


@dataclass(frozen=True)
class DemoDeveloper:
    email: str
    key: str  # the clear secret, fresh on every start
    conditional: str | None  # the slug of the approved 有条件开放 dataset


def seed_developer(session: Session, settings: Settings, password: str) -> int:
    """The demo developer (the demo accounts' password), a key and, when the catalog has a
    有条件开放 dataset, an application its department's resource admin approved."""
    now = utcnow()
    developer, _link = dev.register(
        session,
        email=DEMO_EMAIL,
        password=password,
        base_url=f"http://{settings.host}:{settings.port}",
        now=now,
    )
    developer.confirmed_at = now
    key, _secret = dev.create_key(session, settings, developer, name=DEMO_KEY_NAME, now=now)
    found = ds.search_datasets(
        session, ds.DatasetQuery(filters=[ds.Filter("open_type", "conditional")], rows=1)
    )
    if not found.datasets:
        return 0
    dataset = found.datasets[0]
    application = dev.apply(
        session,
        settings,
        developer,
        dataset_key=dataset.slug,
        key_id=key.id,
        purpose="演示：用于学术研究，遵守开放条件，不再分发",
        now=now,
    )
    staff = session.scalars(
        select(User).where(User.department_id == dataset.publisher.id).order_by(User.id)
    )
    approver = next((u for u in staff if Role.RESOURCE_ADMIN.value in u.roles), None)
    if approver is None:
        return 1
    principal = Principal(
        kind="user",
        name=approver.username,
        department_id=approver.department_id,
        permissions=permissions_for(approver.roles),
        user_id=approver.id,
        roles=tuple(approver.roles),
    )
    dev.decide(
        session, principal, application.id, approve=True, reason="符合开放条件（演示）", now=now
    )
    return 1


def refresh_demo_key(session: Session, settings: Settings, password: str) -> DemoDeveloper | None:
    """A new secret for the demo key (and the demo password for the developer)."""
    developer = session.scalar(select(OpenDeveloper).where(OpenDeveloper.email == DEMO_EMAIL))
    if developer is None:
        return None
    dev.set_password(developer, password)
    key = session.scalar(
        select(OpenApiKey).where(
            OpenApiKey.developer_id == developer.id, OpenApiKey.name == DEMO_KEY_NAME
        )
    )
    if key is None:
        return None
    secret = dev.rotate_key_secret(settings, key)
    key.revoked_at = None
    approved = dev.list_own_applications(session, developer.id)
    slug = next(
        (v.dataset_slug for v in approved if v.application.status.value == "approved"), None
    )
    return DemoDeveloper(DEMO_EMAIL, secret, slug)
