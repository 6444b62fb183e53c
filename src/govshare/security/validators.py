"""Validity checks of national codes: credit codes, ID numbers, division codes."""

from __future__ import annotations

from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError


def credit_code_problem(code: str) -> str | None:
    """None when ``code`` is a valid 统一社会信用代码 (GB 32100 check digit), else why not."""
    if len(code) != 18:
        return "统一社会信用代码应为18位"
    try:
        uscc.validate(code)
    except ValidationError:
        return "统一社会信用代码校验位不正确"
    return None


def citizen_id_problem(number: str) -> str | None:
    """None when ``number`` is a valid 公民身份号码 (GB 11643 check digit), else why not."""
    if len(number) != 18:
        return "公民身份号码应为18位"
    try:
        ric.validate(number)
    except ValidationError:
        return "公民身份号码校验位或出生日期不正确"
    return None


def division_name(code: str) -> str | None:
    """Name of a GB/T 2260 行政区划代码, or None when the code is unknown."""
    if len(code) != 6 or not code.isdigit():
        return None
    parts = numdb.get("cn/loc").info(code)
    names = [p[1].get("province") or p[1].get("county") for p in parts if p[1]]
    if len(parts) < 2 or not parts[1][1]:
        return None
    return "".join(n.split("]")[-1] for n in names if n)


def division_code_problem(code: str) -> str | None:
    if len(code) != 6 or not code.isdigit():
        return "行政区划代码应为6位数字"
    if division_name(code) is None:
        return f"行政区划代码 {code} 不在 GB/T 2260 代码表中"
    return None
