"""Business collaboration over real HTTP on a real SQLite hub: definitions refused
with the element and line, versions kept by running cases, department permissions,
working-day deadlines on a frozen clock, and the applicant's lookup."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from govshare.collab import service
from govshare.collab.models import Decision
from govshare.rules.clock import fixed_today
from govshare.security.models import SessionKind
from govshare.security.service import principal_from_token
from tests.collab.conftest import Clients
from tests.collab.scenery import Scenery, application, forms, new_id_number, upload
from tests.factories import PASSWORD
from tests.live import LiveHub


def _definition(as_: Clients, scenery: Scenery, data: bytes | None = None) -> dict[str, Any]:
    with as_["admin"] as c:
        r = upload(c, data or scenery.bpmn(), forms())
    assert r.status_code == 201, r.text
    return r.json()


def _start(as_: Clients, definition_id: int, who: str = "window", **kw: Any) -> dict[str, Any]:
    with as_[who] as c:
        r = c.post("/api/v1/collab/cases", json=application(definition_id, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def _task(case: dict[str, Any], element_id: str) -> dict[str, Any]:
    return next(t for t in case["tasks"] if t["element_id"] == element_id)


def _complete(c: httpx.Client, task_id: int, decision: str = "approve") -> httpx.Response:
    return c.post(f"/api/v1/collab/tasks/{task_id}/complete", json={"decision": decision})


def test_a_broken_gateway_is_refused_with_its_element_and_line(
    as_: Clients, scenery: Scenery
) -> None:
    text = scenery.bpmn().decode()
    # The fan-out gateway loses its outgoing flows: the tasks it fed become unreachable.
    broken = "\n".join(line for line in text.splitlines() if 'sourceRef="fan_out"' not in line)
    line = next(i for i, s in enumerate(broken.splitlines(), 1) if 'id="fan_out"' in s)
    with as_["admin"] as c:
        r = upload(c, broken.encode())
        listed = c.get("/api/v1/collab/definitions").json()
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_process_definition"
    gateway = next(d for d in error["details"] if d["element_id"] == "fan_out")
    assert gateway["line"] == line
    assert "网关" in gateway["message"]
    assert "fan_out" in error["message"]
    assert all(d["sha256"] != "" for d in listed)  # nothing half-stored
    assert not any(d["element_id"] == "" for d in error["details"])


def test_a_script_task_and_a_code_expression_are_refused(as_: Clients, scenery: Scenery) -> None:
    text = scenery.bpmn().decode()
    evil = text.replace('value="applicant_id"/>', "value=\"__import__('os').system('true')\"/>", 1)
    with as_["admin"] as c:
        r = upload(c, evil.encode())
        malformed = upload(c, b"<bpmn:definitions")
        gbk = upload(c, text.replace("UTF-8", "GBK").encode("gbk"))
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["element_id"] == "verify_dibao"
    assert malformed.status_code == 422
    assert malformed.json()["error"]["details"][0]["line"] == 1
    assert gbk.status_code == 422
    assert "UTF-8" in gbk.json()["error"]["message"]


def test_a_running_case_keeps_its_version_after_a_new_upload(
    as_: Clients, scenery: Scenery
) -> None:
    v1 = _definition(as_, scenery)
    case = _start(as_, v1["id"])
    # Version 2: 民政 gets 3 working days instead of 10.
    v2 = _definition(as_, scenery, scenery.bpmn().replace(b'value="10"/>', b'value="3"/>', 1))
    assert v2["version"] == v1["version"] + 1
    assert v2["process_key"] == v1["process_key"]
    with as_["admin"] as c:
        exported = c.get(f"/api/v1/collab/definitions/{v1['id']}/bpmn")
    assert exported.status_code == 200
    assert exported.content == scenery.bpmn()
    for key, element in (("mz", "review_mz"), ("cl", "review_cl"), ("zj", "review_zj")):
        with as_[key] as c:
            assert _complete(c, _task(case, element)["id"]).status_code == 200
    with as_["window"] as c:
        done = c.get(f"/api/v1/collab/cases/{case['id']}").json()
    assert done["definition_id"] == v1["id"]
    assert done["status"] == "closed"
    assert done["outcome"] == "approved"
    assert _task(done, "review_mz")["working_days"] == 10
    with as_["window"] as c:
        notice = c.get(f"/api/v1/collab/cases/{case['id']}/notice.pdf")
    assert notice.status_code == 200
    assert notice.content.startswith(b"%PDF")
    newer = _start(as_, v2["id"])
    assert _task(newer, "review_mz")["working_days"] == 3


def test_another_department_cannot_decide_and_nobody_approves_their_own_case(
    as_: Clients, scenery: Scenery
) -> None:
    definition = _definition(as_, scenery)
    case = _start(as_, definition["id"], who="mz_window")
    mz_task = _task(case, "review_mz")["id"]
    with as_["cl"] as c:
        other = _complete(c, mz_task)
        queue = c.get("/api/v1/collab/tasks").json()
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "case_task_not_yours"
    assert mz_task not in {t["id"] for t in queue}
    with as_["mz_window"] as c:
        own = _complete(c, mz_task)
    assert own.status_code == 403
    assert "自己受理" in own.json()["error"]["message"]
    with as_["window"] as c:
        no_handle = _complete(c, mz_task)
    assert no_handle.status_code == 403
    # One 民政 handler claims; the other may no longer decide it.
    with as_["mz"] as c:
        assert c.post(f"/api/v1/collab/tasks/{mz_task}/claim").status_code == 200
    with as_["mz2"] as c:
        assert _complete(c, mz_task).status_code == 403
    with as_["mz"] as c:
        assert _complete(c, mz_task, "reject").status_code == 200
        again = _complete(c, mz_task)
    assert again.status_code == 409
    with as_["mz_window"] as c:
        seen = c.get(f"/api/v1/collab/cases/{case['id']}").json()
    with as_["window"] as c:
        assert c.get(f"/api/v1/collab/cases/{case['id']}").status_code == 404
    with as_["mz_window"] as c:
        early = c.get(f"/api/v1/collab/cases/{case['id']}/notice.pdf")
    assert early.status_code == 409  # no notice before the case is closed
    assert _task(seen, "review_mz")["decision"] == "reject"
    assert seen["status"] == "open"


def test_deadlines_count_working_days_on_a_frozen_clock(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    definition = _definition(as_, scenery)
    # 2025's National Day holiday runs 1–8 October; Saturday 11 October is worked.
    with fixed_today(date(2025, 9, 30)):
        case = _start(as_, definition["id"])
    mz = _task(case, "review_mz")
    assert mz["started_on"] == "2025-09-30"
    assert mz["due_on"] == "2025-10-21"  # 10 working days: 9, 10, 11, 13–17, 20, 21
    assert _task(case, "review_zj")["due_on"] == "2025-10-28"  # 15 working days
    with fixed_today(date(2025, 10, 20)), as_["mz"] as c:
        (item,) = [t for t in c.get("/api/v1/collab/tasks").json() if t["id"] == mz["id"]]
    assert item["remaining_working_days"] == 1
    assert item["elapsed_working_days"] == 9
    assert item["overdue"] is False
    with fixed_today(date(2025, 10, 22)), as_["mz"] as c:
        (late,) = [t for t in c.get("/api/v1/collab/tasks").json() if t["id"] == mz["id"]]
    assert late["overdue"] is True
    assert late["remaining_working_days"] < 0


def test_overdue_tasks_raise_one_alert(as_: Clients, scenery: Scenery, collab_hub: LiveHub) -> None:
    from govshare.collab import service
    from govshare.exchange.alerts import list_alerts
    from govshare.exchange.models import AlertKind

    definition = _definition(as_, scenery)
    with fixed_today(date(2025, 9, 30)):
        case = _start(as_, definition["id"])
    with collab_hub.db() as s:
        late = service.check_overdue(s, date(2025, 10, 22))
    assert late >= 1
    with collab_hub.db() as s:
        alerts = [
            a for a in list_alerts(s, open_only=True) if a.kind == AlertKind.CASE_TASK_OVERDUE
        ]
        assert len(alerts) == 1
        ids = alerts[0].details["tasks"]
    assert _task(case, "review_mz")["id"] in ids
    assert _task(case, "review_zj")["id"] not in ids  # due 28 October


def test_the_public_lookup_shows_steps_and_leaks_nothing(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    definition = _definition(as_, scenery)
    applicant = new_id_number()
    case = _start(as_, definition["id"], applicant_id=applicant, applicant_name="王小明")
    other = _start(as_, definition["id"])
    with collab_hub.client() as c:
        ok = c.post(
            "/api/v1/collab/lookup", json={"number": case["number"], "id_number": applicant}
        )
        wrong_id = c.post(
            "/api/v1/collab/lookup", json={"number": case["number"], "id_number": new_id_number()}
        )
        wrong_number = c.post(
            "/api/v1/collab/lookup", json={"number": other["number"], "id_number": applicant}
        )
        page = c.post("/case-lookup", data={"number": case["number"], "id_number": applicant})
        bad_page = c.post("/case-lookup", data={"number": case["number"], "id_number": "x"})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["steps"][0]["kind"] == "accepted"
    assert {"number", "status", "status_label", "steps"} == set(body)
    assert applicant not in ok.text
    assert "王小明" not in ok.text
    assert wrong_id.status_code == wrong_number.status_code == 404
    strip = lambda r: {k: v for k, v in r.json()["error"].items() if k != "request_id"}  # noqa: E731
    assert strip(wrong_id) == strip(wrong_number)
    assert page.status_code == 200
    assert 'id="lookup-result"' in page.text
    assert case["number"] in page.text
    assert applicant not in page.text
    assert bad_page.status_code == 404
    assert "办件编号或身份号码不正确" in bad_page.text
    from sqlalchemy import func, select

    from govshare.security.models import AuditEntry

    with collab_hub.db() as s:
        lookups = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == "collab.case.lookup", AuditEntry.object_id == str(case["id"])
            )
        )
    assert lookups == 2  # the API's and the page's, not the refused ones


def test_bad_applications_are_refused_field_by_field(as_: Clients, scenery: Scenery) -> None:
    definition = _definition(as_, scenery)
    with as_["window"] as c:
        r = c.post(
            "/api/v1/collab/cases",
            json=application(
                definition["id"], applicant_id="110101199001011234", help_kinds=["飞船"]
            ),
        )
        missing = c.post("/api/v1/collab/cases", json=application(99999))
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert {"applicant_id", "help_kinds"} <= fields
    assert missing.status_code == 404


def test_console_pages_render(as_: Clients, scenery: Scenery, collab_hub: LiveHub) -> None:
    definition = _definition(as_, scenery)
    case = _start(as_, definition["id"])
    for key, paths in {
        "admin": [
            "/collab",
            "/collab/definitions",
            "/collab/cases/new",
            f"/collab/cases/{case['id']}",
        ],
        "mz": ["/collab/tasks", f"/collab/cases/{case['id']}"],
    }.items():
        with as_[key] as c:
            for path in paths:
                r = c.get(path)
                assert r.status_code == 200, (path, r.text[:500])
                assert "<script>" not in r.text
                assert "<style>" not in r.text
    with collab_hub.client() as c:
        assert c.get("/case-lookup").status_code == 200


def test_a_decision_raced_by_another_step_of_its_case_is_worked_out_again(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    """With the hub's write turns, the engine runs on the case as it was read and the
    turn is held only to write the step. Here 残联's decision is written between 民政's
    reading of the case and its turn: the case's revision has moved, so 民政's decision
    is worked out again on the new state — neither is lost, and 住建's closes the case."""
    definition = _definition(as_, scenery)
    case = _start(as_, definition["id"])

    class RacedTurn:
        """A turn during which, the first time, 残联 decides first."""

        entered = 0

        def __enter__(self) -> None:
            self.entered += 1
            if self.entered == 1:
                with as_["cl"] as c:
                    assert _complete(c, _task(case, "review_cl")["id"]).status_code == 200

        def __exit__(self, *_: object) -> None:
            return None

    def no_verification(*_: Any, **__: Any) -> str:
        raise AssertionError("no service task follows a decision in this process")

    turn = RacedTurn()
    with collab_hub.db() as s:
        mz = principal_from_token(
            s, collab_hub.token(scenery.users["mz"], PASSWORD), SessionKind.TOKEN, None
        )
        assert mz is not None
        service.complete_task(
            s,
            mz,
            _task(case, "review_mz")["id"],
            decision=Decision.REJECT,
            comment="",
            verifier=no_verification,
            today=date(2026, 12, 7),
            turns=turn,
        )
    assert turn.entered == 2
    with as_["zj"] as c:
        assert _complete(c, _task(case, "review_zj")["id"]).status_code == 200
    with as_["window"] as c:
        seen = c.get(f"/api/v1/collab/cases/{case['id']}").json()
    decisions = {t["element_id"]: t["decision"] for t in seen["tasks"]}
    assert decisions == {"review_mz": "reject", "review_cl": "approve", "review_zj": "approve"}
    assert seen["status"] == "closed"
    assert seen["outcome"] == "partial"
    assert [s["kind"] for s in seen["steps"]].count("decided") == 3
