"""A hub (re)starts cheaply: what a first request does not need is loaded later (the
search dictionary, spreadsheets, migrations machinery, the PostgreSQL driver on
SQLite), and the first search still works. Start-up speed itself is measured by
bench/startup.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from govshare import db
from govshare.catalog import service as catalog
from govshare.catalog.schemas import ItemIn, ResourceIn
from govshare.security.audit import SYSTEM
from govshare.security.roles import Role
from govshare.security.service import add_department, add_user
from tests.conftest import make_settings, migrated
from tests.e2e.hubenv import ADMIN, REVIEWER
from tests.factories import PASSWORD, valid_credit_code

# What ``govshare serve`` runs, then the first search, in a process of its own (this one
# has long loaded everything). The dictionary's background load is put off so that the
# search surely comes first.
PROBE = """
import json, sys
from govshare import db
from govshare.app import create_app
from govshare.catalog import search
from govshare.config import Settings
from starlette.testclient import TestClient

search.WARM_UP_DELAY_SECONDS = 600
settings = Settings.model_validate_json(sys.argv[1])
db.upgrade(settings)
app = create_app(settings)
out = {}
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
    out["loaded_at_start"] = sorted(
        m for m in ("jieba", "openpyxl", "alembic", "psycopg") if m in sys.modules
    )
    token = client.post(
        "/api/v1/auth/token", json={"username": "start_admin", "password": sys.argv[2]}
    ).json()["access_token"]
    found = client.get(
        "/api/v1/catalog/resources",
        params={"q": "婚姻登记"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    out["found"] = [r["name"] for r in found["items"]]
print(json.dumps(out))
"""


def _hub_with_one_entry(tmp_path: Path) -> str:
    settings = migrated(make_settings(tmp_path / "data"))
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as s:
        dept = add_department(
            s,
            SYSTEM,
            name="青岛市民政局(启动)",
            short_name="民政",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        add_user(
            s,
            SYSTEM,
            username="start_admin",
            password=PASSWORD,
            display_name="管理员",
            department_id=dept.id,
            roles=[Role.PLATFORM_ADMIN],
        )
        res = catalog.add_resource(
            s,
            ADMIN,
            ResourceIn(
                classification_code="101001",
                name="婚姻登记信息",
                abstract="结婚登记与离婚登记记录",
                format="database",
                sharing_type="1",
                sharing_modes=["table"],
                update_cycle="daily",
                provider_department_id=dept.id,
                items=[
                    ItemIn(name="公民身份号码", code="sfzhm", data_type="C", length=18, is_key=True)
                ],
            ),
        )
        for step in ["submit", "approve", "request_publication", "publish"]:
            catalog.transition(
                s, REVIEWER if step in ("approve", "publish") else ADMIN, res.id, step
            )
    engine.dispose()
    return settings.model_dump_json()


def test_hub_starts_without_what_a_first_request_does_not_need(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, _hub_with_one_entry(tmp_path), PASSWORD],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["loaded_at_start"] == []
    # The first search loads the dictionary itself and finds the entry.
    assert result["found"] == ["婚姻登记信息"]
