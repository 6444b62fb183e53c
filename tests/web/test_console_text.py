"""The console shows the Chinese of a message; the API keeps its English gloss."""

from __future__ import annotations

import pytest

from govshare.errors import SeparationOfDuties, console_text
from govshare.web.forms import FormErrors


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "不能对本人提交的目录执行“注册审核通过”，须由其他审核人办理 (separation of duties)",
            "不能对本人提交的目录执行“注册审核通过”，须由其他审核人办理",
        ),
        ("必填 (field required)", "必填"),
        ("与已有数据重复（already exists）", "与已有数据重复"),
        # Chinese in brackets, or a gloss that is not at the end, is the message itself.
        ("共享目录（已发布）", "共享目录（已发布）"),
        ("数据长度 (字节) 不能为空", "数据长度 (字节) 不能为空"),
        # A message that is nothing but English is not swallowed.
        ("(internal error)", "(internal error)"),
    ],
)
def test_the_english_gloss_is_dropped(message: str, shown: str) -> None:
    assert console_text(message) == shown


def test_form_errors_carry_only_the_chinese() -> None:
    exc = SeparationOfDuties("不能裁决本人提出或答复的申请 (separation of duties)")
    errors = FormErrors(exc.message, [{"field": "decision", "message": "必填 (field required)"}])
    assert errors.message == "不能裁决本人提出或答复的申请"
    assert errors.get("decision") == ["必填"]
    assert "separation of duties" in exc.to_dict()["error"]["message"]  # the API keeps both
