"""``govshare backup …`` and ``govshare restore``: take, check and restore backups (with a
Rich progress bar), and make a backup key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from govshare.config import Settings
    from govshare.ops.backup import Progress


class _CreateByDefault(TyperGroup):
    """``govshare backup DEST`` means ``govshare backup create DEST``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["create", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_CreateByDefault,
    help="备份: govshare backup 目标目录 (即 create) | verify 目标目录 | keygen 密钥文件",
    no_args_is_help=True,
)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="数据目录 (GOVSHARE_DATA_DIR)")]
Dest = Annotated[Path, typer.Argument(help="备份目录 (一个备份一个目录)")]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file", help="备份密钥文件 (缺省 GOVSHARE_BACKUP_KEY_FILE 或 GOVSHARE_BACKUP_KEY)"
    ),
]


def _key(settings: Settings, key_file: Path | None) -> bytes:
    from govshare.cli import err
    from govshare.ops import backup

    try:
        if key_file is not None:
            return backup.load_key(
                settings.model_copy(update={"backup_key": None, "backup_key_file": key_file})
            )
        return backup.load_key(settings)
    except backup.BackupError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


@contextmanager
def _bar(total: int, what: str) -> Iterator[Progress]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from govshare.cli import console

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total or None)

        def advance(n: int, label: str) -> None:
            bar.update(task, advance=n, description=f"{what} {label[-40:]}")

        yield advance


@app.command("create")
def create(
    dest: Dest,
    data_dir: DataDir = None,
    key_file: KeyFile = None,
) -> None:
    """在线备份平台 (服务不停): 平台数据库、共享信息库、数据包、上传文件、密钥, 一致、加密,
    附摘要清单; DEST 须为新目录或空目录."""
    from rich.markup import escape

    from govshare import db
    from govshare.cli import _require_hub, console, err, load_settings
    from govshare.ops import backup, service
    from govshare.security.audit import Actor

    settings = load_settings(data_dir)
    _require_hub(settings)
    key = _key(settings, key_file)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    try:
        with _bar(backup.planned_bytes(settings), "备份") as progress:
            result = service.take_backup(
                settings,
                factory,
                dest,
                key=key,
                actor=Actor(name="cli", kind="system"),
                progress=progress,
            )
    except backup.BackupError as exc:
        err.print(f"[red]备份失败:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"[green]备份完成[/green]: {escape(str(result.dest))}  {result.items} 项, "
        f"{result.bytes / 1048576:.1f} MiB, 审计日志至第 {result.audit_seq} 条",
        highlight=False,
    )


@app.command("verify")
def verify(dest: Dest, key_file: KeyFile = None) -> None:
    """校验备份: 清单认证码, 以及每一项解密后与清单摘要比对; 有问题时退出码 1."""
    from rich.markup import escape

    from govshare.cli import console, err, load_settings
    from govshare.ops import backup

    settings = load_settings(offline=True)
    key = _key(settings, key_file)
    try:
        manifest = backup.read_manifest(dest, key)
        total = sum(i.size for i in manifest.items)
        with _bar(total, "校验") as progress:
            report = backup.verify_backup(dest, key=key, progress=progress)
    except backup.BackupError as exc:
        err.print(f"[red]备份不可用:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    if not report.intact:
        err.print(f"[red]备份有 {len(report.problems)} 处问题:[/red]", highlight=False)
        for problem in report.problems:
            err.print(f"  {escape(problem)}", highlight=False)
        raise typer.Exit(1)
    console.print(
        f"[green]备份完整[/green]: {len(manifest.items)} 项, {total / 1048576:.1f} MiB, "
        f"{manifest.created_at.isoformat()} 生成, 审计日志至第 {manifest.audit_seq} 条",
        highlight=False,
    )


@app.command("keygen")
def keygen(
    path: Annotated[Path, typer.Argument(help="新密钥文件 (放在数据目录与备份之外)")],
) -> None:
    """生成新的随机备份密钥文件 (权限 0600), 不覆盖已有文件."""
    from govshare.cli import console, err
    from govshare.ops import backup

    try:
        backup.write_key_file(path)
    except backup.BackupError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"已生成备份密钥: {path}  请另行妥善保管 (没有它, 备份无法恢复)", highlight=False)


def restore(
    dest: Dest,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="恢复到的数据目录 (须为空或不存在)")],
    key_file: KeyFile = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="PostgreSQL 平台的备份: 恢复到的空数据库 (SQLAlchemy URL)"
        ),
    ] = None,
    shared_store_url: Annotated[
        str | None,
        typer.Option("--shared-store-url", help="共享信息库单独成库时: 恢复到的空数据库"),
    ] = None,
) -> None:
    """把备份恢复到空的数据目录 (PostgreSQL 平台还需空的目标数据库); 每一项写入时
    都与清单摘要核对, 出错即撤回已写入的内容."""
    from rich.markup import escape

    from govshare.cli import console, err, load_settings
    from govshare.ops import backup

    settings = load_settings(offline=True)
    key = _key(settings, key_file)
    try:
        manifest = backup.read_manifest(dest, key)
        total = sum(i.size for i in manifest.items)
        with _bar(total, "恢复") as progress:
            backup.restore_backup(
                dest,
                data_dir,
                key=key,
                database_url=database_url,
                shared_store_url=shared_store_url,
                progress=progress,
            )
    except backup.BackupError as exc:
        err.print(f"[red]恢复失败:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"[green]恢复完成[/green]: {escape(str(data_dir))}  {len(manifest.items)} 项, "
        f"{total / 1048576:.1f} MiB (备份于 {manifest.created_at.isoformat()})",
        highlight=False,
    )
    console.print(
        "下一步: govshare audit verify --data-dir 该目录, 然后 govshare serve", highlight=False
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backup")
    root.command("restore")(restore)


__all__ = ["app", "register"]
