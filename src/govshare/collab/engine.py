"""The BPMN engine behind business collaboration: SpiffWorkflow, fenced in.

A definition is parsed and checked once at upload (``check_definition``): well-formed
XML, the BPMN schema, SpiffWorkflow's own parser, then the platform's rules — only the
elements it can run, every gateway and task connected, every user task assigned to a
department, every service task naming a platform service, and every expression a plain
comparison (no calls, no attributes: an uploaded file never runs code in the hub).
Each problem names the element id and the line of the file.

Running cases are SpiffWorkflow workflows serialized to JSON (``dump``/``load``); the
expressions are evaluated without builtins, and service tasks call the platform
through ``Services``, set per step.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.parser.ValidationException import (  # type: ignore[import-untyped]
    ValidationException,
)
from SpiffWorkflow.bpmn.script_engine import (  # type: ignore[import-untyped]
    PythonScriptEngine,
    TaskDataEnvironment,
)
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # type: ignore[import-untyped]
from SpiffWorkflow.exceptions import SpiffWorkflowException  # type: ignore[import-untyped]
from SpiffWorkflow.spiff.parser.process import (  # type: ignore[import-untyped]
    VALIDATOR,
    SpiffBpmnParser,
)
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # type: ignore[import-untyped]
from SpiffWorkflow.util.task import TaskState  # type: ignore[import-untyped]

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
DEFAULT_WORKING_DAYS = 5
MAX_WORKING_DAYS = 365
# The process property naming the approval item's (事项) legal time limit for a case.
TIME_LIMIT = "time_limit_days"
MAX_BPMN_BYTES = 2_000_000

# What a platform process may contain. Script tasks and call activities are refused:
# the first would run uploaded Python in the hub, the second needs files not uploaded.
_FLOW_NODES = {
    "startEvent",
    "endEvent",
    "userTask",
    "serviceTask",
    "manualTask",
    "task",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
}
_OTHER_ALLOWED = {
    "process",
    "sequenceFlow",
    "laneSet",
    "lane",
    "flowNodeRef",
    "incoming",
    "outgoing",
    "conditionExpression",
    "extensionElements",
    "documentation",
    "collaboration",
    "participant",
    "textAnnotation",
    "text",
    "association",
}
_GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway"}
_TAG_LABELS = {
    "scriptTask": "脚本任务",
    "callActivity": "调用活动",
    "subProcess": "子流程",
    "businessRuleTask": "业务规则任务",
    "sendTask": "发送任务",
    "receiveTask": "接收任务",
    "intermediateCatchEvent": "中间捕获事件",
    "intermediateThrowEvent": "中间抛出事件",
    "boundaryEvent": "边界事件",
    "eventBasedGateway": "事件网关",
    "complexGateway": "复杂网关",
}

# Service operations a process may call (the platform's own services).
SERVICE_OPERATIONS = {"verify": "核验"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One fault of an uploaded definition: the element, its line, what is wrong."""

    element_id: str
    line: int | None
    message: str

    def as_detail(self) -> dict[str, Any]:
        where = f"第 {self.line} 行" if self.line else "位置不明"
        element = self.element_id or "(文件)"
        return {
            "field": element,
            "element_id": self.element_id,
            "line": self.line,
            "message": f"{where}，元素 {element}：{self.message}",
        }


class DefinitionProblems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class UserTaskInfo:
    element_id: str
    name: str
    department: str  # as written in the file (lane or ``department`` property)
    working_days: int


@dataclass(frozen=True, slots=True)
class ServiceTaskInfo:
    element_id: str
    name: str
    operation: str
    result_variable: str
    params: dict[str, str]


@dataclass
class CheckedDefinition:
    """A definition that parsed and passed the platform's rules."""

    process_key: str
    name: str
    time_limit_days: int | None = None  # 办结时限 of a whole case, in working days
    user_tasks: list[UserTaskInfo] = field(default_factory=list)
    service_tasks: list[ServiceTaskInfo] = field(default_factory=list)


# -- safe expressions ----------------------------------------------------------------

_SAFE_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Subscript,
)


def expression_problem(expression: str) -> str | None:
    """Why ``expression`` may not run in the hub, or None for a plain comparison of
    case data (names, constants, ``in``, ``and``/``or``/``not``, subscripts)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        return f"表达式语法错误: {exc.msg} (syntax error)"
    for node in ast.walk(tree):
        if not isinstance(node, _SAFE_NODES):
            return f"表达式只能比较办件数据，不允许 {type(node).__name__} (expression not allowed)"
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return "表达式不能引用下划线开头的名称 (name not allowed)"
    return None


class _Engine(PythonScriptEngine):  # type: ignore[misc]
    """Evaluates checked expressions without builtins; service tasks go to ``call``
    with their evaluated parameters and the task's name."""

    def __init__(self, call: Callable[[str, dict[str, Any], str], Any]) -> None:
        super().__init__(environment=TaskDataEnvironment({"__builtins__": {}}))
        self._call = call

    def call_service(self, task: Any, **kwargs: Any) -> str:
        params = {k: v["value"] for k, v in kwargs["operation_params"].items()}
        name = task.task_spec.bpmn_name or task.task_spec.bpmn_id
        return json.dumps(self._call(kwargs["operation_name"], params, name))


def script_engine(call: Callable[[str, dict[str, Any], str], Any]) -> Any:
    return _Engine(call)


# -- parsing and checking ------------------------------------------------------------


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def line_of(root: Any, element_id: str) -> int | None:
    if not element_id:
        return None
    found = root.xpath("//*[@id=$id]", id=element_id)
    return int(found[0].sourceline) if found else None


def _spiff_problem(root: Any, exc: ValidationException) -> Problem:
    element_id = str(getattr(exc, "id", "") or "")
    line = line_of(root, element_id)
    if line is None and str(getattr(exc, "line_number", "")).isdigit():
        line = int(exc.line_number)
    text = str(exc).strip().rstrip(".").strip()
    return Problem(element_id, line, f"BPMN 解析错误: {text}")


def parse_xml(data: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else None
        raise DefinitionProblems(
            [Problem("", line, f"不是格式正确的 XML: {exc.msg} (malformed XML)")]
        ) from None


def spec_of(data: bytes, process_key: str) -> Any:
    """The parsed process spec of a stored (already checked) definition."""
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(data, filename="definition.bpmn")
    return parser.get_spec(process_key)


_specs: dict[str, Any] = {}


def cached_spec(sha256: str, data: str, process_key: str) -> Any:
    """A stored definition's spec, parsed once per process (definitions never change)."""
    spec = _specs.get(sha256)
    if spec is None:
        if len(_specs) > 256:
            _specs.clear()
        spec = _specs[sha256] = spec_of(data.encode(), process_key)
    return spec


def _properties(el: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for prop in el.iter(f"{{{SPIFF}}}property"):
        out[prop.get("name", "")] = prop.get("value", "")
    return out


def _own_properties(el: Any) -> dict[str, tuple[str, int | None]]:
    """The element's own ``spiffworkflow:property`` values with their lines — for a
    process, not those of the tasks inside it."""
    out: dict[str, tuple[str, int | None]] = {}
    for ext in el.findall(f"{{{BPMN}}}extensionElements"):
        for props in ext.findall(f"{{{SPIFF}}}properties"):
            for prop in props.findall(f"{{{SPIFF}}}property"):
                out[prop.get("name", "")] = (prop.get("value", ""), prop.sourceline)
    return out


def _days_problem(days: str) -> str | None:
    if not days.isdigit() or not 1 <= int(days) <= MAX_WORKING_DAYS:
        return f"须为 1 到 {MAX_WORKING_DAYS} 的整数，实为 {days!r}"
    return None


def _time_limit_problems(process: Any) -> list[Problem]:
    """办结时限: the process's ``time_limit_days`` (the approval item's legal limit for a
    whole case, in working days) is optional; given, it is a number of days no task
    of the process may exceed."""
    value, line = _own_properties(process).get(TIME_LIMIT, ("", None))
    if not value:
        return []
    if msg := _days_problem(value):
        return [Problem(process.get("id", ""), line, f"办结时限 {TIME_LIMIT} {msg}")]
    problems = []
    for el in process.iter(f"{{{BPMN}}}userTask"):
        days = _properties(el).get("working_days", str(DEFAULT_WORKING_DAYS))
        if days.isdigit() and int(days) > int(value):
            problems.append(
                Problem(
                    el.get("id", ""),
                    el.sourceline,
                    f"任务办理时限 {days} 个工作日超过流程的办结时限 {value} 个工作日",
                )
            )
    return problems


def check_definition(data: bytes) -> CheckedDefinition:
    """Parse and check a BPMN file; raise ``DefinitionProblems`` naming each fault."""
    if len(data) > MAX_BPMN_BYTES:
        raise DefinitionProblems([Problem("", None, "文件过大 (file too large)")])
    root = parse_xml(data)
    if _local(root.tag) != "definitions" or etree.QName(root.tag).namespace != BPMN:
        raise DefinitionProblems(
            [Problem("", root.sourceline, "不是 BPMN 2.0 文件 (root is not bpmn:definitions)")]
        )
    processes = [p for p in root if _local(p.tag) == "process"]
    executable = [p for p in processes if p.get("isExecutable", "true") != "false"]
    if len(executable) != 1:
        raise DefinitionProblems(
            [
                Problem(
                    "",
                    root.sourceline,
                    f"文件须恰好包含一个可执行流程，实有 {len(executable)} 个 "
                    "(exactly one executable process expected)",
                )
            ]
        )
    process = executable[0]
    problems = _platform_problems(process)
    if problems:
        raise DefinitionProblems(problems)
    parser = SpiffBpmnParser(validator=VALIDATOR)
    try:
        parser.add_bpmn_str(data, filename="definition.bpmn")
        parser.get_spec(process.get("id"))
    except ValidationException as exc:
        raise DefinitionProblems([_spiff_problem(root, exc)]) from None
    except SpiffWorkflowException as exc:
        raise DefinitionProblems([Problem("", None, f"BPMN 解析错误: {exc}")]) from None
    return _describe(process)


def _lanes(process: Any) -> dict[str, str]:
    """Flow node id → lane name."""
    out: dict[str, str] = {}
    for lane in process.iter(f"{{{BPMN}}}lane"):
        for ref in lane.findall(f"{{{BPMN}}}flowNodeRef"):
            out[(ref.text or "").strip()] = lane.get("name", "").strip()
    return out


def _platform_problems(process: Any) -> list[Problem]:
    problems: list[Problem] = []
    nodes: dict[str, Any] = {}
    incoming: dict[str, int] = {}
    outgoing: dict[str, int] = {}
    lanes = _lanes(process)
    for el in process.iter():
        tag = _local(el.tag)
        if not tag or etree.QName(el.tag).namespace != BPMN:
            continue
        if tag in _FLOW_NODES:
            nodes[el.get("id", "")] = el
        elif tag not in _OTHER_ALLOWED:
            label = _TAG_LABELS.get(tag, tag)
            problems.append(
                Problem(el.get("id", ""), el.sourceline, f"平台流程不支持{label} ({tag})")
            )
    for flow in process.iter(f"{{{BPMN}}}sequenceFlow"):
        src, dst = flow.get("sourceRef", ""), flow.get("targetRef", "")
        for end, what in ((src, "起点"), (dst, "终点")):
            if end not in nodes:
                problems.append(
                    Problem(
                        flow.get("id", ""),
                        flow.sourceline,
                        f"连线的{what} {end or '(空)'} 不存在 (dangling sequence flow)",
                    )
                )
        outgoing[src] = outgoing.get(src, 0) + 1
        incoming[dst] = incoming.get(dst, 0) + 1
        cond = flow.find(f"{{{BPMN}}}conditionExpression")
        if cond is not None and (msg := expression_problem(cond.text or "")):
            problems.append(Problem(flow.get("id", ""), cond.sourceline, msg))
    for node_id, el in nodes.items():
        tag = _local(el.tag)
        ins, outs = incoming.get(node_id, 0), outgoing.get(node_id, 0)
        if tag in _GATEWAYS:
            if ins == 0 or outs == 0:
                problems.append(
                    Problem(
                        node_id,
                        el.sourceline,
                        f"网关须有进入和离开的连线（进 {ins}，出 {outs}）"
                        "(gateway needs incoming and outgoing flows)",
                    )
                )
            elif ins == 1 and outs == 1:
                problems.append(
                    Problem(
                        node_id,
                        el.sourceline,
                        "网关只有一进一出，既不分支也不汇聚 (gateway neither splits nor joins)",
                    )
                )
        elif tag != "startEvent" and ins == 0:
            problems.append(
                Problem(node_id, el.sourceline, "没有进入的连线，永远不会执行 (unreachable)")
            )
        elif tag != "endEvent" and outs == 0:
            problems.append(
                Problem(node_id, el.sourceline, "没有离开的连线，流程会停在这里 (dead end)")
            )
        if tag == "userTask":
            props = _properties(el)
            if not (props.get("department") or lanes.get(node_id)):
                problems.append(
                    Problem(
                        node_id,
                        el.sourceline,
                        "用户任务须指定办理部门（泳道名称或 department 属性）"
                        "(user task without a department)",
                    )
                )
            days = props.get("working_days", str(DEFAULT_WORKING_DAYS))
            if msg := _days_problem(days):
                problems.append(Problem(node_id, el.sourceline, f"办理时限 working_days {msg}"))
        if tag == "serviceTask":
            problems.extend(_service_problems(node_id, el))
    if not any(_local(n.tag) == "startEvent" for n in nodes.values()):
        problems.append(Problem(process.get("id", ""), process.sourceline, "流程没有开始事件"))
    if not any(_local(n.tag) == "endEvent" for n in nodes.values()):
        problems.append(Problem(process.get("id", ""), process.sourceline, "流程没有结束事件"))
    return problems + _time_limit_problems(process)


def _service_problems(node_id: str, el: Any) -> list[Problem]:
    operator = el.find(f".//{{{SPIFF}}}serviceTaskOperator")
    if operator is None:
        return [
            Problem(
                node_id,
                el.sourceline,
                "服务任务须指定平台服务（serviceTaskOperator）(service task without operator)",
            )
        ]
    problems = []
    name = operator.get("id", "")
    if name not in SERVICE_OPERATIONS:
        known = "、".join(SERVICE_OPERATIONS)
        problems.append(
            Problem(node_id, operator.sourceline, f"未知的平台服务 {name!r}，可用: {known}")
        )
    params = {p.get("id", ""): p for p in operator.iter(f"{{{SPIFF}}}parameter")}
    if name == "verify":
        for needed in ("resource", "key"):
            if needed not in params:
                problems.append(Problem(node_id, operator.sourceline, f"核验服务缺少参数 {needed}"))
    for pid, p in params.items():
        if msg := expression_problem(p.get("value", "")):
            problems.append(Problem(node_id, p.sourceline, f"参数 {pid}: {msg}"))
    return problems


def _describe(process: Any) -> CheckedDefinition:
    lanes = _lanes(process)
    limit = _own_properties(process).get(TIME_LIMIT, ("", None))[0]
    out = CheckedDefinition(
        process.get("id", ""),
        process.get("name") or process.get("id", ""),
        int(limit) if limit else None,
    )
    for el in process.iter(f"{{{BPMN}}}userTask"):
        props = _properties(el)
        out.user_tasks.append(
            UserTaskInfo(
                el.get("id", ""),
                el.get("name") or el.get("id", ""),
                props.get("department") or lanes.get(el.get("id", ""), ""),
                int(props.get("working_days", DEFAULT_WORKING_DAYS)),
            )
        )
    for el in process.iter(f"{{{BPMN}}}serviceTask"):
        operator = el.find(f".//{{{SPIFF}}}serviceTaskOperator")
        params = {
            p.get("id", ""): p.get("value", "") for p in operator.iter(f"{{{SPIFF}}}parameter")
        }
        out.service_tasks.append(
            ServiceTaskInfo(
                el.get("id", ""),
                el.get("name") or el.get("id", ""),
                operator.get("id", ""),
                operator.get("resultVariable") or f"spiff__{el.get('id', '')}_result",
                params,
            )
        )
    return out


# -- running ---------------------------------------------------------------------------

_serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


def new_workflow(spec: Any, data: Mapping[str, Any], engine: Any) -> Any:
    workflow = BpmnWorkflow(spec, script_engine=engine)
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(data)
    return workflow


def _workflow_converter() -> Any:
    """SpiffWorkflow's converter of a top-level workflow (its registry keeps it behind
    the restore function it registered)."""
    registry = _serializer.registry
    return registry.convert_from_dict[registry.typenames[BpmnWorkflow]].args[0].__self__


def dump(workflow: Any) -> str:
    """The workflow's state as JSON, without its process spec: the definition version
    the case keeps is in the database already, and restoring the spec from every step's
    JSON cost half of each load."""
    registry = _serializer.registry
    registry._encoder_mode = True
    try:
        dct = _serializer.to_dict(workflow)
    finally:
        registry._encoder_mode = False
    del dct["spec"]
    del dct["subprocess_specs"]
    dct[_serializer.VERSION_KEY] = _serializer.VERSION
    return json.dumps(dct, cls=_serializer._encoder_cls)


def load(state: str, engine: Any, spec: Any) -> Any:
    """A workflow from ``dump``'s JSON on its definition version's ``spec`` (what
    ``BpmnWorkflowConverter.from_dict`` does, with the spec given)."""
    dct = json.loads(state, cls=_serializer.json_decoder_cls)
    _serializer.migrate(dct)
    converter = _workflow_converter()
    workflow = BpmnWorkflow(spec, {}, deserializing=True)
    workflow.tasks = converter.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
    workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
    converter.set_default_attributes(workflow, dct)
    converter.subprocesses_from_dict(dct["subprocesses"], workflow)
    workflow.bpmn_events = _serializer.registry.restore(dct.pop("bpmn_events", []))
    workflow.script_engine = engine
    return workflow


def ready_user_tasks(workflow: Any) -> list[Any]:
    return [
        t
        for t in workflow.get_tasks(state=TaskState.READY, manual=True)
        if type(t.task_spec).__name__ == "UserTask"
    ]


def is_completed(workflow: Any) -> bool:
    return bool(workflow.is_completed())
