"""内置比对模板: the six cross-department comparisons the platform ships, each a job
definition a bureau instantiates with one click and then adjusts.

A template names its inputs by the catalog entry's **name** (目录名称), which reads the
same in every city's catalog, where the code (目录代码) each hub assigns differs:
``instantiate`` resolves the names to the codes of the listed entries. The demo
(``govshare.demo_compare``) publishes these entries, feeds their stores and plants a
known set of anomalies for each template to find.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.compare.errors import InvalidJob
from govshare.compare.schemas import JobCreate

# Keys are compared the way people write them: full-width digits, stray blanks, a small
# x; ID numbers of before 1999 have 15 digits.
PERSON_KEY = ["width", "trim", "upper", "id18"]
CODE_KEY = ["width", "trim", "upper"]


@dataclass(frozen=True, slots=True)
class Template:
    """比对模板: a job definition with its inputs named by catalog entry name.

    ``department`` is the short name of the department that follows the cases up (线索
    核查部门, 人社 for pensions); ``definition`` is a ``Definition`` in its JSON form."""

    code: str
    name: str
    description: str
    department: str
    definition: dict[str, Any]


def _link(alias: str, left: str, right: str, match: str, normalize: list[str]) -> dict[str, Any]:
    return {
        "input": alias,
        "on": [{"left": left, "right": right}],
        "normalize": list(normalize),
        "match": match,
    }


TEMPLATES: list[Template] = [
    Template(
        code="dead_pension",
        name="死亡人员仍领取养老金",
        description=(
            "将人社部门的养老金发放记录与人口基础信息库的死亡日期比对，找出发放日期晚于"
            "死亡日期的发放记录，按领取人归集为线索，涉及金额为死亡后发放的养老金合计。"
            "死亡日期取人口库的权威值（卫健死亡医学证明），避免单一部门登记差错造成误报；"
            "公民身份号码按全半角、空白、大小写规范化，15 位旧号码升为 18 位后再关联。"
        ),
        department="人社",
        definition={
            "inputs": [
                {
                    "alias": "pay",
                    "resource": "养老金发放信息",
                    "items": ["sfzhm", "xm", "ffny", "ffrq", "ffje"],
                },
                {"alias": "ppl", "resource": "人口基础信息库", "items": ["sfzhm", "swrq"]},
            ],
            "links": [_link("ppl", "pay.sfzhm", "sfzhm", "present", PERSON_KEY)],
            "conditions": [{"left": "pay.ffrq", "op": ">", "right": "ppl.swrq"}],
            "output": ["pay.sfzhm", "pay.xm", "pay.ffny", "pay.ffrq", "pay.ffje", "ppl.swrq"],
            "case_key": ["pay.sfzhm"],
            "amount": "pay.ffje",
        },
    ),
    Template(
        code="unemployed_employed",
        name="就业期间仍领取失业保险金",
        description=(
            "将失业保险金发放记录与就业登记比对，找出在新的就业登记日期当天或之后仍发放的"
            "失业保险金，按领取人归集，涉及金额为就业后领取的失业保险金合计。只比对就业"
            "状态为“就业”的登记：失业前原单位的登记已转为失业状态，不构成线索。"
        ),
        department="人社",
        definition={
            "inputs": [
                {
                    "alias": "pay",
                    "resource": "失业保险金领取信息",
                    "items": ["sfzhm", "xm", "ffrq", "ylqje"],
                },
                {
                    "alias": "emp",
                    "resource": "就业登记信息",
                    "items": ["sfzhm", "jydw", "jyrq", "jyzt"],
                },
            ],
            "links": [_link("emp", "pay.sfzhm", "sfzhm", "present", PERSON_KEY)],
            "conditions": [
                {"left": "emp.jyzt", "op": "=", "value": "1"},
                {"left": "pay.ffrq", "op": ">=", "right": "emp.jyrq"},
            ],
            "output": ["pay.sfzhm", "pay.xm", "pay.ffrq", "pay.ylqje", "emp.jydw", "emp.jyrq"],
            "case_key": ["pay.sfzhm"],
            "amount": "pay.ylqje",
        },
    ),
    Template(
        code="housing_no_hukou",
        name="住房保障申请人无本市户籍",
        description=(
            "将住建部门的住房保障申请与公安常住人口信息比对，找出在本市没有户籍登记的申请人"
            "（已审核不通过的申请除外），供住建部门核实申请资格。"
        ),
        department="住建",
        definition={
            "inputs": [
                {
                    "alias": "app",
                    "resource": "住房保障申请信息",
                    "items": ["sfzhm", "xm", "sqlx", "jtrk", "shjg"],
                },
                {"alias": "hj", "resource": "常住人口基本信息", "items": ["sfzhm"]},
            ],
            "links": [_link("hj", "app.sfzhm", "sfzhm", "absent", PERSON_KEY)],
            "conditions": [{"left": "app.shjg", "op": "!=", "value": "03"}],
            "output": ["app.sfzhm", "app.xm", "app.sqlx", "app.jtrk", "app.shjg"],
            "case_key": ["app.sfzhm"],
        },
    ),
    Template(
        code="registered_untaxed",
        name="已登记未办理税务登记企业",
        description=(
            "将市场监管部门的存续市场主体与税务登记比对，找出没有以其统一社会信用代码"
            "作为纳税人识别号办理税务登记的企业。三证合一后纳税人识别号即统一社会信用代码；"
            "代码按全半角、空白、大小写规范化后关联，税务录入校验位错误的仍为线索。"
        ),
        department="税务",
        definition={
            "inputs": [
                {
                    "alias": "reg",
                    "resource": "市场主体登记信息",
                    "items": ["tyshxydm", "qymc", "fddbr", "clrq", "djjg", "djzt"],
                },
                {"alias": "tax", "resource": "税务登记信息", "items": ["nsrsbh"]},
            ],
            "links": [_link("tax", "reg.tyshxydm", "nsrsbh", "absent", CODE_KEY)],
            "conditions": [{"left": "reg.djzt", "op": "=", "value": "1"}],
            "output": ["reg.tyshxydm", "reg.qymc", "reg.fddbr", "reg.clrq", "reg.djjg"],
            "case_key": ["reg.tyshxydm"],
        },
    ),
    Template(
        code="migrant_no_permit",
        name="就业流动人口未办理居住证",
        description=(
            "将人社部门的就业登记与公安常住人口信息、居住证办理信息比对，找出在本市就业、"
            "没有本市户籍也没有办理居住证的流动人口，供公安部门督促办理居住登记。"
        ),
        department="公安",
        definition={
            "inputs": [
                {
                    "alias": "emp",
                    "resource": "就业登记信息",
                    "items": ["sfzhm", "xm", "jydw", "jyrq", "jyzt"],
                },
                {"alias": "hj", "resource": "常住人口基本信息", "items": ["sfzhm"]},
                {"alias": "jzz", "resource": "居住证办理信息", "items": ["sfzhm"]},
            ],
            "links": [
                _link("hj", "emp.sfzhm", "sfzhm", "absent", PERSON_KEY),
                _link("jzz", "emp.sfzhm", "sfzhm", "absent", PERSON_KEY),
            ],
            "conditions": [{"left": "emp.jyzt", "op": "=", "value": "1"}],
            "output": ["emp.sfzhm", "emp.xm", "emp.jydw", "emp.jyrq"],
            "case_key": ["emp.sfzhm"],
        },
    ),
    Template(
        code="disability_quota",
        name="残疾人就业保障金虚报",
        description=(
            "将用人单位按比例安排残疾人就业的申报明细与残联核发的残疾人证比对，找出申报的"
            "残疾职工没有残疾人证的单位，按单位归集为线索，涉及金额为这些职工折抵的残疾人"
            "就业保障金合计。"
        ),
        department="残联",
        definition={
            "inputs": [
                {
                    "alias": "sb",
                    "resource": "按比例安排残疾人就业申报明细",
                    "items": ["tyshxydm", "qymc", "sfzhm", "xm", "cjrzh", "sbnd", "zdje"],
                },
                {"alias": "cjz", "resource": "残疾人证信息", "items": ["sfzhm"]},
            ],
            "links": [_link("cjz", "sb.sfzhm", "sfzhm", "absent", PERSON_KEY)],
            "output": ["sb.tyshxydm", "sb.qymc", "sb.sfzhm", "sb.xm", "sb.cjrzh", "sb.zdje"],
            "case_key": ["sb.tyshxydm"],
            "amount": "sb.zdje",
        },
    ),
]


def get_template(code: str) -> Template:
    """The built-in template of that code."""
    for template in TEMPLATES:
        if template.code == code:
            return template
    raise InvalidJob.about(f"比对模板 {code} 不存在", "template", "没有这个内置模板")


def _resource_code(session: Session, template: Template, name: str, field: str) -> str:
    """The code of the one listed catalog entry called ``name``."""
    codes = list(
        session.scalars(
            select(Resource.code)
            .where(
                Resource.name == name,
                Resource.listed.is_(True),
                Resource.published_version.is_not(None),
            )
            .order_by(Resource.id)
        )
    )
    if not codes:
        raise InvalidJob.about(
            f"比对模板“{template.name}”所需的目录“{name}”不存在或未发布", field, "目录未发布"
        )
    if len(codes) > 1:
        raise InvalidJob.about(
            f"比对模板“{template.name}”所需的目录“{name}”有 {len(codes)} 条同名已发布目录，"
            "请手工选择",
            field,
            "同名目录：" + "、".join(codes),
        )
    return codes[0]


def instantiate(session: Session, code: str, department_id: int) -> JobCreate:
    """A new job from the template ``code``, its inputs resolved to the codes of the
    listed entries, for ``department_id`` to follow the cases up; not saved."""
    template = get_template(code)
    definition = copy.deepcopy(template.definition)
    for i, entry in enumerate(definition["inputs"]):
        entry["resource"] = _resource_code(
            session, template, entry["resource"], f"inputs.{i}.resource"
        )
    body = {
        **definition,
        "name": template.name,
        "description": template.description,
        "department_id": department_id,
        "template": template.code,
    }
    try:
        return JobCreate.model_validate(body)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        raise InvalidJob(f"比对模板“{template.name}”无法生成任务", details=details) from exc
