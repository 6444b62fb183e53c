"""The evaluation's rules: schemes (versioned weights and thresholds), the monthly run
(facts inserted set-based, numbers derived from the facts, scores and ranks), publishing
(a published month is frozen; recomputing it is explicit and audited), and what each
caller may see (a department its own detail and the ranking; the bureau everything)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Integer, String, Table, case, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from govshare.db import utcnow
from govshare.evaluation.errors import (
    IndicatorNotFound,
    InvalidMonth,
    InvalidScheme,
    MonthNotOver,
    MonthPublished,
    ResultNotFound,
    RunNotFound,
)
from govshare.evaluation.indicators import (
    BY_KEY,
    DEPARTMENT_INDICATORS,
    INDICATORS,
    PLATFORM_INDICATORS,
    SCORED,
    Indicator,
    Kind,
    Month,
    fact_queries,
)
from govshare.evaluation.models import (
    PLATFORM,
    EvaluationFact,
    EvaluationResult,
    EvaluationRun,
    EvaluationScheme,
    RunStatus,
)
from govshare.security import audit
from govshare.security.audit import Actor
from govshare.security.errors import PermissionDenied
from govshare.security.models import Department
from govshare.security.roles import Permission
from govshare.security.service import Principal

DEFAULT_WEIGHTS: dict[str, float] = {
    "catalog_complete": 20,
    "system_coverage": 10,
    "duty_coverage": 5,
    "catalog_adjusted": 5,
    "catalog_reviewed": 10,
    "data_timely": 15,
    "answer_on_time": 15,
    "provide_on_time": 10,
    "refusal_rate": 5,
    "objection_on_time": 10,
    "quality": 5,
}
# Grade thresholds on the 0–100 score: at least ``excellent`` is 优秀, and so on.
DEFAULT_THRESHOLDS: dict[str, float] = {"excellent": 90, "good": 75, "pass": 60}
GRADE_LABELS = {"excellent": "优秀", "good": "良好", "pass": "合格", "fail": "不合格"}
THRESHOLD_LABELS = {"excellent": "优秀线", "good": "良好线", "pass": "合格线"}
DEFAULT_PENALTY = 2.0

Progress = Callable[[int, int, str], None]


# -- months ------------------------------------------------------------------------------


def parse_month(text: str) -> Month:
    try:
        return Month.parse(text.strip())
    except ValueError:
        raise InvalidMonth(
            f"考核月份“{text[:20]}”格式不正确，应为 YYYY-MM，如 2026-11",
            details=[{"field": "month", "message": "应为 YYYY-MM"}],
        ) from None


def last_complete_month(today: date) -> Month:
    """The month before ``today``'s: the newest month that is over."""
    return Month(today.year, today.month).previous()


# -- schemes -----------------------------------------------------------------------------


def current_scheme(session: Session) -> EvaluationScheme:
    """The newest scheme; version 1 with the defaults when none was ever saved."""
    scheme = session.scalars(
        select(EvaluationScheme).order_by(EvaluationScheme.version.desc()).limit(1)
    ).first()
    if scheme is None:
        scheme = EvaluationScheme(
            version=1,
            weights=dict(DEFAULT_WEIGHTS),
            thresholds=dict(DEFAULT_THRESHOLDS),
            dispute_penalty=DEFAULT_PENALTY,
            note="默认考核方案",
            created_by="system",
        )
        session.add(scheme)
        session.flush()
    return scheme


def list_schemes(session: Session) -> list[EvaluationScheme]:
    current_scheme(session)
    return list(session.scalars(select(EvaluationScheme).order_by(EvaluationScheme.version.desc())))


def _check_scheme(
    weights: dict[str, float], thresholds: dict[str, float], penalty: float
) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for key, w in weights.items():
        if key not in SCORED:
            problems.append({"field": f"weights.{key}", "message": "不是计分指标"})
        elif not 0 <= w <= 100:
            problems.append({"field": f"weights.{key}", "message": "权重应在 0 到 100 之间"})
    if not problems and sum(weights.values()) <= 0:
        problems.append({"field": "weights", "message": "至少一个指标的权重大于 0"})
    for key in DEFAULT_THRESHOLDS:
        if key not in thresholds:
            problems.append({"field": f"thresholds.{key}", "message": "必填"})
        elif not 0 <= thresholds[key] <= 100:
            problems.append({"field": f"thresholds.{key}", "message": "应在 0 到 100 之间"})
    for key in thresholds:
        if key not in DEFAULT_THRESHOLDS:
            problems.append({"field": f"thresholds.{key}", "message": "未知的等级线"})
    if not problems and not (thresholds["excellent"] >= thresholds["good"] >= thresholds["pass"]):
        problems.append({"field": "thresholds", "message": "应满足 优秀线 ≥ 良好线 ≥ 合格线"})
    if not 0 <= penalty <= 100:
        problems.append({"field": "dispute_penalty", "message": "应在 0 到 100 之间"})
    return problems


def save_scheme(
    session: Session,
    principal: Principal,
    *,
    weights: dict[str, float],
    thresholds: dict[str, float],
    dispute_penalty: float,
    note: str = "",
) -> EvaluationScheme:
    """A new version of the scheme; months already computed keep the version they used."""
    problems = _check_scheme(weights, thresholds, dispute_penalty)
    if problems:
        raise InvalidScheme(
            "考核方案不正确：" + "；".join(p["message"] for p in problems), details=problems
        )
    before = current_scheme(session)
    scheme = EvaluationScheme(
        version=before.version + 1,
        weights={k: float(weights.get(k, 0)) for k in SCORED},
        thresholds={k: float(thresholds[k]) for k in DEFAULT_THRESHOLDS},
        dispute_penalty=float(dispute_penalty),
        note=note,
        created_by=principal.name,
    )
    session.add(scheme)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "evaluation.scheme.save",
        object_type="evaluation_scheme",
        object_id=scheme.version,
        before=_scheme_dict(before),
        after=_scheme_dict(scheme),
    )
    return scheme


def _scheme_dict(s: EvaluationScheme) -> dict[str, Any]:
    return {
        "version": s.version,
        "weights": s.weights,
        "thresholds": s.thresholds,
        "dispute_penalty": s.dispute_penalty,
        "note": s.note,
    }


# -- scoring -----------------------------------------------------------------------------


def indicator_value(ind: Indicator, records: int, hits: int, total: float) -> float | None:
    """An indicator's value from its facts: a percentage (2 decimals) for rates, the
    count, the sum or the mean; None when there is nothing to count a rate or mean on."""
    match ind.kind:
        case Kind.RATE | Kind.RATE_LOW:
            return round(100 * hits / records, 2) if records else None
        case Kind.COUNT:
            return float(records)
        case Kind.SUM:
            return float(total)
        case Kind.MEAN:
            return round(total / records, 2) if records else None


def score_of(indicators: dict[str, dict[str, Any]], scheme: EvaluationScheme) -> float | None:
    """The weighted mean of the scored indicators that apply (a rate with records, a
    mean with any), 0–100, minus the penalty per lost dispute, never below 0."""
    weighted = 0.0
    weight_sum = 0.0
    for key, weight in scheme.weights.items():
        entry = indicators.get(key)
        if not weight or entry is None or entry["value"] is None:
            continue
        points = entry["value"]
        if BY_KEY[key].kind is Kind.RATE_LOW:
            points = 100 - points
        weighted += weight * points
        weight_sum += weight
    if not weight_sum:
        return None
    lost = indicators.get("disputes_lost", {}).get("value") or 0
    return round(max(0.0, weighted / weight_sum - scheme.dispute_penalty * lost), 2)


def grade_of(score: float | None, thresholds: dict[str, float]) -> str:
    if score is None:
        return ""
    for key in ("excellent", "good", "pass"):
        if score >= thresholds[key]:
            return key
    return "fail"


# -- runs --------------------------------------------------------------------------------


def get_run(session: Session, month: str) -> EvaluationRun:
    run = session.scalars(select(EvaluationRun).where(EvaluationRun.month == month)).first()
    if run is None:
        raise RunNotFound(f"{month} 尚未考核")
    return run


def find_run(session: Session, month: str) -> EvaluationRun | None:
    return session.scalars(select(EvaluationRun).where(EvaluationRun.month == month)).first()


def list_runs(session: Session) -> list[EvaluationRun]:
    return list(session.scalars(select(EvaluationRun).order_by(EvaluationRun.month.desc())))


def run_month(
    session: Session,
    actor: Actor,
    month: Month,
    *,
    today: date,
    trigger: str = "manual",
    recompute: bool = False,
    on_progress: Progress | None = None,
) -> EvaluationRun:
    """Compute ``month`` from the records now stored: facts, results, scores, ranks.

    A draft month is recomputed freely; a published month only with ``recompute``
    (audited with the scores before and after), otherwise MonthPublished. A month that
    is not over yet (``today`` inside or before it) is refused.
    """
    if today <= month.last_day:
        raise MonthNotOver(f"{month} 尚未结束（今天是 {today.isoformat()}），月末之后才能考核")
    run = find_run(session, str(month))
    before: dict[str, Any] | None = None
    if run is not None and run.status is RunStatus.PUBLISHED and not recompute:
        raise MonthPublished(
            f"{month} 的考核结果已发布，不随新数据变化；如确需重算，请明确选择“重新计算已发布月份”"
        )
    scheme = current_scheme(session)
    if run is None:
        run = EvaluationRun(month=str(month), scheme_id=scheme.id, computed_by=actor.name)
        session.add(run)
        session.flush()
    else:
        before = _run_summary(session, run)
        run.computations += 1
        run.scheme_id = scheme.id
        session.execute(delete(EvaluationFact).where(EvaluationFact.run_id == run.id))
        session.execute(delete(EvaluationResult).where(EvaluationResult.run_id == run.id))
    run.trigger = trigger
    run.computed_by = actor.name
    run.computed_at = utcnow()
    queries = fact_queries(month)
    steps = len(queries) + 1
    facts = EvaluationFact.__table__
    assert isinstance(facts, Table)
    for n, (key, query) in enumerate(queries.items()):
        if on_progress:
            on_progress(n, steps, BY_KEY[key].label)
        rows = query.subquery()
        source = select(
            _const(run.id),
            _const_str(key),
            *rows.c,
        )
        session.execute(
            insert(facts).from_select(
                ["run_id", "indicator", "department_id", "record_id", "hit", "value"], source
            )
        )
    if on_progress:
        on_progress(steps - 1, steps, "计分排名")
    _results(session, run, month, scheme)
    session.refresh(run)
    after = _run_summary(session, run)
    audit.record(
        session,
        actor,
        "evaluation.recompute" if before is not None else "evaluation.run",
        object_type="evaluation_run",
        object_id=str(month),
        before=before,
        after=after,
    )
    if on_progress:
        on_progress(steps, steps, "完成")
    return run


def _const(value: int) -> Any:
    return literal(value, Integer)


def _const_str(value: str) -> Any:
    return literal(value, String(24))


@dataclass(frozen=True, slots=True)
class Tally:
    records: int
    hits: int
    total: float


def _tallies(session: Session, run_id: int) -> dict[tuple[str, int], Tally]:
    f = EvaluationFact
    rows = session.execute(
        select(
            f.indicator,
            f.department_id,
            func.count(),
            func.sum(case((f.hit, 1), else_=0)),
            func.sum(f.value),
        )
        .where(f.run_id == run_id)
        .group_by(f.indicator, f.department_id)
    )
    return {
        (ind, dept): Tally(int(n), int(hits or 0), float(total or 0))
        for ind, dept, n, hits, total in rows
    }


def _entry(ind: Indicator, tally: Tally | None) -> dict[str, Any]:
    t = tally or Tally(0, 0, 0.0)
    return {
        "records": t.records,
        "hits": t.hits,
        "total": t.total,
        "value": indicator_value(ind, t.records, t.hits, t.total),
    }


def _results(session: Session, run: EvaluationRun, month: Month, scheme: EvaluationScheme) -> None:
    tallies = _tallies(session, run.id)
    run.platform = {i.key: _entry(i, tallies.get((i.key, PLATFORM))) for i in PLATFORM_INDICATORS}
    run.facts = sum(t.records for t in tallies.values())
    departments = session.execute(
        select(Department.id, Department.name)
        .where(Department.created_at < month.end)
        .order_by(Department.id)
    ).all()
    results = []
    for dept_id, name in departments:
        indicators = {
            i.key: _entry(i, tallies.get((i.key, dept_id))) for i in DEPARTMENT_INDICATORS
        }
        score = score_of(indicators, scheme)
        results.append(
            EvaluationResult(
                run_id=run.id,
                department_id=dept_id,
                department_name=name,
                indicators=indicators,
                score=score,
                grade=grade_of(score, scheme.thresholds),
            )
        )
    for r, rank in zip(results, competition_ranks([r.score for r in results]), strict=True):
        r.rank = rank
    _year_to_date(session, run, month, scheme, results)
    session.add_all(results)
    session.flush()


def competition_ranks(scores: Sequence[float | None]) -> list[int | None]:
    """Competition ranking (1, 2, 2, 4) of ``scores`` in their order; None (nothing to
    score) is not ranked."""
    scored = sorted(((s, i) for i, s in enumerate(scores) if s is not None), key=lambda p: -p[0])
    ranks: list[int | None] = [None] * len(scores)
    for n, (score, i) in enumerate(scored):
        tied = n > 0 and scored[n - 1][0] == score
        ranks[i] = ranks[scored[n - 1][1]] if tied else n + 1
    return ranks


def _summed(entries: Sequence[dict[str, Any]], ind: Indicator) -> dict[str, Any]:
    """The year-to-date entry of one indicator: the months' records, hits and totals
    added up, and the value made from the sums as a month's is made from its facts."""
    records = sum(int(e.get("records", 0)) for e in entries)
    hits = sum(int(e.get("hits", 0)) for e in entries)
    total = sum(float(e.get("total", 0.0)) for e in entries)
    return {
        "records": records,
        "hits": hits,
        "total": total,
        "value": indicator_value(ind, records, hits, total),
    }


def _year_to_date(
    session: Session,
    run: EvaluationRun,
    month: Month,
    scheme: EvaluationScheme,
    results: Sequence[EvaluationResult],
) -> None:
    """年度累计: this month's entries added to those stored for the year's earlier months
    (as they stand when this month is computed), scored with this month's scheme and
    ranked. Stored with the run, so a published month keeps its year-to-date figures."""
    earlier = session.execute(
        select(EvaluationRun.id, EvaluationRun.month, EvaluationRun.platform)
        .where(EvaluationRun.month >= f"{month.year:04d}-01", EvaluationRun.month < str(month))
        .order_by(EvaluationRun.month)
    ).all()
    run.year_to_date = {
        "months": [m for _, m, _ in earlier] + [str(month)],
        "platform": {
            i.key: _summed([*(p.get(i.key, {}) for _, _, p in earlier), run.platform[i.key]], i)
            for i in PLATFORM_INDICATORS
        },
    }
    by_department: dict[int, list[dict[str, Any]]] = {}
    if earlier:
        rows = session.execute(
            select(EvaluationResult.department_id, EvaluationResult.indicators).where(
                EvaluationResult.run_id.in_([run_id for run_id, _, _ in earlier])
            )
        )
        for dept_id, indicators in rows:
            by_department.setdefault(dept_id, []).append(indicators)
    for r in results:
        months = [*by_department.get(r.department_id, []), r.indicators]
        indicators = {
            i.key: _summed([m.get(i.key, {}) for m in months], i) for i in DEPARTMENT_INDICATORS
        }
        score = score_of(indicators, scheme)
        r.year_to_date = {
            "months": len(months),
            "indicators": indicators,
            "score": score,
            "grade": grade_of(score, scheme.thresholds),
        }
    ytd_scores = [(r.year_to_date or {}).get("score") for r in results]
    for r, rank in zip(results, competition_ranks(ytd_scores), strict=True):
        r.year_to_date = {**(r.year_to_date or {}), "rank": rank}


def _run_summary(session: Session, run: EvaluationRun) -> dict[str, Any]:
    scores = session.execute(
        select(EvaluationResult.department_id, EvaluationResult.score)
        .where(EvaluationResult.run_id == run.id)
        .order_by(EvaluationResult.department_id)
    ).all()
    return {
        "month": run.month,
        "status": run.status.value,
        "scheme_version": session.get(EvaluationScheme, run.scheme_id).version  # type: ignore[union-attr]
        if run.scheme_id
        else None,
        "facts": run.facts,
        "platform": {k: v["value"] for k, v in (run.platform or {}).items()},
        "scores": {str(d): s for d, s in scores},
    }


def publish_run(session: Session, principal: Principal, month: str) -> EvaluationRun:
    """发布: the month's results are final; later data no longer changes them."""
    run = get_run(session, month)
    if run.status is RunStatus.PUBLISHED:
        raise MonthPublished(f"{month} 的考核结果已发布")
    run.status = RunStatus.PUBLISHED
    run.published_by = principal.name
    run.published_at = utcnow()
    audit.record(
        session,
        principal.actor,
        "evaluation.publish",
        object_type="evaluation_run",
        object_id=month,
        after=_run_summary(session, run),
    )
    return run


# -- reading -----------------------------------------------------------------------------


def sees_all(principal: Principal) -> bool:
    return principal.can(Permission.EVALUATION_ADMIN)


def check_department(principal: Principal, department_id: int) -> None:
    """A department sees its own detail; the bureau (evaluation.admin) every one."""
    if not sees_all(principal) and principal.department_id != department_id:
        raise PermissionDenied("只能查看本部门的考核明细 (another department's evaluation)")


def ranking(session: Session, run: EvaluationRun) -> list[EvaluationResult]:
    """Every department's result, ranked first (by rank), unranked last (by name)."""
    rows = session.scalars(select(EvaluationResult).where(EvaluationResult.run_id == run.id)).all()
    return sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, r.department_name))


def get_result(
    session: Session, principal: Principal, run: EvaluationRun, department_id: int
) -> EvaluationResult:
    check_department(principal, department_id)
    result = session.scalars(
        select(EvaluationResult).where(
            EvaluationResult.run_id == run.id, EvaluationResult.department_id == department_id
        )
    ).first()
    if result is None:
        raise ResultNotFound(f"{run.month} 的考核中没有部门 #{department_id}")
    return result


def trend(
    session: Session, principal: Principal, department_id: int, *, months: int = 12
) -> list[tuple[str, EvaluationResult]]:
    """A department's results over its newest ``months`` runs, oldest first."""
    check_department(principal, department_id)
    rows = session.execute(
        select(EvaluationRun.month, EvaluationResult)
        .join(EvaluationResult, EvaluationResult.run_id == EvaluationRun.id)
        .where(EvaluationResult.department_id == department_id)
        .order_by(EvaluationRun.month.desc())
        .limit(months)
    ).all()
    return [(m, r) for m, r in reversed(rows)]


def indicator(key: str) -> Indicator:
    found = BY_KEY.get(key)
    if found is None:
        raise IndicatorNotFound(f"没有考核指标“{key[:40]}”")
    return found


def facts(
    session: Session,
    principal: Principal,
    run: EvaluationRun,
    key: str,
    department_id: int,
    *,
    limit: int | None = None,
) -> list[EvaluationFact]:
    """The records an indicator counted for a department (or the platform, id 0):
    exactly the facts its numbers were derived from, misses first."""
    ind = indicator(key)
    if ind.platform:
        department_id = PLATFORM
    else:
        check_department(principal, department_id)
    query = (
        select(EvaluationFact)
        .where(
            EvaluationFact.run_id == run.id,
            EvaluationFact.indicator == key,
            EvaluationFact.department_id == department_id,
        )
        .order_by(EvaluationFact.hit, EvaluationFact.record_id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def year_breakdown(
    session: Session, principal: Principal, run: EvaluationRun, key: str, department_id: int
) -> list[tuple[str, dict[str, Any]]]:
    """The months behind an indicator's year-to-date figure of ``run``, each with its
    entry as stored now (a month recomputed after ``run`` shows its new numbers)."""
    ind = indicator(key)
    months = (run.year_to_date or {}).get("months", [])
    if ind.platform:
        stored = session.execute(
            select(EvaluationRun.month, EvaluationRun.platform)
            .where(EvaluationRun.month.in_(months))
            .order_by(EvaluationRun.month)
        ).all()
    else:
        check_department(principal, department_id)
        stored = session.execute(
            select(EvaluationRun.month, EvaluationResult.indicators)
            .join(EvaluationResult, EvaluationResult.run_id == EvaluationRun.id)
            .where(EvaluationRun.month.in_(months), EvaluationResult.department_id == department_id)
            .order_by(EvaluationRun.month)
        ).all()
    return [(month, entries.get(key, {})) for month, entries in stored]


def all_indicators() -> Sequence[Indicator]:
    return INDICATORS


def month_of(run: EvaluationRun) -> Month:
    return Month.parse(run.month)


def utc_now() -> datetime:
    return utcnow()
