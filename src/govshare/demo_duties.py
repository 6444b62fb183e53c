"""Demo data of the duty register (部门职责 / 权责清单): each demo department declares the
duties of its 三定方案, most linked to the department's demo entries and one or two
without any, plus a few changes of duties and of systems in the last weeks, so the
register and the catalog's completeness and timeliness show something on first run.

Declared by each department's 目录编目员 (``{abbr}_reg``) through the service, so every
duty has its 职责调整 event and its audit entry like one entered in the console."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.catalog import duties
from govshare.catalog.models import (
    CatalogChangeEvent,
    DepartmentDuty,
    InformationSystem,
    Resource,
)
from govshare.catalog.schemas import DutyChange, DutyCreate, DutyWithdraw, SystemChangeIn
from govshare.security.models import Department
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal

# abbr → [(name, basis, keywords of the department's entries that serve it)]; no
# keyword: a duty the department has not catalogued yet.
DUTIES: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "dsj": [
        ("政务数据共享统筹协调", "三定方案第三条第一项", ()),
        ("公共数据开放管理", "三定方案第三条第二项", ()),
        ("政务信息系统整合共享", "三定方案第三条第四项", ()),
    ],
    "gaj": [
        ("户籍管理", "三定方案第三条第五项", ("常住人口", "户口迁移", "死亡人口")),
        ("居民身份证管理", "三定方案第三条第六项", ("身份证办理",)),
        ("居住证管理", "《居住证暂行条例》", ("居住证",)),
        ("机动车和驾驶人管理", "三定方案第三条第九项", ("机动车登记", "驾驶证")),
        ("出入境管理", "三定方案第三条第十项", ("出入境",)),
        ("治安管理", "三定方案第三条第四项", ()),
    ],
    "rsj": [
        ("社会保险经办管理", "三定方案第三条第三项", ("社会保险参保", "养老金", "企业退休")),
        ("就业促进与失业保险", "三定方案第三条第二项", ("就业登记", "失业保险")),
        ("职业能力建设", "三定方案第三条第五项", ("职业技能鉴定", "职业培训")),
        ("劳动关系管理", "三定方案第三条第七项", ("劳动合同",)),
        ("人才引进服务", "三定方案第三条第六项", ("人才引进",)),
        ("工伤保险与工伤认定", "《工伤保险条例》", ()),
    ],
    "scj": [
        ("市场主体登记注册", "三定方案第三条第二项", ("市场主体登记", "企业年报")),
        ("市场监管综合执法", "三定方案第三条第四项", ("行政处罚",)),
        ("食品安全监督管理", "三定方案第三条第八项", ("食品经营",)),
        ("特种设备安全监督", "三定方案第三条第十项", ("特种设备",)),
        ("计量和标准化管理", "三定方案第三条第十一项", ("计量器具",)),
        ("知识产权保护", "三定方案第三条第十三项", ()),
    ],
    "swj": [
        ("税务登记管理", "《税收征收管理法》第十五条", ("税务登记",)),
        ("纳税信用管理", "《纳税信用管理办法》", ("纳税信用", "完税")),
        ("发票管理", "《发票管理办法》", ("发票",)),
        ("税费申报征收", "三定方案第三条第二项", ("所得税申报", "增值税申报", "出口退税")),
    ],
    "mzj": [
        ("婚姻登记管理", "《婚姻登记条例》", ("婚姻登记",)),
        ("社会救助", "《社会救助暂行办法》", ("最低生活保障", "特困人员", "临时救助")),
        ("殡葬管理", "《殡葬管理条例》", ("殡葬",)),
        ("社会组织登记管理", "三定方案第三条第五项", ("社会组织", "慈善组织")),
        ("养老服务管理", "三定方案第三条第七项", ("养老机构",)),
    ],
    "wjw": [
        ("出生医学证明管理", "《母婴保健法》", ("出生医学证明", "母婴保健")),
        ("死亡医学证明管理", "三定方案第三条第九项", ("死亡医学证明",)),
        ("医疗机构和医护人员执业管理", "三定方案第三条第六项", ("执业注册", "执业许可")),
        ("疾病预防控制", "三定方案第三条第四项", ("预防接种",)),
    ],
    "cl": [
        ("残疾人证管理", "《残疾人证管理办法》", ("残疾人证",)),
        ("残疾人就业服务", "《残疾人就业条例》", ("残疾人就业",)),
        ("残疾人康复和托养服务", "三定方案第三条第三项", ("康复", "托养", "两项补贴")),
    ],
    "zjj": [
        ("商品房预售管理", "《城市商品房预售管理办法》", ("商品房预售", "网签")),
        ("住房保障管理", "三定方案第三条第三项", ("住房保障",)),
        ("建筑市场监管", "三定方案第三条第六项", ("建筑业企业资质", "施工许可")),
        ("物业管理监督", "《物业管理条例》", ()),
    ],
    "bdc": [
        ("不动产统一登记", "《不动产登记暂行条例》", ("不动产登记", "预告登记", "异议登记")),
        ("不动产抵押和查封登记", "《不动产登记暂行条例》第十四条", ("抵押登记", "查封")),
        ("不动产登记资料查询", "《不动产登记资料查询暂行办法》", ()),
    ],
    "tjj": [
        ("统计调查组织实施", "《统计法》", ("经济普查", "人口抽样", "规模以上")),
        ("统计资料公布", "三定方案第三条第五项", ("统计年鉴",)),
        ("统计执法检查", "三定方案第三条第七项", ()),
    ],
    "zrzy": [
        ("国土空间规划许可", "三定方案第三条第四项", ("规划许可",)),
        ("土地出让管理", "三定方案第三条第六项", ("土地出让",)),
        ("测绘地理信息管理", "《测绘法》", ("地理信息", "测绘资质")),
    ],
    "jyj": [
        ("学籍管理", "三定方案第三条第五项", ("学籍",)),
        ("教师资格认定", "《教师资格条例》", ("教师资格",)),
        ("民办教育管理", "《民办教育促进法》", ("民办学校",)),
        ("学生资助", "三定方案第三条第八项", ()),
    ],
    "ybj": [
        ("医疗保险参保管理", "三定方案第三条第二项", ("医疗保险参保",)),
        ("医保基金结算", "三定方案第三条第三项", ("医保结算", "异地就医")),
        ("定点医药机构管理", "三定方案第三条第五项", ("定点医药",)),
    ],
    "gjj": [
        ("住房公积金归集", "《住房公积金管理条例》", ("公积金缴存", "缴存单位")),
        ("住房公积金提取和贷款", "《住房公积金管理条例》", ("公积金贷款", "公积金提取")),
        ("住房公积金缴存监督", "三定方案第三条第四项", ()),
    ],
    "sfj": [
        ("律师执业管理", "《律师法》", ("律师执业",)),
        ("公共法律服务", "三定方案第三条第六项", ("公证", "法律援助", "人民调解")),
        ("司法鉴定管理", "三定方案第三条第八项", ("司法鉴定",)),
    ],
    "jtj": [
        ("道路运输管理", "《道路运输条例》", ("道路运输",)),
        ("城市客运管理", "三定方案第三条第五项", ("网约车", "公交", "出租车")),
        ("交通工程质量监督", "三定方案第三条第九项", ()),
    ],
    "sthj": [
        ("排污许可管理", "《排污许可管理条例》", ("排污许可",)),
        ("环境影响评价", "《环境影响评价法》", ("环评",)),
        ("生态环境监测", "三定方案第三条第六项", ("环境监测", "危险废物")),
    ],
    "yjj": [
        ("安全生产许可", "《安全生产许可证条例》", ("安全生产许可", "危险化学品")),
        ("应急预案管理", "三定方案第三条第三项", ("应急预案",)),
        ("生产安全事故调查", "三定方案第三条第七项", ("事故调查",)),
    ],
    "czj": [
        ("预算管理和预算公开", "《预算法》", ("预算公开",)),
        ("政府采购监督管理", "《政府采购法》", ("政府采购",)),
        ("国有资产管理", "三定方案第三条第九项", ("国有资产", "非税收入")),
    ],
    "snq": [
        ("区级政务数据汇聚", "区三定方案第三条第一项", ()),
        ("区级数据共享服务", "区三定方案第三条第二项", ()),
        ("区级政务信息系统管理", "区三定方案第三条第三项", ()),
    ],
}

LINKS_PER_KEYWORD = 2
DECLARED_DAYS_AGO = 400


def _registrar(abbr: str, dept: Department) -> Principal:
    return Principal(
        kind="user",
        name=f"{abbr}_reg",
        department_id=dept.id,
        roles=(Role.CATALOG_REGISTRAR.value,),
        permissions=permissions_for([Role.CATALOG_REGISTRAR]),
    )


def seed_duties(
    session: Session, departments: dict[str, Department], today: date, *, working_days: int
) -> dict[str, int]:
    """Declare the demo's duties, link the entries that serve them, and record a few
    recent changes of duties and systems. Returns ``{"duties": n, "duty_events": m}``."""
    declared_on = today - timedelta(days=DECLARED_DAYS_AGO)
    for abbr, rows in DUTIES.items():
        dept = departments.get(abbr)
        if dept is None:
            continue
        who = _registrar(abbr, dept)
        entries = list(
            session.scalars(
                select(Resource)
                .where(
                    Resource.provider_department_id == dept.id,
                    Resource.status.in_(list(duties.LINKABLE)),
                )
                .order_by(Resource.id)
            )
        )
        for n, (name, basis, keywords) in enumerate(rows, start=1):
            duty = duties.declare_duty(
                session,
                who,
                DutyCreate(
                    code=f"{abbr.upper()}-{n:03d}",
                    name=name,
                    basis=basis,
                    declared_on=declared_on,
                ),
                working_days=working_days,
                today=today,
            )
            for keyword in keywords:
                for entry in [e for e in entries if keyword in e.name][:LINKS_PER_KEYWORD]:
                    duties.link_resource(session, who, duty.id, entry.id)
    _recent_changes(session, departments, today, working_days=working_days)
    return {
        "duties": session.scalar(select(func.count()).select_from(DepartmentDuty)) or 0,
        "duty_events": session.scalar(select(func.count()).select_from(CatalogChangeEvent)) or 0,
    }


def _duty(session: Session, dept: Department, name: str) -> DepartmentDuty:
    return session.scalars(
        select(DepartmentDuty).where(
            DepartmentDuty.department_id == dept.id, DepartmentDuty.name == name
        )
    ).one()


def _recent_changes(
    session: Session, departments: dict[str, Department], today: date, *, working_days: int
) -> None:
    """A renamed duty, a withdrawn one, a new one without entries yet, and two system
    changes: one whose catalog deadline is still running, one already past."""
    gaj, rsj, scj = departments["gaj"], departments["rsj"], departments["scj"]
    duties.change_duty(
        session,
        _registrar("gaj", gaj),
        _duty(session, gaj, "居住证管理").id,
        DutyChange(
            name="居住证和流动人口管理",
            basis="《居住证暂行条例》；2025年三定方案调整",
            changed_on=today - timedelta(days=12),
            reason="机构改革后增加流动人口服务管理职责",
        ),
        working_days=working_days,
        today=today,
    )
    duties.withdraw_duty(
        session,
        _registrar("scj", scj),
        _duty(session, scj, "知识产权保护").id,
        DutyWithdraw(
            withdrawn_on=today - timedelta(days=60),
            reason="划转至市知识产权局",
        ),
        working_days=working_days,
        today=today,
    )
    duties.declare_duty(
        session,
        _registrar("rsj", rsj),
        DutyCreate(
            code="RSJ-101",
            name="新就业形态劳动者权益保障",
            basis="2025年三定方案调整，新增职责",
            declared_on=today - timedelta(days=8),
        ),
        working_days=working_days,
        today=today,
    )
    for abbr, system_name, days_ago, what in [
        ("gaj", "人口信息管理系统", 5, "新增居住证电子证照模块，增加居住证有效期字段"),
        ("rsj", "社会保险信息系统", 45, "养老保险全国统筹改造，参保信息结构调整"),
    ]:
        dept = departments[abbr]
        system = session.scalars(
            select(InformationSystem).where(
                InformationSystem.department_id == dept.id,
                InformationSystem.name == system_name,
            )
        ).one()
        duties.record_system_change(
            session,
            _registrar(abbr, dept),
            system.id,
            SystemChangeIn(changed_on=today - timedelta(days=days_ago), description=what),
            working_days=working_days,
            today=today,
        )
