"""Every action the platform writes to the audit log has a Chinese label, so the
auditor's page names it and offers it in its action filter. Found by reading the code:
the literal action of every ``audit.record`` and ``audit.Pending``, the data-service
actions, and the actions named from lifecycle steps and task states."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import govshare
from govshare.catalog.service import STEPS
from govshare.security.pages import ACTION_LABELS
from govshare.security.roles import Permission

SOURCE = Path(govshare.__file__).parent
ACTION = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


def _recorded() -> set[str]:
    actions: set[str] = set()
    permissions = {p.value for p in Permission}
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                arg: ast.expr | None = None
                if name == "record" and len(node.args) >= 3:
                    arg = node.args[2]
                elif name == "Pending":
                    given = [k.value for k in node.keywords if k.arg == "action"]
                    arg = given[0] if given else (node.args[1] if len(node.args) > 1 else None)
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    actions.add(arg.value)
            # The data services name their calls' actions as plain strings.
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith("data.")
                and ACTION.match(node.value)
                and node.value not in permissions
            ):
                actions.add(node.value)
    actions |= {f"catalog.resource.{name}" for name in STEPS}
    actions |= {"exchange.task.start", "exchange.task.stop"}
    return actions


def test_every_recorded_action_has_a_chinese_label() -> None:
    recorded = _recorded()
    assert len(recorded) > 50  # the scan found the platform's actions at all
    assert sorted(recorded - ACTION_LABELS.keys()) == []
    assert all(re.search(r"[\u4e00-\u9fff]", label) for label in ACTION_LABELS.values())
