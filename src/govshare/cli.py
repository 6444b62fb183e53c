"""The ``govshare`` command line: serve the hub, migrate, verify the audit log, import."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from govshare.documents import cli as documents_cli
from govshare.evaluation import cli as evaluation_cli
from govshare.ids import MAX_ID
from govshare.ops import cli as ops_cli
from govshare.ops import keys_cli, stores_cli

if TYPE_CHECKING:
    from govshare.config import Settings

# The hub's settings (pydantic-settings) are imported by the commands that need them: the
# node (``govshare node run``) has its own node.toml and starts without them.

app = typer.Typer(help="govshare 政务数据共享交换平台", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="数据库迁移", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志", no_args_is_help=True)
catalog_app = typer.Typer(help="目录", no_args_is_help=True)
node_app = typer.Typer(help="前置机 (前置交换节点)", no_args_is_help=True)
exchange_app = typer.Typer(help="交换 (平台侧)", no_args_is_help=True)
users_app = typer.Typer(help="用户", no_args_is_help=True)
compare_app = typer.Typer(help="比对任务 (跨部门数据比对)", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(catalog_app, name="catalog")
app.add_typer(node_app, name="node")
app.add_typer(exchange_app, name="exchange")
app.add_typer(users_app, name="users")
app.add_typer(compare_app, name="compare")
app.add_typer(evaluation_cli.app, name="evaluation")
app.add_typer(documents_cli.app, name="documents")
app.add_typer(stores_cli.app, name="stores")
ops_cli.register(app)
keys_cli.register(app)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # paths and messages stay whole

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="数据目录 (GOVSHARE_DATA_DIR)")]


def load_settings(
    data_dir: Path | None = None, *, offline: bool = False, **overrides: object
) -> Settings:
    """The settings from GOVSHARE_* and the command line; ``offline`` commands (which
    read the data dir and never use the secret key) do not require the secret."""
    from govshare.config import OfflineSettings, Settings, UnsafeSettingError

    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    kind = OfflineSettings if offline else Settings
    try:
        return kind(**values)  # type: ignore[arg-type]
    except UnsafeSettingError as exc:
        err.print(f"[red]配置错误:[/red] {exc}")
        raise typer.Exit(2) from None
    except ValidationError as exc:
        from govshare.rules.fields import validation_problems

        for problem in validation_problems(exc, yes_no="应为 true 或 false", value_errors=True):
            name = problem["field"]
            where = f"{name} (环境变量 GOVSHARE_{name.upper()})" if name else "设置"
            err.print(f"[red]配置错误:[/red] {where}: {problem['message']}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="监听地址")] = None,
    port: Annotated[int | None, typer.Option(help="监听端口")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="演示模式: 载入演示部门与目录")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="工作进程数 (多核时可设为核数; 缺省 GOVSHARE_WORKERS 或 1). 每个进程各有"
            "后台任务与调用日志写线程; 应用的每秒调用上限由各进程均分, 每日额度全局计",
        ),
    ] = None,
) -> None:
    """Migrate, (in demo mode) load demo data, and serve the hub."""
    import uvicorn

    from govshare import db
    from govshare.app import create_app

    settings = load_settings(data_dir, host=host, port=port, demo=demo or None, workers=workers)
    _configure_logging(settings)
    db.upgrade(settings)
    if settings.demo:
        _ensure_demo(settings)
        if settings.demo_exchange:
            _start_demo_exchange(settings)
    console.print(f"控制台: [bold]http://{settings.host}:{settings.port}/[/bold]  API 文档: /docs")
    if settings.workers == 1:
        app = create_app(settings)
        _server_gc()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
        return
    # Worker processes build their own app from the environment: hand them the
    # command line's settings that way.
    os.environ["GOVSHARE_DATA_DIR"] = str(settings.data_dir)
    os.environ["GOVSHARE_DEMO"] = "true" if settings.demo else "false"
    os.environ["GOVSHARE_WORKERS"] = str(settings.workers)
    from govshare.ops.metrics import prepare_multiprocess_dir

    # Before the workers start: each writes its counters there and a scrape adds them.
    prepare_multiprocess_dir(settings.data_dir)
    from govshare.web.workers import PortInUse, SlotSupervisor, reuse_port_sockets

    config = uvicorn.Config(
        "govshare.cli:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    try:
        sockets = reuse_port_sockets(settings.host, settings.port, settings.workers)
    except PortInUse as exc:
        err.print(f"[red]无法启动:[/red] {exc.strerror}")
        raise typer.Exit(1) from None
    # One listening socket per worker (SO_REUSEPORT): see govshare.web.workers.
    SlotSupervisor(config, sockets).run()


def worker_app() -> Any:
    """The hub of one ``govshare serve --workers N`` process (settings from GOVSHARE_*)."""
    from govshare.app import create_app
    from govshare.config import Settings

    settings = Settings()  # type: ignore[call-arg]
    _configure_logging(settings)
    app = create_app(settings)
    _server_gc()
    return app


def _configure_logging(settings: Settings) -> None:
    from govshare.ops.logging import configure_logging, resolve_format

    configure_logging(resolve_format(settings.log_format, demo=settings.demo))


# Allocations minus deallocations between two young-generation collections of a
# serving hub; Python's default is 700.
SERVER_GC_THRESHOLD = 20_000


def _server_gc() -> None:
    """Garbage collection for a serving hub process: what start-up built is frozen out
    of every later collection, and young collections run far less often. With the
    defaults, each young collection promotes the objects of the requests in flight, so
    a full collection (10–90 ms with every request stopped) came every 0.3–0.6 s and
    made the data services' p99 latency; measured in bench/README.md. No collection
    before the freeze: at this point one finds nothing (measured) and walks every object
    built so far, 0.1-0.4 s of each start."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(SERVER_GC_THRESHOLD, older, oldest)


def _ensure_demo(settings: Settings) -> None:
    """Load the demo once; on every start give the demo accounts the printed password."""
    from govshare import db, demo
    from govshare.catalog.service import seed_reference_data
    from govshare.config import generate_password

    engine = db.make_engine(settings)
    password = settings.admin_password or generate_password()
    with db.session_scope(db.make_session_factory(engine, settings)) as session:
        seed_reference_data(session)
        if not demo.demo_loaded(session):
            with console.status("载入演示数据…"):
                counts = demo.load_demo(session, password, settings=settings)
            console.print(
                f"已载入演示数据：{counts['departments']} 个部门、{counts['users']} 个用户、"
                f"{counts['resources']} 条目录（已发布 {counts['published']}、"
                f"待注册审核 {counts['pending_registration']}、"
                f"待发布审核 {counts['pending_publication']}、草稿 {counts['draft']}）；"
                f"共享申请 {counts.get('applications', 0)} 件、"
                f"授权 {counts.get('grants', 0)} 项、接入应用 {counts.get('clients', 0)} 个、"
                f"数据服务调用 {counts.get('calls', 0)} 次、异议 {counts.get('objections', 0)} 件",
                soft_wrap=True,
            )
        else:
            demo.reset_passwords(session, password)
        from govshare.demo_opendata import refresh_demo_key

        developer = refresh_demo_key(session, settings, password)
    engine.dispose()
    console.print(
        f"管理员登录：用户名 [bold]admin[/bold]，密码 [bold]{password}[/bold]", soft_wrap=True
    )
    console.print(
        "演示账号（同一密码）：gaj_reg 公安编目员、gaj_rev 公安审核员、"
        "rsj_res 人社资源管理员、auditor 审计员",
        soft_wrap=True,
    )
    if developer is not None:
        approved = (
            f"，已获批有条件开放数据集 /open/datasets/{developer.conditional}"
            if developer.conditional
            else ""
        )
        console.print(
            f"开放平台演示开发者：/open/developer 邮箱 [bold]{developer.email}[/bold]（同一密码），"
            f"API 密钥 [bold]{developer.key}[/bold]（请求头 X-Api-Key）{approved}",
            soft_wrap=True,
        )


def _start_demo_exchange(settings: Settings) -> None:
    """The demo front-end nodes and a business system that keeps changing its data."""
    from govshare import db, demo_exchange

    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as session:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
        configs = demo_exchange.setup(session, settings, f"http://{host}:{settings.port}")
    engine.dispose()
    demo_exchange.Running(configs, configs[0].parent / "gaj-business.db")
    console.print(
        "演示交换: 公安前置机 → 平台 → 人社、民政前置机；"
        "各部门前置机为人口库、法人库和比对模板供数"
        " (数据交换 页面可见)；比对任务「死亡人员仍领取养老金」的线索经大数据局前置机"
        "交付人社本部门数据库 (运行该任务后可见)",
        soft_wrap=True,
    )


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, revision: str = "head") -> None:
    """Bring the hub database to the newest schema and seed reference data."""
    from govshare import db
    from govshare.catalog.service import seed_reference_data

    settings = load_settings(data_dir)
    db.upgrade(settings, revision)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    with db.session_scope(factory) as session:
        seed_reference_data(session)
    console.print("数据库已升级到最新版本")


def _require_hub(settings: Settings) -> None:
    """Exit 2 with a message, creating nothing, when the data dir holds no hub."""
    if settings.is_sqlite and not (settings.data_dir / "govshare.db").is_file():
        err.print(f"[red]数据目录中没有平台数据库:[/red] {settings.data_dir / 'govshare.db'}")
        err.print("先运行 govshare db upgrade --data-dir 数据目录")
        raise typer.Exit(2)


def _offline_session(data_dir: Path | None) -> Any:
    """A session on the hub database for offline audit commands, which need only the
    data dir (its database or GOVSHARE_DATABASE_URL, and its audit key), never the
    secret key; nothing is created when the data dir holds no hub."""
    from sqlalchemy.orm import sessionmaker

    from govshare import db
    from govshare.security.anchor import AuditKeyError, read_key

    settings = load_settings(data_dir, offline=True)
    _require_hub(settings)
    try:
        key = read_key(settings.data_dir)
    except AuditKeyError as exc:
        err.print(f"[red]审计密钥不可用:[/red] {exc}")
        raise typer.Exit(2) from None
    if key is None:
        err.print(
            f"[yellow]数据目录中没有审计密钥 ({settings.data_dir / 'audit' / 'key.json'})，"
            "只能按未加密钥的旧规则校验[/yellow]"
        )
    engine = db.make_engine(settings)
    return sessionmaker(engine, info={"audit_key": key})(), key


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None) -> None:
    """校验审计日志: 逐条核对归档文件与在线记录的加密钥哈希链 (跨归档衔接) 及签名检查点;
    有任何被改动、删除、插入、重写的记录或被改动、删除、调换的归档时退出码为 1。
    只需数据目录, 不需要平台密钥。"""
    from govshare.security.archive import archived_count
    from govshare.security.audit import count_entries, problem_text, usable_cores, verify_chain

    session, _key = _offline_session(data_dir)
    with session:
        total = count_entries(session) + archived_count(session)
        with _Progress("校验哈希链", total) as advance:
            report = verify_chain(session, progress=advance, workers=usable_cores())
    if report.intact:
        archived = (
            f" (其中 {report.archived} 条在 {report.archives} 个归档中)" if report.archives else ""
        )
        console.print(
            f"[green]审计日志完整[/green]: {report.entries} 条记录{archived}, 哈希链无断点"
        )
        return
    table = Table("序号", "问题", title=f"审计日志被篡改: {len(report.problems)} 处")
    for p in report.problems:
        text = problem_text(p.problem)
        table.add_row(str(p.seq), text if text == p.problem else f"{text} ({p.problem})")
    console.print(table)
    raise typer.Exit(1)


class _Progress:
    """A Rich progress bar for a long walk; yields the callback that advances it."""

    def __init__(self, what: str, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=total < 50_000,
        )
        self.task = self.bar.add_task(what, total=total)

    def __enter__(self) -> Any:
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *_exc: object) -> None:
        self.bar.stop()


def _audit_factory(data_dir: Path | None) -> tuple[Any, Settings, Any]:
    """A session factory that appends with the deployment's digest and key (the audit
    commands that record what they did), with the offline settings and the key."""
    from govshare import db

    settings = load_settings(data_dir, offline=True)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    key = factory.kw["info"]["audit_key"]
    return factory, settings, key


@audit_app.command("archive")
def audit_archive(
    data_dir: DataDir = None,
    years: Annotated[
        int | None,
        typer.Option(
            "--years", min=1, max=100, help="保存期限 (年), 默认取 GOVSHARE_AUDIT_RETENTION_YEARS"
        ),
    ] = None,
) -> None:
    """归档审计日志: 把早于保存期限、且有签名检查点锚定的记录写入签名归档文件
    (数据目录 audit/archive/), 校验归档后才从数据库中清理这些记录 (同一事务)。"""
    from datetime import UTC, datetime

    from govshare.security.archive import ArchiveError, archive_due, plan_archive

    factory, settings, key = _audit_factory(data_dir)
    retention = years or settings.audit_retention_years
    now = datetime.now(UTC)
    with factory() as session:
        plan = plan_archive(session, key, now=now, years=retention)
        total = 0 if isinstance(plan, str) else plan.last_seq - plan.first_seq + 1
        try:
            with _Progress("写出并校验归档", total) as advance:
                result = archive_due(
                    session,
                    key,
                    now=now,
                    years=retention,
                    actor=_cli_actor(),
                    progress=advance,
                )
        except ArchiveError as exc:
            err.print(f"[red]归档失败, 未清理任何记录:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
    if isinstance(result, str):
        console.print(f"无需归档: {result}")
        return
    console.print(
        f"[green]已归档[/green] 第 {result.first_seq} 至 {result.last_seq} 条 "
        f"({result.entries} 条, {result.data_bytes / 1e6:.1f} MB) → "
        f"{result.directory / result.name}.jsonl.gz, 已校验并从数据库清理",
        highlight=False,
    )


def _cli_actor() -> Any:
    from govshare.security.audit import Actor

    return Actor(name="cli", kind="system")


def _parse_day(value: str | None, option: str) -> Any:
    """A yyyy-mm-dd given on the command line as the moment it starts in China."""
    from datetime import date, datetime

    from govshare.rules.clock import CHINA

    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]{option} 应为 年-月-日 (如 2025-01-31):[/red] {value}", highlight=False)
        raise typer.Exit(2) from None
    return datetime(day.year, day.month, day.day, tzinfo=CHINA)


@audit_app.command("search")
def audit_search(
    data_dir: DataDir = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", help="查询键 (如公民身份号码、统一社会信用代码); 需要 GOVSHARE_SECRET_KEY"
        ),
    ] = None,
    key_hash: Annotated[
        str | None, typer.Option("--key-hash", help="键哈希 (govshare audit key-hash 的输出)")
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="操作人 (登录名或应用 app key)")
    ] = None,
    action: Annotated[str | None, typer.Option("--action", help="动作代码, 如 data.lookup")] = None,
    object_type: Annotated[str | None, typer.Option("--object-type", help="对象类型")] = None,
    object_id: Annotated[str | None, typer.Option("--object-id", help="对象标识")] = None,
    catalog: Annotated[bool, typer.Option("--catalog", help="只查目录的变更")] = False,
    refusals: Annotated[bool, typer.Option("--refusals", help="只查被拒绝的调用与登录")] = False,
    since: Annotated[str | None, typer.Option("--since", help="起始日期 年-月-日 (含)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="截止日期 年-月-日 (含)")] = None,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="把全部结果导出为 XLSX 文件, 并写出签名文件 文件名.sig"),
    ] = None,
    show: Annotated[int, typer.Option("--show", min=0, max=10_000, help="在屏幕上列出多少条")] = 50,
) -> None:
    """检索审计日志 (在线记录与全部归档): 谁在何时、凭哪项授权查询了某人或某企业的数据
    (按键哈希), 谁改动了目录的什么, 每一次拒绝——只显示记录的元数据, 不显示数据本身。
    检索本身记入审计日志。"""
    from datetime import UTC, datetime, timedelta

    from govshare.security import audit
    from govshare.security import service as security_service
    from govshare.security.audit_search import SearchQuery, export_xlsx, search, sign_file
    from govshare.security.pages import ACTION_LABELS

    if key and key_hash:
        err.print("[red]--key 与 --key-hash 只能给一个[/red]")
        raise typer.Exit(2)
    if export is not None and export.suffix.lower() != ".xlsx":
        err.print(f"[red]--export 应为 .xlsx 文件:[/red] {export}", highlight=False)
        raise typer.Exit(2)
    if key:
        hashed: str | None = audit.KeyHasher(load_settings(data_dir).secret_key)(key.strip())
    else:
        hashed = key_hash.strip().lower() if key_hash else None
    end = _parse_day(until, "--until")
    try:
        q = SearchQuery(
            key_hash=hashed,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            since=_parse_day(since, "--since"),
            until=end + timedelta(days=1) if end else None,
            refusals=refusals,
            catalog=catalog,
        )
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    factory, _settings, audit_key = _audit_factory(data_dir)
    now = datetime.now(UTC)
    with factory() as session:
        departments = {d.id: d.short_name for d in security_service.list_departments(session)}
        table = Table(
            "序号", "时间", "操作人", "动作", "对象", "授权", "调用/原因", "变更字段", "保存位置"
        )
        found = 0
        for h in search(session, audit_key, q):
            found += 1
            if found <= show:
                table.add_row(
                    str(h.seq),
                    (h.call_at or h.at.isoformat(timespec="seconds")),
                    h.actor,
                    ACTION_LABELS.get(h.action, h.action),
                    f"{h.object_type}:{h.object_id or ''}",
                    h.grant_id or "",
                    h.reason or (f"nonce {h.nonce} 键 {h.keys} 行 {h.rows}" if h.nonce else ""),
                    "、".join(h.changed),
                    h.kept_in or "在线",
                )
        exported = None
        if export is not None:
            count = export_xlsx(
                search(session, audit_key, q),
                export,
                q=q,
                labels=ACTION_LABELS,
                departments=departments,
                made_at=now,
                made_by="cli",
            )
            exported = (count, sign_file(audit_key, export, now=now))
        audit.record(
            session,
            _cli_actor(),
            "audit.export" if export is not None else "audit.search",
            object_type="audit_entry",
            after={"returned": found, "archives": True, **q.describe()},
        )
        session.commit()
    table.title = f"审计检索结果: 共 {found} 条 (列出前 {min(found, show)} 条)"
    console.print(table)
    if exported is not None:
        console.print(
            f"已导出 {exported[0]} 条到 {export}, 签名文件 {exported[1]}; "
            f"核验: govshare audit verify-signature {export} --data-dir 数据目录",
            highlight=False,
        )


@audit_app.command("verify-signature")
def audit_verify_signature(
    file: Annotated[Path, typer.Argument(help="被签名的文件 (如导出的 XLSX)")],
    signature: Annotated[
        Path | None, typer.Option("--signature", help="签名文件, 默认为 文件名.sig")
    ] = None,
    public: Annotated[
        str | None,
        typer.Option(
            "--public",
            help="平台的 SM2 公钥 (128位十六进制); 默认取数据目录的审计密钥及其轮换前的旧密钥",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """核验平台签发的分离签名 (如审计检索导出的 XLSX 与其 .sig 文件): 文件未被改动、
    签名出自平台的审计签名密钥时退出码为 0, 否则为 1。"""
    from govshare.security.anchor import read_key
    from govshare.security.audit_search import SIGNATURE_SUFFIX, verify_file

    if public is None:
        settings = load_settings(data_dir, offline=True)
        key = read_key(settings.data_dir)
        if key is None:
            err.print(
                f"[red]数据目录中没有审计密钥:[/red] {settings.data_dir / 'audit'}; "
                "用 --public 给出公钥",
                highlight=False,
            )
            raise typer.Exit(2)
        publics = key.publics()
    else:
        publics = [public.strip().lower()]
    sig = signature or file.with_name(file.name + SIGNATURE_SUFFIX)
    # The hub's keys, the current one first: a file signed before a rotation still
    # verifies under the key that signed it.
    for public in publics:
        if (problem := verify_file(file, sig, public)) is None:
            break
    else:
        problem = verify_file(file, sig, publics[0])
    if problem:
        err.print(f"[red]核验未通过:[/red] {problem}", highlight=False)
        raise typer.Exit(1)
    console.print(
        f"[green]签名有效[/green]: {file} 自签名后未被改动, 签名出自 SM2 公钥 {public}",
        highlight=False,
    )


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = None) -> None:
    """Sign the audit chain's head into DATA_DIR/audit/checkpoints.jsonl now (the hub
    does so every GOVSHARE_AUDIT_CHECKPOINT_SECONDS)."""
    from datetime import datetime

    from govshare.security.audit import checkpoint

    session, key = _offline_session(data_dir)
    if key is None:
        err.print("[red]没有审计密钥: 先运行 govshare db upgrade[/red]")
        raise typer.Exit(2)
    with session:
        signed = checkpoint(session, key, datetime.now().astimezone())
    if signed is None:
        console.print("审计日志为空, 无需签署检查点")
        return
    console.print(f"已签署检查点: 第 {signed[0]} 条, 哈希 {signed[1]}")


@audit_app.command("checkpoints")
def audit_checkpoints(
    data_dir: DataDir = None,
    last: Annotated[int, typer.Option(min=1, help="显示最近多少个")] = 20,
) -> None:
    """List the signed checkpoints of the audit chain and whether each signature holds."""
    from govshare.security.anchor import AuditKeyError, read_checkpoints, read_key

    settings = load_settings(data_dir, offline=True)
    try:
        key = read_key(settings.data_dir)
    except AuditKeyError as exc:
        err.print(f"[red]审计密钥不可用:[/red] {exc}")
        raise typer.Exit(2) from None
    if key is None:
        err.print(f"[red]数据目录中没有审计密钥:[/red] {settings.data_dir / 'audit'}")
        raise typer.Exit(2)
    found = read_checkpoints(key)
    table = Table(
        "行", "序号", "哈希", "签署时间", "签名", title=f"审计检查点 (共 {len(found)} 个)"
    )
    for cp in found[-last:]:
        table.add_row(
            str(cp.line), str(cp.seq), cp.hash, cp.at, "有效" if cp.valid else "[red]无效[/red]"
        )
    console.print(table)
    console.print(f"SM2 公钥: {key.public}")
    if not all(cp.valid for cp in found):
        raise typer.Exit(1)


@audit_app.command("key-hash")
def audit_key_hash(
    key: Annotated[str, typer.Argument(help="查询键, 如公民身份号码")],
    data_dir: DataDir = None,
    find: Annotated[
        bool, typer.Option("--find", help="并列出审计日志中查询过该键的每次数据服务调用")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="至多列出多少次调用")] = 50,
) -> None:
    """Print the keyed hash under which data-service calls for KEY appear in the audit
    log (``key_hashes``): auditors find a person's lookups without the log holding IDs.
    With ``--find``, list those calls too, each on its own line (calls answered in one
    journal batch share an audit entry)."""
    from govshare.security.audit import KeyHasher

    settings = load_settings(data_dir)
    hashed = KeyHasher(settings.secret_key)(key.strip())
    console.print(hashed)
    if find:
        _print_calls_with_key(settings, hashed, limit)


def _print_calls_with_key(settings: Settings, key_hash: str, limit: int) -> None:
    from govshare import db
    from govshare.security import audit
    from govshare.security.pages import ACTION_LABELS

    factory = db.make_session_factory(db.make_engine(settings), settings)
    table = Table("审计序号", "调用时间", "应用", "部门", "动作", "对象", "nonce", "键数", "行数")
    found = 0
    with db.session_scope(factory) as session:
        before: int | None = None
        while found < limit:
            entries = audit.list_entries(
                session, audit.AuditFilter(key_hash=key_hash), before_seq=before, limit=200
            )
            for e in entries:
                for call in audit.calls_with_key(e.after, key_hash):
                    if found == limit:
                        break
                    found += 1
                    table.add_row(
                        str(e.seq),
                        str(call.get("at") or e.at.isoformat(timespec="seconds")),
                        e.actor,
                        "" if e.department_id is None else str(e.department_id),
                        ACTION_LABELS.get(e.action, e.action),
                        f"{e.object_type}:{e.object_id or ''}",
                        str(call.get("nonce", "")),
                        str(call.get("keys", "")),
                        str(call.get("rows", "")),
                    )
            if len(entries) < 200:
                break
            before = entries[-1].seq
        audit.record(
            session,
            audit.Actor(name="cli", kind="system"),
            "audit.read",
            object_type="audit_entry",
            after={"key_hash": key_hash, "returned": found},
        )
    table.title = f"查询过该键的数据服务调用 (最近 {found} 次)"
    console.print(table)


@users_app.command("unlock")
def user_unlock(
    username: Annotated[str, typer.Argument(help="登录名")],
    data_dir: DataDir = None,
) -> None:
    """Lift an account's sign-in lockout (audited); the way in when the only platform
    admin is the one locked out."""
    from govshare import db
    from govshare.errors import GovshareError
    from govshare.security.audit import Actor
    from govshare.security.service import get_user_by_username, unlock_user

    settings = load_settings(data_dir)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    try:
        with db.session_scope(factory) as session:
            unlock_user(
                session, Actor(name="cli", kind="system"), get_user_by_username(session, username)
            )
    except GovshareError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]已解除 {username} 的登录锁定[/green]")


@users_app.command("reset-totp")
def user_reset_totp(
    username: Annotated[str, typer.Argument(help="登录名")],
    data_dir: DataDir = None,
) -> None:
    """Switch off an account's one-time code (重置动态口令: a lost or replaced phone),
    audited; the user enrols again at /login/totp. Exit 1 when it was not on."""
    from govshare import db
    from govshare.errors import GovshareError
    from govshare.security.audit import Actor
    from govshare.security.service import get_user_by_username, reset_totp

    settings = load_settings(data_dir)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    try:
        with db.session_scope(factory) as session:
            done = reset_totp(
                session, Actor(name="cli", kind="system"), get_user_by_username(session, username)
            )
    except GovshareError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    if not done:
        err.print(f"[yellow]{username} 没有启用动态口令，无需重置[/yellow]")
        raise typer.Exit(1)
    console.print(f"[green]已重置 {username} 的动态口令；该用户下次登录前须重新启用[/green]")


@catalog_app.command("import")
def catalog_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="XLSX 或 CSV 文件")],
    username: Annotated[str, typer.Option("--as", help="以该用户身份导入 (其部门为提供方)")],
    data_dir: DataDir = None,
    confirm_duplicates: Annotated[
        bool,
        typer.Option(
            "--confirm-duplicates",
            help="确认重名: 与本部门已有目录 (或文件内) 同名的资源确属不同资源, 仍然导入",
        ),
    ] = False,
) -> None:
    """Import catalog entries from a spreadsheet: all rows or none."""
    from rich.progress import Progress

    from govshare import db
    from govshare.catalog import spreadsheet
    from govshare.errors import GovshareError

    settings = load_settings(data_dir)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    try:
        with db.session_scope(factory) as session, Progress(console=console) as progress:
            principal = _principal(session, username)
            task = progress.add_task("导入目录", total=None)
            created = spreadsheet.import_resources(
                session,
                principal,
                file.name,
                file.read_bytes(),
                progress=lambda n: progress.update(task, completed=n),
                confirm_duplicates=confirm_duplicates,
            )
    except GovshareError as exc:
        err.print(f"[red]{exc.message}[/red]")
        for d in exc.details[:200]:
            err.print(
                f"  第{d.get('row', '-')}行 [{d.get('column', d.get('field', ''))}] {d['message']}"
            )
        raise typer.Exit(1) from None
    console.print(f"[green]已导入 {len(created)} 条目录 (草稿)[/green]")


def _principal(session: Any, username: str) -> Any:
    """The user as the API would see them (their department and roles)."""
    from govshare.security.roles import permissions_for
    from govshare.security.service import Principal, get_user_by_username

    user = get_user_by_username(session, username)
    return Principal(
        kind="user",
        name=user.username,
        department_id=user.department_id,
        permissions=permissions_for(user.roles),
        user_id=user.id,
        roles=tuple(user.roles),
    )


def _print_error(exc: Any) -> None:
    from rich.markup import escape

    err.print(f"[red]{escape(exc.message)}[/red]")
    for d in exc.details[:200]:
        err.print(escape(f"  [{d.get('field', '')}] {d['message']}"))


AsUser = Annotated[str, typer.Option("--as", help="以该用户身份操作 (其部门负责比对任务)")]


@compare_app.command("list")
def compare_list(username: AsUser, data_dir: DataDir = None) -> None:
    """List the comparison jobs the user sees, with their last run."""
    from rich.table import Table

    from govshare import db
    from govshare.compare import service
    from govshare.errors import GovshareError

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    with db.session_scope(factory) as session:
        try:
            jobs = service.list_jobs(session, _principal(session, username))
        except GovshareError as exc:
            _print_error(exc)
            raise typer.Exit(1) from None
        last = service.last_runs(session, [j.id for j in jobs])
        table = Table("编号", "名称", "负责部门", "运行计划", "最近运行", "命中")
        for job in jobs:
            run = last.get(job.id)
            table.add_row(
                str(job.id),
                job.name,
                job.department.name,
                job.schedule or "按需",
                f"#{run.id} {run.status.label}" if run else "—",
                str(run.hits) if run else "—",
            )
    console.print(table)


@compare_app.command("create")
def compare_create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML 或 JSON 定义")],
    username: AsUser,
    data_dir: DataDir = None,
) -> None:
    """Save a comparison job from a YAML or JSON definition (checked first)."""
    from govshare import db
    from govshare.compare import service
    from govshare.compare.api import parse_yaml
    from govshare.errors import GovshareError
    from govshare.rules.clock import china_today
    from govshare.sharing.store import SharedDatabase

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    shared = SharedDatabase.of(settings)
    try:
        with db.session_scope(factory) as session:
            data = parse_yaml(file.read_bytes())  # JSON is YAML too
            job = service.create_job(
                session, shared, _principal(session, username), data, china_today()
            )
            session.flush()
            console.print(f"[green]已建立比对任务 #{job.id} {job.name}[/green]")
    except GovshareError as exc:
        _print_error(exc)
        raise typer.Exit(1) from None
    finally:
        shared.close()


@compare_app.command("run")
def compare_run(
    job_id: Annotated[int, typer.Argument(help="比对任务编号", min=1, max=MAX_ID)],
    username: AsUser,
    data_dir: DataDir = None,
) -> None:
    """Run a comparison job now and follow it with a progress bar (Ctrl-C cancels)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from govshare import db
    from govshare.compare import runner, service
    from govshare.compare.models import CompareRun
    from govshare.errors import GovshareError
    from govshare.sharing.store import SharedDatabase

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    try:
        with db.session_scope(factory) as session:
            principal = _principal(session, username)
            run_id = service.start_run(session, principal, job_id).id
    except GovshareError as exc:
        _print_error(exc)
        raise typer.Exit(1) from None
    shared = SharedDatabase.of(settings)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
    )
    try:
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            bar = progress.add_task("排队", total=1.0)

            def show(run: CompareRun) -> None:
                progress.update(bar, completed=run.progress, description=run.phase or "运行")

            try:
                # Run here; if a hub process took the run first, follow it there.
                ran = runner.execute(settings, factory, shared, run_id, on_progress=show)
                while ran is None or not ran.status.finished:
                    ran = runner.wait(factory, run_id, timeout=0.5)
                    show(ran)
            except KeyboardInterrupt:
                with db.session_scope(factory) as session:
                    service.cancel_run(session, principal, run_id)
                err.print("[yellow]已请求取消[/yellow]")
                raise typer.Exit(130) from None
    finally:
        shared.close()
    if ran.status.value != "succeeded":
        err.print(f"[red]运行 #{ran.id} {ran.status.label}: {ran.error}[/red]")
        raise typer.Exit(1)
    amount = f"，涉及金额 {ran.amount:,.2f}" if ran.amount is not None else ""
    console.print(
        f"[green]运行 #{ran.id} 完成: 线索 {ran.hits} 条 (新发现 {ran.new_cases}，"
        f"已消失 {ran.gone_cases}){amount}[/green]"
    )


NodeConfigOpt = Annotated[Path, typer.Option("--config", help="前置机配置文件 node.toml")]


def _agent(config_path: Path) -> object:
    from govshare.node.agent import NodeAgent
    from govshare.node.config import NodeConfigError, load

    try:
        return NodeAgent(load(config_path))
    except NodeConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@node_app.command("run")
def node_run(config: NodeConfigOpt) -> None:
    """Run the front-end node: register, heartbeat, run its tasks until stopped."""
    import signal

    from govshare.node.agent import NodeAgent
    from govshare.node.client import HubRefused, HubUnavailable

    agent = _agent(config)
    assert isinstance(agent, NodeAgent)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop_event.set())
    delay = 0.5
    while True:
        try:
            agent.ensure_registered()
            break
        except HubUnavailable as exc:  # the hub may still be starting: wait for it
            err.print(f"平台暂不可达，{delay:.0f} 秒后重试: {exc}")
            if agent.stop_event.wait(delay):
                raise typer.Exit(0) from None
            delay = min(delay * 2, 30)
        except (HubRefused, RuntimeError) as exc:
            err.print(f"[red]前置机注册失败:[/red] {exc}")
            raise typer.Exit(1) from None
    console.print(f"前置机 {agent.config.node_id} 已启动，平台 {agent.config.hub_url}")
    try:
        agent.run()
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()


@node_app.command("rotate-key")
def node_rotate_key(config: NodeConfigOpt) -> None:
    """轮换前置机签名密钥: 生成新密钥对, 以当前密钥签名请平台登记新公钥, 平台确认后才启用新私钥.

    运行中的前置机在下一次心跳时改用新密钥; 平台在 GOVSHARE_NODE_KEY_OVERLAP_HOURS
    小时内仍接受旧密钥签名的请求. 中途中断可再次运行本命令 (或重启前置机) 完成轮换.
    """
    from govshare.node.agent import NodeAgent
    from govshare.node.client import HubRefused, HubUnavailable

    agent = _agent(config)
    assert isinstance(agent, NodeAgent)
    try:
        public = agent.rotate_key()
    except HubUnavailable as exc:
        err.print(f"[red]平台不可达，密钥未轮换 (仍使用当前密钥，可稍后重试):[/red] {exc}")
        raise typer.Exit(1) from None
    except (HubRefused, RuntimeError) as exc:
        err.print(f"[red]平台拒绝轮换，密钥未更换:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        agent.close()
    console.print(f"前置机 {agent.config.node_id} 的签名密钥已轮换，新公钥 {public[:16]}…")


@node_app.command("rotate-store-key")
def node_rotate_store_key(config: NodeConfigOpt) -> None:
    """轮换前置机本地库的静态加密密钥: 新密钥加密此后写入的内容, 私钥和传输密钥立即用新密钥
    重新加密; 旧密钥保留在 store/keys/at-rest.json 中, 用于打开尚未送出的数据包. 运行中的
    前置机无需停止, 下一次加密时即改用新密钥. 需要已配置口令 (secret_file 或 GOVSHARE_NODE_SECRET).
    """
    from govshare.node.agent import NodeAgent
    from govshare.node.store import StoreSealed

    agent = _agent(config)
    assert isinstance(agent, NodeAgent)
    try:
        key = agent.store.rotate_key()
    except StoreSealed as exc:
        err.print(f"[red]无法轮换:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        agent.close()
    console.print(f"前置机 {agent.config.node_id} 的本地库密钥已轮换，新密钥 {key.id} ({key.alg})")


@node_app.command("export-packages")
def node_export(
    directory: Annotated[Path, typer.Argument(help="导出到的目录 (网闸摆渡区)")],
    config: NodeConfigOpt,
) -> None:
    """Gatekeeper mode: write every waiting package into DIR as files."""
    from govshare.node.agent import NodeAgent

    agent = _agent(config)
    assert isinstance(agent, NodeAgent)
    agent.ensure_registered()
    agent.load_tasks_file()
    for rt in list(agent.tasks.values()):
        if rt.running and rt.spec["kind"] == "provider":
            while agent.extract_batch(rt):
                pass
    count = agent.export_packages(directory)
    agent.close()
    console.print(f"已导出 {count} 个数据包到 {directory}")


@node_app.command("import-packages")
def node_import(
    directory: Annotated[Path, typer.Argument(help="平台导出的数据包目录")], config: NodeConfigOpt
) -> None:
    """Gatekeeper mode: verify and apply the hub's packages found in DIR; write acks."""
    from govshare.exchange.package import PackageError
    from govshare.node.agent import NodeAgent

    agent = _agent(config)
    assert isinstance(agent, NodeAgent)
    agent.ensure_registered()
    try:
        count = agent.import_packages(directory)
    except PackageError as exc:
        err.print(f"[red]数据包校验失败，未入库:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        agent.close()
    console.print(f"已入库 {count} 个数据包，回执已写入 {directory}")


@exchange_app.command("import-packages")
def exchange_import(
    directory: Annotated[Path, typer.Argument(help="前置机导出的数据包目录")],
    data_dir: DataDir = None,
) -> None:
    """Gatekeeper mode at the hub: verify and log node packages and acks found in DIR."""
    from govshare import db
    from govshare.exchange import gatekeeper

    settings = load_settings(data_dir)
    engine = db.make_engine(settings)
    result = gatekeeper.import_directory(
        settings, db.make_session_factory(engine, settings), directory
    )
    engine.dispose()
    for name, problem in result.rejected:
        err.print(f"[red]拒收 {name}:[/red] {problem}")
    console.print(
        f"接收 {result.accepted} 个数据包、{result.acks} 条回执，拒收 {len(result.rejected)} 个"
    )
    if result.rejected:
        raise typer.Exit(1)


@exchange_app.command("export-packages")
def exchange_export(
    directory: Annotated[Path, typer.Argument(help="导出到的目录 (网闸摆渡区)")],
    node: Annotated[int, typer.Option("--node", help="接收方前置机编号")],
    data_dir: DataDir = None,
) -> None:
    """Gatekeeper mode at the hub: write a node's task list and its undelivered packages."""
    from govshare import db
    from govshare.exchange import gatekeeper

    settings = load_settings(data_dir)
    engine = db.make_engine(settings)
    count = gatekeeper.export_directory(
        settings, db.make_session_factory(engine, settings), directory, node
    )
    engine.dispose()
    console.print(f"已为前置机 {node} 导出 {count} 个数据包到 {directory}")


_USER_FIELD_RULES = {
    "username": "登录名应为 3 至 50 位字母、数字或 _ . -",
    "password": "密码应为 8 至 200 位",
    "display_name": "姓名应为 1 至 50 个字符",
}


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    try:
        password: str = typer.prompt(
            "密码", hide_input=True, confirmation_prompt="再次输入密码", err=True
        )
    except typer.Abort:
        err.print("[red]未输入密码[/red]")
        raise typer.Exit(1) from None
    return password


@users_app.command("create-admin")
def users_create_admin(
    username: Annotated[str, typer.Option("--username", help="登录名")],
    data_dir: DataDir = None,
    display_name: Annotated[str, typer.Option("--display-name", help="姓名")] = "平台管理员",
    department: Annotated[
        str | None,
        typer.Option(
            "--department",
            help="所在部门的统一社会信用代码 (缺省: 平台唯一的部门); 部门不存在时与 "
            "--department-name、--division-code 一起新建",
        ),
    ] = None,
    department_name: Annotated[
        str | None, typer.Option("--department-name", help="新建部门的名称")
    ] = None,
    division_code: Annotated[
        str | None, typer.Option("--division-code", help="新建部门的行政区划代码")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="从标准输入读一行作为密码 (否则提示输入两次)")
    ] = False,
) -> None:
    """Create a platform admin (平台管理员) on a migrated hub: how a production install
    gets its first one. The password is prompted twice or read from stdin, never taken
    from the command line; the creation is in the audit log."""
    import getpass

    from sqlalchemy.exc import DBAPIError

    from govshare import db
    from govshare.errors import GovshareError
    from govshare.security.audit import Actor
    from govshare.security.roles import Role
    from govshare.security.schemas import UserCreate
    from govshare.security.service import add_platform_admin

    settings = load_settings(data_dir, offline=True)
    _require_hub(settings)
    password = _read_password(password_stdin)
    try:
        UserCreate(
            username=username,
            password=password,
            display_name=display_name,
            department_id=1,  # checked for its form only; the department is found below
            roles=[Role.PLATFORM_ADMIN],
        )
    except ValidationError as exc:
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else ""
            err.print(f"[red]{_USER_FIELD_RULES.get(field, e['msg'])}[/red]")
        raise typer.Exit(1) from None
    engine = db.make_engine(settings)
    actor = Actor(name=f"cli:{getpass.getuser()}"[:60], kind="cli")
    try:
        with db.session_scope(db.make_session_factory(engine, settings)) as session:
            user = add_platform_admin(
                session,
                actor,
                username=username,
                password=password,
                display_name=display_name,
                credit_code=department,
                department_name=department_name,
                division_code=division_code,
            )
            department_id = user.department_id
    except GovshareError as exc:
        err.print(f"[red]{exc.message}[/red]")
        for d in exc.details:
            if d.get("message") != exc.message:
                err.print(f"  [{d.get('field', '')}] {d['message']}", markup=False)
        raise typer.Exit(1) from None
    except DBAPIError as exc:
        err.print(f"[red]平台数据库不可用或未迁移 (先运行 govshare db upgrade):[/red] {exc.orig}")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    console.print(
        f"[green]已创建平台管理员[/green] {username} (部门 {department_id}), 可登录控制台"
    )


@app.command()
def settings() -> None:
    """List every GOVSHARE_* setting with its default and meaning."""
    from govshare.config import Settings

    table = Table("环境变量", "默认值", "说明")
    for name, field in Settings.model_fields.items():
        table.add_row(f"GOVSHARE_{name.upper()}", repr(field.default), field.description or "")
    console.print(table)


def main() -> None:
    from govshare.security.anchor import AuditKeyError

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except AuditKeyError as exc:
        err.print(f"[red]审计密钥不可用 (数据目录 audit/key.json):[/red] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
