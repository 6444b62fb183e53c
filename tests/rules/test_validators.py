"""The platform's validators: national codes (GB 32100, GB 11643, GB/T 2260, GB/T 2261.1),
dates, declared types and lengths, phone numbers, required items, normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc

from govshare.rules.validators import (
    citizen_id_problem,
    credit_code_problem,
    date_order_problem,
    date_problem,
    date_range_problem,
    division_code_problem,
    division_name,
    normalize_date,
    normalize_text,
    phone_problem,
    required_problem,
    sex_code_problem,
    type_problem,
)


@given(st.from_regex(r"\A(1[1239]|9[123])370200[0-9A-HJ-NP-RTUW-Y]{9}\Z"))
def test_credit_code_with_computed_check_digit_is_valid(body: str) -> None:
    assert credit_code_problem(body + uscc.calc_check_digit(body)) is None


@given(st.from_regex(r"\A(1[1239]|9[123])370200[0-9]{9}\Z"))
def test_credit_code_with_wrong_check_digit_is_refused(body: str) -> None:
    right = uscc.calc_check_digit(body)
    wrong = "0" if right != "0" else "1"
    assert credit_code_problem(body + wrong) == "统一社会信用代码校验位不正确"


def test_credit_code_length() -> None:
    assert credit_code_problem("123") == "统一社会信用代码应为18位"


def test_citizen_id() -> None:
    assert citizen_id_problem("11010519491231002X") is None
    assert citizen_id_problem("110105194912310021") is not None
    assert citizen_id_problem("1101") == "公民身份号码应为18位"


def test_division_codes() -> None:
    assert division_name("370200") == "山东省青岛市"
    assert division_code_problem("370202") is None
    assert division_code_problem("37020") == "行政区划代码应为6位数字"
    assert division_code_problem("999999") is not None


# -- the checks added for data quality (table-tested) --------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("11010519491231002X", None),
        ("370202197901209709", None),  # 市南区 since 1983, assigned to someone born in 1979
        ("110105194912310021", "公民身份号码校验位不正确"),
        ("1101051949123100", "公民身份号码应为18位"),
        ("11010519491231002x", "公民身份号码应为17位数字加1位数字或 X"),
        ("110105202302300025", "公民身份号码中的出生日期不存在"),
        ("999999194912310027", "公民身份号码中的行政区划代码 999999 不在 GB/T 2260 代码表中"),
    ],
)
def test_citizen_id_says_what_is_wrong(number: str, expected: str | None) -> None:
    from stdnum.cn import ric

    if expected and ("出生日期" in expected or "行政区划" in expected):
        number = number[:17] + ric.calc_check_digit(number)  # only the named part is wrong
    assert citizen_id_problem(number) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("91370200MA3C4T5R2", None),
        ("Z1370200MA3C4T5R2", "统一社会信用代码的登记管理部门代码 Z 不存在"),
        ("94370200MA3C4T5R2", "统一社会信用代码的机构类别代码 4 不属于登记管理部门 9"),
        ("Y1370200MA3C4T5R2", None),
    ],
)
def test_credit_code_authority_and_type(body: str, expected: str | None) -> None:
    check = uscc.calc_check_digit(body) if body[0] != "Z" else "0"  # Z is outside its alphabet
    assert credit_code_problem(body + check) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", None),
        ("1", None),
        ("2", None),
        ("9", None),
        ("3", "性别代码 3 不在 GB/T 2261.1 中（应为 0、1、2、9）"),
        ("男", "性别代码 男 不在 GB/T 2261.1 中（应为 0、1、2、9）"),
    ],
)
def test_sex_codes(value: str, expected: str | None) -> None:
    assert sex_code_problem(value) == expected


def test_the_catalog_seeds_its_sex_code_table_from_the_validators() -> None:
    from govshare.catalog.codes import DEFAULT_CODE_TABLES

    assert dict(DEFAULT_CODE_TABLES["GB/T 2261.1"]) == {
        "0": "未知的性别",
        "1": "男性",
        "2": "女性",
        "9": "未说明的性别",
    }


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2024-01-31", "2024-01-31"),
        ("20240131", "2024-01-31"),
        ("2024/1/31", "2024-01-31"),
        ("2024.01.31", "2024-01-31"),
        ("2024年1月31日", "2024-01-31"),
        ("２０２４－０１－３１", "2024-01-31"),
        (" 2024-01-31\u3000", "2024-01-31"),
        ("2024-02-29", "2024-02-29"),
        ("2023-02-29", None),
        ("2023-02-30", None),
        ("20231301", None),
        ("2024-1", None),
        ("31/01/2024", None),
        ("", None),
        (None, None),
    ],
)
def test_dates_in_several_forms(value: str | None, iso: str | None) -> None:
    assert normalize_date(value) == iso
    if value:
        assert (date_problem(value) is None) is (iso is not None)


def test_date_objects_are_dates() -> None:
    from datetime import date, datetime

    assert normalize_date(date(2024, 1, 31)) == "2024-01-31"
    assert normalize_date(datetime(2024, 1, 31, 8, 30)) == "2024-01-31"


def test_date_ranges() -> None:
    from datetime import date

    low, high = date(1900, 1, 1), date(2026, 12, 3)
    assert date_range_problem("1899-12-31", earliest=low, latest=high) == (
        "日期 1899-12-31 早于允许的最早日期 1900-01-01"
    )
    assert date_range_problem("2027-01-01", earliest=low, latest=high) == (
        "日期 2027-01-01 晚于允许的最晚日期 2026-12-03"
    )
    assert date_range_problem("2000/1/1", earliest=low, latest=high) is None
    assert date_range_problem("2000-13-01", earliest=low) is not None
    assert date_order_problem("2024-01-01", "20240102") is None
    assert date_order_problem("2024-01-03", "2024-01-02") == (
        "起始日期 2024-01-03 晚于截止日期 2024-01-02"
    )
    assert date_order_problem("x", "2024-01-02") is not None


@pytest.mark.parametrize(
    ("value", "data_type", "length", "ok"),
    [
        ("张三", "C", 4, True),
        ("张三丰", "C", 4, False),  # 6 bytes in GB 18030
        ("abc", "C", None, True),
        ("12.5", "N", 3, True),
        ("12.55", "N", 3, False),
        ("1e3", "N", None, False),
        ("abc", "N", None, False),
        ("12.34", "Y", None, True),
        ("12.345", "Y", None, False),
        ("42", "I", None, True),
        ("4.2", "I", None, False),
        (42, "I", 2, True),
        (123, "I", 2, False),
        ("1.5e-3", "F", None, True),
        ("2024-01-31", "D", None, True),
        ("2024-02-30", "D", None, False),
        ("2024-01-31 08:30:00", "T", None, True),
        ("2024-01-31T25:00", "T", None, False),
        ("是", "L", None, True),
        ("maybe", "L", None, False),
        ("任何内容", "M", None, True),
        ("whatever", "?", None, True),
    ],
)
def test_declared_type_and_length(
    value: object, data_type: str, length: int | None, ok: bool
) -> None:
    assert (type_problem(value, data_type, length) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("13812345678", True),
        ("+86 138 1234 5678", True),
        ("12812345678", False),
        ("1381234567", False),
        ("0532-88888888", True),
        ("053288888888", True),
        ("010-6555123", True),
        ("0532-88888888-123", True),
        ("88888888", False),
        ("0532-0888888", False),
        ("电话", False),
    ],
)
def test_phone_numbers(value: str, ok: bool) -> None:
    assert (phone_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [("x", True), (0, True), ("", False), ("  \u3000 ", False), (None, False)]
)
def test_required(value: object, ok: bool) -> None:
    assert (required_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("青岛市\u3000市南区", "青岛市 市南区"),
        ("  ＡＢＣ１２３  ", "ABC123"),
        ("张\t\n三", "张 三"),
        ("（有限公司）", "(有限公司)"),
        (None, ""),
        (12, "12"),
    ],
)
def test_normalize_text(value: object, normal: str) -> None:
    assert normalize_text(value) == normal
