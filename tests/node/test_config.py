"""``node.toml``: a wrong value is told in Chinese, naming the key, and nothing starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from govshare.node.config import NodeConfigError, load

BASE = 'hub_url = "http://127.0.0.1:9"\nnode_id = 1\nstore = "store"\n'


def _told(tmp_path: Path, text: str) -> str:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NodeConfigError) as caught:
        load(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "told"),
    [
        (
            BASE + '[sources.biz]\nurl = "mysql+pymysql://u:p@h/db"\nfast_read = "maybe"\n',
            "sources.biz.fast_read: 应为 true 或 false",
        ),
        (BASE + 'heartbeat_seconds = "soon"\n', "heartbeat_seconds: 应为数字"),
        (BASE + "heartbeat_seconds = 0\n", "heartbeat_seconds: 不能小于 0.2"),
        ('hub_url = "http://127.0.0.1:9"\nstore = "store"\n', "node_id: 必填"),
        (BASE.replace("node_id = 1", 'node_id = "one"'), "node_id: 应为整数"),
        (BASE + "[sources.biz]\nfast_read = true\n", "sources.biz.url: 必填"),
        (BASE + 'sources = "biz"\n', "sources: 应为一组键值 (表)"),
    ],
)
def test_a_wrong_value_is_told_in_chinese_naming_its_key(
    tmp_path: Path, text: str, told: str
) -> None:
    message = _told(tmp_path, text)
    assert message.startswith(f"配置文件 {tmp_path / 'node.toml'} 有误:")
    assert told in message
    assert "Input should" not in message  # pydantic's English stays out
