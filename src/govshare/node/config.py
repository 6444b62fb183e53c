"""``node.toml``: where the hub is, who this node is, and the databases it may touch."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError


class Database(BaseModel):
    url: str = Field(description="SQLAlchemy URL; sources are only ever read")


class NodeConfig(BaseModel):
    """The node's configuration file (前置机配置)."""

    hub_url: str = Field(description="e.g. https://hub.example.gov.cn")
    node_id: int
    enrollment_token: str | None = Field(
        default=None, description="one-time token for the first start"
    )
    store: Path = Field(description="directory of the local store (前置交换库) and keys")
    sources: dict[str, Database] = Field(default_factory=dict)
    targets: dict[str, Database] = Field(default_factory=dict)
    folders: dict[str, Path] = Field(
        default_factory=dict, description="文件夹 (非结构化资源的来源或目标)"
    )
    heartbeat_seconds: float = Field(default=5, ge=0.2, le=3600)
    tick_seconds: float = Field(default=0.5, ge=0.05, le=60)
    # Gatekeeper (网闸) mode: no HTTP; packages cross as files in these folders.
    transport: str = Field(default="http", pattern="^(http|folder)$")
    request_timeout_seconds: float = Field(default=60, ge=1, le=3600)
    checksum_delay_seconds: float = Field(
        default=0,
        ge=0,
        le=600,
        description="For tests only: pause this long while taking each checksum (核对), so "
        "a test can kill a process in the middle of one. Leave 0 in production.",
    )


class NodeConfigError(ValueError):
    pass


def load(path: Path) -> NodeConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NodeConfigError(f"配置文件不存在: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise NodeConfigError(f"配置文件 {path} 不是合法的 TOML: {exc}") from None
    try:
        config = NodeConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise NodeConfigError(f"配置文件 {path} 有误:\n" + "\n".join(lines)) from None
    if not config.store.is_absolute():
        config.store = (path.parent / config.store).resolve()
    config.folders = {
        k: v if v.is_absolute() else (path.parent / v).resolve() for k, v in config.folders.items()
    }
    return config
