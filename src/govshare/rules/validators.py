"""校验规则 shared by the whole platform: national codes (公民身份号码, 统一社会信用代码,
行政区划代码, 性别), dates, declared item types and lengths, phone numbers and required
items, with the normalisation 多元校核 compares values after.

Every check is a pure function of its input: ``None`` when the value is acceptable,
else one Chinese sentence saying what is wrong, ready to show to the department that
must correct it. Blank values are the business of :func:`required_problem` only; the
other checks are not meant to be called on them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

# -- normalisation (归一化) ---------------------------------------------------------------

_BLANKS = re.compile(r"\s+")


def normalize_text(value: object) -> str:
    """The text as two sources should agree on it: full-width forms made half-width
    (NFKC: ``１２３`` → ``123``, ``（`` → ``(``, the ideographic space → a space), leading
    and trailing blanks removed, inner runs of blanks collapsed to one space. ``None``
    is the empty text."""
    if value is None:
        return ""
    return _BLANKS.sub(" ", unicodedata.normalize("NFKC", str(value))).strip()


def is_blank(value: object) -> bool:
    """No value at all: None, or only blanks (full-width spaces included)."""
    return normalize_text(value) == ""


_DASHED = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_CHINESE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?")


def parse_date(value: object) -> date | None:
    """The calendar date a value states, or None when it states none (or an
    impossible one, such as 2023-02-30). Accepted: ``2024-01-31``, ``20240131``,
    ``2024/1/31``, ``2024.1.31``, ``2024年1月31日``, full-width digits, and date or
    datetime objects as the database returns them."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = normalize_text(value)
    for pattern in (_DASHED, _COMPACT, _CHINESE):
        found = pattern.fullmatch(text)
        if found:
            try:
                return date(int(found[1]), int(found[2]), int(found[3]))
            except ValueError:
                return None
    return None


def normalize_date(value: object) -> str | None:
    """The ISO form (``2024-01-31``) of a date written any accepted way, else None."""
    found = parse_date(value)
    return found.isoformat() if found else None


def parse_datetime(value: object) -> datetime | None:
    """A date with an optional time (``2024-01-31 08:30``, ``2024-01-31T08:30:15``)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = normalize_text(value)
    day_part, _, time_part = text.replace("T", " ", 1).partition(" ")
    day = parse_date(day_part)
    if day is None:
        return None
    if not time_part:
        return datetime(day.year, day.month, day.day)
    found = _TIME.fullmatch(time_part.strip())
    if not found:
        return None
    try:
        return datetime(
            day.year, day.month, day.day, int(found[1]), int(found[2]), int(found[3] or 0)
        )
    except ValueError:
        return None


# -- national codes ------------------------------------------------------------------------

# GB 32100 登记管理部门代码 and the 机构类别代码 each of them issues.
CREDIT_CODE_AUTHORITIES: dict[str, frozenset[str]] = {
    "1": frozenset("1239"),  # 机构编制: 机关, 事业单位, 编办直管群众团体, 其他
    "2": frozenset("19"),  # 外交
    "3": frozenset(
        "12345"
    ),  # 司法行政: 律师执业机构, 公证处, 基层法律服务所, 司法鉴定机构, 仲裁委员会
    "4": frozenset("19"),  # 文化
    "5": frozenset("1239"),  # 民政: 社会团体, 民办非企业单位, 基金会, 其他
    "6": frozenset("19"),  # 旅游
    "7": frozenset("129"),  # 宗教
    "8": frozenset("129"),  # 工会
    "9": frozenset("123"),  # 工商: 企业, 个体工商户, 农民专业合作社
    "A": frozenset("19"),  # 中央军委改革和编制办公室
    "N": frozenset("1239"),  # 农业
    "Y": frozenset("1"),  # 其他
}
_CREDIT_CODE = re.compile(r"[0-9A-Z][0-9]\d{6}[0-9A-HJ-NP-RTUW-Y]{10}")


def credit_code_problem(code: str) -> str | None:
    """None when ``code`` is a valid 统一社会信用代码 (GB 32100: registration authority
    and organisation type codes, check digit), else why not."""
    if len(code) != 18:
        return "统一社会信用代码应为18位"
    if not _CREDIT_CODE.fullmatch(code):
        return "统一社会信用代码含有不允许的字符"
    types = CREDIT_CODE_AUTHORITIES.get(code[0])
    if types is None:
        return f"统一社会信用代码的登记管理部门代码 {code[0]} 不存在"
    if code[1] not in types:
        return f"统一社会信用代码的机构类别代码 {code[1]} 不属于登记管理部门 {code[0]}"
    if uscc.calc_check_digit(code[:17]) != code[17]:
        return "统一社会信用代码校验位不正确"
    return None


def citizen_id_problem(number: str) -> str | None:
    """None when ``number`` is a valid 公民身份号码 (GB 11643: check digit, a real birth
    date, a division code of GB/T 2260), else why not."""
    if len(number) != 18:
        return "公民身份号码应为18位"
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return "公民身份号码应为17位数字加1位数字或 X"
    if ric.calc_check_digit(number) != number[17]:  # takes the whole number
        return "公民身份号码校验位不正确"
    try:
        ric.get_birth_date(number)
    except ValidationError:
        return "公民身份号码中的出生日期不存在"
    # Any code the table knows, whenever it was in force: the 地址码 is the division of
    # the residence when the number was assigned, not at birth (stdnum's
    # get_birth_place refuses 370202, in force since 1983, for anyone born before).
    if division_name(number[:6]) is None:
        return f"公民身份号码中的行政区划代码 {number[:6]} 不在 GB/T 2260 代码表中"
    return None


@functools.lru_cache(maxsize=16384)
def division_name(code: str) -> str | None:
    """Name of a GB/T 2260 行政区划代码, or None when the code is unknown. Cached: the
    table has a few thousand codes and stdnum walks its tree on every lookup, which
    dominated a quality scan of ID numbers."""
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


SEX_CODES: dict[str, str] = {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}
"""GB/T 2261.1 人的性别代码; the catalog seeds its code table from here."""


def code_problem(value: str, codes: Mapping[str, str], *, table: str) -> str | None:
    """None when ``value`` is a code of the code table ``table`` (its codes ``codes``)."""
    if value in codes:
        return None
    return f"{value} 不是{table}中的代码"


def sex_code_problem(value: str, codes: Mapping[str, str] = SEX_CODES) -> str | None:
    """性别 per GB/T 2261.1 (0 未知, 1 男, 2 女, 9 未说明)."""
    if value in codes:
        return None
    return f"性别代码 {value} 不在 GB/T 2261.1 中（应为 {'、'.join(codes)}）"


# -- dates ---------------------------------------------------------------------------------


def date_problem(value: object) -> str | None:
    """A date in one of the accepted forms (see :func:`parse_date`), and a real one."""
    if parse_date(value) is not None:
        return None
    return f"{value} 不是有效日期（如 2024-01-31、20240131、2024/1/31）"


def datetime_problem(value: object) -> str | None:
    if parse_datetime(value) is not None:
        return None
    return f"{value} 不是有效的日期时间（如 2024-01-31 08:30:00）"


def date_range_problem(
    value: object, *, earliest: date | None = None, latest: date | None = None
) -> str | None:
    """A valid date no earlier than ``earliest`` and no later than ``latest``."""
    day = parse_date(value)
    if day is None:
        return date_problem(value)
    if earliest is not None and day < earliest:
        return f"日期 {day.isoformat()} 早于允许的最早日期 {earliest.isoformat()}"
    if latest is not None and day > latest:
        return f"日期 {day.isoformat()} 晚于允许的最晚日期 {latest.isoformat()}"
    return None


def date_order_problem(start: object, end: object) -> str | None:
    """A period (起止日期): both valid dates, the start not after the end."""
    first, last = parse_date(start), parse_date(end)
    if first is None:
        return f"起始{date_problem(start)}"
    if last is None:
        return f"截止{date_problem(end)}"
    if first > last:
        return f"起始日期 {first.isoformat()} 晚于截止日期 {last.isoformat()}"
    return None


# -- declared type and length (信息项数据类型与长度) -------------------------------------------

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_MONEY = re.compile(r"[+-]?\d+(?:\.\d{1,2})?")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
LOGICAL_VALUES = frozenset({"0", "1", "true", "false", "t", "f", "y", "n", "是", "否"})
TYPE_NAMES: dict[str, str] = {
    "C": "字符型",
    "N": "数值型",
    "Y": "货币型",
    "D": "日期型",
    "T": "日期时间型",
    "L": "逻辑型",
    "M": "备注型",
    "G": "通用型",
    "B": "双精度型",
    "I": "整型",
    "F": "浮点型",
}


def byte_length(text: str) -> int:
    """A text's length in bytes as the catalog declares lengths: GB 18030, where a
    Chinese character takes two bytes (most departments' databases count so)."""
    return len(text.encode("gb18030", errors="replace"))


def _as_text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).strip()


def type_problem(value: object, data_type: str, length: int | None = None) -> str | None:
    """Does the value fit the item's declared 数据类型 (GB/T 21063 codes C, N, Y, D, T,
    L, M, G, B, I, F) and length? Character lengths count bytes (:func:`byte_length`);
    numeric lengths count digits. Unknown type codes accept anything."""
    name = TYPE_NAMES.get(data_type)
    if name is None:
        return None
    if data_type == "D":
        return date_problem(value)
    if data_type == "T":
        return datetime_problem(value)
    text = _as_text(value)
    if data_type == "L":
        if text.lower() in LOGICAL_VALUES:
            return None
        return f"{text} 不是逻辑值（应为 是/否、1/0、true/false）"
    pattern = {"N": _NUMBER, "Y": _MONEY, "I": _INTEGER, "B": _FLOAT, "F": _FLOAT}.get(data_type)
    numeric = isinstance(value, int | float | Decimal)
    if pattern is not None and not numeric and not pattern.fullmatch(text):
        return f"{text} 不是{name}数值"
    if data_type in ("N", "Y", "I") and length is not None:
        try:
            digits = len(Decimal(text).as_tuple().digits)
        except InvalidOperation:
            return f"{text} 不是{name}数值"
        if digits > length:
            return f"{text} 有 {digits} 位数字，超过声明的长度 {length}"
    if data_type in ("C", "M") and length is not None:
        size = byte_length(text)
        if size > length:
            return f"长度 {size} 字节，超过声明的长度 {length} 字节"
    return None


# -- phone numbers and required items -----------------------------------------------------

_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?[2-9]\d{6,7}(?:-\d{1,6})?")
_COUNTRY = re.compile(r"^(?:\+?86[- ]?|0086[- ]?)")


def phone_problem(value: str) -> str | None:
    """A mobile number (11 digits, 1[3-9]…) or a landline with its area code
    (``0532-88888888``, ``053288888888``, with an optional extension ``-123``);
    ``+86`` in front and blanks inside are allowed."""
    text = _COUNTRY.sub("", normalize_text(value)).replace(" ", "")
    if _MOBILE.fullmatch(text) or _LANDLINE.fullmatch(text):
        return None
    if text.isdigit() and text.startswith("1"):
        return f"手机号码 {value} 应为以 13–19 开头的11位数字"
    return f"电话号码 {value} 应为11位手机号码或带区号的固定电话（如 0532-88888888）"


def required_problem(value: object) -> str | None:
    """必填: a value other than blanks."""
    return "必填项为空" if is_blank(value) else None
