"""Task schedules: an interval in seconds, or a cron expression."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from govshare.exchange.schemas import ProviderConfig, ScheduleIn
from govshare.node.agent import seconds_to_next_run


def test_interval_and_default() -> None:
    assert seconds_to_next_run({"interval_seconds": 2.5}) == 2.5
    assert seconds_to_next_run({}) == 5.0


def test_cron_waits_for_the_next_fire_time() -> None:
    wait = seconds_to_next_run({"cron": "*/5 * * * *"})
    assert 0 <= wait <= 300


def test_invalid_cron_is_refused_with_a_chinese_message() -> None:
    with pytest.raises(ValidationError, match="cron 表达式无效"):
        ScheduleIn(cron="99 * * *")


def test_provider_config_rules() -> None:
    with pytest.raises(ValidationError, match="cursor_column"):
        ProviderConfig(source="biz", table="t", key=["id"], mode="incremental")
    with pytest.raises(ValidationError, match="只能是 SELECT"):
        ProviderConfig(source="biz", query="DELETE FROM t", key=["id"], cursor_column="v")
    with pytest.raises(ValidationError, match="文件夹任务"):
        ProviderConfig(folder="docs", table="t")
    assert ProviderConfig(folder="docs").folder == "docs"
