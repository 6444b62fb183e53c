"""节假日安排: the platform admin enters a year's official days off and make-up working
days; deadlines counted on an estimate (预计) are recounted at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from govshare.deps import CalendarAdmin, SessionDep, SettingsDep
from govshare.errors import InvalidInput
from govshare.rules.workdays import FIRST_YEAR, LAST_YEAR
from govshare.sharing import calendar
from govshare.sharing.pages.common import Today, _labels, _page
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, redirect, text

router = APIRouter(include_in_schema=False)

LABELS = {"year": "年份", "holidays": "放假日期", "workdays": "调休上班日期"}


def _calendar_page(
    request: Request,
    db: SessionDep,
    caller: CalendarAdmin,
    today: Today,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    years = calendar.overview(db, today)
    missing = next((y.year for y in years if y.year >= today.year and not y.source.known), None)
    return _page(
        request,
        "sharing/calendar.html",
        caller,
        status_code=status_code,
        years=years,
        v=values or {"year": str(missing or today.year + 1), "holidays": "", "workdays": ""},
        errors=errors,
    )


@router.get("/sharing/calendar")
def calendar_page(
    request: Request, db: SessionDep, caller: CalendarAdmin, today: Today, year: str = ""
) -> Response:
    """Each year's source of working days; the form to enter or correct one
    (``?year=`` fills it with what was entered for that year)."""
    values = None
    if year.isdigit() and len(year) == 4:
        entered = next(
            (y.entered for y in calendar.overview(db, today) if str(y.year) == year), None
        )
        values = {
            "year": year,
            "holidays": "\n".join(entered.holidays) if entered else "",
            "workdays": "\n".join(entered.workdays) if entered else "",
        }
    return _calendar_page(request, db, caller, today, values=values)


@router.post("/sharing/calendar")
def enter_year(
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: CalendarAdmin,
    today: Today,
) -> Response:
    values = {k: text(form, k) for k in LABELS}
    year = values["year"]
    if not (year.isdigit() and len(year) == 4):
        errors = FormErrors(
            "节假日安排有误",
            [{"field": "year", "message": "请填写四位数字的年份，如 2027"}],
            label=_labels(LABELS),
        )
        return _calendar_page(
            request, db, caller, today, values=values, errors=errors, status_code=422
        )
    try:
        calendar.enter_year(
            db,
            settings,
            caller,
            year=int(year),
            holidays=values["holidays"],
            workdays_=values["workdays"],
        )
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details or [], label=_labels(LABELS))
        return _calendar_page(
            request, db, caller, today, values=values, errors=errors, status_code=422
        )
    db.commit()
    return redirect(f"/sharing/calendar?done=calendar_entered#year-{year}")


@router.post("/sharing/calendar/{year}/remove")
def remove_year(
    year: Annotated[int, Path(ge=FIRST_YEAR, le=LAST_YEAR)],
    db: SessionDep,
    settings: SettingsDep,
    caller: CalendarAdmin,
) -> Response:
    calendar.remove_year(db, settings, caller, year)
    db.commit()
    return redirect(f"/sharing/calendar?done=calendar_removed#year-{year}")
