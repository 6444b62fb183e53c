"""Code values of the catalog (《政务信息资源目录编制指南(试行)》).

States and sharing types drive rules, so they are enums. Formats, update cycles,
sharing modes, item data types and secrecy are code tables (``CodeEntry`` rows) seeded
from ``DEFAULT_CODE_TABLES`` and editable by the platform admin, because the public
texts of the standards are only partly available and provinces extend them.
"""

from __future__ import annotations

from enum import StrEnum

from govshare.rules.validators import SEX_CODES


class SharingType(StrEnum):
    """共享类型: 1 无条件共享, 2 有条件共享, 3 不予共享."""

    UNCONDITIONAL = "1"
    CONDITIONAL = "2"
    NOT_SHARED = "3"

    @property
    def label(self) -> str:
        return {"1": "无条件共享", "2": "有条件共享", "3": "不予共享"}[self.value]


class ResourceKind(StrEnum):
    """资源类型, the 类 of the classification: 1 基础, 2 主题, 3 部门."""

    BASE = "base"
    THEME = "theme"
    DEPARTMENT = "department"

    @property
    def label(self) -> str:
        return {"base": "基础信息资源", "theme": "主题信息资源", "department": "部门信息资源"}[
            self.value
        ]

    @classmethod
    def from_class_code(cls, code: str) -> ResourceKind:
        return {"1": cls.BASE, "2": cls.THEME, "3": cls.DEPARTMENT}[code[0]]


class ResourceStatus(StrEnum):
    """目录状态."""

    DRAFT = "draft"
    PENDING_REGISTRATION = "pending_registration"
    RETURNED = "returned"
    REGISTRATION_REJECTED = "registration_rejected"
    REGISTERED = "registered"
    PENDING_PUBLICATION = "pending_publication"
    PUBLICATION_REJECTED = "publication_rejected"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


# A state's label names the state (已发布), never the step that led to it (发布审核通过,
# 取消发布): the same word on a chip, in a table and in a filter.
STATUS_LABELS: dict[ResourceStatus, str] = {
    ResourceStatus.DRAFT: "草稿",
    ResourceStatus.PENDING_REGISTRATION: "待注册审核",
    ResourceStatus.RETURNED: "已退回修改",
    ResourceStatus.REGISTRATION_REJECTED: "注册未通过",
    ResourceStatus.REGISTERED: "已注册",
    ResourceStatus.PENDING_PUBLICATION: "待发布审核",
    ResourceStatus.PUBLICATION_REJECTED: "发布未通过",
    ResourceStatus.PUBLISHED: "已发布",
    ResourceStatus.WITHDRAWN: "已取消发布",
}


class CodeTableName(StrEnum):
    FORMAT = "format"
    UPDATE_CYCLE = "update_cycle"
    SHARING_MODE = "sharing_mode"
    DATA_TYPE = "data_type"
    SECRECY = "secrecy"
    NETWORK = "network"
    USAGE_FREQUENCY = "usage_frequency"


CODE_TABLE_TITLES: dict[str, str] = {
    CodeTableName.FORMAT: "信息资源格式",
    CodeTableName.UPDATE_CYCLE: "更新周期",
    CodeTableName.SHARING_MODE: "共享方式",
    CodeTableName.DATA_TYPE: "信息项数据类型",
    CodeTableName.SECRECY: "涉密属性",
    CodeTableName.NETWORK: "部署网络",
    CodeTableName.USAGE_FREQUENCY: "使用频度",
    "GB/T 2261.1": "人的性别代码",
    "GB/T 3304": "中国各民族名称代码",
    "GB/T 4761": "家庭关系代码",
}

DEFAULT_CODE_TABLES: dict[str, list[tuple[str, str]]] = {
    CodeTableName.FORMAT: [
        ("file", "电子文件"),
        ("spreadsheet", "电子表格"),
        ("database", "数据库"),
        ("image", "图形图像"),
        ("stream", "流媒体"),
        ("self_describing", "自描述格式"),
        ("api", "服务接口"),
    ],
    CodeTableName.UPDATE_CYCLE: [
        ("realtime", "实时"),
        ("daily", "每日"),
        ("weekly", "每周"),
        ("monthly", "每月"),
        ("quarterly", "每季度"),
        ("semiannual", "每半年"),
        ("yearly", "每年"),
        ("adhoc", "不定期"),
    ],
    CodeTableName.SHARING_MODE: [
        ("table", "库表交换"),
        ("api", "接口调用"),
        ("file", "文件下载"),
        ("query", "在线查询"),
        ("verify", "核验"),
        ("mail", "邮件"),
        ("media", "介质"),
    ],
    CodeTableName.DATA_TYPE: [
        ("C", "字符型C"),
        ("N", "数值型N"),
        ("Y", "货币型Y"),
        ("D", "日期型D"),
        ("T", "日期时间型T"),
        ("L", "逻辑型L"),
        ("M", "备注型M"),
        ("G", "通用型G"),
        ("B", "双精度型B"),
        ("I", "整型I"),
        ("F", "浮点型F"),
    ],
    CodeTableName.SECRECY: [("public", "非涉密"), ("secret", "涉密")],
    CodeTableName.NETWORK: [
        ("egov_extranet", "电子政务外网"),
        ("egov_intranet", "电子政务内网"),
        ("internet", "互联网"),
        ("private", "业务专网"),
        ("standalone", "单机"),
    ],
    CodeTableName.USAGE_FREQUENCY: [
        ("daily", "每日使用"),
        ("weekly", "每周使用"),
        ("monthly", "每月使用"),
        ("rarely", "偶尔使用"),
        ("unused", "未使用"),
    ],
    "GB/T 2261.1": list(SEX_CODES.items()),
    "GB/T 3304": [
        ("01", "汉族"),
        ("02", "蒙古族"),
        ("03", "回族"),
        ("04", "藏族"),
        ("05", "维吾尔族"),
    ],
    "GB/T 4761": [("01", "本人"), ("02", "户主"), ("10", "配偶"), ("20", "子"), ("30", "女")],
}

# Data types whose items must state a length in bytes (结构化信息项).
TYPES_WITH_LENGTH = frozenset({"C", "N", "Y", "B", "I", "F"})

# The classification seeded on a new hub: 类 (1 digit) / 项 (2 digits) / 目 (3 digits).
DEFAULT_CLASSIFICATION: list[tuple[str, str]] = [
    ("1", "基础信息资源"),
    ("101", "人口"),
    ("101001", "人口基本信息"),
    ("101002", "出生与死亡"),
    ("101003", "婚姻与家庭"),
    ("101004", "社会保障"),
    ("102", "法人单位"),
    ("102001", "法人登记信息"),
    ("102002", "税务登记信息"),
    ("102003", "法人资质信息"),
    ("103", "自然资源和空间地理"),
    ("103001", "土地资源"),
    ("103002", "不动产登记"),
    ("103003", "基础地理"),
    ("104", "社会信用"),
    ("104001", "法人信用"),
    ("104002", "自然人信用"),
    ("105", "电子证照"),
    ("105001", "个人证照"),
    ("105002", "法人证照"),
    ("2", "主题信息资源"),
    ("201", "公共服务"),
    ("202", "健康保障"),
    ("203", "社会保障"),
    ("204", "食品药品安全"),
    ("205", "安全生产"),
    ("206", "价格监管"),
    ("207", "能源安全"),
    ("208", "信用体系"),
    ("209", "城乡建设"),
    ("210", "社区治理"),
    ("211", "生态环保"),
    ("212", "应急维稳"),
    ("3", "部门信息资源"),
]
