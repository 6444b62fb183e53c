"""Helpers shared by the console pages: rendering with the caller, reading forms and
turning validation failures into Chinese messages next to each field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from govshare.errors import console_text
from govshare.ids import parse_id
from govshare.rules.fields import field_path as field_path  # re-exported for the pages
from govshare.rules.fields import validation_problems as validation_problems
from govshare.security.service import Principal

Problem = dict[str, Any]


def render(
    request: Request,
    template: str,
    caller: Principal,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    """Render a console template; every template sees ``request`` and ``caller``."""
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request, template, {"caller": caller, **context}, status_code=status_code, headers=headers
    )


def secure_cookies(request: Request) -> bool:
    """Whether cookies set in answer to ``request`` are marked Secure: always when
    configured, and whenever the request came over HTTPS."""
    return bool(request.app.state.settings.secure_cookies) or request.url.scheme == "https"


def redirect(url: str) -> RedirectResponse:
    """See-other after a successful POST, so a reload does not post again."""
    return RedirectResponse(url, status_code=303)


def is_fragment_request(request: Request, target: str) -> bool:
    """An htmx request that will swap only the element ``target`` (not a history restore)."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-target") == target
        and request.headers.get("hx-history-restore-request") != "true"
    )


def safe_next(value: str | None, default: str = "/") -> str:
    """Only same-site paths may be a redirect target after sign-in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def texts(form: FormData, name: str) -> list[str]:
    return [v.strip() if isinstance(v, str) else "" for v in form.getlist(name)]


def optional_int(value: str) -> int | str | None:
    """ "" → None, an id in range → int, anything else is passed on for the schema to
    reject (with the field's name)."""
    value = value.strip()
    if not value:
        return None
    number = parse_id(value)
    return value if number is None else number


class FormErrors:
    """Problems of one submitted form, looked up by field for display beside it.

    ``label`` names a field for the summary at the top of the form (``items[2].length``
    → ``信息项第3行 · 数据长度``)."""

    def __init__(
        self,
        message: str = "",
        problems: Iterable[Mapping[str, Any]] = (),
        *,
        label: Callable[[str], str] | None = None,
    ) -> None:
        self.message = console_text(message)
        self.problems: list[Problem] = []
        self.by_field: dict[str, list[str]] = {}
        for p in problems:
            field = str(p.get("field") or "")
            message_ = console_text(str(p.get("message", "")))
            self.problems.append(
                {"field": field, "label": label(field) if label else field, "message": message_}
            )
            self.by_field.setdefault(field, []).append(message_)

    def __bool__(self) -> bool:
        return bool(self.message or self.problems)

    def get(self, field: str) -> list[str]:
        """Messages for ``field`` and its elements (``sharing_modes[1]`` for ``sharing_modes``)."""
        found = list(self.by_field.get(field, []))
        for key, messages in self.by_field.items():
            if key.startswith(field + "[") and "." not in key[len(field) :]:
                found.extend(messages)
        return found

    def has(self, field: str) -> bool:
        return bool(self.get(field))


NO_ERRORS = FormErrors()


async def get_form(request: Request) -> FormData:
    """The posted form, parsed on the event loop so the page itself can be a plain
    (threadpool) function: database work must never block the loop, or a request
    waiting for SQLite's write lock stalls the very commit it is waiting for."""
    return await request.form()


FormDep = Annotated[FormData, Depends(get_form)]


def upload_close(form: FormData) -> None:
    """Close spooled uploads (Starlette only closes them for File() parameters)."""
    for value in form.values():
        if isinstance(value, UploadFile):
            value.file.close()
