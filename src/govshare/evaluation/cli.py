"""``govshare evaluation …``: compute a month (with a Rich progress bar), publish it,
export its workbook and report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="考核评估 (部门考核与平台指标)", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="数据目录 (GOVSHARE_DATA_DIR)")]
MonthArg = Annotated[str, typer.Argument(help="考核月份, 如 2026-11")]


@app.command("run")
def run(
    month: MonthArg,
    data_dir: DataDir = None,
    recompute: Annotated[
        bool, typer.Option("--recompute", help="重新计算已发布的月份 (记入审计日志)")
    ] = False,
) -> None:
    """Compute a month's evaluation now, from the records stored."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from govshare import db
    from govshare.cli import _print_error, _require_hub, console, load_settings
    from govshare.errors import GovshareError
    from govshare.evaluation import service
    from govshare.rules.clock import china_today
    from govshare.security.audit import Actor

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    )
    try:
        with (
            db.session_scope(factory) as session,
            Progress(*columns, TimeElapsedColumn(), console=console) as progress,
        ):
            bar = progress.add_task("考核", total=1)

            def show(done: int, total: int, label: str) -> None:
                progress.update(bar, completed=done, total=total, description=label)

            r = service.run_month(
                session,
                Actor(name="cli", kind="system"),
                service.parse_month(month),
                today=china_today(),
                recompute=recompute,
                on_progress=show,
            )
            ranked = len([x for x in service.ranking(session, r) if x.rank is not None])
            summary = f"{r.month} 考核完成: 计入记录 {r.facts} 条, 排名部门 {ranked} 个 (方案第 {r.scheme.version} 版, {r.status.label})"  # noqa: E501
    except GovshareError as exc:
        _print_error(exc)
        raise typer.Exit(1) from None
    console.print(f"[green]{summary}[/green]")


@app.command("publish")
def publish(
    month: MonthArg,
    username: Annotated[str, typer.Option("--as", help="发布人 (平台管理员)")],
    data_dir: DataDir = None,
) -> None:
    """Publish a month: its results no longer change when later data arrives."""
    from govshare import db
    from govshare.cli import _principal, _print_error, _require_hub, console, load_settings
    from govshare.errors import GovshareError
    from govshare.evaluation import service
    from govshare.security.errors import PermissionDenied
    from govshare.security.roles import Permission

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    try:
        with db.session_scope(factory) as session:
            principal = _principal(session, username)
            if not principal.can(Permission.EVALUATION_ADMIN):
                raise PermissionDenied("缺少“管理考核评估”权限")
            service.publish_run(session, principal, str(service.parse_month(month)))
    except GovshareError as exc:
        _print_error(exc)
        raise typer.Exit(1) from None
    console.print(f"[green]{month} 考核结果已发布[/green]")


@app.command("export")
def export_cmd(
    month: MonthArg,
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path(),
    data_dir: DataDir = None,
) -> None:
    """Write the month's workbook (XLSX) and report (PDF) from the stored run."""
    from govshare import db
    from govshare.cli import _print_error, _require_hub, console, load_settings
    from govshare.errors import GovshareError
    from govshare.evaluation import export, service
    from govshare.security.roles import Permission
    from govshare.security.service import Principal

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    bureau = Principal(
        kind="system", name="cli", department_id=None, permissions=frozenset(Permission)
    )
    try:
        with db.session_scope(factory) as session:
            r = service.get_run(session, str(service.parse_month(month)))
            out.mkdir(parents=True, exist_ok=True)
            (out / f"evaluation-{r.month}.xlsx").write_bytes(export.xlsx(session, r))
            (out / f"evaluation-{r.month}.pdf").write_bytes(export.pdf(session, bureau, r))
    except GovshareError as exc:
        _print_error(exc)
        raise typer.Exit(1) from None
    console.print(f"[green]已导出到 {out}[/green]")
