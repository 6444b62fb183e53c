"""``govshare keys list|rotate``: the hub's keys and certificates with their due dates
(the same list the 密钥即将到期 alert watches), and the rotations an operator runs from
the command line — the audit key (the chain's seal and the checkpoint signing key),
the documents signing key (older keys keep verifying what they signed), the at-rest
and field-seal keys (older keys keep opening what they sealed) and an API client's
secret (printed once). Rotations are audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from govshare.config import Settings

app = typer.Typer(help="密钥: 查看到期情况与轮换", no_args_is_help=True)
rotate_app = typer.Typer(help="轮换密钥 (记入审计日志)", no_args_is_help=True)
app.add_typer(rotate_app, name="rotate")

ALGS = ("sm2", "ed25519")
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="数据目录 (GOVSHARE_DATA_DIR)")]


@app.command("list")
def list_keys(data_dir: DataDir = None) -> None:
    """列出平台监视的每个密钥和证书: 到期日与剩余天数 (到期 = 生成或上次轮换之后
    GOVSHARE_KEY_MAX_AGE_DAYS 天; 证书为其有效期截止日)。剩余天数不足
    GOVSHARE_KEY_EXPIRY_WARNING_DAYS 的标红; 有任何一项已到期时退出码 1。"""
    from rich.markup import escape
    from rich.table import Table

    from govshare import db
    from govshare.cli import _require_hub, console, load_settings
    from govshare.ops.watch import hub_keys

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    with db.session_scope(factory) as session:
        keys = hub_keys(session, settings)
    now = datetime.now(UTC)
    table = Table(title=f"密钥与证书 (最长使用 {settings.key_max_age_days} 天)")
    for column in ("密钥", "到期", "剩余天数", "说明"):
        table.add_column(column, justify="right" if column == "剩余天数" else "left")
    expired = False
    for key in sorted(keys, key=lambda k: k.due):
        left = (key.due - now).days
        expired |= left < 0 or key.problem is not None
        style = "red" if left <= settings.key_expiry_warning_days or key.problem else ""
        table.add_row(
            escape(key.name),
            key.due.astimezone(UTC).date().isoformat(),
            str(left),
            escape(key.problem or ("证书" if key.certificate else "")),
            style=style,
        )
    console.print(table)
    if not keys:
        console.print("平台尚无需要监视的密钥。")
    if expired:
        raise typer.Exit(1)


@rotate_app.command("audit")
def rotate_audit(data_dir: DataDir = None) -> None:
    """生成新的审计密钥 (审计链的 HMAC 密钥与签署检查点、归档、导出的 SM2 密钥对)。
    轮换时锁住审计链头: 此前的记录由旧密钥封存, 此后的记录 (从本次轮换的审计记录起)
    由新密钥封存。旧密钥留在密钥文件中, 只用于核验它封存和签署过的内容, 不能为轮换
    之后的任何记录作证。无需停机: 各进程在下一次写审计记录时读到新密钥。"""
    from rich.markup import escape

    from govshare import db
    from govshare.cli import _cli_actor, _require_hub, console, err, load_settings
    from govshare.security import anchor, audit

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    now = datetime.now().astimezone()
    try:
        with db.session_scope(factory) as session:
            head_seq, head_hash = audit.lock_head(session)
            old = audit.session_key(session)
            if old is None:  # the factory makes one; a key removed meanwhile
                raise anchor.AuditKeyError("the audit key is missing")
            if head_seq > 0:
                # The old key's last word: it anchors the end of what it sealed.
                anchor.append_checkpoint(old, seq=head_seq, hash=head_hash, at=now)
            new = anchor.rotate_key(settings.data_dir, until_seq=head_seq, at=now)
            audit.record(
                session,
                _cli_actor(),
                "keys.rotate",
                object_type="audit_key",
                object_id=str(new.generation),
                before={"generation": old.generation, "public": old.public, "until_seq": head_seq},
                after={"generation": new.generation, "public": new.public},
            )
        with db.session_scope(factory) as session:
            audit.checkpoint(session, new, now)
    except anchor.AuditKeyError as exc:
        err.print(f"[red]审计密钥不可用:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    console.print(
        f"[green]已轮换审计密钥[/green]: 第 {new.generation} 代, 自第 {head_seq + 1} 条记录起"
        f"使用; 旧密钥 {len(new.retired)} 个保留用于核验。新的 SM2 公钥: {new.public}",
        highlight=False,
    )


@rotate_app.command("at-rest")
def rotate_at_rest(
    alg: Annotated[
        str | None,
        typer.Option("--alg", help="加密算法 sm4 或 aes (缺省: GOVSHARE_AT_REST_CIPHER)"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """生成新的静态加密密钥 (平台保存的交换数据包用它加密); 旧密钥保留在
    数据目录 keys/at-rest.json 中, 以前加密的数据包仍可解密, 无需重新加密。
    无需停机: 各进程在下一次加密时读到新密钥。"""
    from rich.markup import escape

    from govshare.cli import _require_hub, console, err, load_settings
    from govshare.security import atrest

    if alg is not None and alg not in atrest.ALGS:
        err.print(f"[red]--alg 应为 sm4 或 aes[/red], 不是 {escape(alg[:20])}", highlight=False)
        raise typer.Exit(2)
    settings = load_settings(data_dir)
    _require_hub(settings)
    chosen = alg or (settings.at_rest_cipher if settings.at_rest_cipher != "none" else "sm4")
    try:
        before = [k.id for k in atrest.read_keys(settings.data_dir)]
        key = atrest.add_key(settings.data_dir, settings.secret_key, chosen)
    except atrest.AtRestKeyError as exc:
        err.print(f"[red]静态加密密钥不可用:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None
    _audit_rotation(
        settings, "at_rest_key", key.id, {"keys": before}, {"alg": chosen, "key": key.id}
    )
    console.print(
        f"[green]已轮换静态加密密钥[/green] {chosen.upper()} {key.id}; "
        f"旧密钥 {len(before)} 个保留用于解密",
        highlight=False,
    )


@rotate_app.command("field-seal")
def rotate_field_seal(data_dir: DataDir = None) -> None:
    """生成新一代字段加密密钥 (共享信息库中敏感信息项逐格加密所用)。旧密钥保留在
    数据目录 keys/field-seal.json 中, 已加密的数据照常解密、照常查询; 各共享信息库和
    基础库在重新加密 (govshare stores reseal --all) 之后才改用新密钥。无需停机。"""
    from rich.markup import escape

    from govshare.cli import _require_hub, console, err, load_settings
    from govshare.security import fieldseal

    settings = load_settings(data_dir)
    _require_hub(settings)
    alg = settings.at_rest_cipher if settings.at_rest_cipher != "none" else "sm4"
    try:
        before = [g for g, _ in fieldseal.key_ages(settings.data_dir)]
        generation = fieldseal.rotate(settings.data_dir, settings.secret_key, alg)
    except fieldseal.FieldSealError as exc:
        err.print(f"[red]字段加密密钥不可用:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None
    _audit_rotation(
        settings,
        "field_seal_key",
        str(generation),
        {"generations": before},
        {"generation": generation, "alg": alg},
    )
    console.print(
        f"[green]已生成第 {generation} 代字段加密密钥[/green] ({alg.upper()}); "
        f"旧密钥 {len(before)} 个保留用于解密。运行 govshare stores reseal --all "
        "使各共享信息库和基础库改用新密钥。",
        highlight=False,
    )


@rotate_app.command("documents")
def rotate_documents(
    alg: Annotated[
        str | None,
        typer.Option("--alg", help="签名算法 sm2 或 ed25519 (缺省: GOVSHARE_DOCUMENTS_SIGNATURE)"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """生成新的公文签名密钥, 此后发出的公文和回执用它签名; 旧密钥保留在密钥文件中,
    以前签名的公文和回执仍可核验。无需停机: 各进程在下次签名时读到新密钥。"""
    from rich.markup import escape

    from govshare.cli import _require_hub, console, err, load_settings
    from govshare.documents import keys as document_keys

    if alg is not None and alg not in ALGS:
        err.print(f"[red]--alg 应为 sm2 或 ed25519[/red], 不是 {escape(alg[:20])}", highlight=False)
        raise typer.Exit(2)
    settings = load_settings(data_dir)
    _require_hub(settings)
    chosen = alg or settings.documents_signature
    before = [k.id for k in document_keys.read_keys(settings.data_dir) if k.alg == chosen]
    key = document_keys.rotate_key(settings.data_dir, settings.secret_key, chosen)
    _audit_rotation(
        settings,
        "documents_key",
        key.id,
        {"alg": chosen, "keys": before},
        {"alg": chosen, "key": key.id},
    )
    console.print(
        f"[green]已轮换公文签名密钥[/green] {chosen.upper()} {key.id}; "
        f"旧密钥 {len(before)} 个保留用于核验",
        highlight=False,
    )


@rotate_app.command("api-client")
def rotate_api_client(
    app_key: Annotated[str, typer.Argument(help="接入应用的 app_key")],
    data_dir: DataDir = None,
) -> None:
    """为接入应用生成新密钥并打印一次 (只保存加密后的密文); 旧密钥在下一次调用时即失效,
    请先把新密钥交给部门系统。"""
    from rich.markup import escape
    from sqlalchemy import select

    from govshare import db
    from govshare.cli import _cli_actor, _require_hub, console, err, load_settings
    from govshare.security.models import ApiClient
    from govshare.security.service import rotate_api_client_secret

    settings = load_settings(data_dir)
    _require_hub(settings)
    factory = db.make_session_factory(db.make_engine(settings), settings)
    with db.session_scope(factory) as session:
        client = session.scalar(select(ApiClient).where(ApiClient.app_key == app_key[:100]))
        if client is None:
            err.print(f"[red]没有接入应用[/red] {escape(app_key[:100])}", highlight=False)
            raise typer.Exit(2)
        secret = rotate_api_client_secret(session, settings, _cli_actor(), client)
        name = client.name
    console.print(f"[green]已为 {escape(name)} 生成新密钥[/green] (只显示这一次):", highlight=False)
    console.print(secret, highlight=False, soft_wrap=True)


def _audit_rotation(
    settings: Settings,
    object_type: str,
    object_id: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """Record a key file's rotation as ``keys.rotate`` by the operator at the shell."""
    from govshare import db
    from govshare.cli import _cli_actor
    from govshare.security import audit

    factory = db.make_session_factory(db.make_engine(settings), settings)
    with db.session_scope(factory) as session:
        audit.record(
            session,
            _cli_actor(),
            "keys.rotate",
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
        )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="keys")
