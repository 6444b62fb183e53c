"""数据需求征集: the public asks for data to be opened, others vote, the department
answers publicly (SPEC §7, public participation).

Askers and voters have no account. What keeps the list usable without a captcha is a
rate limit per network address, counted from the rows themselves (a keyed hash of the
address, never the address): a few requests an hour and a day, a few dozen votes an
hour, one vote per address and request. The platform can hide a request (abuse,
personal data, duplicates) with a reason; hidden requests leave every public page.

Who answers: the department the request is addressed to (staff who answer sharing
applications, ``sharing.review``), or the platform, which also assigns requests that name
no department. An answer of 已开放 names an open dataset of that department, checked
against the one definition of what is open (:mod:`govshare.opendata.datasets`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govshare.errors import Forbidden, InvalidInput, NotFound, TooManyRequests
from govshare.opendata import datasets as ds
from govshare.opendata.models import (
    AnswerKind,
    DemandStatus,
    DeveloperMail,
    OpenDemand,
    OpenDemandVote,
)
from govshare.rules.fields import Expect
from govshare.security import audit
from govshare.security.crypto import hmac_sha256
from govshare.security.models import Department
from govshare.security.service import Principal

# Captcha-free limits per network address (hashed): a person asks a few times, votes
# for what they read; a script hits these within a minute.
SUBMIT_PER_HOUR = 3
SUBMIT_PER_DAY = 10
VOTES_PER_HOUR = 30
PAGE_SIZE = 20
MAX_PAGE = 500

_EMAIL = r"[^@\s]{1,64}@[^@\s]{1,99}\.[^@\s]{1,20}"
_CONTACT = rf"^$|^(?:{_EMAIL}|1\d{{10}})$"


def address_hash(secret_key: str, address: str | None) -> str:
    """The keyed hash a request or vote is counted under; no address is stored."""
    return hmac_sha256(secret_key, b"open-demand\x00" + (address or "unknown").encode())


class DemandForm(BaseModel):
    """提交数据需求."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    title: Annotated[str, Expect("需求名称应为 4 到 100 个字", min_length=4, max_length=100)]
    description: Annotated[
        str, Expect("需求描述应为 10 到 2000 个字", min_length=10, max_length=2000)
    ]
    department_id: Annotated[int | None, Expect("请从列表中选择部门", ge=1, le=2**31 - 1)] = None
    nickname: Annotated[str, Expect("署名不能超过 30 个字", max_length=30)] = ""
    contact: Annotated[
        str, Expect("联系方式应为电子邮箱或 11 位手机号码", max_length=100, pattern=_CONTACT)
    ] = ""


class AnswerForm(BaseModel):
    """部门答复."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    kind: Annotated[AnswerKind, Expect("请选择答复结论")]
    answer: Annotated[str, Expect("答复内容应为 4 到 2000 个字", min_length=4, max_length=2000)]
    dataset: Annotated[str, Expect("数据集名称不能超过 100 个字", max_length=100)] = ""


def _retry_after(oldest: datetime | None, window: timedelta, now: datetime) -> int:
    if oldest is None:
        return int(window.total_seconds())
    return max(1, int((oldest + window - now).total_seconds()) + 1)


def submit(session: Session, data: DemandForm, submitter: str, now: datetime) -> OpenDemand:
    """A new request, 待答复; refused past the address's limits or for an unknown
    department. Not audited: no identity acts here, and the row is its own record."""
    for window, limit in (
        (timedelta(hours=1), SUBMIT_PER_HOUR),
        (timedelta(days=1), SUBMIT_PER_DAY),
    ):
        since = now - window
        recent = select(OpenDemand.created_at).where(
            OpenDemand.submitter == submitter, OpenDemand.created_at >= since
        )
        count = int(session.scalar(select(func.count()).select_from(recent.subquery())) or 0)
        if count >= limit:
            oldest = session.scalar(recent.order_by(OpenDemand.created_at).limit(1))
            per = "小时" if window.days == 0 else "天"
            raise TooManyRequests(
                f"提交过于频繁：同一网络每{per}最多提交 {limit} 条需求，请稍后再试"
                " (too many requests)",
                retry_after=_retry_after(oldest, window, now),
            )
    if data.department_id is not None and session.get(Department, data.department_id) is None:
        raise InvalidInput.about(
            "希望提供的部门不存在 (unknown department)", "department_id", "请从列表中选择部门"
        )
    demand = OpenDemand(
        title=data.title,
        description=data.description,
        department_id=data.department_id,
        nickname=data.nickname,
        contact=data.contact,
        submitter=submitter,
        created_at=now,
        status=DemandStatus.OPEN,
        votes=0,
    )
    session.add(demand)
    session.flush()
    return demand


def public_demand(session: Session, demand_id: int) -> OpenDemand:
    """A request as the public may see it: any but hidden ones."""
    demand = session.get(OpenDemand, demand_id)
    if demand is None or demand.status is DemandStatus.HIDDEN:
        raise NotFound(f"数据需求 {demand_id} 不存在 (no such request)")
    return demand


def vote(session: Session, demand_id: int, voter: str, now: datetime) -> bool:
    """One vote from this address; False when it had already voted for it."""
    public_demand(session, demand_id)
    since = now - timedelta(hours=1)
    recent = select(OpenDemandVote.created_at).where(
        OpenDemandVote.voter == voter, OpenDemandVote.created_at >= since
    )
    if (
        int(session.scalar(select(func.count()).select_from(recent.subquery())) or 0)
        >= VOTES_PER_HOUR
    ):
        oldest = session.scalar(recent.order_by(OpenDemandVote.created_at).limit(1))
        raise TooManyRequests(
            f"投票过于频繁：同一网络每小时最多投 {VOTES_PER_HOUR} 票 (too many requests)",
            retry_after=_retry_after(oldest, timedelta(hours=1), now),
        )
    try:
        with session.begin_nested():
            session.execute(
                insert(OpenDemandVote).values(demand_id=demand_id, voter=voter, created_at=now)
            )
    except IntegrityError:
        return False
    session.execute(
        update(OpenDemand).where(OpenDemand.id == demand_id).values(votes=OpenDemand.votes + 1)
    )
    return True


@dataclass(frozen=True, slots=True)
class DemandPage:
    items: list[OpenDemand]
    total: int
    page: int
    pages: int


SORTS = {"votes": "票数最多", "new": "最新提交"}


def _page(session: Session, query: Select[OpenDemand], page: int) -> DemandPage:
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages, MAX_PAGE)
    items = list(session.scalars(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return DemandPage(items=items, total=total, page=page, pages=pages)


def public_list(
    session: Session,
    *,
    sort: str = "votes",
    status: DemandStatus | None = None,
    department_id: int | None = None,
    page: int = 1,
) -> DemandPage:
    """The requests the public sees, most voted (or newest) first."""
    query = select(OpenDemand).where(OpenDemand.status != DemandStatus.HIDDEN)
    if status is not None:
        query = query.where(OpenDemand.status == status)
    if department_id is not None:
        query = query.where(OpenDemand.department_id == department_id)
    order = (
        (OpenDemand.created_at.desc(), OpenDemand.id.desc())
        if sort == "new"
        else (OpenDemand.votes.desc(), OpenDemand.id.desc())
    )
    return _page(session, query.order_by(*order), page)


def console_list(
    session: Session, caller: Principal, *, status: DemandStatus | None = None, page: int = 1
) -> DemandPage:
    """The requests a staff member works: the platform sees all (hidden ones too, and
    those naming no department); a department those addressed to it."""
    query = select(OpenDemand)
    if not caller.is_admin:
        query = query.where(
            OpenDemand.department_id == caller.department_id,
            OpenDemand.status != DemandStatus.HIDDEN,
        )
    if status is not None:
        query = query.where(OpenDemand.status == status)
    open_first = (OpenDemand.status != DemandStatus.OPEN).asc()
    return _page(session, query.order_by(open_first, OpenDemand.votes.desc(), OpenDemand.id), page)


def visible_demand(session: Session, caller: Principal, demand_id: int) -> OpenDemand:
    """A request the caller may work on, else NotFound (others' requests are not
    confirmed to exist, as elsewhere in the console)."""
    demand = session.get(OpenDemand, demand_id)
    if demand is None or not (
        caller.is_admin
        or (
            demand.department_id == caller.department_id
            and demand.status is not DemandStatus.HIDDEN
        )
    ):
        raise NotFound(f"数据需求 {demand_id} 不存在 (no such request)")
    return demand


def _snapshot(demand: OpenDemand) -> dict[str, object]:
    return {
        "status": demand.status.value,
        "department_id": demand.department_id,
        "answer_kind": demand.answer_kind.value if demand.answer_kind else None,
        "dataset_code": demand.dataset_code,
        "hidden_reason": demand.hidden_reason,
    }


def answer(
    session: Session,
    caller: Principal,
    demand_id: int,
    data: AnswerForm,
    now: datetime,
    *,
    base_url: str = "",
) -> OpenDemand:
    """部门答复, shown publicly; a later answer replaces the earlier one (audited). An
    asker who left an e-mail address is told by mail (``developer_mail`` outbox), with
    the answer and the public page under ``base_url``."""
    demand = visible_demand(session, caller, demand_id)
    if demand.status is DemandStatus.HIDDEN:
        raise InvalidInput("已屏蔽的需求不能答复，请先恢复 (request is hidden)")
    if demand.department_id is None and not caller.is_admin:
        raise Forbidden("未指定部门的需求由平台分派后再答复 (request not assigned)")
    code: str | None = None
    if data.kind is AnswerKind.OPENED:
        dataset = ds.get_dataset(session, data.dataset) if data.dataset else None
        if dataset is None:
            raise InvalidInput.about(
                "答复为“已开放”时须指明一个已开放的数据集 (no such open dataset)",
                "dataset",
                "请填写已开放数据集的资源代码或地址中的名称",
            )
        if demand.department_id is not None and dataset.publisher.id != demand.department_id:
            raise InvalidInput.about(
                "所指数据集不是本需求所指部门开放的 (dataset of another department)",
                "dataset",
                f"“{dataset.title}”由{dataset.publisher.name}开放",
            )
        code = dataset.code
    before = _snapshot(demand)
    again = demand.status is DemandStatus.ANSWERED
    demand.status = DemandStatus.ANSWERED
    demand.answer_kind = data.kind
    demand.answer = data.answer
    demand.dataset_code = code
    demand.answered_by = caller.name
    demand.answered_at = now
    audit.record(
        session,
        caller.actor,
        "open_demand.answer",
        object_type="open_demand",
        object_id=demand.id,
        before=before,
        after={**_snapshot(demand), "answer": data.answer},
    )
    if re.fullmatch(_EMAIL, demand.contact):
        _tell_asker(session, demand, again=again, base_url=base_url, now=now)
    return demand


def _tell_asker(
    session: Session, demand: OpenDemand, *, again: bool, base_url: str, now: datetime
) -> None:
    assert demand.answer_kind is not None
    lines = [
        f"{demand.nickname or '您好'}：",
        "",
        f"您在公共数据开放平台提出的数据需求“{demand.title}”"
        + ("的答复已更新。" if again else "已有答复。"),
        "",
        f"答复结论：{demand.answer_kind.label}",
        f"答复部门：{demand.department.name if demand.department else '平台'}",
        f"答复内容：{demand.answer}",
    ]
    if demand.dataset_code:
        lines.append(f"相关数据集：{demand.dataset_code}")
    lines += [
        "",
        f"查看详情：{base_url}/open/demands/{demand.id}",
        "",
        "本邮件由系统发送，请勿回复。",
    ]
    session.add(
        DeveloperMail(
            demand_id=demand.id,
            to=demand.contact,
            subject=f"您提出的数据需求{'答复已更新' if again else '已答复'}：{demand.title}",
            body="\n".join(lines),
            created_at=now,
        )
    )


def assign(session: Session, caller: Principal, demand_id: int, department_id: int) -> OpenDemand:
    """分派: the platform addresses a request to the department that should answer."""
    demand = _platform_demand(session, caller, demand_id)
    if session.get(Department, department_id) is None:
        raise InvalidInput.about("部门不存在 (unknown department)", "department_id", "请选择部门")
    before = _snapshot(demand)
    demand.department_id = department_id
    audit.record(
        session,
        caller.actor,
        "open_demand.assign",
        object_type="open_demand",
        object_id=demand.id,
        before=before,
        after=_snapshot(demand),
    )
    return demand


def hide(session: Session, caller: Principal, demand_id: int, reason: str) -> OpenDemand:
    """屏蔽 (reason required) or, with an empty reason on a hidden request, 恢复."""
    demand = _platform_demand(session, caller, demand_id)
    reason = reason.strip()
    before = _snapshot(demand)
    if demand.status is DemandStatus.HIDDEN:
        demand.status = DemandStatus.ANSWERED if demand.answer_kind else DemandStatus.OPEN
        demand.hidden_reason = ""
        action = "open_demand.restore"
    else:
        if not 2 <= len(reason) <= 200:
            raise InvalidInput.about(
                "屏蔽须写明理由 (reason required)", "reason", "理由应为 2 到 200 个字"
            )
        demand.status = DemandStatus.HIDDEN
        demand.hidden_reason = reason
        action = "open_demand.hide"
    audit.record(
        session,
        caller.actor,
        action,
        object_type="open_demand",
        object_id=demand.id,
        before=before,
        after=_snapshot(demand),
    )
    return demand


def _platform_demand(session: Session, caller: Principal, demand_id: int) -> OpenDemand:
    if not caller.is_admin:
        raise Forbidden("只有平台管理员可以分派或屏蔽需求 (platform only)")
    return visible_demand(session, caller, demand_id)


def counts(session: Session) -> dict[DemandStatus, int]:
    """How many requests are in each state (the public list's tabs)."""
    rows = session.execute(select(OpenDemand.status, func.count()).group_by(OpenDemand.status))
    return {status: int(n) for status, n in rows}
