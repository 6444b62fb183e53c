"""告警规则: each alert kind's rule — on or off, its threshold, severity and channels.

A kind without an ``alert_rule`` row follows the settings (``GOVSHARE_LAG_ALERT_SECONDS``
…), so an untouched hub alerts exactly as the settings say. A row, written from the
console's 告警规则 page or ``PUT /api/v1/ops/alert-rules/{kind}``, overrides them; a row
whose threshold is empty keeps the setting's threshold. The checks read their threshold
through ``effective``; ``raise_alert`` reads ``enabled``, severity and the channel flags
through ``rule_row`` (a primary-key read the session's identity map answers again for
free, so no cache is needed at the checks' pace of one round every few seconds).

A disabled rule raises nothing, and disabling it resolves the kind's open alerts in
the same transaction (the console's list of open alerts shows only what is watched).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.db import utcnow
from govshare.errors import InvalidInput, NotFound
from govshare.exchange.models import Alert, AlertKind, AlertRule
from govshare.security import audit
from govshare.security.audit import Actor

Severity = Literal["warning", "error"]
SEVERITY_LABELS: dict[str, str] = {"warning": "警告", "error": "严重"}
DEFAULT_SEVERITY: Severity = "error"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a kind's threshold means: its unit (Chinese), the setting that gives its
    default (or a constant ``default``), and the bounds an edit must keep."""

    kind: AlertKind
    condition: str  # 中文: when the alert opens, "{threshold}" standing for the figure
    unit: str | None = None  # None: the kind has no threshold (it opens on the event)
    setting: str | None = None
    default: float | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = True
    severity: Severity = DEFAULT_SEVERITY  # until the bureau sets one

    @property
    def has_threshold(self) -> bool:
        return self.unit is not None

    def default_threshold(self, settings: Settings) -> float | None:
        if self.setting is not None:
            return float(getattr(settings, self.setting))
        return self.default


_SPECS = (
    RuleSpec(
        AlertKind.NODE_SILENT,
        "前置机超过阈值未联系平台",
        unit="秒",
        setting="node_silent_seconds",
        low=5,
        high=86400,
    ),
    RuleSpec(AlertKind.SEND_FAILED, "前置机报告发送失败时"),
    RuleSpec(AlertKind.RECEIVE_FAILED, "前置机报告接收失败时"),
    RuleSpec(AlertKind.DATABASE_ERROR, "前置机报告数据库错误时"),
    RuleSpec(AlertKind.PACKAGE_REJECTED, "平台拒收数据包时"),
    RuleSpec(AlertKind.RECONCILIATION_MISMATCH, "源端与目标端核对不一致时"),
    RuleSpec(AlertKind.RECONCILIATION_TIMEOUT, "核对未在时限内收到校验和时"),
    RuleSpec(
        AlertKind.LAG,
        "订阅最早的未入库数据包等待超过阈值",
        unit="秒",
        setting="lag_alert_seconds",
        low=1,
        high=7 * 86400,
    ),
    RuleSpec(
        AlertKind.OBJECTION_OVERDUE,
        "异议超过答复期限的天数超过阈值（0：期限一过即告警）",
        unit="天",
        default=0,
        low=0,
        high=365,
    ),
    RuleSpec(
        AlertKind.APPLICATION_OVERDUE,
        "共享申请超过答复或提供期限的天数超过阈值（0：期限一过即告警）",
        unit="天",
        default=0,
        low=0,
        high=365,
    ),
    RuleSpec(AlertKind.CALENDAR_MISSING, "节假日历缺少期限将落入的年份时"),
    RuleSpec(
        AlertKind.CONFLICT_OVERDUE,
        "基础库冲突未处理超过阈值",
        unit="天",
        setting="base_conflict_alert_days",
        low=1,
        high=365,
    ),
    RuleSpec(
        AlertKind.BACKUP_STALE,
        "最近一次成功备份早于阈值",
        unit="小时",
        setting="backup_max_age_hours",
        low=1,
        high=24 * 366,
        integer=False,
    ),
    RuleSpec(AlertKind.DOCUMENT_UNANSWERED, "公文超时未签收、已催办时"),
    RuleSpec(AlertKind.CASE_TASK_OVERDUE, "协同办理任务超过办理时限时"),
    RuleSpec(AlertKind.CASE_OVERDUE, "协同办件超过事项的办结时限仍未办结时"),
    RuleSpec(
        AlertKind.CASE_TASK_DUE_SOON,
        "有协同办理任务亮黄牌时（到期前的工作日数由平台设置）",
        severity="warning",
    ),
    RuleSpec(
        AlertKind.DISK_LOW,
        "数据目录所在磁盘的可用空间低于阈值",
        unit="%",
        setting="disk_free_alert_percent",
        low=0.1,
        high=99.9,
        integer=False,
    ),
    RuleSpec(
        AlertKind.KEY_EXPIRING,
        "密钥距最长使用期限、证书距到期不足阈值",
        unit="天",
        setting="key_expiry_warning_days",
        low=1,
        high=365,
    ),
    RuleSpec(
        AlertKind.NODE_STORE_UNSEALED,
        "前置机报告本地库未加密时（私钥、传输密钥和待发数据包以明文保存）",
        severity="warning",
    ),
)
RULES: dict[AlertKind, RuleSpec] = {s.kind: s for s in _SPECS}
assert set(RULES) == set(AlertKind), "every alert kind has a rule"


@dataclass(frozen=True, slots=True)
class Effective:
    """A kind's rule as the checks apply it: the row's values where there is one, the
    settings' (and the built-in defaults) elsewhere."""

    spec: RuleSpec
    enabled: bool
    threshold: float | None
    severity: str
    webhook: bool
    mail: bool
    edited: bool  # a row exists (已修改); False: the settings' defaults (设置默认)
    default_threshold: float | None
    updated_by: str | None
    updated_at: datetime | None

    @property
    def kind(self) -> AlertKind:
        return self.spec.kind

    def as_dict(self) -> dict[str, Any]:
        """What the audit entry records before and after an edit."""
        return {
            "enabled": self.enabled,
            "threshold": self.threshold,
            "severity": self.severity,
            "webhook": self.webhook,
            "mail": self.mail,
            "edited": self.edited,
        }


def rule_row(session: Session, kind: AlertKind) -> AlertRule | None:
    return session.get(AlertRule, kind)


def effective(session: Session, settings: Settings, kind: AlertKind) -> Effective:
    """The rule of ``kind`` the checks apply (row over setting)."""
    spec = RULES[kind]
    default = spec.default_threshold(settings)
    row = rule_row(session, kind)
    if row is None:
        # backup_max_age_hours = 0 has always meant: no 备份过期 alert.
        off = kind is AlertKind.BACKUP_STALE and not default
        return Effective(
            spec=spec,
            enabled=not off,
            threshold=default,
            severity=spec.severity,
            webhook=True,
            mail=True,
            edited=False,
            default_threshold=default,
            updated_by=None,
            updated_at=None,
        )
    threshold = row.threshold if spec.has_threshold and row.threshold is not None else default
    return Effective(
        spec=spec,
        enabled=row.enabled,
        threshold=threshold,
        severity=row.severity,
        webhook=row.webhook,
        mail=row.mail,
        edited=True,
        default_threshold=default,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def list_rules(session: Session, settings: Settings) -> list[Effective]:
    return [effective(session, settings, k) for k in RULES]


def parse_kind(value: str) -> AlertKind:
    try:
        return AlertKind(value)
    except ValueError:
        raise NotFound(f"没有这种告警规则: {value} (no such alert rule)") from None


def check_threshold(spec: RuleSpec, threshold: float | None) -> float | None:
    """The threshold as stored, or InvalidInput naming the rule's bounds."""
    if threshold is None:
        return None
    label = spec.kind.label
    if not spec.has_threshold:
        raise InvalidInput.about(
            f"告警规则“{label}”没有阈值，请留空 (this rule takes no threshold)",
            "threshold",
            "此规则没有阈值",
        )
    assert spec.low is not None
    assert spec.high is not None
    if not math.isfinite(threshold):
        raise InvalidInput.about(
            f"“{label}”的阈值必须是数字 (threshold must be a finite number)",
            "threshold",
            "必须是数字",
        )
    if spec.integer and threshold != int(threshold):
        raise InvalidInput.about(
            f"“{label}”的阈值必须是整数{spec.unit} (threshold must be a whole number)",
            "threshold",
            f"必须是整数（单位：{spec.unit}）",
        )
    if not spec.low <= threshold <= spec.high:
        bounds = f"{spec.low:g} 至 {spec.high:g} {spec.unit}"
        raise InvalidInput.about(
            f"“{label}”的阈值须在 {bounds} 之间，收到 {threshold:g} "
            f"(threshold out of range {spec.low:g}..{spec.high:g})",
            "threshold",
            f"须在 {bounds} 之间",
        )
    return float(threshold)


def update_rule(
    session: Session,
    settings: Settings,
    actor: Actor,
    kind: AlertKind,
    *,
    enabled: bool,
    threshold: float | None,
    severity: str,
    webhook: bool,
    mail: bool,
) -> Effective:
    """Write the rule of ``kind`` (audited, before and after); disabling it resolves the
    kind's open alerts."""
    spec = RULES[kind]
    stored = check_threshold(spec, threshold)
    if severity not in SEVERITY_LABELS:
        raise InvalidInput.about(
            f"告警级别只能是 警告 (warning) 或 严重 (error)，收到 {severity!r} "
            "(severity must be warning or error)",
            "severity",
            "只能是 warning 或 error",
        )
    before = effective(session, settings, kind)
    row = rule_row(session, kind)
    if row is None:
        row = AlertRule(kind=kind, updated_by=actor.name)
        session.add(row)
    row.enabled = enabled
    row.threshold = stored
    row.severity = severity
    row.webhook = webhook
    row.mail = mail
    row.updated_by = actor.name
    row.updated_at = utcnow()
    session.flush()
    after = effective(session, settings, kind)
    resolved = 0 if enabled else _resolve_open(session, kind)
    audit.record(
        session,
        actor,
        "ops.alert_rule.update",
        object_type="alert_rule",
        object_id=str(kind),
        before=before.as_dict(),
        after={**after.as_dict(), "resolved_alerts": resolved},
    )
    return after


def reset_rule(session: Session, settings: Settings, actor: Actor, kind: AlertKind) -> Effective:
    """Drop the row of ``kind``: it follows the settings again (audited)."""
    before = effective(session, settings, kind)
    row = rule_row(session, kind)
    if row is not None:
        session.delete(row)
        session.flush()
    after = effective(session, settings, kind)
    audit.record(
        session,
        actor,
        "ops.alert_rule.reset",
        object_type="alert_rule",
        object_id=str(kind),
        before=before.as_dict(),
        after=after.as_dict(),
    )
    return after


def _resolve_open(session: Session, kind: AlertKind) -> int:
    open_alerts = list(
        session.scalars(select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None)))
    )
    for a in open_alerts:
        a.resolved_at = utcnow()
    return len(open_alerts)
