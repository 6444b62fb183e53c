"""Every API error has one envelope: {"error": {"code", "message", "details", "request_id"}}."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from govshare import db
from govshare.config import Settings
from govshare.exchange.models import ExchangeDomain
from govshare.security.models import Department, DepartmentLevel
from tests.factories import World, resource_payload, unique


def _assert_envelope(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], list)


def test_unauthenticated(world: World) -> None:
    with world.api() as c:
        _assert_envelope(c.get("/api/v1/catalog/resources").json(), "not_authenticated")


def test_forbidden(world: World) -> None:
    with world.api(world.auditor) as c:
        _assert_envelope(c.get("/api/v1/catalog/resources").json(), "permission_denied")


def test_not_found(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.get("/api/v1/catalog/resources/999999999")
        assert r.status_code == 404
        _assert_envelope(r.json(), "resource_not_found")
        _assert_envelope(c.get("/api/v1/no-such-route").json(), "http_error")


def test_request_validation_names_the_field(world: World) -> None:
    dept = world.department()
    bad = resource_payload(items=[{"name": "姓名", "code": "1bad", "data_type": "C", "length": 50}])
    with world.api(dept.registrar) as c:
        r = c.post("/api/v1/catalog/resources", json=bad)
    assert r.status_code == 422
    body = r.json()
    _assert_envelope(body, "invalid_input")
    assert body["error"]["details"][0]["field"] == "items[0].code"


def test_rule_violations_list_every_field(world: World) -> None:
    dept = world.department()
    bad = resource_payload(
        sharing_type="2",
        sharing_conditions="",
        format="floppy",
        update_cycle="every_hour",
        items=[
            {"name": "金额", "code": "je", "data_type": "Y"},
            {"name": "金额2", "code": "JE", "data_type": "Q"},
        ],
    )
    with world.api(dept.registrar) as c:
        r = c.post("/api/v1/catalog/resources", json=bad)
    assert r.status_code == 422
    body = r.json()
    _assert_envelope(body, "invalid_resource")
    fields = {d["field"] for d in body["error"]["details"]}
    assert fields == {
        "sharing_conditions",
        "format",
        "update_cycle",
        "items[0].length",
        "items[1].code",
        "items[1].data_type",
    }


def test_not_shared_needs_legal_basis(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.post(
            "/api/v1/catalog/resources", json=resource_payload(sharing_type="3", sharing_modes=[])
        )
    details = r.json()["error"]["details"]
    assert details == [
        {
            "field": "not_shared_basis",
            "message": "不予共享必须注明法律、行政法规或党中央、国务院政策依据",
        }
    ]


def test_integrity_errors_the_services_miss_are_409_naming_the_field(world: World) -> None:
    # Renaming an exchange domain to another's name: the service checks new names only,
    # the database's unique constraint catches the rename.
    taken, mine = unique("交换域"), unique("交换域")
    with world.api(world.admin) as c:
        for name in (taken, mine):
            r = c.post("/api/v1/exchange/domains", json={"name": name})
            assert r.status_code == 201, r.text
        mine_id = next(
            d["id"] for d in c.get("/api/v1/exchange/domains").json() if d["name"] == mine
        )
        r = c.post("/exchange/domains", data={"domain_id": str(mine_id), "name": taken})
        assert r.status_code == 409, r.text[:300]
        assert "与已有数据重复" in r.text
        names = sorted(d["name"] for d in c.get("/api/v1/exchange/domains").json())
    assert mine in names
    assert names.count(taken) == 1


@pytest.mark.parametrize(
    ("table", "rows", "expected"),
    [
        (ExchangeDomain, [{"name": "同名"}, {"name": "同名"}], ("unique", ["name"])),
        (
            Department,
            [
                {
                    "name": "甲局",
                    "short_name": "",
                    "credit_code": "1" * 18,
                    "division_code": "110000",
                    "level": DepartmentLevel.CITY,
                },
                {
                    "name": "乙局",
                    "short_name": "",
                    "credit_code": "1" * 18,
                    "division_code": "110000",
                    "level": DepartmentLevel.CITY,
                },
            ],
            ("unique", ["credit_code"]),
        ),
    ],
)
def test_integrity_fields_name_the_column(
    fresh_settings: Settings, table: Any, rows: list[dict[str, Any]], expected: Any
) -> None:
    engine = db.make_engine(fresh_settings)
    try:
        with engine.connect() as conn:
            conn.execute(insert(table), rows[0])
            with pytest.raises(IntegrityError) as caught:
                conn.execute(insert(table), rows[1])
    finally:
        engine.dispose()
    assert db.integrity_fields(caught.value) == expected


def test_text_the_database_cannot_store_is_422(world: World) -> None:
    def login(username: str) -> Any:
        with world.api() as c:
            return c.post(
                "/api/v1/auth/token",
                content=f'{{"username": "{username}", "password": "whatever-long"}}'.encode(),
                headers={"Content-Type": "application/json"},
            )

    # A lone surrogate: validation refuses it before any database sees it.
    r = login("a\\udac3b")
    assert r.status_code == 422, r.text[:200]
    _assert_envelope(r.json(), "invalid_input")
    # NUL: PostgreSQL cannot hold it in a text; SQLite can (so: just a wrong login).
    r = login("a\\u0000b")
    if world.hub.backend == "sqlite":
        assert r.status_code == 401, r.text[:200]
    else:
        assert r.status_code == 422, r.text[:200]
        _assert_envelope(r.json(), "unstorable_value")


def test_openapi_documents_the_envelope_for_every_operation(world: World) -> None:
    with world.api() as c:
        spec = c.get("/openapi.json").json()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("4XX", "422") if "422" in responses else ("4XX",):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == envelope, (method, path, status)
