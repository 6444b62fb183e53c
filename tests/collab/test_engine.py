"""The engine's fence: what a definition may contain, and the built-in processes."""

from __future__ import annotations

import pytest

from govshare.collab import engine
from tests.collab.scenery import BUILTIN


@pytest.mark.parametrize(
    ("expression", "allowed"),
    [
        ("'最低生活保障' in help_kinds", True),
        ("v_dibao == 'yes' and not v_canji == 'no'", True),
        ("household_ids[0]", True),
        ("__import__('os')", False),
        ("help_kinds.__class__", False),
        ("len(help_kinds) > 1", False),
        ("_secret", False),
        ("(lambda: 1)()", False),
        ("1 +", False),
    ],
)
def test_only_plain_comparisons_of_case_data_are_expressions(
    expression: str, allowed: bool
) -> None:
    assert (engine.expression_problem(expression) is None) is allowed


@pytest.mark.parametrize(("name", "tasks"), [("assistance", 3), ("enterprise", 5)])
def test_the_built_in_processes_fan_out_to_their_departments(name: str, tasks: int) -> None:
    data = (BUILTIN / f"{name}.bpmn").read_bytes()
    checked = engine.check_definition(data)
    assert len(checked.user_tasks) == tasks
    assert all(t.department and t.working_days >= 1 for t in checked.user_tasks)
    spec = engine.spec_of(data, checked.process_key)
    calls: list[str] = []
    workflow = engine.new_workflow(
        spec,
        {"applicant_id": "370202199001011234"},
        engine.script_engine(lambda _op, _params, name: calls.append(name) or "no"),
    )
    workflow.do_engine_steps()
    ready = engine.ready_user_tasks(workflow)
    assert len(ready) == tasks  # all at once: a parallel fan-out
    assert calls == [t.name for t in checked.service_tasks]
    restored = engine.load(engine.dump(workflow), engine.script_engine(lambda *_: "no"), spec)
    assert {t.id for t in engine.ready_user_tasks(restored)} == {t.id for t in ready}
    for task in engine.ready_user_tasks(restored):
        task.run()
        restored.do_engine_steps()
    assert engine.is_completed(restored)


def test_a_script_task_is_refused_with_its_element() -> None:
    data = (BUILTIN / "assistance.bpmn").read_text(encoding="utf-8")
    evil = data.replace(
        '<bpmn:parallelGateway id="fan_in" name="汇总答复"/>',
        '<bpmn:parallelGateway id="fan_in" name="汇总答复"/>\n'
        '    <bpmn:scriptTask id="evil"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>',
    )
    with pytest.raises(engine.DefinitionProblems) as caught:
        engine.check_definition(evil.encode())
    found = {p.element_id: p for p in caught.value.problems}
    assert "脚本任务" in found["evil"].message
    assert found["evil"].line == 1 + evil.splitlines().index(
        next(line for line in evil.splitlines() if 'id="evil"' in line)
    )


def test_a_process_names_the_time_limit_of_a_whole_case() -> None:
    checked = {
        name: engine.check_definition((BUILTIN / f"{name}.bpmn").read_bytes())
        for name in ("assistance", "enterprise")
    }
    assert checked["assistance"].time_limit_days == 20
    assert checked["enterprise"].time_limit_days == 3
    # A task's property of the same name is not the process's.
    data = (BUILTIN / "assistance.bpmn").read_text(encoding="utf-8")
    start = data.index("<bpmn:extensionElements>")
    bare = data[:start] + data[data.index("</bpmn:extensionElements>", start) + 25 :]
    bare = bare.replace(
        '<spiffworkflow:property name="working_days" value="15"/>',
        '<spiffworkflow:property name="working_days" value="15"/>'
        '<spiffworkflow:property name="time_limit_days" value="1"/>',
    )
    assert engine.check_definition(bare.encode()).time_limit_days is None


@pytest.mark.parametrize(
    ("limit", "element", "message"),
    [
        ("二十", "assistance_one_window", "办结时限 time_limit_days 须为 1 到 365 的整数"),
        ("0", "assistance_one_window", "办结时限 time_limit_days 须为 1 到 365 的整数"),
        ("12", "review_zj", "任务办理时限 15 个工作日超过流程的办结时限 12 个工作日"),
    ],
)
def test_a_wrong_time_limit_is_refused_with_its_line(
    limit: str, element: str, message: str
) -> None:
    data = (BUILTIN / "assistance.bpmn").read_text(encoding="utf-8")
    data = data.replace(
        'name="time_limit_days" value="20"', f'name="time_limit_days" value="{limit}"'
    )
    with pytest.raises(engine.DefinitionProblems) as caught:
        engine.check_definition(data.encode())
    found = {p.element_id: p for p in caught.value.problems}
    assert message in found[element].message
    needle = "time_limit_days" if element == "assistance_one_window" else 'id="review_zj"'
    assert found[element].line == 1 + next(
        i for i, line in enumerate(data.splitlines()) if needle in line
    )
