"""电子监察 on a frozen clock: yellow cards before a task's limit and red after it,
working days per task and department, the month's figures over the API and the
console, the XLSX export (audited), and who may see it."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from email.header import decode_header, make_header
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from govshare.collab.models import Case, CaseTask, TaskStatus
from govshare.collab.supervision import Card, card_of, elapsed_days
from govshare.rules.clock import fixed_today
from govshare.security.audit import SYSTEM
from govshare.security.models import AuditEntry, Department
from govshare.security.roles import Role
from govshare.security.service import add_user
from tests.collab.conftest import Clients
from tests.collab.scenery import Scenery, application, forms, upload
from tests.factories import PASSWORD
from tests.live import LiveHub

# 2024-03: no holiday. 10 working days after Friday 1 March is Friday 15 March; 15 is
# Friday 22 March.
START = date(2024, 3, 1)


def _task(due: date, completed: datetime | None = None) -> CaseTask:
    return CaseTask(
        started_on=START,
        due_on=due,
        completed_at=completed,
        status=TaskStatus.DONE if completed else TaskStatus.READY,
    )


@pytest.mark.parametrize(
    ("today", "warn", "card"),
    [
        (date(2024, 3, 13), 1, Card.NONE),  # two working days left
        (date(2024, 3, 14), 1, Card.YELLOW),  # one left
        (date(2024, 3, 14), 0, Card.NONE),  # …but the bureau warns on the due day only
        (date(2024, 3, 15), 0, Card.YELLOW),  # the due day
        (date(2024, 3, 16), 5, Card.RED),  # Saturday after the due day: past it
    ],
)
def test_an_open_tasks_card(today: date, warn: int, card: Card, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("no database")
    assert card_of(_task(date(2024, 3, 15)), today, warn) is card


def test_a_done_tasks_card_follows_its_completion_in_beijing_time(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("no database")
    due = date(2024, 3, 15)
    # 15:59 UTC is 23:59 in Beijing on the due day; 16:00 UTC is already the next day.
    on_time = _task(due, datetime(2024, 3, 15, 15, 59, tzinfo=UTC))
    late = _task(due, datetime(2024, 3, 15, 16, 0, tzinfo=UTC))
    assert card_of(on_time, date(2024, 4, 1), 1) is Card.NONE
    assert card_of(late, date(2024, 4, 1), 1) is Card.RED
    assert elapsed_days(START, date(2024, 3, 5)) == 2  # Monday and Tuesday
    assert elapsed_days(START, START) == 0


def _cases(as_: Clients, scenery: Scenery, hub: LiveHub) -> list[dict[str, Any]]:
    """Two one-window cases accepted on 1 March 2024; 民政 decides the first on 5 March
    and the second on 20 March (late); 残联 decides both on 4 March; 住建 leaves both
    open (due 22 March)."""
    with as_["admin"] as c:
        r = upload(c, scenery.bpmn(), forms())
        assert r.status_code == 201, r.text
        definition = r.json()
    cases = []
    with fixed_today(START), as_["window"] as c:
        for _ in range(2):
            r = c.post("/api/v1/collab/cases", json=application(definition["id"]))
            assert r.status_code == 201, r.text
            cases.append(r.json())
    with hub.db() as s:  # accepted on 1 March, as the frozen clock says
        s.execute(
            update(Case)
            .where(Case.id.in_([c["id"] for c in cases]))
            .values(created_at=datetime(2024, 3, 1, 2, tzinfo=UTC))
        )
    done = {
        ("review_mz", 0): datetime(2024, 3, 5, 2, tzinfo=UTC),
        ("review_mz", 1): datetime(2024, 3, 20, 2, tzinfo=UTC),
        ("review_cl", 0): datetime(2024, 3, 4, 2, tzinfo=UTC),
        ("review_cl", 1): datetime(2024, 3, 4, 2, tzinfo=UTC),
    }
    for (element, n), at in done.items():
        task = next(t for t in cases[n]["tasks"] if t["element_id"] == element)
        who = "mz" if element == "review_mz" else "cl"
        with fixed_today(START), as_[who] as c:
            r = c.post(f"/api/v1/collab/tasks/{task['id']}/complete", json={"decision": "approve"})
            assert r.status_code == 200, r.text
        with hub.db() as s:  # the decision's moment, as it would have been
            s.execute(update(CaseTask).where(CaseTask.id == task["id"]).values(completed_at=at))
    return cases


def _row(report: dict[str, Any], scenery: Scenery, short: str) -> dict[str, Any]:
    dept_id = scenery.departments[short][0]
    return next(d for d in report["departments"] if d["department_id"] == dept_id)


def test_the_months_figures_per_department_with_cards(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    cases = _cases(as_, scenery, collab_hub)
    numbers = {c["number"] for c in cases}
    with fixed_today(date(2024, 3, 28)), as_["admin"] as c:
        r = c.get("/api/v1/collab/supervision", params={"month": "2024-03"})
    assert r.status_code == 200, r.text
    report = r.json()
    mz = _row(report, scenery, "民政")
    assert (mz["received"], mz["completed"], mz["completed_late"]) == (2, 2, 1)
    assert mz["on_time_rate"] == 50.0
    assert mz["mean_days"] == 7.5  # 2 working days and 13
    cl = _row(report, scenery, "残联")
    assert (cl["completed"], cl["completed_late"], cl["mean_days"]) == (2, 0, 1.0)
    zj = _row(report, scenery, "住建")
    assert (zj["received"], zj["completed"], zj["open_red"], zj["open_yellow"]) == (2, 0, 2, 0)
    mine = [card for card in report["cards"] if card["case_number"] in numbers]
    assert sorted((card["card"], card["department"]) for card in mine) == sorted(
        [("red", zj["name"]), ("red", zj["name"]), ("red", mz["name"])]
    )
    late_mz = next(card for card in mine if card["department"] == mz["name"])
    assert late_mz["completed"] is True
    assert late_mz["elapsed_working_days"] == 13
    assert any(i["working_days"] == 15 for i in report["items"])
    march = next(t for t in report["trend"] if t["month"] == "2024-03")
    assert march["accepted"] >= 2
    assert march["late"] >= 1
    # On 21 March the 住建 tasks have one working day left: yellow, not yet red.
    with fixed_today(date(2024, 3, 21)), as_["admin"] as c:
        earlier = c.get("/api/v1/collab/supervision", params={"month": "2024-03"}).json()
    zj_then = _row(earlier, scenery, "住建")
    assert (zj_then["open_yellow"], zj_then["open_red"]) == (2, 0)


def _case_cards(report: dict[str, Any], numbers: set[str]) -> dict[str, dict[str, Any]]:
    return {c["case_number"]: c for c in report["case_cards"] if c["case_number"] in numbers}


def test_a_case_is_carded_against_its_items_time_limit(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    """综合救助 is to be closed within 20 working days (the process's 办结时限): cases
    accepted on 1 March 2024 are due on 29 March; open on 28 March they are yellow, on
    1 April red; one closed on 2 April counts as closed late in April."""
    cases = _cases(as_, scenery, collab_hub)
    first, second = (c["number"] for c in cases)
    assert {c["due_on"] for c in cases} == {"2024-03-29"}
    with fixed_today(date(2024, 3, 28)), as_["admin"] as c:
        seen = c.get(f"/api/v1/collab/cases/{cases[0]['id']}").json()
        march = c.get("/api/v1/collab/supervision", params={"month": "2024-03"}).json()
        page = c.get(f"/collab/cases/{cases[0]['id']}")
    assert (seen["remaining_working_days"], seen["elapsed_working_days"]) == (1, 19)
    assert {n: c["card"] for n, c in _case_cards(march, {first, second}).items()} == {
        first: "yellow",
        second: "yellow",
    }
    assert march["cases_open_yellow"] >= 2
    assert (
        next(p for p in march["processes"] if p["process"] == "综合救助一窗受理")["time_limit_days"]
        == 20
    )
    assert "2024-03-29" in page.text
    assert "黄牌：临近期限" in page.text
    # 住建 decides the first case, the last task: it closes, on 2 April as it happened.
    zj = next(t for t in cases[0]["tasks"] if t["element_id"] == "review_zj")
    with fixed_today(START), as_["zj"] as c:
        r = c.post(f"/api/v1/collab/tasks/{zj['id']}/complete", json={"decision": "approve"})
        assert r.status_code == 200, r.text
    with collab_hub.db() as s:
        s.execute(
            update(Case)
            .where(Case.id == cases[0]["id"])
            .values(closed_at=datetime(2024, 4, 2, 2, tzinfo=UTC))
        )
    with fixed_today(date(2024, 4, 3)), as_["admin"] as c:
        april = c.get("/api/v1/collab/supervision", params={"month": "2024-04"}).json()
        closed = c.get(f"/api/v1/collab/cases/{cases[0]['id']}").json()
        board = c.get("/collab/supervision", params={"month": "2024-04"})
        x = c.get("/api/v1/collab/supervision/2024-04/export.xlsx")
    mine = _case_cards(april, {first, second})
    # 20 working days in March after the 1st, then 1 and 2 April (3 April for the open one).
    assert (mine[first]["card"], mine[first]["closed"], mine[first]["elapsed_working_days"]) == (
        "red",
        True,
        22,
    )
    assert (mine[second]["card"], mine[second]["closed"], mine[second]["elapsed_working_days"]) == (
        "red",
        False,
        23,
    )
    assert april["cases_closed_late"] >= 1
    assert april["cases_open_red"] >= 1
    assert (closed["status"], closed["remaining_working_days"]) == ("closed", None)
    assert 'id="case-cards"' in board.text
    assert f'data-case="{cases[1]["id"]}"' in board.text
    sheet = load_workbook(io.BytesIO(x.content), read_only=True)["办件红黄牌"]
    rows = {r[1]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows[first][0] == "红牌"
    assert rows[first][5] == "2024-03-29"
    assert rows[first][6] == "2024-04-02"
    assert rows[second][6] == "办理中"


def test_a_case_past_its_time_limit_keeps_an_alert_open_until_it_closes(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    """A case still open after its 办结期限 (29 March 2024) is flagged once (audited) and
    listed in the one open 协同办件超过办结期限 alert; closed, it leaves the list."""
    from govshare.collab import service
    from govshare.exchange.alerts import list_alerts
    from govshare.exchange.models import AlertKind

    cases = _cases(as_, scenery, collab_hub)
    ids = {c["id"] for c in cases}

    def listed() -> set[int]:
        with collab_hub.db() as s:
            found = [a for a in list_alerts(s, open_only=True) if a.kind == AlertKind.CASE_OVERDUE]
        assert len(found) <= 1
        return set(found[0].details["cases"]) & ids if found else set()

    with collab_hub.db() as s:
        service.check_overdue(s, date(2024, 3, 29))  # the due day itself: not yet late
    assert listed() == set()
    for _ in range(2):
        with collab_hub.db() as s:
            service.check_overdue(s, date(2024, 4, 1))
    assert listed() == ids
    with collab_hub.db() as s:
        flagged = s.scalars(
            select(AuditEntry.object_id).where(
                AuditEntry.action == "collab.case.overdue",
                AuditEntry.object_id.in_([str(i) for i in ids]),
            )
        ).all()
    assert sorted(flagged) == sorted(str(i) for i in ids)  # once each, not per check
    zj = next(t for t in cases[0]["tasks"] if t["element_id"] == "review_zj")
    with fixed_today(START), as_["zj"] as c:
        r = c.post(f"/api/v1/collab/tasks/{zj['id']}/complete", json={"decision": "approve"})
        assert r.status_code == 200, r.text
    with collab_hub.db() as s:
        service.check_overdue(s, date(2024, 4, 1))
    assert listed() == {cases[1]["id"]}


def test_a_process_without_a_time_limit_gives_its_cases_none(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    text = scenery.bpmn().decode()
    start = text.index("<bpmn:extensionElements>")
    text = text[:start] + text[text.index("</bpmn:extensionElements>", start) + 25 :]
    assert "time_limit_days" not in text
    with as_["admin"] as c:
        definition = upload(c, text.encode(), forms()).json()
    assert definition["time_limit_days"] is None
    with fixed_today(START), as_["window"] as c:
        case = c.post("/api/v1/collab/cases", json=application(definition["id"])).json()
    assert (case["due_on"], case["remaining_working_days"]) == (None, None)
    with fixed_today(date(2024, 6, 3)), as_["admin"] as c:
        report = c.get("/api/v1/collab/supervision", params={"month": "2024-03"}).json()
    assert case["number"] not in {c["case_number"] for c in report["case_cards"]}


def test_the_export_page_and_who_may_see_them(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    _cases(as_, scenery, collab_hub)
    with fixed_today(date(2024, 3, 28)), as_["admin"] as c:
        x = c.get("/api/v1/collab/supervision/2024-03/export.xlsx")
        page = c.get("/collab/supervision", params={"month": "2024-03"})
        bad = c.get("/api/v1/collab/supervision", params={"month": "三月"})
        bad_export = c.get("/api/v1/collab/supervision/2024-13/export.xlsx")
    assert x.status_code == 200, x.text
    wb = load_workbook(io.BytesIO(x.content), read_only=True)
    assert wb.sheetnames == ["汇总", "部门", "红黄牌", "办件红黄牌", "事项办结时限", "审批事项"]
    with collab_hub.db() as s:
        zj_name = s.get(Department, scenery.departments["住建"][0]).name  # type: ignore[union-attr]
    cards = [r for r in wb["红黄牌"].iter_rows(min_row=2, values_only=True) if r[4] == zj_name]
    assert [r[0] for r in cards] == ["红牌", "红牌"]
    assert page.status_code == 200
    assert "电子监察 · 2024-03" in page.text
    assert "chart-supervision-trend" in page.text
    assert 'class="card-red"' in page.text
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "month"
    assert bad_export.status_code == 422
    with collab_hub.db() as s:
        exported = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "collab.supervision.export")
        ).all()
    assert any(e.object_id == "2024-03" for e in exported)
    # A window officer and a department's handler see their queues, not the supervision;
    # an auditor reads it.
    for who in ("window", "mz"):
        with as_[who] as c:
            assert c.get("/api/v1/collab/supervision").status_code == 403
            assert c.get("/collab/supervision").status_code == 403
    auditor = f"sup_auditor_{scenery.users['admin']}"
    with collab_hub.db() as s:
        add_user(
            s,
            SYSTEM,
            username=auditor,
            password=PASSWORD,
            display_name="监察审计员",
            department_id=scenery.departments["政务服务"][0],
            roles=[Role.AUDITOR],
        )
    token = collab_hub.token(auditor, PASSWORD)
    with fixed_today(date(2024, 3, 28)), collab_hub.client(token) as c:
        read = c.get("/api/v1/collab/supervision", params={"month": "2024-03"})
    assert read.status_code == 200
    assert _row(read.json(), scenery, "住建")["open_red"] == 2


def test_tasks_about_to_be_due_keep_one_reminder_open(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    from govshare.collab import supervision
    from govshare.exchange.alerts import list_alerts
    from govshare.exchange.models import AlertKind

    cases = _cases(as_, scenery, collab_hub)
    zj_tasks = {t["id"] for c in cases for t in c["tasks"] if t["element_id"] == "review_zj"}

    def reminders() -> list[Any]:
        with collab_hub.db() as s:
            return [
                a for a in list_alerts(s, open_only=True) if a.kind == AlertKind.CASE_TASK_DUE_SOON
            ]

    # 21 March: the two 住建 tasks (due 22 March) have one working day left.
    with collab_hub.db() as s:
        assert supervision.remind_due_soon(s, date(2024, 3, 21), 1) >= 2
    (alert,) = reminders()
    assert zj_tasks <= set(alert.details["tasks"])
    assert alert.severity == "warning"
    # Two working days before, the 住建 tasks are not yet close.
    with collab_hub.db() as s:
        soon = supervision.due_soon(s, date(2024, 3, 19), 1)
    assert not zj_tasks & {t.id for t in soon}
    # When no open task of the hub is close (long before any of them), it is resolved.
    with collab_hub.db() as s:
        assert supervision.remind_due_soon(s, date(2023, 1, 3), 1) == 0
    assert reminders() == []


def _user_id(as_: Clients, scenery: Scenery, key: str) -> int:
    with as_["admin"] as c:
        users = c.get("/api/v1/users").json()
    return next(u["id"] for u in users if u["username"] == scenery.users[key])


def test_the_handlers_are_mailed_once_at_the_yellow_and_once_at_the_red_card(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    # The hub's own reminder round runs every minute with today's date: held on the day
    # the cases were accepted, it finds nothing to do while the test names its days.
    with fixed_today(START):
        _mailed_once_per_card(as_, scenery, collab_hub)


def _mailed_once_per_card(as_: Clients, scenery: Scenery, collab_hub: LiveHub) -> None:
    from govshare.collab import supervision
    from govshare.mail import Outbox
    from govshare.security.models import UserMail
    from tests.mail import smtp_server

    cases = _cases(as_, scenery, collab_hub)
    zj_tasks = [t["id"] for c in cases for t in c["tasks"] if t["element_id"] == "review_zj"]
    addresses = {"zj": f"zj.{scenery.users['zj']}@example.gov.cn", "zj2": ""}
    with as_["admin"] as c:
        for key, address in addresses.items():
            r = c.put(f"/api/v1/users/{_user_id(as_, scenery, key)}/email", json={"email": address})
            assert r.status_code == 200, r.text
            assert r.json()["email"] == (address or None)
        # A malformed address is refused and the stored one kept.
        zj = _user_id(as_, scenery, "zj")
        r = c.put(f"/api/v1/users/{zj}/email", json={"email": "not an address"})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "email"
        kept = [u["email"] for u in c.get("/api/v1/users").json() if u["id"] == zj]
        assert kept == [addresses["zj"]]
    # zj2 has no address but claims the second task: the claimant is mailed when it
    # can be, otherwise the department's handlers are.
    with fixed_today(START), as_["zj2"] as c:
        assert c.post(f"/api/v1/collab/tasks/{zj_tasks[1]}/claim").status_code == 200

    def mails() -> list[UserMail]:
        with collab_hub.db() as s:
            rows = s.scalars(select(UserMail).where(UserMail.user_id == zj).order_by(UserMail.id))
            return [r for r in rows if any(f"/collab/cases/{c['id']}）" in r.body for c in cases)]

    # 19 March: two working days left, no card yet; 21 March: one left, 黄牌 for both.
    with collab_hub.db() as s:
        supervision.remind_handlers(s, date(2024, 3, 19), 1)
    assert mails() == []
    for _ in range(2):  # the next round the same day mails nothing more
        with collab_hub.db() as s:
            supervision.remind_handlers(s, date(2024, 3, 21), 1)
    yellow = mails()
    assert len(yellow) == 2
    assert all("到期提醒" in m.subject and "2024-03-22" in m.subject for m in yellow)
    assert {m.to for m in yellow} == {addresses["zj"]}
    # 25 March: past the due day, 红牌 for both, mailed once more.
    with collab_hub.db() as s:
        supervision.remind_handlers(s, date(2024, 3, 25), 1)
        supervision.remind_handlers(s, date(2024, 3, 26), 1)
    red = mails()[2:]
    assert len(red) == 2
    assert all("超期催办" in m.subject for m in red)
    with collab_hub.db() as s:
        entries = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "collab.task.remind",
                AuditEntry.object_id.in_([str(t) for t in zj_tasks]),
            )
        ).all()
    assert sorted(e.after["card"] for e in entries) == ["red", "red", "yellow", "yellow"]

    # The outbox hands them to a real SMTP server, each once.
    with smtp_server() as (inbox, port):
        settings = collab_hub.settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_user": "ops",
                    "smtp_password": "mail-secret"}
        )  # fmt: skip
        outbox = Outbox("user-mail", UserMail, settings, collab_hub.session_factory,
                        sender="govshare@example.gov.cn")  # fmt: skip
        while outbox.send_waiting():
            pass
        assert outbox.send_waiting() == 0
    ours = [m for _, to, m in inbox.messages if to == [addresses["zj"]]]
    assert len(ours) == 4
    subjects = [str(make_header(decode_header(m["Subject"]))) for m in ours]
    assert sorted(subjects) == sorted(m.subject for m in yellow + red)
    assert all(m.sent_at is not None for m in mails())


def test_a_card_reminded_meanwhile_by_another_process_is_not_reminded_again(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    from govshare.db import update_if_unchanged

    def _claim_reminder(session: Any, task: CaseTask, card: Card) -> bool:
        return update_if_unchanged(
            session, task, "reminded_card", task.reminded_card, reminded_card=card.value
        )

    # Held on the day the cases were accepted, the hub's own minute round finds no card.
    with fixed_today(START):
        cases = _cases(as_, scenery, collab_hub)
        task_id = next(t["id"] for t in cases[0]["tasks"] if t["element_id"] == "review_zj")
        with collab_hub.db() as first:
            task = first.get_one(CaseTask, task_id)
            with collab_hub.db() as second:
                assert _claim_reminder(second, second.get_one(CaseTask, task_id), Card.YELLOW)
            assert not _claim_reminder(first, task, Card.YELLOW)
            assert not _claim_reminder(first, task, Card.RED)  # read before the yellow one
        with collab_hub.db() as s:
            assert s.get_one(CaseTask, task_id).reminded_card == "yellow"
