"""``node.toml``: where the hub is, who this node is, and the databases it may touch."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from govshare.rules.fields import validation_problems


class Database(BaseModel):
    url: str = Field(description="SQLAlchemy URL; sources are only ever read")
    fast_read: bool = Field(
        default=True,
        description="快速读取: 装有 connectorx (govshare[fastread]) 且表的列类型适用时, 数据源"
        "整批直接读成 Arrow, 目标库对账时按主键分页读键; false 时一律走 Python 驱动",
    )


class NodeConfig(BaseModel):
    """The node's configuration file (前置机配置)."""

    hub_url: str = Field(description="e.g. https://hub.example.gov.cn")
    node_id: int
    enrollment_token: str | None = Field(
        default=None, description="one-time token for the first start"
    )
    store: Path = Field(description="directory of the local store (前置交换库) and keys")
    secret_file: Path | None = Field(
        default=None,
        description="本地库静态加密口令文件 (前置机私钥、传输密钥和待发数据包加密保存); "
        "必须在 store 目录之外, 环境变量 GOVSHARE_NODE_SECRET 优先",
    )
    at_rest_cipher: str = Field(
        default="sm4", pattern="^(sm4|aes)$", description="本地库静态加密算法: sm4 或 aes"
    )
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


SECRET_ENV = "GOVSHARE_NODE_SECRET"  # noqa: S105 (the variable's name, not a secret)
MIN_SECRET_CHARS = 16


def node_secret(config: NodeConfig) -> str | None:
    """The secret that seals the local store's keys and outbox (静态加密口令): the
    environment's ``GOVSHARE_NODE_SECRET``, else the contents of ``secret_file``, else
    None (the store is kept unsealed, as before this existed)."""
    if secret := os.environ.get(SECRET_ENV, "").strip():
        where = f"环境变量 {SECRET_ENV}"
    elif config.secret_file is not None:
        where = f"口令文件 {config.secret_file}"
        try:
            secret = config.secret_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise NodeConfigError(f"{where} 不存在") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise NodeConfigError(f"无法读取{where}: {exc}") from None
    else:
        return None
    if len(secret) < MIN_SECRET_CHARS:
        raise NodeConfigError(f"{where} 中的口令太短: 至少 {MIN_SECRET_CHARS} 个字符")
    return secret


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
        problems = validation_problems(exc, yes_no="应为 true 或 false", value_errors=True)
        lines = [f"  {p['field'] or '(整个文件)'}: {p['message']}" for p in problems]
        raise NodeConfigError(f"配置文件 {path} 有误:\n" + "\n".join(lines)) from None
    if not config.store.is_absolute():
        config.store = (path.parent / config.store).resolve()
    if config.secret_file is not None:
        if not config.secret_file.is_absolute():
            config.secret_file = (path.parent / config.secret_file).resolve()
        if config.secret_file.resolve().is_relative_to(config.store.resolve()):
            # A copy of the store directory would carry the secret that opens it.
            raise NodeConfigError(
                f"配置文件 {path} 有误:\n  secret_file: 口令文件不能放在本地库目录 "
                f"{config.store} 之内"
            )
    config.folders = {
        k: v if v.is_absolute() else (path.parent / v).resolve() for k, v in config.folders.items()
    }
    return config
