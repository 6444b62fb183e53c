"""One Chinese sentence per input field, in place of pydantic's English texts.

``Annotated[str, Expect("分类码须为 2 位数字", pattern=r"^\\d{2}$")]`` keeps the
constraints (and so the OpenAPI schema) and replaces whatever pydantic would say when
they fail — too long, wrong pattern, wrong type — by the one sentence that tells the
person filling the form what is expected. The error type is :data:`ERROR_TYPE`; the
API sends the sentence as the detail's message, the console shows it beside the field.

Every text (also inside lists and mappings) is refused when it holds an invisible
control character: PostgreSQL cannot store NUL, and nobody means to type one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from annotated_types import GroupedMetadata
from pydantic import Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

ERROR_TYPE = "expected"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_MESSAGE = "含有不可见的控制字符 (如 NUL)，请删除"


def has_control_characters(value: Any) -> bool:
    """Is there a control character in this text, or in any text inside it?"""
    if isinstance(value, str):
        return CONTROL_CHARACTERS.search(value) is not None
    if isinstance(value, list | tuple | set):
        return any(has_control_characters(v) for v in value)
    if isinstance(value, dict):
        return any(has_control_characters(k) or has_control_characters(v) for k, v in value.items())
    return False


@dataclass(frozen=True, slots=True)
class Expect(GroupedMetadata):
    """A field's constraints and the sentence said when the value does not meet them."""

    message: str
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    ge: int | None = None
    le: int | None = None

    def __iter__(self) -> Iterator[object]:
        yield Field(
            min_length=self.min_length,
            max_length=self.max_length,
            pattern=self.pattern,
            ge=self.ge,
            le=self.le,
        )
        message = self.message

        def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
            if has_control_characters(value):
                raise PydanticCustomError(ERROR_TYPE, CONTROL_MESSAGE)
            try:
                return handler(value)
            except ValidationError:
                raise PydanticCustomError(ERROR_TYPE, message) from None

        yield WrapValidator(check)


def expected(message: str) -> PydanticCustomError:
    """The error for a check written by hand (a model or after-validator)."""
    return PydanticCustomError(ERROR_TYPE, message)


def field_path(loc: Iterable[Any]) -> str:
    """``("items", 2, "length")`` → ``items[2].length``, the form the services use."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _zh_message(
    err: Mapping[str, Any],
    pattern_hints: Mapping[str, str],
    yes_no: str = "应为“是”或“否”",
    value_errors: bool = False,
) -> str:
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    if value_errors and kind == "value_error":
        return str(ctx.get("error") or err.get("msg", ""))
    if err.get("input") == "" and kind in ("enum", "literal_error", "int_parsing", "missing"):
        return "必填"
    if kind == ERROR_TYPE:  # the field's own sentence, already in Chinese
        return str(err.get("msg", ""))
    match kind:
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
            return yes_no
        case "float_parsing" | "float_type":
            return "应为数字"
        case "string_type":
            return "应为文本"
        case "dict_type" | "model_type":
            return "应为一组键值 (表)"
        case "extra_forbidden":
            return "不允许填写该项"
        case _:
            return "填写不正确"


def validation_problems(
    exc: ValidationError,
    *,
    pattern_hints: Mapping[str, str] | None = None,
    yes_no: str = "应为“是”或“否”",
    value_errors: bool = False,
) -> list[dict[str, str]]:
    """Pydantic's errors as ``[{field, message}]`` in Chinese, like the services' details;
    ``yes_no`` is what a wrong yes/no value is told (a form's 是/否, a file's true/false);
    ``value_errors``: a validator's own sentence is told as it is (a setting's validator
    names the setting), not replaced by 填写不正确."""
    hints = pattern_hints or {}
    return [
        {"field": field_path(e["loc"]), "message": _zh_message(e, hints, yes_no, value_errors)}
        for e in exc.errors()
    ]
