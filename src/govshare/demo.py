"""Demo data: the departments named in the seeds and about 200 realistic catalog entries,
including the population and legal-entity items of SPEC §4. Loaded by ``--demo``."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from stdnum.cn import uscc

from govshare.catalog import search, service
from govshare.catalog.codes import SharingType
from govshare.catalog.models import CodeEntry, Resource
from govshare.catalog.schemas import DemandIn, ItemIn, ResourceIn, SystemIn
from govshare.config import Settings
from govshare.db import utcnow
from govshare.rules.masking import MaskingRule
from govshare.security import audit
from govshare.security.audit import SYSTEM
from govshare.security.models import Department, DepartmentLevel, User
from govshare.security.roles import Role
from govshare.security.service import Principal, add_department, hash_password, permissions_for

CITY_DIVISION = "370200"  # 青岛市

# (abbr, full name, short name)
DEPARTMENTS: list[tuple[str, str, str]] = [
    ("dsj", "青岛市大数据发展管理局", "大数据局"),
    ("gaj", "青岛市公安局", "公安"),
    ("rsj", "青岛市人力资源和社会保障局", "人社"),
    ("scj", "青岛市市场监督管理局", "市场监管"),
    ("swj", "国家税务总局青岛市税务局", "税务"),
    ("mzj", "青岛市民政局", "民政"),
    ("wjw", "青岛市卫生健康委员会", "卫健"),
    ("cl", "青岛市残疾人联合会", "残联"),
    ("zjj", "青岛市住房和城乡建设局", "住建"),
    ("bdc", "青岛市不动产登记中心", "不动产"),
    ("tjj", "青岛市统计局", "统计"),
    ("zrzy", "青岛市自然资源和规划局", "自然资源和规划"),
    ("jyj", "青岛市教育局", "教育"),
    ("ybj", "青岛市医疗保障局", "医保"),
    ("gjj", "青岛住房公积金管理中心", "公积金"),
    ("sfj", "青岛市司法局", "司法"),
    ("jtj", "青岛市交通运输局", "交通"),
    ("sthj", "青岛市生态环境局", "生态环境"),
    ("yjj", "青岛市应急管理局", "应急"),
    ("czj", "青岛市财政局", "财政"),
]


# Items whose values are codes of a national standard's code table (代码表), by item name.
ITEM_CODE_TABLES = {"性别": "GB/T 2261.1", "民族": "GB/T 3304"}

# GB/T 3304-1991 中国各民族名称的罗马字母拼写法和代码 (the reference data seeds a few).
ETHNIC_GROUPS = [
    "汉族",
    "蒙古族",
    "回族",
    "藏族",
    "维吾尔族",
    "苗族",
    "彝族",
    "壮族",
    "布依族",
    "朝鲜族",
    "满族",
    "侗族",
    "瑶族",
    "白族",
    "土家族",
    "哈尼族",
    "哈萨克族",
    "傣族",
    "黎族",
    "傈僳族",
    "佤族",
    "畲族",
    "高山族",
    "拉祜族",
    "水族",
    "东乡族",
    "纳西族",
    "景颇族",
    "柯尔克孜族",
    "土族",
    "达斡尔族",
    "仫佬族",
    "羌族",
    "布朗族",
    "撒拉族",
    "毛南族",
    "仡佬族",
    "锡伯族",
    "阿昌族",
    "普米族",
    "塔吉克族",
    "怒族",
    "乌孜别克族",
    "俄罗斯族",
    "鄂温克族",
    "德昂族",
    "保安族",
    "裕固族",
    "京族",
    "塔塔尔族",
    "独龙族",
    "鄂伦春族",
    "赫哲族",
    "门巴族",
    "珞巴族",
    "基诺族",
]
DEMO_CODE_TABLES: dict[str, list[tuple[str, str]]] = {
    "GB/T 2261.1": [("0", "未知的性别"), ("1", "男性"), ("2", "女性"), ("9", "未说明的性别")],
    "GB/T 3304": [
        *((f"{i:02d}", name) for i, name in enumerate(ETHNIC_GROUPS, start=1)),
        ("97", "其他"),
        ("98", "外国血统中国籍人士"),
    ],
}


def credit_code_for(index: int, division: str = CITY_DIVISION) -> str:
    """A valid 统一社会信用代码 of a government organ (机关, prefix 11)."""
    body = f"11{division}{'MB' if index % 2 else '00'}{index:07d}"[:17]
    return body + uscc.calc_check_digit(body)


@dataclass(frozen=True)
class Entry:
    dept: str
    classification: str
    name: str
    abstract: str
    items: list[tuple[str, str, str, int | None, str]]  # name, code, type, length, description
    sharing: SharingType = SharingType.CONDITIONAL
    modes: tuple[str, ...] = ("table", "api")
    cycle: str = "daily"
    fmt: str = "database"
    is_open: bool = False
    # 开放条件: empty for 无条件开放; what a developer must meet for 有条件开放.
    open_conditions: str = ""
    system: str = ""
    # 开放脱敏: item code → masking rule, for the open-data portal.
    open_masking: tuple[tuple[str, MaskingRule], ...] = ()
    # 敏感信息项: the codes of the items the department marks sensitive.
    sensitive: tuple[str, ...] = ()


def it(
    name: str, code: str, t: str = "C", length: int | None = 50, desc: str = ""
) -> tuple[str, str, str, int | None, str]:
    return (name, code, t, length if t in "CNYBIF" else None, desc)


PERSON = [it("公民身份号码", "sfzhm", "C", 18, "GB 11643 公民身份号码"), it("姓名", "xm", "C", 50)]
ENTERPRISE = [
    it("统一社会信用代码", "tyshxydm", "C", 18, "GB 32100 统一社会信用代码"),
    it("企业名称", "qymc", "C", 200),
]

ENTRIES: list[Entry] = [
    Entry(
        "gaj",
        "101001",
        "常住人口基本信息",
        "全市户籍人口和常住人口的基本信息，是人口基础库的权威来源。",
        [
            *PERSON,
            it("性别", "xb", "C", 1),
            it("民族", "mz", "C", 2),
            it("出生日期", "csrq", "D"),
            it("户籍地址", "hjdz", "C", 200),
            it("行政区划代码", "xzqhdm", "C", 6),
            it("婚姻状况", "hyzk", "C", 2),
            it("联系电话", "lxdh", "C", 20),
        ],
        system="人口信息管理系统",
        # 户籍地址 is in the hub's population store: kept there sealed (字段加密).
        sensitive=("hjdz", "lxdh"),
    ),
    Entry(
        "gaj",
        "101002",
        "死亡人口注销信息",
        "公安机关户籍注销的死亡人员信息，用于养老金冒领比对。",
        [
            *PERSON,
            it("死亡日期", "swrq", "D"),
            it("注销日期", "zxrq", "D"),
            it("注销原因", "zxyy", "C", 100),
        ],
        system="人口信息管理系统",
    ),
    Entry(
        "gaj",
        "101001",
        "居住证办理信息",
        "流动人口居住证申领与签注信息。",
        [
            *PERSON,
            it("居住证号", "jzzh", "C", 30),
            it("居住地址", "jzdz", "C", 200),
            it("签发日期", "qfrq", "D"),
            it("有效期至", "yxqz", "D"),
        ],
    ),
    Entry(
        "wjw",
        "101002",
        "出生医学证明信息",
        "医疗机构签发的出生医学证明，人口库出生信息来源。",
        [
            it("出生医学证明号", "csyxzmh", "C", 20),
            it("新生儿公民身份号码", "xsesfzhm", "C", 18, "办理出生登记后回填"),
            it("新生儿姓名", "xsexm", "C", 50),
            it("性别", "xb", "C", 1),
            it("出生日期", "csrq", "T"),
            it("母亲姓名", "mqxm", "C", 50),
            it("母亲公民身份号码", "mqsfzhm", "C", 18),
            it("父亲姓名", "fqxm", "C", 50),
            it("父亲公民身份号码", "fqsfzhm", "C", 18),
            it("出生地点", "csdd", "C", 200),
        ],
        system="妇幼健康信息系统",
    ),
    Entry(
        "wjw",
        "101002",
        "居民死亡医学证明信息",
        "医疗卫生机构出具的死亡医学证明（推断）书信息。",
        [
            it("死亡证编号", "swzbh", "C", 20),
            *PERSON,
            it("死亡日期", "swrq", "D"),
            it("死亡原因", "swyy", "C", 200),
            it("死亡地点", "swdd", "C", 200),
        ],
        system="妇幼健康信息系统",
    ),
    Entry(
        "rsj",
        "101004",
        "社会保险参保信息",
        "职工基本养老、医疗、失业、工伤、生育保险参保登记信息。",
        [
            it("个人社保号", "grsbh", "C", 30),
            *PERSON,
            it("险种类型", "xzlx", "C", 4),
            it("参保日期", "cbrq", "D"),
            it("停保日期", "tbrq", "D"),
            it("工作单位", "gzdw", "C", 200),
            it("参保状态", "cbzt", "C", 2),
        ],
        system="社会保险信息系统",
    ),
    Entry(
        "rsj",
        "101004",
        "养老金发放信息",
        "企业职工和城乡居民基本养老保险待遇发放信息。",
        [
            *PERSON,
            it("发放年月", "ffny", "C", 6),
            it("发放日期", "ffrq", "D"),
            it("发放金额", "ffje", "Y", 12),
            it("发放状态", "ffzt", "C", 2),
        ],
        system="社会保险信息系统",
    ),
    Entry(
        "rsj",
        "203",
        "失业保险金领取信息",
        "失业人员失业保险金申领与发放信息。",
        [
            *PERSON,
            it("领取起始月", "lqqsy", "C", 6),
            it("领取终止月", "lqzzy", "C", 6),
            it("月领取金额", "ylqje", "Y", 10),
            it("发放日期", "ffrq", "D"),
        ],
    ),
    Entry(
        "rsj",
        "203",
        "就业登记信息",
        "劳动者就业和失业登记信息。",
        [
            *PERSON,
            it("就业单位", "jydw", "C", 200),
            it("就业日期", "jyrq", "D"),
            it("就业状态", "jyzt", "C", 2),
        ],
    ),
    Entry(
        "scj",
        "102001",
        "市场主体登记信息",
        "企业、个体工商户、农民专业合作社的设立、变更、注销登记信息，法人库权威来源。",
        [
            *ENTERPRISE,
            it("法定代表人", "fddbr", "C", 50),
            it("行政区划代码", "xzqhdm", "C", 6),
            it("登记住所", "djzs", "C", 200),
            it("企业类型", "qylx", "C", 4),
            it("行业", "hy", "C", 5),
            it("成立日期", "clrq", "D"),
            it("登记机关", "djjg", "C", 100),
            it("登记状态", "djzt", "C", 2),
        ],
        sharing=SharingType.UNCONDITIONAL,
        system="市场主体登记系统",
    ),
    Entry(
        "scj",
        "104001",
        "行政处罚信息",
        "市场监管领域行政处罚决定信息。",
        [
            *ENTERPRISE,
            it("处罚决定书文号", "cfjdswh", "C", 100),
            it("处罚事由", "cfsy", "M"),
            it("处罚日期", "cfrq", "D"),
        ],
        sharing=SharingType.UNCONDITIONAL,
        is_open=True,
    ),
    Entry(
        "scj",
        "204",
        "食品经营许可信息",
        "食品经营许可证核发信息。",
        [
            *ENTERPRISE,
            it("许可证编号", "xkzbh", "C", 30),
            it("经营项目", "jyxm", "C", 500),
            it("有效期至", "yxqz", "D"),
        ],
        is_open=True,
        sharing=SharingType.UNCONDITIONAL,
    ),
    Entry(
        "swj",
        "102002",
        "税务登记信息",
        "纳税人税务登记与状态信息。",
        [
            it("纳税人识别号", "nsrsbh", "C", 20),
            *ENTERPRISE,
            it("登记日期", "djrq", "D"),
            it("纳税人状态", "nsrzt", "C", 2),
        ],
        system="金税三期核心征管系统",
    ),
    Entry(
        "swj",
        "104001",
        "纳税信用等级信息",
        "纳税人纳税信用评价结果（A/B/M/C/D）。",
        [
            it("纳税人识别号", "nsrsbh", "C", 20),
            it("评价年度", "pjnd", "C", 4),
            it("信用等级", "xydj", "C", 1),
        ],
        sharing=SharingType.UNCONDITIONAL,
        is_open=True,
        open_conditions="注册开发者申请，限用于信用评价与学术研究，不得再分发",
    ),
    Entry(
        "swj",
        "102002",
        "完税状态核验",
        "按纳税人识别号核验是否已纳税，只返回状态不返回金额。",
        [
            it("纳税人识别号", "nsrsbh", "C", 20),
            it("所属期", "ssq", "C", 6),
            it("完税状态", "wszt", "C", 1, "已纳税/未纳税"),
        ],
        modes=("verify",),
        fmt="api",
    ),
    Entry(
        "mzj",
        "101003",
        "婚姻登记信息",
        "结婚、离婚登记信息。",
        [
            it("男方公民身份号码", "nfsfzhm", "C", 18),
            it("女方公民身份号码", "nvfsfzhm", "C", 18),
            it("登记类型", "djlx", "C", 2),
            it("登记日期", "djrq", "D"),
            it("登记机关", "djjg", "C", 100),
        ],
    ),
    Entry(
        "mzj",
        "203",
        "最低生活保障对象信息",
        "城乡低保对象及保障金发放信息。",
        [
            *PERSON,
            it("保障类别", "bzlb", "C", 2),
            it("保障金额", "bzje", "Y", 10),
            it("认定日期", "rdrq", "D"),
        ],
    ),
    Entry(
        "mzj",
        "203",
        "特困人员供养信息",
        "特困人员认定与供养信息。",
        [*PERSON, it("供养方式", "gyfs", "C", 2), it("认定日期", "rdrq", "D")],
    ),
    Entry(
        "mzj",
        "101002",
        "殡葬火化信息",
        "殡仪馆火化登记信息，可与死亡注销信息多元校核。",
        [*PERSON, it("火化日期", "hhrq", "D"), it("殡仪馆", "byg", "C", 100)],
    ),
    Entry(
        "cl",
        "105001",
        "残疾人证信息",
        "第二代残疾人证核发信息。",
        [
            *PERSON,
            it("残疾人证号", "cjrzh", "C", 20),
            it("残疾类别", "cjlb", "C", 2),
            it("残疾等级", "cjdj", "C", 1),
        ],
    ),
    Entry(
        "cl",
        "203",
        "按比例安排残疾人就业审核信息",
        "用人单位按比例安排残疾人就业年审信息。",
        [*ENTERPRISE, it("安排人数", "aprs", "I", 8), it("审核年度", "shnd", "C", 4)],
    ),
    Entry(
        "zjj",
        "209",
        "商品房预售许可信息",
        "商品房预售许可证核发信息。",
        [
            it("预售许可证号", "ysxkzh", "C", 50),
            *ENTERPRISE,
            it("项目名称", "xmmc", "C", 200),
            it("预售面积", "ysmj", "N", 12),
        ],
        is_open=True,
        sharing=SharingType.UNCONDITIONAL,
    ),
    Entry(
        "zjj",
        "209",
        "住房保障申请信息",
        "公共租赁住房和共有产权住房申请审核信息。",
        [
            *PERSON,
            it("申请类型", "sqlx", "C", 2),
            it("家庭人口", "jtrk", "I", 4),
            it("审核结果", "shjg", "C", 2),
        ],
    ),
    Entry(
        "bdc",
        "103002",
        "不动产登记信息",
        "不动产权属登记簿信息。",
        [
            it("不动产单元号", "bdcdyh", "C", 28),
            it("权利人", "qlr", "C", 200),
            it("权利人证件号码", "qlrzjhm", "C", 18),
            it("坐落", "zl", "C", 200),
            it("登记时间", "djsj", "T"),
        ],
        system="不动产登记系统",
    ),
    Entry(
        "bdc",
        "103002",
        "不动产查封登记信息",
        "司法查封、解封登记信息。",
        [
            it("不动产单元号", "bdcdyh", "C", 28),
            it("查封机关", "cfjg", "C", 100),
            it("查封日期", "cfrq", "D"),
        ],
    ),
    Entry(
        "tjj",
        "201",
        "统计年鉴数据",
        "全市国民经济和社会发展统计数据。",
        [it("指标名称", "zbmc", "C", 100), it("年度", "nd", "C", 4), it("指标值", "zbz", "N", 18)],
        sharing=SharingType.UNCONDITIONAL,
        is_open=True,
        fmt="spreadsheet",
        modes=("file",),
        cycle="yearly",
    ),
    Entry(
        "zrzy",
        "103001",
        "土地出让信息",
        "国有建设用地使用权出让信息。",
        [
            it("宗地编号", "zdbh", "C", 30),
            it("受让人", "srr", "C", 200),
            it("出让面积", "crmj", "N", 12),
            it("出让价款", "crjk", "Y", 16),
        ],
        is_open=True,
        open_conditions="注册开发者申请并承诺不用于商业转售",
        sharing=SharingType.UNCONDITIONAL,
        cycle="monthly",
    ),
    Entry(
        "zrzy",
        "103003",
        "基础地理信息数据",
        "1:2000 基础地理信息要素数据。",
        [it("要素编码", "ysbm", "C", 20), it("要素名称", "ysmc", "C", 100), it("几何", "jh", "G")],
        fmt="image",
        modes=("file",),
        cycle="yearly",
    ),
    Entry(
        "jyj",
        "201",
        "学籍信息",
        "中小学生学籍信息。",
        [
            *PERSON,
            it("学校名称", "xxmc", "C", 200),
            it("年级", "nj", "C", 10),
            it("入学日期", "rxrq", "D"),
        ],
    ),
    Entry(
        "ybj",
        "202",
        "医疗保险参保信息",
        "城镇职工和城乡居民基本医疗保险参保信息。",
        [
            *PERSON,
            it("医保编号", "ybbh", "C", 30),
            it("参保类型", "cblx", "C", 2),
            it("参保状态", "cbzt", "C", 2),
        ],
    ),
    Entry(
        "ybj",
        "202",
        "医保结算信息",
        "定点医药机构医保费用结算信息。",
        [
            *PERSON,
            it("结算日期", "jsrq", "D"),
            it("医疗费用总额", "ylfyze", "Y", 12),
            it("统筹支付", "tczf", "Y", 12),
        ],
    ),
    Entry(
        "gjj",
        "203",
        "住房公积金缴存信息",
        "职工住房公积金缴存信息。",
        [
            *PERSON,
            it("个人账号", "grzh", "C", 30),
            it("缴存单位", "jcdw", "C", 200),
            it("缴存状态", "jczt", "C", 2),
            it("月缴存额", "yjce", "Y", 10),
        ],
    ),
    Entry(
        "gjj",
        "203",
        "住房公积金贷款信息",
        "住房公积金个人贷款发放与还款信息。",
        [
            *PERSON,
            it("贷款金额", "dkje", "Y", 14),
            it("贷款日期", "dkrq", "D"),
            it("贷款状态", "dkzt", "C", 2),
        ],
    ),
    Entry(
        "sfj",
        "104002",
        "律师执业信息",
        "律师执业许可与年度考核信息。",
        [*PERSON, it("执业证号", "zyzh", "C", 30), it("律师事务所", "lsswsmc", "C", 200)],
        is_open=True,
        sharing=SharingType.UNCONDITIONAL,
        open_masking=(("sfzhm", MaskingRule.ID_NUMBER),),
    ),
    Entry(
        "jtj",
        "105002",
        "道路运输经营许可信息",
        "道路运输经营许可证信息。",
        [*ENTERPRISE, it("许可证号", "xkzh", "C", 30), it("经营范围", "jyfw", "C", 500)],
        is_open=True,
        sharing=SharingType.UNCONDITIONAL,
    ),
    Entry(
        "sthj",
        "211",
        "排污许可信息",
        "排污单位排污许可证信息。",
        [*ENTERPRISE, it("许可证编号", "xkzbh", "C", 30), it("主要污染物", "zywrw", "C", 200)],
        is_open=True,
        sharing=SharingType.UNCONDITIONAL,
    ),
    Entry(
        "yjj",
        "205",
        "安全生产许可信息",
        "危险化学品、非煤矿山等安全生产许可证信息。",
        [
            *ENTERPRISE,
            it("许可证编号", "xkzbh", "C", 30),
            it("许可范围", "xkfw", "C", 500),
            it("有效期至", "yxqz", "D"),
        ],
    ),
    Entry(
        "czj",
        "201",
        "财政预算公开信息",
        "部门预算与决算公开数据。",
        [
            it("部门名称", "bmmc", "C", 100),
            it("年度", "nd", "C", 4),
            it("预算金额", "ysje", "Y", 16),
        ],
        is_open=True,
        sharing=SharingType.UNCONDITIONAL,
        fmt="spreadsheet",
        modes=("file",),
        cycle="yearly",
    ),
    Entry(
        "gaj",
        "212",
        "重点人员管控信息",
        "涉及公共安全的重点人员信息。",
        [*PERSON, it("管控类别", "gklb", "C", 2)],
        sharing=SharingType.NOT_SHARED,
        modes=(),
    ),
]

# Department-specific business records that round the catalog out to ~200 entries.
BUSINESS = {
    "gaj": ["机动车登记", "驾驶证核发", "出入境证件办理", "户口迁移", "身份证办理进度", "治安许可"],
    "rsj": ["职业技能鉴定", "劳动合同备案", "人才引进", "工伤认定", "职业培训补贴", "企业退休审批"],
    "scj": ["特种设备登记", "计量器具检定", "商标质押", "广告备案", "产品质量抽检", "企业年报"],
    "swj": ["发票领用", "出口退税", "个人所得税申报", "增值税申报", "税收优惠备案"],
    "mzj": ["社会组织登记", "养老机构备案", "临时救助", "地名管理", "慈善组织认定"],
    "wjw": ["医师执业注册", "护士执业注册", "医疗机构执业许可", "预防接种", "母婴保健"],
    "cl": ["残疾人康复服务", "残疾人托养", "残疾人两项补贴"],
    "zjj": ["建筑业企业资质", "施工许可", "房屋网签备案", "物业企业信息"],
    "bdc": ["抵押登记", "预告登记", "异议登记"],
    "tjj": ["经济普查", "人口抽样调查", "规模以上工业统计"],
    "zrzy": ["建设用地规划许可", "建设工程规划许可", "测绘资质"],
    "jyj": ["教师资格认定", "民办学校办学许可", "学生资助"],
    "ybj": ["定点医药机构", "医保目录", "异地就医备案"],
    "gjj": ["公积金提取", "缴存单位登记"],
    "sfj": ["公证", "法律援助", "人民调解", "司法鉴定"],
    "jtj": ["网约车运输证", "公交运营", "出租车经营"],
    "sthj": ["环评审批", "环境监测", "危险废物转移"],
    "yjj": ["应急预案备案", "事故调查", "危险化学品经营许可"],
    "czj": ["政府采购", "非税收入", "国有资产"],
}
SUFFIXES = [("登记信息", "daily"), ("审批结果信息", "daily"), ("统计汇总", "monthly")]


def _resource_in(
    entry: Entry, classification: str, provider_id: int, system_id: int | None
) -> ResourceIn:
    conditions = (
        "仅限用于本部门法定职责范围内的业务办理，不得向第三方提供"
        if entry.sharing is SharingType.CONDITIONAL
        else ""
    )
    basis = (
        "依据《中华人民共和国人民警察法》等法律规定，不予共享"
        if entry.sharing is SharingType.NOT_SHARED
        else ""
    )
    return ResourceIn(
        classification_code=classification,
        name=entry.name,
        abstract=entry.abstract,
        format=entry.fmt,
        format_detail={
            "database": "关系型数据库表",
            "api": "RESTful 接口",
            "spreadsheet": "XLSX",
            "image": "矢量数据",
        }.get(entry.fmt, ""),
        sharing_type=entry.sharing,
        sharing_conditions=conditions,
        not_shared_basis=basis,
        sharing_modes=list(entry.modes),
        is_open=entry.is_open,
        open_conditions=entry.open_conditions if entry.is_open else "",
        update_cycle=entry.cycle,
        source_system_id=system_id,
        provider_department_id=provider_id,
        items=[
            ItemIn(
                name=n,
                code=c,
                data_type=t,
                length=length,
                description=d,
                code_table=ITEM_CODE_TABLES.get(n),
                is_key=i == 0,
                sensitive=c in entry.sensitive,
                open_masking=dict(entry.open_masking).get(c, MaskingRule.NONE),
            )
            for i, (n, c, t, length, d) in enumerate(entry.items)
        ],
    )


def _generated_entries() -> list[Entry]:
    out = []
    for dept, topics in BUSINESS.items():
        for topic in topics:
            for suffix, cycle in SUFFIXES:
                holder = (
                    ENTERPRISE if dept in ("scj", "swj", "zjj", "sthj", "yjj", "jtj") else PERSON
                )
                items = [
                    it("业务流水号", "ywlsh", "C", 40, f"{topic}业务流水号"),
                    *holder,
                    it("办理日期", "blrq", "D"),
                    it("办理结果", "bljg", "C", 2, "01 通过 02 不通过"),
                    it("经办机构", "jbjg", "C", 100),
                ]
                if suffix == "统计汇总":
                    items = [
                        it("统计月份", "tjyf", "C", 6),
                        it("区县", "qx", "C", 6),
                        it("办件量", "bjl", "I", 10),
                    ]
                out.append(
                    Entry(
                        dept,
                        "3",
                        f"{topic}{suffix}",
                        f"{topic}业务的{suffix}，由业务系统产生。",
                        items,
                        sharing=SharingType.UNCONDITIONAL
                        if suffix == "统计汇总"
                        else SharingType.CONDITIONAL,
                        modes=("file", "query")
                        if suffix == "统计汇总"
                        else ("table", "api", "query"),
                        cycle=cycle,
                        is_open=suffix == "统计汇总",
                        fmt="spreadsheet" if suffix == "统计汇总" else "database",
                    )
                )
    return out


def reset_passwords(session: Session, password: str) -> None:
    """Give every account the demo created (all but those added later) one password."""
    pw = hash_password(password)
    names = {"admin", "auditor"} | {
        f"{abbr}_{r}" for abbr, _, _ in DEPARTMENTS for r in ("reg", "rev", "res")
    }
    names |= {f"snq_{r}" for r in ("reg", "rev", "res")}
    from govshare.demo_collab import PEOPLE
    from govshare.demo_documents import CLERKS

    names |= {f"{abbr}_doc" for abbr in CLERKS} | {person[0] for person in PEOPLE}
    session.execute(
        update(User)
        .where(User.username.in_(names))
        .values(
            password_hash=pw,
            password_changed_at=utcnow(),
            password_history=[],
            failed_logins=0,
            locked_until=None,
        )
    )
    audit.record(
        session, SYSTEM, "demo.reset_passwords", object_type="user", after={"count": len(names)}
    )


def lifecycle_actor(session: Session, step: str, resource: Resource, admin: Principal) -> Principal:
    """Who takes a lifecycle step in the demo (职责分离: nobody reviews their own step):
    the provider's registrar submits, its reviewer reviews, the platform admin publishes;
    the admin stands in where the department has no such user."""
    role = {
        "submit": Role.CATALOG_REGISTRAR,
        "request_publication": Role.CATALOG_REGISTRAR,
        "approve": Role.CATALOG_REVIEWER,
    }.get(step)
    users = session.scalars(
        select(User).where(User.department_id == resource.provider_department_id)
    )
    user = next((u for u in users if role and role.value in u.roles), None)
    if user is None:
        return admin
    return Principal(
        kind="user",
        name=user.username,
        department_id=user.department_id,
        roles=tuple(user.roles),
        permissions=permissions_for(user.roles),
        user_id=user.id,
    )


def ensure_code_tables(session: Session, admin: Principal) -> int:
    """Put the entries of the code tables the demo's items reference that the hub lacks
    (the reference data has only the first few 民族); answers how many were added."""
    have = {
        (e.table_name, e.code)
        for e in session.scalars(
            select(CodeEntry).where(CodeEntry.table_name.in_(list(DEMO_CODE_TABLES)))
        )
    }
    added = 0
    for table, entries in DEMO_CODE_TABLES.items():
        for order, (code, label) in enumerate(entries):
            if (table, code) not in have:
                service.put_code_entry(
                    session, admin, table=table, code=code, label=label, sort_order=order
                )
                added += 1
    return added


def demo_loaded(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Department)))


def load_demo(
    session: Session, admin_password: str, *, seed: int = 7, settings: Settings | None = None
) -> dict[str, int]:
    """Load departments, users, systems, catalog entries and the sharing side
    (``demo_sharing``) into an empty hub.

    ``settings`` are the hub's: the sharing side needs its working-day limits and the
    secret key API-client secrets are sealed with. Without them they are read from the
    environment, as ``govshare serve`` does (its command line sets neither)."""
    from govshare.demo_documents import seed_documents
    from govshare.demo_duties import seed_duties
    from govshare.demo_evaluation import seed_evaluation
    from govshare.demo_opendata import seed_developer, seed_open_demands
    from govshare.demo_sharing import seed_sharing  # which builds on this module
    from govshare.rules.clock import china_today

    settings = settings or Settings(demo=True)  # type: ignore[call-arg]
    rng = random.Random(seed)
    service.seed_reference_data(session)
    depts: dict[str, Department] = {}
    for i, (abbr, name, short) in enumerate(DEPARTMENTS, start=1):
        depts[abbr] = add_department(
            session,
            SYSTEM,
            name=name,
            short_name=short,
            credit_code=credit_code_for(i),
            division_code=CITY_DIVISION,
            level=DepartmentLevel.CITY,
        )
    district = add_department(
        session,
        SYSTEM,
        name="青岛市市南区大数据中心",
        short_name="市南区大数据",
        credit_code=credit_code_for(90, "370202"),
        division_code="370202",
        level=DepartmentLevel.DISTRICT,
        parent_id=depts["dsj"].id,
    )
    # Demo accounts share the admin's password; hash once (argon2 is slow by design).
    pw = hash_password(admin_password)
    users = [
        User(
            username="admin",
            display_name="平台管理员",
            password_hash=pw,
            department_id=depts["dsj"].id,
            roles=[Role.PLATFORM_ADMIN.value],
        ),
        User(
            username="auditor",
            display_name="审计员",
            password_hash=pw,
            department_id=depts["dsj"].id,
            roles=[Role.AUDITOR.value],
        ),
    ]
    # The bureau compiles the base databases' entries (人口基础信息库): a registrar and a
    # reviewer of its own, so nobody reviews their own step; the admin publishes.
    users += [
        User(
            username="dsj_reg",
            display_name="大数据局编目员",
            password_hash=pw,
            department_id=depts["dsj"].id,
            roles=[Role.CATALOG_REGISTRAR.value],
        ),
        User(
            username="dsj_rev",
            display_name="大数据局审核员",
            password_hash=pw,
            department_id=depts["dsj"].id,
            roles=[Role.CATALOG_REVIEWER.value],
        ),
    ]
    for abbr, dept in [*depts.items(), ("snq", district)]:
        if abbr == "dsj":
            continue
        users += [
            User(
                username=f"{abbr}_reg",
                display_name=f"{dept.short_name}编目员",
                password_hash=pw,
                department_id=dept.id,
                roles=[Role.CATALOG_REGISTRAR.value],
            ),
            User(
                username=f"{abbr}_rev",
                display_name=f"{dept.short_name}审核员",
                password_hash=pw,
                department_id=dept.id,
                roles=[Role.CATALOG_REVIEWER.value],
            ),
            User(
                username=f"{abbr}_res",
                display_name=f"{dept.short_name}资源管理员",
                password_hash=pw,
                department_id=dept.id,
                roles=[Role.RESOURCE_ADMIN.value],
            ),
        ]
    session.add_all(users)
    session.flush()
    audit.record(session, SYSTEM, "demo.users", object_type="user", after={"count": len(users)})

    # Department 项 under 类 3 (部门信息资源), one per department.
    admin = Principal(
        kind="user",
        name="admin",
        department_id=depts["dsj"].id,
        roles=(Role.PLATFORM_ADMIN.value,),
        permissions=permissions_for([Role.PLATFORM_ADMIN]),
    )
    dept_class: dict[str, str] = {}
    for i, (abbr, _, short) in enumerate(DEPARTMENTS, start=1):
        dept_class[abbr] = f"3{i:02d}"
        service.add_classification(
            session, admin, code=dept_class[abbr], name=f"{short}部门信息资源"
        )

    systems: dict[str, int] = {}
    for entry in ENTRIES:
        if entry.system and entry.system not in systems:
            sys_ = service.add_system(
                session,
                admin,
                SystemIn(
                    name=entry.system,
                    function=f"{entry.system}的业务办理与数据管理",
                    scope="全市",
                    usage_frequency="daily",
                    approval="已立项",
                    funding="财政资金",
                    network="egov_extranet",
                ),
                department_id=depts[entry.dept].id,
            )
            systems[entry.system] = sys_.id
    for abbr, name, usage in [
        ("tjj", "统计报表报送旧系统", "unused"),
        ("jyj", "教育信息发布平台", "rarely"),
    ]:
        service.add_system(
            session,
            admin,
            SystemIn(
                name=name,
                function="已被新系统替代",
                scope="本部门",
                usage_frequency=usage,
                approval="2012年立项",
                funding="财政资金",
                network="internet",
                in_use=usage != "unused",
            ),
            department_id=depts[abbr].id,
        )

    ensure_code_tables(session, admin)
    codes = service.CodeTables(session)
    created: list[Resource] = []
    for entry in [*ENTRIES, *_generated_entries()]:
        classification = (
            dept_class[entry.dept] if entry.classification == "3" else entry.classification
        )
        data = _resource_in(entry, classification, depts[entry.dept].id, systems.get(entry.system))
        created.append(service.add_resource(session, admin, data, codes=codes, index=False))
    search.index_many(session, created)

    # Walk most entries through the lifecycle so the catalog has published content and
    # the review queues have work in them.
    for resource in created:
        roll = rng.random()
        steps = ["submit", "approve", "request_publication", "publish"]
        if roll < 0.08:
            steps = []
        elif roll < 0.14:
            steps = ["submit"]
        elif roll < 0.20:
            steps = ["submit", "approve", "request_publication"]
        for step in steps:
            taker = lifecycle_actor(session, step, resource, admin)
            service.transition(session, taker, resource.id, step, "演示数据")

    demand_dept = Principal(
        kind="user",
        name="rsj_res",
        department_id=depts["rsj"].id,
        roles=(Role.RESOURCE_ADMIN.value,),
        permissions=permissions_for([Role.RESOURCE_ADMIN]),
    )
    service.add_demand(
        session,
        demand_dept,
        DemandIn(
            title="流动人口居住证信息",
            description="核查就业的流动人口是否办理居住证（人社×公安比对）",
            wanted_items="公民身份号码、居住证号、有效期至",
            purpose="就业服务与社保扩面",
        ),
    )
    service.add_demand(
        session,
        Principal(
            kind="user",
            name="mzj_res",
            department_id=depts["mzj"].id,
            roles=(Role.RESOURCE_ADMIN.value,),
            permissions=permissions_for([Role.RESOURCE_ADMIN]),
        ),
        DemandIn(
            title="车辆登记信息",
            description="低保家庭财产核对需要机动车登记信息",
            wanted_items="公民身份号码、车辆类型、登记日期",
            purpose="社会救助家庭经济状况核对",
        ),
    )
    counts = seed_sharing(session, settings)  # publishes the few entries it applies for
    counts["open_demands"] = seed_open_demands(session, settings)
    counts["developers"] = seed_developer(session, settings, admin_password)
    counts |= seed_duties(
        session,
        {**depts, "snq": district},
        china_today(),
        working_days=settings.catalog_update_working_days,
    )
    counts |= seed_evaluation(session, china_today())
    counts["documents"] = seed_documents(
        session, settings, departments=depts, password_hash=pw, now=utcnow()
    )
    from govshare.demo_collab import seed_collab

    counts |= seed_collab(session, admin_password, china_today(), secret_key=settings.secret_key)
    for key in ("published", "pending_registration", "pending_publication", "draft"):
        counts[key] = 0
    for resource in created:
        status = str(resource.status)
        counts[status if status in counts else "published"] += 1
    counts["users"] = len(users)
    counts["departments"] = len(depts) + 1
    counts["resources"] = len(created)
    return counts
