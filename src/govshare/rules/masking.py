"""脱敏: how a granted item's value is shown to a consumer whose grant masks it.

Masking happens once, where rows leave the shared store (or, for a provider task's
rule, the node's source), so every format (JSON, CSV) and every later path (logs,
errors) only ever sees the masked value. Here, below every domain, because the node
applies it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


class MaskingRule(StrEnum):
    """脱敏规则 for one item: a grant's, or a provider task's ``masking``."""

    NONE = "none"
    ID_NUMBER = "id_number"  # 110101********1234
    PHONE = "phone"  # 138****5678
    NAME = "name"  # 张*, 欧阳**
    ADDRESS = "address"  # 山东省青岛市****
    HIDE = "hide"  # ****: the item is granted for verification or filtering only

    @property
    def label(self) -> str:
        return {
            "none": "不脱敏",
            "id_number": "证件号码",
            "phone": "电话号码",
            "name": "姓名",
            "address": "地址",
            "hide": "完全遮蔽",
        }[self.value]


STARS = "****"


def _keep(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + (value[-tail:] if tail else "")


def _id_number_ends(length: int) -> tuple[int, int]:
    """How many characters of an ID number stay at its head and tail: a card's region and
    check digits (15 or 18 characters), else one at each end."""
    return (6, 4) if length >= 15 else (1, 1)


def _phone_ends(length: int) -> tuple[int, int]:
    """A mobile number's first three and last four; other numbers' three and two."""
    return (3, 4) if length == 11 else (3, 2)


def mask_id_number(value: str) -> str:
    """370202********1234: the region and the check digits stay, the birth date goes."""
    return _keep(value, *_id_number_ends(len(value)))


def mask_phone(value: str) -> str:
    """138****5678 for mobiles; other numbers keep their first three and last two."""
    digits = value.strip()
    return _keep(digits, *_phone_ends(len(digits)))


def mask_name(value: str) -> str:
    """张*, 欧阳**: the first character only."""
    return value[:1] + "*" * (len(value) - 1) if len(value) > 1 else "*"


def mask_address(value: str) -> str:
    """山东省青岛市****: the first six characters (province and city) only."""
    return value[:6] + STARS if len(value) > 6 else STARS


_RULES: dict[MaskingRule, Callable[[str], str]] = {
    MaskingRule.ID_NUMBER: mask_id_number,
    MaskingRule.PHONE: mask_phone,
    MaskingRule.NAME: mask_name,
    MaskingRule.ADDRESS: mask_address,
    MaskingRule.HIDE: lambda _value: STARS,
}


# What an item's name says it holds, in the order the words are tried: 证件号码 before
# 姓名, so that 法定代表人身份证号 is masked as a number, not as a name.
_SUGGESTIONS: tuple[tuple[tuple[str, ...], MaskingRule], ...] = (
    (("身份", "证件", "证号"), MaskingRule.ID_NUMBER),
    (("电话", "手机", "联系方式"), MaskingRule.PHONE),
    (("地址", "住址", "住所", "居住地"), MaskingRule.ADDRESS),
    (("姓名", "法定代表人", "联系人"), MaskingRule.NAME),
)


def suggested_rule(name: str, open_masking: str = "none") -> MaskingRule:
    """The rule a sensitive item (敏感信息项) is granted with unless the approver chooses
    another: its 开放脱敏 rule where it has one, else the rule its name suggests, else
    完全遮蔽 (the consumer can still verify and filter by it)."""
    if open_masking and open_masking != MaskingRule.NONE.value:
        return MaskingRule(open_masking)
    for words, rule in _SUGGESTIONS:
        if any(w in name for w in words):
            return rule
    return MaskingRule.HIDE


def mask(rule: MaskingRule | str, value: Any) -> Any:
    """The value as the rule shows it; None stays None, anything else becomes text."""
    rule = MaskingRule(rule)
    if value is None or rule is MaskingRule.NONE:
        return value
    return _RULES[rule](str(value))


def masker(masking: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function masking a record (item code → value) by a grant's rules."""
    rules = {
        code: _RULES[MaskingRule(rule)]
        for code, rule in masking.items()
        if MaskingRule(rule) is not MaskingRule.NONE
    }
    if not rules:
        return lambda record: record

    def apply(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for code, fn in rules.items():
            value = out.get(code)
            if value is not None:
                out[code] = fn(str(value))
        return out

    return apply


def row_masker(
    rules: Sequence[MaskingRule],
) -> Callable[[Sequence[Any]], tuple[Any, ...]] | None:
    """A function masking a row whose cells follow ``rules`` one for one (None stays
    None), or None when no rule masks anything."""
    at = [(i, _RULES[r]) for i, r in enumerate(rules) if r is not MaskingRule.NONE]
    if not at:
        return None

    def apply(row: Sequence[Any]) -> tuple[Any, ...]:
        out = list(row)
        for i, fn in at:
            if out[i] is not None:
                out[i] = fn(str(out[i]))
        return tuple(out)

    return apply


# An ID or phone column of more lengths than this is masked value by value (each length
# is one pass over the column).
_LENGTHS_AT_ONCE = 16


def mask_column(rule: MaskingRule, values: pa.Array) -> pa.Array | None:
    """``mask`` over a whole Arrow column, in Arrow's kernels: what
    ``pa.array([mask(rule, v) for v in values.to_pylist()])`` gives, values and type, or
    None where only that per-value way gives it — values that are not text (their text is
    Python's ``str``) except under 完全遮蔽, a column of NULLs only, and 证件号码 or 电话号码
    of many different lengths. Lengths are counted in characters (code points), as
    Python counts them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if rule is MaskingRule.NONE or values.null_count == len(values):
        return None
    if rule is MaskingRule.HIDE:
        return pc.if_else(pc.is_valid(values), pa.scalar(STARS), pa.scalar(None, pa.string()))
    if not pa.types.is_string(values.type):
        return None
    if rule is MaskingRule.PHONE:
        # The same characters as ``str.strip`` (checked over every code point, and by
        # tests/rules/test_masking.py with the separators U+001C–U+001F among them).
        values = pc.utf8_trim_whitespace(values)
    length = pc.utf8_length(values)
    if rule is MaskingRule.NAME:
        stars = pc.binary_repeat(pa.scalar("*"), pc.max_element_wise(pc.subtract(length, 1), 0))
        first = pc.binary_join_element_wise(pc.utf8_slice_codeunits(values, 0, 1), stars, "")
        return pc.if_else(pc.greater(length, 1), first, pa.scalar("*"))
    if rule is MaskingRule.ADDRESS:
        head = pc.binary_join_element_wise(pc.utf8_slice_codeunits(values, 0, 6), STARS, "")
        return pc.if_else(pc.greater(length, 6), head, pa.scalar(STARS))
    # 证件号码 and 电话号码: which characters stay depends on the length, so each length
    # present (a column has one or a few) is masked in one pass with its own stars.
    lengths = pc.unique(length).drop_null().to_pylist()
    if len(lengths) > _LENGTHS_AT_ONCE:
        return None
    ends = _phone_ends if rule is MaskingRule.PHONE else _id_number_ends
    out = pa.nulls(len(values), pa.string())
    for n in lengths:
        head, tail = ends(n)
        if n <= head + tail:
            kept: pa.Array | pa.Scalar = pa.scalar("*" * n)
        else:
            kept = pc.utf8_replace_slice(values, head, n - tail, "*" * (n - head - tail))
        out = pc.if_else(pc.equal(length, n), kept, out)
    return out
