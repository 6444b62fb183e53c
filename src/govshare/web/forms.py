"""Helpers shared by the console pages: rendering with the caller, reading forms and
turning validation failures into Chinese messages next to each field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from govshare.errors import console_text
from govshare.ids import parse_id
from govshare.rules import fields
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


def field_path(loc: Iterable[Any]) -> str:
    """``("items", 2, "length")`` → ``items[2].length``, the form the services use."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _zh_message(err: Mapping[str, Any], pattern_hints: Mapping[str, str]) -> str:
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    if err.get("input") == "" and kind in ("enum", "literal_error", "int_parsing", "missing"):
        return "必填"
    match kind:
        case fields.ERROR_TYPE:  # the field's own sentence, already in Chinese
            return str(err.get("msg", ""))
        case "missing":
            return "必填"
        case "string_too_short":
            return (
                "不能为空" if ctx.get("min_length") == 1 else f"至少 {ctx.get('min_length')} 个字符"
            )
        case "string_too_long":
            return f"不能超过 {ctx.get('max_length')} 个字符"
        case "string_pattern_mismatch":
            return pattern_hints.get(str(ctx.get("pattern")), "格式不正确")
        case "int_parsing" | "int_type" | "int_from_float":
            return "应为整数"
        case "greater_than_equal":
            return f"不能小于 {ctx.get('ge')}"
        case "greater_than":
            return f"应大于 {ctx.get('gt')}"
        case "less_than_equal":
            return f"不能大于 {ctx.get('le')}"
        case "less_than":
            return f"应小于 {ctx.get('lt')}"
        case "too_short":
            return f"至少需要 {ctx.get('min_length')} 项"
        case "too_long":
            return f"不能超过 {ctx.get('max_length')} 项"
        case "enum" | "literal_error":
            return "取值不在可选范围内"
        case "bool_parsing" | "bool_type":
            return "应为“是”或“否”"
        case "extra_forbidden":
            return "不允许填写该项"
        case _:
            return "填写不正确"


def validation_problems(
    exc: ValidationError, *, pattern_hints: Mapping[str, str] | None = None
) -> list[Problem]:
    """Pydantic's errors as ``[{field, message}]`` in Chinese, like the services' details."""
    hints = pattern_hints or {}
    return [{"field": field_path(e["loc"]), "message": _zh_message(e, hints)} for e in exc.errors()]


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
