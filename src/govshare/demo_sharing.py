"""The demo's sharing side: applications in every state (one of them overdue), grants
with masking, an API client per consumer department, some weeks of data-service calls,
usage feedback and objections, so every sharing page of a fresh ``make run`` has content.

Everything goes through the sharing services (audited like real use), dated relative to
the demo's today (``china_today``), so a demo loaded on any day looks the same: the
applications were submitted weeks ago, the calls fill the last five weeks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.cn import ric

from govshare.catalog import service as catalog
from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.demo import DEPARTMENTS, lifecycle_actor
from govshare.rules.clock import CHINA, china_today
from govshare.rules.workdays import is_working_day
from govshare.security import audit
from govshare.security.audit import KeyHasher
from govshare.security.models import ApiClient, Department, User
from govshare.security.roles import permissions_for
from govshare.security.service import Principal, add_api_client
from govshare.sharing import objections, service
from govshare.sharing.journal import Call, audit_entries
from govshare.sharing.models import (
    CallStat,
    DisputeOutcome,
    MaskingRule,
    SharingGrant,
    SharingMode,
)
from govshare.sharing.schemas import (
    ApplicationCreate,
    ApproveIn,
    DecisionIn,
    ObjectionAnswer,
    ObjectionCreate,
    UsageCreate,
)

# What becomes of an application in the demo.
SUBMITTED = "submitted"  # 待答复, within its deadline
OVERDUE = "overdue"  # 待答复, its answer deadline passed
APPROVED = "approved"  # 已同意, not provided yet
PROVIDED = "provided"  # 已提供: the grants the calls, reports and objections use
REFUSED = "refused"  # 已拒绝
DISPUTED = "disputed"  # 争议待裁决
UPHELD = "upheld"  # 裁决维持拒绝

CALL_DAYS = 35  # the days of data-service calls: past the stats page's 30-day window


@dataclass(frozen=True)
class Scenario:
    consumer: str  # demo department abbreviation
    resource: str  # catalog entry name
    items: list[str]
    mode: SharingMode
    purpose: str
    fate: str
    masking: dict[str, MaskingRule] = field(default_factory=dict)
    # Working days before today the application was submitted.
    submitted: int = 1
    reason: str = ""  # of the refusal, dispute or approval


SCENARIOS: list[Scenario] = [
    Scenario(
        "rsj",
        "常住人口基本信息",
        ["sfzhm", "xm", "xb", "mz", "csrq", "hjdz", "lxdh"],
        SharingMode.QUERY,
        "社会保险参保登记时核对参保人身份与户籍信息",
        PROVIDED,
        {"xm": MaskingRule.NAME, "hjdz": MaskingRule.ADDRESS, "lxdh": MaskingRule.PHONE},
        submitted=50,
        reason="同意按最小必要原则提供，姓名、户籍地址、联系电话脱敏",
    ),
    Scenario(
        "mzj",
        "常住人口基本信息",
        ["sfzhm", "xm", "xb", "hjdz"],
        SharingMode.VERIFICATION,
        "最低生活保障申请家庭户籍状况核验",
        PROVIDED,
        {"xm": MaskingRule.NAME, "hjdz": MaskingRule.ADDRESS},
        submitted=48,
        reason="同意以核验方式提供，数据不落地",
    ),
    Scenario(
        "ybj",
        "社会保险参保信息",
        ["sfzhm", "xm", "xzlx", "cbzt", "gzdw"],
        SharingMode.QUERY,
        "医疗保险参保关系转移接续时核对职工参保状态",
        PROVIDED,
        {"xm": MaskingRule.NAME},
        submitted=45,
        reason="同意提供",
    ),
    Scenario(
        "swj",
        "市场主体登记信息",
        ["tyshxydm", "qymc", "fddbr", "djzt"],
        SharingMode.QUERY,
        "新办纳税人登记信息确认",
        PROVIDED,
        submitted=46,
    ),
    Scenario(
        "gjj",
        "婚姻登记信息",
        ["nfsfzhm", "nvfsfzhm", "djlx", "djrq"],
        SharingMode.VERIFICATION,
        "住房公积金购房提取时核验婚姻关系",
        APPROVED,
        {"nfsfzhm": MaskingRule.ID_NUMBER, "nvfsfzhm": MaskingRule.ID_NUMBER},
        submitted=4,
        reason="同意以核验方式提供",
    ),
    Scenario(
        "zjj",
        "养老金发放信息",
        ["sfzhm", "xm", "ffny", "ffje"],
        SharingMode.QUERY,
        "住房保障申请家庭收入核查",
        REFUSED,
        submitted=12,
        reason="养老金发放金额属个人敏感信息，申请用途可改用收入核对结果，请另行申请核验方式",
    ),
    Scenario(
        "zjj",
        "住房公积金缴存信息",
        ["sfzhm", "xm", "jcdw", "yjce"],
        SharingMode.QUERY,
        "共有产权住房申请人就业与缴存状况核查",
        DISPUTED,
        submitted=10,
        reason="月缴存额涉及个人收入，不予提供",
    ),
    Scenario(
        "mzj",
        "医保结算信息",
        ["sfzhm", "xm", "jsrq", "ylfyze"],
        SharingMode.QUERY,
        "临时救助申请家庭医疗支出核对",
        UPHELD,
        submitted=30,
        reason="结算明细涉及个人病情隐私，不予提供",
    ),
    Scenario(
        "gaj",
        "出生医学证明信息",
        ["csyxzmh", "xsexm", "xb", "csrq", "mqsfzhm", "fqsfzhm"],
        SharingMode.QUERY,
        "新生儿出生登记（户口申报）时核对出生医学证明",
        SUBMITTED,
        submitted=1,
    ),
    Scenario(
        "mzj",
        "医疗保险参保信息",
        ["sfzhm", "xm", "cbzt"],
        SharingMode.VERIFICATION,
        "特困人员供养对象参保状态核验",
        SUBMITTED,
        submitted=0,
    ),
    Scenario(
        "mzj",
        "不动产登记信息",
        ["qlr", "qlrzjhm", "zl"],
        SharingMode.QUERY,
        "社会救助家庭经济状况核对（房产）",
        OVERDUE,
    ),
]

# Reports of use (使用反馈) of each provided grant: (working days ago, count, text), the
# text after the application's purpose.
REPORTS = [
    (40, 860, "用于{purpose}"),
    (21, 1240, "本月业务量增加，核对量随之上升"),
    (3, 530, "月初业务办理中的信息核对"),
]


def principal_of(session: Session, username: str) -> Principal:
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None, username
    return Principal(
        kind="user",
        name=user.username,
        department_id=user.department_id,
        roles=tuple(user.roles),
        permissions=permissions_for(user.roles),
        user_id=user.id,
    )


def working_days_before(day: date, n: int) -> date:
    """The ``n``-th working day before ``day`` (``day`` itself when ``n`` is 0)."""
    while n > 0:
        day -= timedelta(days=1)
        if is_working_day(day):
            n -= 1
    return day


def ensure_published(session: Session, admin: Principal, resource: Resource, note: str) -> None:
    """Walk an entry the demo's random lifecycle left short of 发布 on to it."""
    steps = {
        "draft": ["submit", "approve", "request_publication", "publish"],
        "pending_registration": ["approve", "request_publication", "publish"],
        "registered": ["request_publication", "publish"],
        "pending_publication": ["publish"],
    }
    for step in steps.get(str(resource.status), []):
        catalog.transition(
            session, lifecycle_actor(session, step, resource, admin), resource.id, step, note
        )


# Far enough that the demo's grants hold whatever day it is run on.
GRANT_END = date(2099, 12, 31)


def demo_grant(
    session: Session,
    actor: audit.Actor,
    resource: Resource,
    consumer_id: int,
    items: list[str],
    purpose: str,
    mode: SharingMode = SharingMode.QUERY,
) -> SharingGrant:
    """A grant of ``items`` for ``consumer_id`` in force until 2099 (查询 unless ``mode``
    says otherwise), as if applied for and approved, so a demo path works at once
    (audited)."""
    grant = SharingGrant(
        resource_id=resource.id,
        provider_department_id=resource.provider_department_id,
        consumer_department_id=consumer_id,
        items=items,
        modes=[str(mode)],
        purpose=purpose,
        expires_on=GRANT_END,
        created_by=actor.name,
    )
    session.add(grant)
    session.flush()
    audit.record(
        session,
        actor,
        "sharing.grant.demo",
        object_type="sharing_grant",
        object_id=grant.id,
        after={"resource_id": resource.id, "consumer": consumer_id, "items": grant.items},
    )
    return grant


def id_number(rng: random.Random) -> str:
    """A well-formed 公民身份号码 of somebody born in 青岛市市南区."""
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    body = f"370202{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + ric.calc_check_digit(body + "?")  # it skips the last character


def _at(day: date, hour: int) -> datetime:
    """A moment of a China day, as stored (UTC)."""
    return datetime.combine(day, time(hour), CHINA).astimezone(UTC)


def seed_sharing(
    session: Session, settings: Settings, *, seed: int = 17, today: date | None = None
) -> dict[str, int]:
    """Seed the sharing side of the demo into a hub that has the demo's departments,
    users and catalog; returns what it made."""
    today = today or china_today()
    rng = random.Random(seed)
    admin = principal_of(session, "admin")
    depts = {d.id: d for d in session.scalars(select(Department))}
    by_short = {d.short_name: d.id for d in depts.values()}
    dept_id = {abbr: by_short[short] for abbr, _, short in DEPARTMENTS}
    abbr_of = {d: abbr for abbr, d in dept_id.items()}
    end_date = today + timedelta(days=365)

    grants: dict[int, tuple[Scenario, SharingGrant, date]] = {}
    counts = dict.fromkeys(["applications", "grants", "clients", "calls", "objections"], 0)
    for sc in SCENARIOS:
        resource = session.scalar(select(Resource).where(Resource.name == sc.resource))
        assert resource is not None, sc.resource
        ensure_published(session, admin, resource, "演示共享")
        consumer = principal_of(session, f"{sc.consumer}_res")
        provider = principal_of(session, f"{abbr_of[resource.provider_department_id]}_res")
        # The overdue one: submitted five working days more ago than providers have to answer.
        ago = settings.answer_working_days + 5 if sc.fate == OVERDUE else sc.submitted
        submitted = working_days_before(today, ago)
        app = service.apply(
            session,
            settings,
            consumer,
            ApplicationCreate(
                resource_id=resource.id,
                purpose=sc.purpose,
                legal_basis="《政务信息资源共享管理暂行办法》（国发〔2016〕51号）及本部门法定职责",
                items=sc.items,
                mode=sc.mode,
                users=f"{depts[consumer.department_id or 0].short_name}业务经办人员",
                end_date=end_date,
            ),
            today=submitted,
        )
        counts["applications"] += 1
        answered = working_days_before(today, max(sc.submitted - 2, 0))
        grant = service.grant_of(session, app.id)  # 无条件共享: granted at once
        if sc.fate in (APPROVED, PROVIDED) and grant is None:
            grant = service.approve(
                session,
                settings,
                provider,
                app,
                ApproveIn(masking=sc.masking, reason=sc.reason),
                today=answered,
            )
        if sc.fate == PROVIDED:
            service.mark_provided(
                session, provider, app, today=working_days_before(today, sc.submitted - 4)
            )
        if sc.fate in (REFUSED, DISPUTED, UPHELD):
            service.refuse(session, provider, app, sc.reason, today=answered)
        if sc.fate in (DISPUTED, UPHELD):
            service.dispute(
                session, consumer, app, "申请用途属法定职责，所申请信息项为业务办理所必需"
            )
        if sc.fate == UPHELD:
            service.decide_dispute(
                session,
                settings,
                admin,
                app,
                DecisionIn(
                    outcome=DisputeOutcome.UPHELD,
                    reason="申请用途可通过核验方式满足，维持提供部门的拒绝",
                ),
            )
        if grant is not None:
            counts["grants"] += 1
        if grant is not None and sc.fate == PROVIDED:
            grants[grant.id] = (sc, grant, working_days_before(today, sc.submitted - 4))

    clients: dict[int, ApiClient] = {}
    for abbr in dict.fromkeys(sc.consumer for sc in SCENARIOS):
        dept = depts[dept_id[abbr]]
        # The secret is sealed and shown to nobody: the demo's calls below are recorded,
        # not made, so nothing needs it.
        client, _ = add_api_client(
            session, settings, admin.actor, name=f"{dept.short_name}业务系统", department_id=dept.id
        )
        clients[dept.id] = client
    counts["clients"] = len(clients)

    counts["calls"] = _calls(session, settings, rng, today, clients, grants)
    for sc, grant, provided in grants.values():
        consumer = principal_of(session, f"{sc.consumer}_res")
        for ago, count, text in REPORTS:
            day = working_days_before(today, ago)
            if day > provided:
                service.report_usage(
                    session,
                    consumer,
                    UsageCreate(
                        grant_id=grant.id,
                        text=text.format(purpose=sc.purpose),
                        count=count + rng.randrange(200),
                    ),
                    now=_at(day, 16),
                )
    counts["objections"] = _objections(session, settings, rng, today, grants)
    return counts


def _calls(
    session: Session,
    settings: Settings,
    rng: random.Random,
    today: date,
    clients: dict[int, ApiClient],
    grants: dict[int, tuple[Scenario, SharingGrant, date]],
) -> int:
    """The data-service calls of the last ``CALL_DAYS`` days: each as the journal keeps
    it (one audit entry, its day's count), a dozen or so a working day per grant."""
    hasher = KeyHasher(settings.secret_key)
    stats: list[CallStat] = []
    entries: list[audit.Pending] = []
    for sc, grant, provided in grants.values():
        client = clients[grant.consumer_department_id]
        action = "data.verify" if sc.mode is SharingMode.VERIFICATION else "data.lookup"
        for ago in range(CALL_DAYS - 1, -1, -1):
            day = today - timedelta(days=ago)
            if day <= provided:
                continue
            n = rng.randint(6, 18) if is_working_day(day) else rng.randint(0, 2)
            calls: list[Call] = []
            for _ in range(n):
                keys = rng.choice((1, 1, 1, 2, 5))
                call = Call(
                    client_id=client.id,
                    app_key=client.app_key,
                    department_id=grant.consumer_department_id,
                    remote_addr="10.20.0.15",
                    nonce=f"demo-{grant.id}-{day:%Y%m%d}-{len(calls)}",
                    action=action,
                    resource_id=grant.resource_id,
                    grant_id=grant.id,
                    keys=keys,
                    rows=0 if action == "data.verify" else rng.randint(0, keys),
                    key_hashes=[hasher(id_number(rng)) for _ in range(keys)],
                    day=day,
                    at=_at(day, rng.randint(9, 17)),
                )
                calls.append(call)
            # a day's calls as one journal batch: one entry listing them (the entry's
            # own time is the load's; each call keeps its day in ``at``)
            entries.extend(audit_entries(calls))
            if calls:
                stats.append(
                    CallStat(
                        day=day,
                        client_id=client.id,
                        grant_id=grant.id,
                        calls=len(calls),
                        keys=sum(c.keys for c in calls),
                        rows=sum(c.rows for c in calls),
                    )
                )
    session.add_all(stats)
    audit.record_many(session, entries)
    session.flush()
    return sum(s.calls for s in stats)


def _objections(
    session: Session,
    settings: Settings,
    rng: random.Random,
    today: date,
    grants: dict[int, tuple[Scenario, SharingGrant, date]],
) -> int:
    """On the population records 人社 queries: one open, one accepted (the correction
    awaited from 公安's system), one answered 不予更正 (closed)."""
    sc, grant, _ = next(g for g in grants.values() if g[0].resource == "常住人口基本信息")
    consumer = principal_of(session, f"{sc.consumer}_res")
    provider = principal_of(
        session,
        next(
            u.username
            for u in session.scalars(select(User))
            if u.department_id == grant.provider_department_id and u.username.endswith("_res")
        ),
    )
    made = 0
    for ago, claimed, evidence, answer in [
        (2, {"hjdz": "青岛市市南区香港中路 36 号"}, "参保人提供的户口簿首页及本人页复印件", None),
        (
            6,
            {"xb": "2"},
            "参保人身份证正反面复印件，性别与平台数据不一致",
            ObjectionAnswer(accept=True, answer="经核实户籍档案，性别登记有误，已安排更正"),
        ),
        (
            15,
            {"csrq": "1968-03-12"},
            "参保人档案中出生日期与平台数据不一致",
            ObjectionAnswer(
                accept=False,
                answer="经核实户籍底册，出生日期以户籍登记为准，人事档案记载有误，不予更正",
            ),
        ),
    ]:
        obj = objections.raise_objection(
            session,
            settings,
            consumer,
            ObjectionCreate(
                grant_id=grant.id, record_key=id_number(rng), claimed=claimed, evidence=evidence
            ),
            today=working_days_before(today, ago),
        )
        if answer is not None:
            objections.answer(
                session,
                settings,
                provider,
                obj,
                answer,
                today=working_days_before(today, ago - 2),
            )
        made += 1
    return made
