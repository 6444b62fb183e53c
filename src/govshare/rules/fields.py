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
from collections.abc import Iterator
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
