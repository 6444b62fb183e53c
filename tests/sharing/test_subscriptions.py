"""The provider task a subscription gets is its grant's scope, spelled in source columns
(the end-to-end delivery through real nodes is in test_data.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from govshare import db
from govshare.config import Settings
from govshare.errors import InvalidInput
from govshare.sharing.subscriptions import granted_config

SOURCE = {
    "source": "biz",
    "table": "person",
    "key": ["id"],
    "columns": None,
    "mode": "incremental",
    "cursor_column": "version",
    "delete_detection": "soft_delete",
    "soft_delete_column": "deleted",
}


def _config(settings: Settings, **grant: Any) -> dict[str, Any]:
    engine = db.make_engine(settings)
    try:
        with db.make_session_factory(engine, settings)() as session:
            fields = {"items": ["sfzhm", "xm"], "row_filter": None, "masking": {}} | grant
            # No shared store follows this task: columns carry the items' codes.
            return granted_config(
                session,
                SimpleNamespace(**fields),  # type: ignore[arg-type]
                SimpleNamespace(id=1, config=SOURCE),  # type: ignore[arg-type]
            )
    finally:
        engine.dispose()


def test_the_task_reads_key_change_columns_and_granted_items_only(
    fresh_settings: Settings,
) -> None:
    config = _config(
        fresh_settings,
        row_filter=[
            {"item": "xb", "op": "eq", "value": "1"},
            {"item": "qx", "op": "in", "value": "370202"},  # one value, as stores accept
        ],
        masking={"xm": "name", "sfzhm": "none", "lxdh": "phone"},  # lxdh is not granted
    )
    assert config["columns"] == ["id", "version", "deleted", "sfzhm", "xm"]
    assert config["row_filter"] == [
        {"column": "xb", "op": "eq", "value": "1"},
        {"column": "qx", "op": "in", "value": ["370202"]},
    ]
    assert config["masking"] == {"xm": "name"}
    assert config["table"] == "person"


def test_a_masked_key_cannot_be_subscribed(fresh_settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="主键脱敏") as caught:
        _config(fresh_settings, items=["id", "xm"], masking={"id": "id_number"})
    assert caught.value.details == [{"field": "source_task_id", "message": "主键列: id"}]
