"""The data of one console chart, as ``static/app.js`` draws it from a
``<script type="application/json">`` block (see ``exchange/_macros.html:chart_card``)."""

from __future__ import annotations

from typing import Any


def chart(kind: str, title: str, labels: list[str], **data: Any) -> dict[str, Any]:
    """``values`` for one series, ``series`` ([{name, values}]) for more; ``kind`` is
    ``bar``, ``line``, ``stack`` or ``pie``."""
    return {"type": kind, "title": title, "labels": labels, **data}
