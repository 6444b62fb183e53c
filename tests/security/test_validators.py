"""National code checks: GB 32100 credit codes, GB 11643 ID numbers, GB/T 2260 divisions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc

from govshare.security.validators import (
    citizen_id_problem,
    credit_code_problem,
    division_code_problem,
    division_name,
)


@given(st.from_regex(r"\A[19][1-9]370200[0-9A-HJ-NP-RTUW-Y]{9}\Z"))
def test_credit_code_with_computed_check_digit_is_valid(body: str) -> None:
    assert credit_code_problem(body + uscc.calc_check_digit(body)) is None


@given(st.from_regex(r"\A[19][1-9]370200[0-9]{9}\Z"))
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
