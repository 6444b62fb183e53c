"""The operations domain's API shapes: the alert rules (告警规则)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from govshare.exchange.alertrules import SEVERITY_LABELS, Effective
from govshare.exchange.models import AlertKind


class AlertRulePublic(BaseModel):
    """One kind's rule as the checks apply it; ``source`` says whether it was edited
    (``edited``, 已修改) or follows the settings (``default``, 设置默认)."""

    kind: AlertKind
    label: str
    condition: str = Field(description="When the alert opens (中文)")
    unit: str | None = Field(description="Unit of the threshold (中文); null: no threshold")
    enabled: bool
    threshold: float | None
    default_threshold: float | None = Field(description="The setting's (or built-in) threshold")
    min_threshold: float | None
    max_threshold: float | None
    severity: Literal["warning", "error"]
    severity_label: str
    webhook: bool = Field(description="New alerts go to the webhook (when one is set)")
    mail: bool = Field(description="New alerts are mailed (when SMTP and recipients are set)")
    source: Literal["default", "edited"]
    source_label: str
    updated_by: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, rule: Effective) -> AlertRulePublic:
        spec = rule.spec
        return cls(
            kind=rule.kind,
            label=rule.kind.label,
            condition=spec.condition,
            unit=spec.unit,
            enabled=rule.enabled,
            threshold=rule.threshold,
            default_threshold=rule.default_threshold,
            min_threshold=spec.low,
            max_threshold=spec.high,
            severity="warning" if rule.severity == "warning" else "error",
            severity_label=SEVERITY_LABELS.get(rule.severity, rule.severity),
            webhook=rule.webhook,
            mail=rule.mail,
            source="edited" if rule.edited else "default",
            source_label="已修改" if rule.edited else "设置默认",
            updated_by=rule.updated_by,
            updated_at=rule.updated_at,
        )


class AlertRuleUpdate(BaseModel):
    """A rule as edited. ``threshold`` null keeps the setting's threshold; it must lie
    within the rule's bounds (``min_threshold``…``max_threshold``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    severity: Literal["warning", "error"] = "error"
    webhook: bool = True
    mail: bool = True
