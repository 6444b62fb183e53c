"""A job's cases as a table: column labels from the catalog, and the XLSX and CSV a
department downloads to work its cases offline.

The labels come from the catalog alone (目录名·信息项名), not from a plan: a plan needs
the stores and grants, and a case list must still show its columns when a grant has
lapsed since the run. Every cell goes through ``govshare.rules.spreadsheet``, so a value
such as ``=HYPERLINK(…)`` planted in a department's data never runs as a formula.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.compare.models import CompareCase, CompareJob
from govshare.rules.spreadsheet import csv_bytes, xlsx_row
from govshare.security.atrest import AtRestCipher, open_document

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def labels(session: Session, definition: dict[str, Any]) -> dict[str, str]:
    """``alias.item`` → ``目录名·信息项名`` for every item the definition's inputs use; an
    input whose entry is gone keeps its plain reference."""
    inputs = definition.get("inputs") or []
    codes = {str(i.get("resource", "")) for i in inputs}
    resources = {
        r.code: r for r in session.scalars(select(Resource).where(Resource.code.in_(codes)))
    }
    out: dict[str, str] = {}
    for spec in inputs:
        resource = resources.get(str(spec.get("resource", "")))
        names = {it.code: it.name for it in resource.items} if resource else {}
        for item in spec.get("items") or []:
            name = names.get(item)
            if resource is not None and name:
                out[f"{spec.get('alias')}.{item}"] = f"{resource.name}·{name}"
    return out


def resource_names(session: Session, definition: dict[str, Any]) -> dict[str, str]:
    """Each input's alias → its entry's name (the code when the entry is gone)."""
    inputs = definition.get("inputs") or []
    codes = {str(i.get("resource", "")) for i in inputs}
    q = select(Resource.code, Resource.name).where(Resource.code.in_(codes))
    found: dict[str, str] = dict(session.execute(q).all())
    out = {}
    for spec in inputs:
        code = str(spec.get("resource", ""))
        out[str(spec.get("alias"))] = found.get(code, code)
    return out


def header(job: CompareJob, shown: dict[str, str]) -> list[str]:
    outputs = [shown.get(o, o) for o in job.definition.get("output", [])]
    return [
        "线索编号",
        *outputs,
        "涉及金额",
        "记录行数",
        "核查状态",
        "最近一次比对",
        "核查说明",
        "首次发现（运行）",
        "最近发现（运行）",
    ]


def rows(
    job: CompareJob, cases: Iterable[CompareCase], cipher: AtRestCipher
) -> Iterable[list[Any]]:
    outputs = list(job.definition.get("output", []))
    for c in cases:
        values = open_document(cipher, c.values)
        yield [
            c.id,
            *[values.get(o) for o in outputs],
            c.amount,
            c.rows,
            c.state.label,
            c.presence.label,
            c.note,
            c.first_run_id,
            c.last_run_id,
        ]


def cases_csv(
    job: CompareJob, cases: list[CompareCase], shown: dict[str, str], cipher: AtRestCipher
) -> bytes:
    return csv_bytes(header(job, shown), rows(job, cases, cipher))


def cases_xlsx(
    job: CompareJob, cases: list[CompareCase], shown: dict[str, str], cipher: AtRestCipher
) -> bytes:
    from openpyxl import Workbook  # half a second to import: only when a file is made

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("线索")
    ws.append(xlsx_row(ws, header(job, shown)))
    for row in rows(job, cases, cipher):
        ws.append(xlsx_row(ws, row))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
