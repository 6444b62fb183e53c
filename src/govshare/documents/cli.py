"""``govshare documents verify ID``: check a stored document and its receipts (核验),
years after it was sent, from the hub's database and data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="电子公文交换", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="数据目录 (GOVSHARE_DATA_DIR)")]


@app.command("verify")
def verify(
    document_id: Annotated[str, typer.Argument(help="公文编号 (控制台公文页面上的编号)")],
    data_dir: DataDir = None,
) -> None:
    """核验一份公文: 签名、元数据、每个文件的摘要和每份回执的签名。

    全部通过退出码 0; 有任何一项未通过退出码 1 (逐项说明原因); 编号有误、公文不存在
    或平台配置不可用退出码 2。核验本身记入审计日志。"""
    from rich.markup import escape

    from govshare import db
    from govshare.cli import _require_hub, console, err, load_settings
    from govshare.db import utcnow
    from govshare.documents.errors import DocumentNotFound
    from govshare.documents.verify import record_verification, verify_document
    from govshare.ids import parse_id
    from govshare.security.service import Principal

    number = parse_id(document_id)
    if number is None:
        err.print(f"[red]公文编号应为正整数:[/red] {escape(document_id)}", highlight=False)
        raise typer.Exit(2)
    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    operator = Principal(kind="system", name="cli", department_id=None, permissions=frozenset())
    try:
        with db.session_scope(factory) as session:
            report = verify_document(session, settings.data_dir, settings.secret_key, number)
            record_verification(session, operator, report, now=utcnow())
    except DocumentNotFound:
        err.print(f"[red]公文 {number} 不存在[/red]", highlight=False)
        raise typer.Exit(2) from None
    for check in report.checks:
        mark = "[green]通过[/green]" if check.ok else "[red]未通过[/red]"
        reason = f" — {escape(check.reason)}" if check.reason else ""
        console.print(f"{mark} {escape(check.subject)}{reason}", highlight=False)
    if report.ok:
        console.print(f"[green]公文 {number} 核验通过: 签名、内容和回执均完整[/green]")
        return
    err.print(
        f"[red]公文 {number} 核验未通过: {len(report.failures)} 项不符 (见上)[/red]",
        highlight=False,
    )
    raise typer.Exit(1)
