"""脱敏 rules: what a consumer sees of an item its grant masks."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from govshare.rules.masking import STARS, mask, mask_column, masker, suggested_rule
from govshare.sharing.models import MaskingRule


@pytest.mark.parametrize(
    ("rule", "value", "shown"),
    [
        (MaskingRule.ID_NUMBER, "370202199001011234", "370202********1234"),
        (MaskingRule.ID_NUMBER, "37020219900101X", "370202*****101X"),  # 15 digits, old cards
        (MaskingRule.ID_NUMBER, "A1234567", "A******7"),  # passports and other short numbers
        (MaskingRule.PHONE, "13812345678", "138****5678"),
        (MaskingRule.PHONE, "0532-8888666", "053*******66"),
        (MaskingRule.NAME, "张三", "张*"),
        (MaskingRule.NAME, "欧阳娜娜", "欧***"),
        (MaskingRule.NAME, "李", "*"),
        (MaskingRule.ADDRESS, "山东省青岛市市南区香港中路1号", "山东省青岛市****"),
        (MaskingRule.ADDRESS, "青岛市", STARS),
        (MaskingRule.HIDE, "已纳税", STARS),
        (MaskingRule.NONE, "370202199001011234", "370202199001011234"),
    ],
)
def test_rules(rule: MaskingRule, value: str, shown: str) -> None:
    assert mask(rule, value) == shown


def test_nothing_is_made_of_missing_values() -> None:
    assert mask(MaskingRule.NAME, None) is None


def test_a_grant_masks_every_record_by_item_and_leaves_the_input_alone() -> None:
    show = masker({"sfzhm": "id_number", "xm": "name", "xb": "none"})
    record = {"sfzhm": "370202199001011234", "xm": "王小明", "xb": "1", "csrq": "1990-01-01"}
    assert show(record) == {
        "sfzhm": "370202********1234",
        "xm": "王**",
        "xb": "1",
        "csrq": "1990-01-01",
    }
    assert record["xm"] == "王小明"


def test_an_unknown_rule_is_an_error_not_a_pass_through() -> None:
    with pytest.raises(ValueError, match="reveal"):
        masker({"xm": "reveal"})


@pytest.mark.parametrize(
    ("name", "open_masking", "rule"),
    [
        ("公民身份号码", "none", MaskingRule.ID_NUMBER),
        ("法定代表人身份证号", "none", MaskingRule.ID_NUMBER),
        ("联系电话", "none", MaskingRule.PHONE),
        ("居住地址", "none", MaskingRule.ADDRESS),
        ("姓名", "none", MaskingRule.NAME),
        ("法定代表人", "none", MaskingRule.NAME),
        ("养老金发放金额", "none", MaskingRule.HIDE),
        # The item's 开放脱敏 rule, where it has one, is the catalog's own word.
        ("养老金发放金额", "hide", MaskingRule.HIDE),
        ("姓名", "address", MaskingRule.ADDRESS),
    ],
)
def test_a_sensitive_item_is_masked_by_what_it_holds(
    name: str, open_masking: str, rule: MaskingRule
) -> None:
    assert suggested_rule(name, open_masking) is rule


# Text as a column may hold it: any character (none a lone surrogate, which UTF-8 has
# no form for), of the lengths the rules turn on, and NULLs.
_cells = st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=25)
_id_like = st.none() | st.from_regex(r"[0-9]{6,18}[0-9X]?", fullmatch=True)
# Phone numbers with the blanks around them that ``str.strip`` takes off, the separators
# U+001C–U+001F and the ideographic space among them.
_blanks = st.text(st.sampled_from(" \t\n\x1c\x1f\x85\u3000\u200b"), max_size=2)
_phone_like = st.builds(
    "".join, st.tuples(_blanks, st.from_regex(r"[0-9-]{5,13}", fullmatch=True), _blanks)
)


@pytest.mark.parametrize(
    "rule",
    [
        MaskingRule.NAME,
        MaskingRule.ADDRESS,
        MaskingRule.ID_NUMBER,
        MaskingRule.PHONE,
        MaskingRule.HIDE,
    ],
)
@given(values=st.lists(_cells | _id_like | _phone_like, min_size=1, max_size=40))
def test_a_column_is_masked_in_arrow_as_each_value_would_be(
    rule: MaskingRule, values: list[str | None]
) -> None:
    """The node masks a page read into Arrow column by column: it must show exactly what
    the value-by-value rule shows, with the type the values would get."""
    column = pa.array(values, pa.string())
    masked = mask_column(rule, column)
    expected = pa.array([mask(rule, v) for v in values])
    if masked is None:  # left to the per-value way: NULLs only, or many lengths
        assert column.null_count == len(column) or rule in (
            MaskingRule.ID_NUMBER,
            MaskingRule.PHONE,
        )
        return
    assert masked.type == expected.type
    assert masked.to_pylist() == expected.to_pylist()


def test_what_a_column_is_not_masked_in_arrow_for() -> None:
    """Numbers (Python's text of them), a column of NULLs (no type to give it) and IDs
    of more lengths than it is worth passes for."""
    assert mask_column(MaskingRule.NAME, pa.array([1.5, 2.0])) is None
    assert mask_column(MaskingRule.NAME, pa.array([None, None], pa.string())) is None
    assert mask_column(MaskingRule.NONE, pa.array(["张三"])) is None
    many = pa.array(["1" * n for n in range(1, 30)])
    assert mask_column(MaskingRule.ID_NUMBER, many) is None
    # Under 完全遮蔽 any type is four stars.
    hidden = mask_column(MaskingRule.HIDE, pa.array([1.5, None, 3.0]))
    assert hidden is not None
    assert hidden.to_pylist() == [STARS, None, STARS]
