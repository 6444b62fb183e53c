"""The two duty-based indicators (职责编目率, 目录按时调整率) from a register with known
covered and uncovered duties and changes adjusted in time, late or never — on SQLite
and PostgreSQL, with the window's edges counted in Beijing days."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from govshare.catalog.codes import ResourceStatus
from govshare.catalog.models import (
    CatalogChangeEvent,
    ChangeKind,
    DepartmentDuty,
    DutyResource,
    InformationSystem,
    Resource,
    ResourceTransition,
    ResourceVersion,
)
from govshare.config import Settings
from govshare.evaluation import records, service
from govshare.evaluation.indicators import BY_KEY, Month
from govshare.evaluation.models import EvaluationResult
from govshare.security.audit import SYSTEM
from govshare.security.models import Department
from govshare.security.roles import Role
from tests.evaluation.builders import LONG_AGO, department, entry, session_for, system
from tests.sharing.builders import principal

NOV = Month(2026, 11)
TODAY = date(2026, 12, 3)


def _duty(
    s: Session,
    dept: Department,
    code: str,
    *,
    declared: date = date(2026, 1, 5),
    withdrawn: date | None = None,
    serves: list[Resource] = (),  # type: ignore[assignment]
) -> DepartmentDuty:
    d = DepartmentDuty(
        department_id=dept.id,
        code=code,
        name=f"职责{code}",
        declared_on=declared,
        withdrawn_on=withdrawn,
        created_at=LONG_AGO,
    )
    s.add(d)
    s.flush()
    for r in serves:
        s.add(DutyResource(duty_id=d.id, resource_id=r.id, linked_at=LONG_AGO))
    s.flush()
    return d


def _change(
    s: Session,
    dept: Department,
    *,
    changed: date,
    due: date,
    duty: DepartmentDuty | None = None,
    sys: InformationSystem | None = None,
) -> CatalogChangeEvent:
    e = CatalogChangeEvent(
        department_id=dept.id,
        kind=ChangeKind.DUTY if duty else ChangeKind.SYSTEM,
        duty_id=duty.id if duty else None,
        system_id=sys.id if sys else None,
        changed_on=changed,
        catalog_due=due,
        description="三定方案调整",
        recorded_by="t",
    )
    s.add(e)
    s.flush()
    return e


def _version(s: Session, r: Resource, at: datetime) -> None:
    n = (s.query(ResourceVersion).filter_by(resource_id=r.id).count() or 0) + 1
    s.add(ResourceVersion(resource_id=r.id, version=n, snapshot={}, created_by="t", created_at=at))
    s.flush()


def _scene(settings: Settings) -> dict[str, int]:
    """公安局's register at the end of November:
    - duties in force: 户籍 (served by a published entry), 出入境 (no entry), 治安 (served
      only by a draft) → 1 of 3 covered; 旧职责 withdrawn in October and 新职责 declared in
      December do not count;
    - changes due in November: 户籍 (its entry got a new version at 23:59 Beijing on the
      due day → in time), 出入境 (nothing to adjust → not in time), the 人口系统 change (its
      entry's step came at 00:30 Beijing the day after the due day → late); one change
      due in December does not count.
    民政局's own duty is not 公安局's."""
    with session_for(settings) as s:
        police = department(s, "公安局")
        civil = department(s, "民政局")
        population = system(s, police)
        household = entry(s, police)
        from_system = entry(s, police, system_id=population.id)
        draft = entry(s, police, status=ResourceStatus.DRAFT)
        hukou = _duty(s, police, "GA-001", serves=[household])
        exit_entry = _duty(s, police, "GA-002")
        _duty(s, police, "GA-003", serves=[draft])
        _duty(s, police, "GA-OLD", withdrawn=date(2026, 10, 1), serves=[household])
        _duty(s, police, "GA-NEW", declared=date(2026, 12, 1))
        _duty(s, civil, "MZ-001", serves=[entry(s, civil)])
        in_time = _change(s, police, changed=date(2026, 10, 20), due=date(2026, 11, 10), duty=hukou)
        # 2026-11-10 15:59 UTC is 23:59 on the 10th in Beijing: still the due day.
        _version(s, household, datetime(2026, 11, 10, 15, 59, tzinfo=UTC))
        nothing = _change(
            s, police, changed=date(2026, 10, 25), due=date(2026, 11, 13), duty=exit_entry
        )
        late = _change(
            s, police, changed=date(2026, 10, 28), due=date(2026, 11, 18), sys=population
        )
        # 2026-11-18 16:30 UTC is already the 19th in Beijing: a day late.
        s.add(
            ResourceTransition(
                resource_id=from_system.id,
                action="submit",
                from_status="draft",
                to_status="submitted",
                version=1,
                actor="t",
                at=datetime(2026, 11, 18, 16, 30, tzinfo=UTC),
            )
        )
        _change(s, police, changed=date(2026, 11, 20), due=date(2026, 12, 11), duty=hukou)
        return {
            "police": police.id,
            "civil": civil.id,
            "hukou": hukou.id,
            "in_time": in_time.id,
            "nothing": nothing.id,
            "late": late.id,
        }


def test_duty_indicators_are_exact(fresh_settings: Settings) -> None:
    ids = _scene(fresh_settings)
    with session_for(fresh_settings) as s:
        run = service.run_month(s, SYSTEM, NOV, today=TODAY)
        results = {
            r.department_id: r.indicators
            for r in s.query(EvaluationResult).filter_by(run_id=run.id)
        }
        admin = principal("admin", ids["police"], Role.PLATFORM_ADMIN)
        coverage = service.facts(s, admin, run, "duty_coverage", ids["police"])
        adjusted = service.facts(s, admin, run, "catalog_adjusted", ids["police"])
        lines = records.describe(s, BY_KEY["catalog_adjusted"], adjusted)
    police = results[ids["police"]]
    got = {k: (police[k]["hits"], police[k]["records"]) for k in BY_KEY if k in police}
    assert got["duty_coverage"] == (1, 3)
    assert got["catalog_adjusted"] == (1, 3)
    assert (results[ids["civil"]]["duty_coverage"]["hits"], 1) == (1, 1)
    assert {f.record_id for f in coverage if f.hit} == {ids["hukou"]}
    assert {f.record_id: f.hit for f in adjusted} == {
        ids["in_time"]: True,
        ids["nothing"]: False,
        ids["late"]: False,
    }
    by_id = {line.record_id: line.cells for line in lines}
    assert by_id[ids["late"]][0] == "系统变更"
    assert by_id[ids["in_time"]][:4] == ("职责调整", "职责GA-001", "2026-10-20", "2026-11-10")
