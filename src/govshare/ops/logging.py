"""Log lines: JSON objects (one a line, for a collector) or console text, both carrying
the bound context — above all the request id (``govshare.requestid``).

structlog renders the platform's own lines; the standard library's (uvicorn, Starlette's
tracebacks) go through the same processors, so a collector sees one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["json", "console"]


def resolve_format(setting: str, *, demo: bool) -> LogFormat:
    """``auto`` is JSON in production and console text in demo mode."""
    if setting == "auto":
        return "console" if demo else "json"
    return "json" if setting == "json" else "console"


def configure_logging(fmt: LogFormat, *, stream: TextIO | None = None) -> None:
    """Set up structlog and the standard library's root logger to write ``fmt`` lines
    to ``stream`` (standard error by default)."""
    out = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_govshare", False)]:
        root.removeHandler(old)
    handler._govshare = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # The libraries' own chatter stays out; their warnings and errors come through.
    root.setLevel(logging.WARNING)
