"""docs/threat-model.md names, for each threat, the tests that cover its control: every
named test must exist (its file, and the function in it), every threat is either
covered by a test or plainly marked 未实现 with none, and the GB/T 22239 table maps all
six level-3 headings."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "threat-model.md"
TEST_ID = re.compile(r"tests/[\w/]+\.py(?:::\w+)+")
NOT_BUILT = "未实现"
HEADINGS = ("身份鉴别", "访问控制", "安全审计", "完整性", "保密性", "数据备份恢复")


@cache
def _defined(path: Path) -> frozenset[str]:
    """``name`` and ``Class::name`` of every test function a test file defines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(names)


def missing(test_id: str, root: Path = ROOT) -> str | None:
    """Why ``test_id`` names no test in the repository, or None when it does."""
    file, _, name = test_id.partition("::")
    path = root / file
    if not path.is_file():
        return f"{test_id}: no file {file}"
    if name not in _defined(path):
        return f"{test_id}: {file} defines no {name}"
    return None


def _threat_rows() -> list[list[str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if re.match(r"\| T\d+ \|", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_every_listed_test_exists() -> None:
    ids = TEST_ID.findall(DOC.read_text(encoding="utf-8"))
    assert len(ids) >= 60
    problems = [p for test_id in ids if (p := missing(test_id))]
    assert problems == []


def test_a_test_id_that_does_not_exist_is_reported() -> None:
    assert missing("tests/security/test_audit.py::test_edited_entry_is_detected") is None
    assert missing("tests/security/test_audit.py::test_no_such_test") == (
        "tests/security/test_audit.py::test_no_such_test: "
        "tests/security/test_audit.py defines no test_no_such_test"
    )
    assert missing("tests/security/test_nothing.py::test_x") == (
        "tests/security/test_nothing.py::test_x: no file tests/security/test_nothing.py"
    )


def test_every_threat_has_a_test_or_says_it_is_not_built() -> None:
    rows = _threat_rows()
    assert len(rows) >= 20
    for number, _threat, _boundary, control, tests in rows:
        assert control, number
        if tests == NOT_BUILT:
            continue
        assert NOT_BUILT not in tests, f"{number}: 未实现 yet lists tests"
        assert TEST_ID.findall(tests), f"{number}: names no test"


def test_the_gbt_22239_table_maps_every_level_3_heading() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("GB/T 22239") :]
    for heading in HEADINGS:
        assert re.search(rf"^\| {heading} \|", table, re.MULTILINE), heading
    threats = {row[0] for row in _threat_rows()}
    mapped = set(re.findall(r"T\d+", table))
    assert mapped <= threats
    assert threats <= mapped, "threats mapped to no heading"
