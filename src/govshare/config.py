"""Settings: one typed class, read from ``GOVSHARE_*`` environment variables.

Every field carries its help text; ``govshare settings`` prints them and a test checks
that the README documents each one.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SECRET = "demo-secret-do-not-use-in-production"  # noqa: S105 - refused outside demo mode


class UnsafeSettingError(Exception):
    """A setting that would leave a production hub open; the hub refuses to start."""


class Settings(BaseSettings):
    """The hub's configuration (平台配置)."""

    model_config = SettingsConfigDict(env_prefix="GOVSHARE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Directory for the SQLite database, exports and the node stores.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the hub database; SQLite under data_dir when unset. "
        "PostgreSQL: postgresql+psycopg://user:pass@host:port/db",
    )
    demo: bool = Field(
        default=False,
        description="Demo mode: allows the built-in secret and loads demo departments and data.",
    )
    secret_key: str = Field(
        default=DEMO_SECRET,
        description="Key for CSRF tokens and for encrypting API-client secrets at rest. "
        "Required (at least 32 characters) outside demo mode.",
    )
    demo_exchange: bool = Field(
        default=True,
        description="In demo mode, also start the nine demo front-end nodes "
        "and a changing business table.",
    )
    admin_password: str | None = Field(
        default=None,
        description="Password of the built-in platform admin 'admin' in demo mode; "
        "generated and printed when unset.",
    )
    host: str = Field(default="127.0.0.1", description="Address the hub listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the hub listens on.")
    token_ttl_minutes: int = Field(
        default=480,
        ge=5,
        le=7 * 24 * 60,
        description="Lifetime of bearer tokens and console sessions.",
    )
    lockout_threshold: int = Field(
        default=5, ge=3, le=20, description="Failed logins in a row that lock an account."
    )
    lockout_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="How long a locked account stays locked."
    )
    login_address_limit: int = Field(
        default=20,
        ge=3,
        le=10_000,
        description="Failed sign-ins from one client address within "
        "login_address_window_minutes after which its further sign-ins are refused (429) "
        "until the window has passed, without counting against the accounts tried.",
    )
    login_address_window_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="Window over which failed sign-ins from one client address are counted.",
    )
    password_min_length: int = Field(
        default=8, ge=8, le=128, description="Shortest password a user may set (口令最小长度)."
    )
    password_min_classes: int = Field(
        default=3,
        ge=1,
        le=4,
        description="How many of the four kinds of character (lower-case, upper-case, "
        "digits, others) a new password must mix (口令复杂度).",
    )
    password_history: int = Field(
        default=5,
        ge=0,
        le=24,
        description="How many of a user's previous passwords may not be set again "
        "(0: only the current one is refused).",
    )
    password_max_age_days: int = Field(
        default=90,
        ge=0,
        le=3650,
        description="Days after which a password must be changed at the next sign-in "
        "(口令定期更换; 0: never).",
    )
    totp_required_roles: str = Field(
        default="",
        description="Roles (comma-separated, e.g. platform_admin,auditor) whose users must "
        "sign in with a one-time code (动态口令, TOTP) besides the password; a user of such a "
        "role without one is sent to enrol first. Empty: the code is asked of those who "
        "switched it on only.",
    )
    signature_max_skew_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="How far an API client's request timestamp may be from the hub's clock.",
    )
    audit_digest: Literal["sm3", "sha256"] = Field(
        default="sm3",
        description="Digest that chains the audit log (SM3 national standard or SHA-256).",
    )
    audit_checkpoint_seconds: float = Field(
        default=300,
        ge=1,
        le=86400,
        description="How often the hub signs the audit chain's head into "
        "DATA_DIR/audit/checkpoints.jsonl (when it has moved).",
    )
    audit_retention_years: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Years audit entries stay in the hub database; older ranges (up to a "
        "signed checkpoint) are written to signed archive files under "
        "DATA_DIR/audit/archive, verified, and then removed from the database "
        "(govshare audit archive, or the hub's schedule).",
    )
    audit_archive_seconds: float = Field(
        default=86400,
        ge=0,
        le=366 * 86400,
        description="How often the hub archives the audit entries older than "
        "audit_retention_years; 0 turns the schedule off (archive with govshare audit "
        "archive instead).",
    )
    bus_url: str | None = Field(
        default=None,
        description="Exchange log on NATS JetStream (nats://host:port[,nats://…]); "
        "in the hub database when unset.",
    )
    exchange_signature: Literal["sm2", "ed25519"] = Field(
        default="sm2",
        description="Signature algorithm of exchange packages and node requests (SM2 or Ed25519).",
    )
    exchange_digest: Literal["sm3", "sha256"] = Field(
        default="sm3", description="Digest algorithm of exchange packages (SM3 or SHA-256)."
    )
    exchange_cipher: Literal["sm4", "aes", "none"] = Field(
        default="sm4",
        description="Encryption of package bodies between node and hub (SM4-GCM, AES-GCM or none).",
    )
    at_rest_cipher: Literal["sm4", "aes", "none"] = Field(
        default="sm4",
        description="Encryption at rest of the packages the hub keeps in its exchange log "
        "and of uploaded open-data files (SM4-GCM, AES-256-GCM or none), under keys in "
        "data_dir/keys/at-rest.json sealed with the secret key; rotate with govshare keys "
        "rotate at-rest.",
    )
    package_log_keep_days: int = Field(
        default=30,
        ge=0,
        le=36500,
        description="Days the hub keeps a package's bytes in the exchange log once every "
        "subscriber and shared store of its task has it (0: keep for ever). Later "
        "consumers get a snapshot from the provider's node instead.",
    )
    node_store_sealing_required: bool = Field(
        default=False,
        description="Refuse the heartbeats, packages and deliveries of a front-end node "
        "whose local store is not sealed at rest (no node secret given), instead of only "
        "alerting; set it in production (等保三级: data at rest encrypted).",
    )
    node_key_overlap_hours: float = Field(
        default=24,
        ge=0,
        le=720,
        description="After a node rotates its signing key (govshare node rotate-key), how "
        "many hours requests and packages signed with the replaced key are still accepted, "
        "so a node process that has not switched yet keeps working. Packages already in "
        "the exchange log keep verifying with the key that signed them for good.",
    )
    node_silent_seconds: int = Field(
        default=60,
        ge=5,
        le=86400,
        description="A node silent longer than this is offline and alerted.",
    )
    lag_alert_seconds: int = Field(
        default=600,
        ge=1,
        le=7 * 86400,
        description="Alert a subscription whose oldest unapplied package waits longer.",
    )
    reconciliation_timeout_seconds: int = Field(
        default=600,
        ge=1,
        le=7 * 86400,
        description="A reconciliation (核对) still waiting for a node's checksum this long "
        "after it was requested fails with a reconciliation_timeout alert and is requested "
        "again; keep it above the time the largest table's checksum takes.",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="URL that receives every new alert as JSON (POST); none when unset.",
    )
    monitor_interval_seconds: float = Field(
        default=10,
        ge=0.5,
        le=3600,
        description="How often the hub checks nodes, lag and due reconciliations.",
    )
    answer_working_days: int = Field(
        default=10,
        ge=1,
        le=60,
        description="Working days (Chinese calendar) a provider has to answer a sharing "
        "application.",
    )
    catalog_update_working_days: int = Field(
        default=15,
        ge=1,
        le=60,
        description="Working days (Chinese calendar) a department has to update its catalog "
        "after a change of its duties or of an information system (目录更新时限).",
    )
    provide_working_days: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Working days after approval within which the provider supplies the data.",
    )
    remind_working_days_before: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Remind the provider this many working days before an answer or "
        "provision deadline.",
    )
    holidays_file: Path | None = Field(
        default=None,
        description="JSON file with the official holidays and make-up working days of years "
        "the bundled Chinese calendar does not know yet.",
    )
    objection_working_days: int = Field(
        default=10,
        ge=1,
        le=60,
        description="Working days a provider has to answer an objection (异议) to its data.",
    )
    base_conflict_alert_days: int = Field(
        default=15,
        ge=1,
        le=365,
        description="Days a base database's conflict (多元校核冲突) may stay open before an "
        "alert is raised.",
    )
    shared_store_url: str | None = Field(
        default=None,
        description="Database of the shared stores (共享信息库) the hub serves data from; "
        "default: shared.db in the data directory (SQLite hub) or the hub database.",
    )
    shared_feed_interval_seconds: float = Field(
        default=1.0,
        ge=0.1,
        le=3600,
        description="How often the hub applies newly accepted packages to the shared stores.",
    )
    quality_scan_interval_seconds: float = Field(
        default=300,
        ge=0,
        le=86400,
        description="How often the hub looks for shared stores due a quality scan (数据质量检测): "
        "changed since their last scan, or last scanned longer ago than "
        "quality_scan_max_age_hours; 0 turns the background scans off.",
    )
    compare_memory_mb: int = Field(
        default=1024,
        ge=64,
        le=1024 * 1024,
        description="Memory a comparison run's DuckDB may use (比对); beyond it the run "
        "spills to disk under data_dir.",
    )
    compare_threads: int = Field(
        default=2, ge=1, le=256, description="Threads a comparison run's DuckDB uses."
    )
    compare_poll_seconds: float = Field(
        default=2.0,
        ge=0.1,
        le=3600,
        description="How often the hub looks for queued comparison runs and due schedules.",
    )
    quality_scan_max_age_hours: float = Field(
        default=24,
        gt=0,
        le=24 * 366,
        description="Hours after which an unchanged shared store is scanned again.",
    )
    quality_batch_rows: int = Field(
        default=5000,
        ge=100,
        le=1_000_000,
        description="Rows a quality scan reads at a time (its memory is bounded by this).",
    )
    quality_problem_cap: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="Failing values kept per quality scan; more are counted, not listed.",
    )
    data_rate_per_second: float = Field(
        default=200,
        gt=0,
        le=100_000,
        description="Data-service calls per second allowed to one API client (burst: one "
        "second's worth); a client's own limit overrides it.",
    )
    data_daily_quota: int = Field(
        default=1_000_000,
        ge=1,
        description="Keys one API client may look up or verify per day (China time); a "
        "client's own quota overrides it.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Hub processes serving requests (``govshare serve --workers``); each "
        "admits its share of an API client's rate, so together they keep to it.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="Largest request body the hub reads (bytes, default 16 MiB); larger "
        "ones are refused with 413 while they stream in. Spreadsheet imports and node "
        "packages have their own limits.",
    )
    max_import_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="Largest catalog spreadsheet upload (bytes, default 128 MiB: an import "
        "holds up to 200,000 rows of up to a few hundred bytes each).",
    )
    max_open_file_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        le=4 * 1024 * 1024 * 1024,
        description="Largest file a department uploads for an open entry (开放文件, bytes, "
        "default 256 MiB); streamed to disk under data_dir/open-files, never held in memory.",
    )
    documents_max_secrecy: Literal["public", "internal"] = Field(
        default="internal",
        description="Highest secrecy level (密级) a sent document may carry: public (公开) or "
        "internal (内部). 涉密 documents (秘密, 机密, 绝密) are always refused at upload.",
    )
    documents_signature: Literal["sm2", "ed25519"] = Field(
        default="sm2",
        description="Signature algorithm of sent documents and their receipts (SM2 or "
        "Ed25519); the key pair lives in data_dir/documents/key.json, its private half "
        "sealed with secret_key.",
    )
    documents_digest: Literal["sm3", "sha256"] = Field(
        default="sm3", description="Digest algorithm of documents and their files (SM3 or SHA-256)."
    )
    documents_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="Largest request that sends a document, PDF and attachments together "
        "(bytes, default 64 MiB).",
    )
    documents_remind_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="Hours a 平件 document may stay unanswered (neither signed for nor returned) "
        "before its receivers are reminded, and again every as many hours; 加急 a third of "
        "it, 特急 a twelfth.",
    )
    collab_warn_working_days: int = Field(
        default=1,
        ge=0,
        le=10,
        description="电子监察: an open collaboration task gets a yellow card (黄牌) when at most "
        "this many working days are left before its due day (0: on the due day only); it "
        "gets a red card (红牌) once the due day has passed.",
    )
    open_rows_time_limit_ms: int = Field(
        default=1000,
        ge=1,
        le=60_000,
        description="Time limit of one query of the open-data row API "
        "(/open/datasets/{slug}/rows.json, milliseconds); a query past it is stopped and "
        "answered 400 查询超时.",
    )
    open_key_daily_quota: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000_000,
        description="Calls one developer API key may make per day (China time) to the row "
        "API, downloads and the CKAN API; the bureau may set a key's own quota.",
    )
    open_key_per_minute: int = Field(
        default=120,
        ge=1,
        le=1_000_000,
        description="Calls one developer API key may make per minute (across the hub's "
        "processes); the bureau may set a key's own limit.",
    )
    open_anonymous_per_minute: int = Field(
        default=60,
        ge=1,
        le=100_000_000,
        description="Calls one address may make per minute without an API key to the row "
        "API, downloads and the CKAN API (across the hub's processes, see "
        "`open_limit_windows`); 无条件开放 data only.",
    )
    open_limit_windows: Literal["auto", "file", "database"] = Field(
        default="auto",
        description="Where the open interfaces' per-address limits are counted: `file` (a "
        "scratch SQLite file in the data directory, shared by the processes of one machine), "
        "`database` (the hub database, shared by hub processes on several machines), `auto` "
        "(the database when it is not SQLite).",
    )
    open_auth_attempts_per_hour: int = Field(
        default=20,
        ge=1,
        le=100_000_000,
        description="Developer registrations and sign-in attempts one address may make per "
        "hour on the open-data portal (across the hub's processes).",
    )
    open_application_working_days: int = Field(
        default=10,
        ge=1,
        le=60,
        description="Working days a department has to answer a developer's application for "
        "a 有条件开放 dataset.",
    )
    secure_cookies: bool = Field(
        default=False,
        description="Always mark console cookies Secure; they are marked Secure anyway on "
        "requests that come over HTTPS (directly or from a trusted proxy).",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Reverse proxies (comma-separated addresses, or *) whose "
        "X-Forwarded-For and X-Forwarded-Proto the hub believes: the client address used "
        "for login throttling and audit, and whether a request came over HTTPS (HSTS, "
        "Secure cookies).",
    )

    ready_min_free_mb: int = Field(
        default=1024,
        ge=0,
        le=1024 * 1024 * 1024,
        description="Free space (MiB) the data directory's disk must have for /readyz to "
        "answer ready.",
    )
    ready_calendar_days: int = Field(
        default=60,
        ge=0,
        le=3 * 366,
        description="/readyz answers not ready unless the working-day calendar knows the "
        "official schedule of every day from today through this many days ahead.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token a Prometheus scraper presents to /metrics; when unset, "
        "/metrics answers loopback callers only.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="Log lines as JSON (one object a line, for collectors) or for a "
        "console; auto: JSON outside demo mode, console in demo mode.",
    )
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server that mails alerts to alert_mail_to; no mail when unset.",
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP connection with STARTTLS before sending."
    )
    smtp_user: str | None = Field(
        default=None, description="SMTP user name (login when set, with smtp_password)."
    )
    smtp_password: str | None = Field(default=None, description="SMTP password.")
    alert_mail_from: str = Field(
        default="govshare@localhost", description="Sender address of alert mails."
    )
    alert_mail_to: str = Field(
        default="",
        description="Recipients of alert mails (comma-separated addresses); none when empty.",
    )
    open_mail_from: str = Field(
        default="opendata@localhost",
        description="Sender address of mails to open-data developers (confirmation links) "
        "and to askers of data requests (answers); they are sent through smtp_host, and wait "
        "in the developer_mail outbox while it is unset.",
    )

    backup_cipher: Literal["sm4", "aes"] = Field(
        default="sm4",
        description="Encryption of backups (``govshare backup``): SM4-GCM (national "
        "standard) or AES-256-GCM (faster where the CPU has AES instructions).",
    )
    backup_key: str | None = Field(
        default=None,
        description="Backup key: 64 hexadecimal digits (32 bytes) that encrypt and "
        "authenticate backups; keep it outside the data directory and outside the backups. "
        "backup_key_file is read when unset.",
    )
    backup_key_file: Path | None = Field(
        default=None,
        description="File holding the backup key (64 hexadecimal digits; "
        "``govshare backup keygen FILE`` makes one), kept outside the data directory.",
    )
    backup_dir: Path | None = Field(
        default=None,
        description="Directory of scheduled backups (one sub-directory per backup); "
        "no scheduled backups when unset.",
    )
    backup_schedule: str = Field(
        default="30 2 * * *",
        description="When scheduled backups run (cron, China time; default 02:30 daily).",
    )
    backup_keep_daily: int = Field(
        default=7,
        ge=0,
        le=3660,
        description="Scheduled backups kept: the newest of each of this many most recent "
        "days that have one.",
    )
    backup_keep_monthly: int = Field(
        default=12,
        ge=0,
        le=1200,
        description="Scheduled backups kept besides: the newest of each of this many most "
        "recent months that have one.",
    )
    backup_max_age_hours: float = Field(
        default=36,
        ge=0,
        le=24 * 366,
        description="Alert (备份过期) when the last good backup is older than this while "
        "backup_dir is set or backups have been taken; 0 turns the alert off.",
    )

    disk_free_alert_percent: float = Field(
        default=10,
        ge=0.1,
        le=99.9,
        description="Alert (磁盘空间不足) when the data directory's filesystem has less free "
        "space than this share (percent); the 告警规则 page may set another.",
    )
    key_max_age_days: int = Field(
        default=365,
        ge=30,
        le=3650,
        description="Longest a key may be in use (the audit key, the documents signing keys, "
        "nodes' and API clients' keys) before it is due for rotation.",
    )
    key_expiry_warning_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="Alert (密钥即将到期) this many days before a key reaches key_max_age_days "
        "or a certificate of tls_cert_files its notAfter; the 告警规则 page may set another.",
    )
    tls_cert_files: str = Field(
        default="",
        description="TLS certificate files (PEM, comma-separated paths) whose expiry "
        "(notAfter) the 密钥即将到期 alert watches; none when empty.",
    )

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if not self.demo:
            if self.secret_key == DEMO_SECRET:
                raise UnsafeSettingError(
                    "GOVSHARE_SECRET_KEY must be set outside demo mode "
                    "(生产模式必须设置 GOVSHARE_SECRET_KEY)"
                )
            if len(self.secret_key) < 32:
                raise UnsafeSettingError(
                    "GOVSHARE_SECRET_KEY must be at least 32 characters (密钥长度至少32位)"
                )
        return self

    @model_validator(mode="after")
    def _known_totp_roles(self) -> Settings:
        from govshare.security.roles import Role  # roles import nothing of ours

        unknown = [r for r in self.totp_roles if r not in {role.value for role in Role}]
        if unknown:
            raise ValueError(
                f"GOVSHARE_TOTP_REQUIRED_ROLES names unknown roles {unknown} "
                f"(角色名称有误), known: {', '.join(r.value for r in Role)}"
            )
        return self

    @property
    def totp_roles(self) -> frozenset[str]:
        """The roles whose users must sign in with a one-time code."""
        return frozenset(r.strip() for r in self.totp_required_roles.split(",") if r.strip())

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'govshare.db').resolve()}"

    @cached_property
    def resolved_shared_store_url(self) -> str:
        if self.shared_store_url:
            return self.shared_store_url
        if self.is_sqlite:
            return f"sqlite:///{(self.data_dir / 'shared.db').resolve()}"
        return self.resolved_database_url

    @property
    def field_sealing(self) -> bool:
        """Whether new shared stores keep their sensitive items sealed (字段加密): on
        with encryption at rest, off with ``at_rest_cipher=none``."""
        return self.at_rest_cipher != "none"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


class OfflineSettings(Settings):
    """Settings for offline commands that never use the secret key (``audit verify``,
    ``audit checkpoints``): everything they need is in the data directory."""

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> OfflineSettings:
        return self


def generate_password() -> str:
    """A first administrator's password, complex enough for any password policy."""
    from govshare.security.passwords import generate

    return generate()
