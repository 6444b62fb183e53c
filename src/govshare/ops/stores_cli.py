"""``govshare stores``: the shared stores from the command line — which ones the catalog's
sensitive items or the newest field key no longer match, and resealing them
(``sharing.reseal``; a base database's by ``basedata.reseal``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="共享信息库", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="数据目录 (GOVSHARE_DATA_DIR)")]


@app.command("reseal")
def reseal_stores(
    store_ids: Annotated[
        list[int] | None,
        typer.Argument(help="共享信息库编号 (可多个); 不给出时只列出待重新加密的"),
    ] = None,
    all_stores: Annotated[bool, typer.Option("--all", help="重新加密所有待重新加密的库")] = False,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0.0, max=60.0, help="切换前后等待进行中的写入和查询的秒数"),
    ] = 2.0,
    data_dir: DataDir = None,
) -> None:
    """按目录当前标注的敏感信息项和最新的字段密钥重新加密共享信息库 (含基础库):
    新标为敏感的信息项加密保存, 不再敏感的 (或已关闭静态加密时) 解密保存, 轮换字段
    密钥后改用新密钥。库按主键顺序复制到新表 (基础库连同其历史表), 复制期间照常
    提供查询, 交换数据 (基础库的组装) 暂停写入该库, 复制完成后一步切换到新表并记入
    审计日志; 中断后再次运行即可完成。"""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
    from rich.table import Table
    from sqlalchemy import select

    from govshare import db
    from govshare.basedata.models import BaseDatabase
    from govshare.basedata.reseal import reseal_base
    from govshare.cli import _cli_actor, _require_hub, console, err, load_settings
    from govshare.errors import GovshareError
    from govshare.sharing.models import SharedStore
    from govshare.sharing.reseal import newest_key, pending, reseal
    from govshare.sharing.store import SharedDatabase

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    newest = newest_key(settings)
    with db.session_scope(factory) as session:
        stores = list(session.scalars(select(SharedStore).order_by(SharedStore.id)))
        waiting = {
            s.id: (s.resource.name, pending(s, settings, newest), s.reseal_to is not None)
            for s in stores
        }
        bases = {b.store_id: b.id for b in session.scalars(select(BaseDatabase)) if b.store_id}
    due = [i for i, (_, change, started) in waiting.items() if change or started]
    if not store_ids and not all_stores:
        if not due:
            console.print("所有共享信息库的加密保存与目录一致, 无需重新加密。")
            return
        table = Table(title="待重新加密的共享信息库")
        for column in ("编号", "目录", "类型", "将加密", "将解密", "换用新密钥", "状态"):
            table.add_column(column)
        for i in due:
            name, change, started = waiting[i]
            table.add_row(
                str(i),
                escape(name),
                "基础库" if i in bases else "共享信息库",
                escape("、".join(change.seal)),
                escape("、".join(change.open)),
                "是" if change.rekey else "",
                "上次未完成" if started else "",
            )
        console.print(table)
        console.print("运行 govshare stores reseal 编号 … 或 --all 重新加密。")
        return
    unknown = [i for i in store_ids or [] if i not in waiting]
    if unknown:
        err.print(f"[red]没有这些共享信息库:[/red] {', '.join(map(str, unknown))}")
        raise typer.Exit(2)
    chosen = due if all_stores else list(dict.fromkeys(store_ids or []))
    shared = SharedDatabase.of(settings)
    failed = False
    try:
        for store_id in chosen:
            name = escape(waiting[store_id][0])
            with Progress(
                TextColumn(f"{store_id} {name}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("copy", total=None)

                def advance(n: int, total: int, task: TaskID = task, bar: Progress = bar) -> None:
                    bar.update(task, completed=n, total=total)

                base_id = bases.get(store_id)
                try:
                    if base_id is not None:
                        done = reseal_base(
                            factory,
                            shared,
                            settings,
                            base_id,
                            _cli_actor(),
                            progress=advance,
                            grace=grace,
                        )
                    else:
                        done = reseal(
                            factory,
                            shared,
                            settings,
                            store_id,
                            _cli_actor(),
                            progress=advance,
                            grace=grace,
                        )
                except GovshareError as exc:
                    err.print(f"[red]{store_id} {name}:[/red] {escape(exc.message)}")
                    failed = True
                    continue
            if done is None:
                console.print(f"{store_id} {name}: 与目录一致, 无需重新加密")
                continue
            console.print(
                f"[green]{store_id} {name}: 已重新加密[/green] {done.rows} 行 → 表 {done.table}"
                + (f"; 加密 {escape('、'.join(done.sealed))}" if done.sealed else "")
                + (f"; 解密 {escape('、'.join(done.opened))}" if done.opened else "")
                + (f"; 字段密钥第 {done.key} 代" if done.key else ""),
                highlight=False,
            )
            if base_id is not None:
                console.print(
                    f"  基础库的表已改为 {done.table} (历史表 {done.table}_hist);"
                    " 读取其表返还区县的交换任务须改读新表。",
                    highlight=False,
                )
    finally:
        shared.close()
    if failed:
        raise typer.Exit(1)
