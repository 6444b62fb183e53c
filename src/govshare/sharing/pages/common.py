"""What the sharing console pages share: the day deadlines are counted from, the notices
shown after a redirect, rendering with the sharing tags, field names for error
summaries, working-day countdowns, grant states and pages of rows."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response

from govshare.rules.clock import china_today
from govshare.rules.workdays import working_days_between
from govshare.security.service import Principal
from govshare.sharing import service
from govshare.sharing.models import (
    ApplicationStatus,
    MaskingRule,
    SharingApplication,
    SharingGrant,
)
from govshare.web.forms import render

PAGE_SIZE = 20
T = TypeVar("T")


def sharing_today() -> date:
    """The day deadlines and grant validity are counted from: today in China.

    A dependency of its own so tests can stand the pages on a fixed day
    (``app.dependency_overrides[sharing_today]``), as the service takes ``today=``."""
    return china_today()


Today = Annotated[date, Depends(sharing_today)]

# Notices after a redirect (``?done=key``); fixed texts only, like web.filters.NOTICES.
NOTICES: dict[str, str] = {
    "calendar_entered": "节假日安排已录入，预计期限已按新安排重算",
    "calendar_removed": "已撤回控制台录入的节假日安排，期限已按现行日历重算",
    "applied": "共享申请已提交，提供部门将在规定的工作日内答复",
    "granted": "该目录为无条件共享，申请已自动通过并生成授权",
    "approved": "已同意申请并生成授权，请在提供期限内提供数据",
    "refused": "已拒绝该申请，拒绝理由将告知申请部门",
    "provided": "已标记为已提供数据",
    "disputed": "争议已提交平台共享主管部门裁决",
    "decided": "裁决结果已记录",
    "revoked": "授权已撤销，即时生效",
    "usage_reported": "使用情况已反馈",
    "objection_raised": "异议已提交，数据提供部门将在规定的工作日内答复",
    "objection_accepted": (
        "已确认异议。请在本部门业务系统中更正数据，更正经交换到达共享信息库后自动归档"
    ),
    "objection_rejected": "已答复不予更正，异议已归档",
    "store_created": "共享信息库已建立，将按发送任务的数据包依次入库",
    "subscribed": "接收任务已创建并启动",
}

MASKING_LABELS: dict[MaskingRule, str] = {r: r.label for r in MaskingRule}
# Tag colour of each application state (classes of app.css).
STATUS_CLASSES: dict[ApplicationStatus, str] = {
    ApplicationStatus.SUBMITTED: "tag-warn",
    ApplicationStatus.APPROVED: "sharing-2",
    ApplicationStatus.REFUSED: "tag-danger",
    ApplicationStatus.DISPUTED: "tag-warn",
    ApplicationStatus.REFUSAL_UPHELD: "tag-danger",
    ApplicationStatus.PROVIDED: "tag-open",
}
ANSWER_LABELS: dict[str, str] = {
    "items": "批准的信息项",
    "masking": "脱敏规则",
    "reason": "理由",
    "outcome": "裁决结果",
}


def _labels(names: dict[str, str]) -> Callable[[str], str]:
    """A field's Chinese name for the error summary; ``items[1]`` and ``masking.xm`` are
    named as ``items`` and ``masking``."""
    return lambda field: names.get(re.split(r"[\[.]", field)[0], field)


def _page(
    request: Request, template: str, caller: Principal, *, status_code: int = 200, **context: Any
) -> Response:
    done = request.query_params.get("done", "")
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        notice=NOTICES.get(done, ""),
        status_classes=STATUS_CLASSES,
        masking_labels=MASKING_LABELS,
        **context,
    )


def _with_done(url: str, done: str) -> str:
    """``url`` with ``?done=`` set to the notice to show after the redirect."""
    url = re.sub(r"([?&])done=[^&#]*&?", r"\1", url).rstrip("?&")
    return f"{url}{'&' if '?' in url else '?'}done={done}"


# -- deadlines, grant states and pages of rows ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Countdown:
    """答复/提供期限倒计时 of one application, in Chinese working days."""

    kind: str  # 答复 | 提供
    due: date
    today: date
    left: int  # working days after today up to ``due``
    overdue: bool
    soon: bool  # at most ``remind_working_days_before`` working days left
    provisional: bool = False  # 预计: counted on a year whose holidays are not known yet

    @property
    def level(self) -> str:
        return "overdue" if self.overdue else "soon" if self.soon else "ok"

    @property
    def text(self) -> str:
        if self.overdue:
            said = f"{self.kind}已超期 {-self.left} 个工作日" if self.left else f"{self.kind}已超期"
        elif self.due == self.today:
            said = f"{self.kind}今日到期"
        else:
            said = f"{self.kind}剩 {self.left} 个工作日"
        return f"{said}（预计）" if self.provisional else said


def countdown(app: SharingApplication, today: date, *, remind_before: int) -> Countdown | None:
    """The deadline the provider is working to: the answer while the application waits,
    the provision once approved; None when nothing is due."""
    if app.status is ApplicationStatus.SUBMITTED:
        kind, due, provisional = "答复", app.answer_due, app.answer_due_provisional
    elif app.status is ApplicationStatus.APPROVED:
        kind, due, provisional = "提供", app.provide_due, app.provide_due_provisional
    else:
        return None
    if due is None:
        return None
    return deadline_countdown(kind, due, today, remind_before, provisional=provisional)


def deadline_countdown(
    kind: str, due: date, today: date, remind_before: int, *, provisional: bool
) -> Countdown:
    left = working_days_between(today, due)
    overdue = due < today
    soon = not overdue and left <= remind_before
    return Countdown(
        kind=kind,
        due=due,
        today=today,
        left=left,
        overdue=overdue,
        soon=soon,
        provisional=provisional,
    )


def grant_state(grant: SharingGrant, today: date) -> str:
    """``revoked`` before ``expired``: a revoked grant stays revoked after its end date."""
    if grant.revoked:
        return "revoked"
    return "active" if service.is_active(grant, today) else "expired"


@dataclass(frozen=True, slots=True)
class Paged:
    """One page of a list (``p`` counts from 1)."""

    rows: list[Any]
    number: int
    pages: int
    total: int


def _paged(rows: Sequence[T], p: str) -> Paged:
    pages = max(math.ceil(len(rows) / PAGE_SIZE), 1)
    number = min(int(p), pages) if p.isdigit() and int(p) > 0 else 1
    start = (number - 1) * PAGE_SIZE
    return Paged(
        rows=list(rows[start : start + PAGE_SIZE]), number=number, pages=pages, total=len(rows)
    )


def _item_names(app_or_grant: SharingApplication | SharingGrant) -> dict[str, str]:
    return {it.code: it.name for it in app_or_grant.resource.items}
