"""Controlled vocabularies the open catalog maps the national catalog's codes to: the EU
Publications Office's frequency, file-type, data-theme and access-right authority tables
(as DCAT-AP 3 requires), IANA media types, and XML Schema datatypes for 信息项."""

from __future__ import annotations

EU = "http://publications.europa.eu/resource/authority/"

# 更新周期 → EU frequency (http://publications.europa.eu/resource/authority/frequency).
FREQUENCY: dict[str, str] = {
    "realtime": EU + "frequency/UPDATE_CONT",
    "daily": EU + "frequency/DAILY",
    "weekly": EU + "frequency/WEEKLY",
    "monthly": EU + "frequency/MONTHLY",
    "quarterly": EU + "frequency/QUARTERLY",
    "semiannual": EU + "frequency/ANNUAL_2",
    "yearly": EU + "frequency/ANNUAL",
    "adhoc": EU + "frequency/IRREG",
    "unknown": EU + "frequency/UNKNOWN",
}

# Distribution formats → EU file type and IANA media type.
FILE_TYPES: dict[str, str] = {
    "CSV": EU + "file-type/CSV",
    "XLSX": EU + "file-type/XLSX",
    "JSON": EU + "file-type/JSON",
    "ZIP": EU + "file-type/ZIP",
    # and those of uploaded files (开放文件)
    **{k: EU + f"file-type/{k}" for k in ("TXT", "GEOJSON", "XML", "PDF", "DOCX", "XLS", "DOC")},
}
MEDIA_TYPES: dict[str, str] = {
    "CSV": "text/csv",
    "XLSX": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "JSON": "application/json",
    "ZIP": "application/zip",
}
IANA = "https://www.iana.org/assignments/media-types/"

ACCESS_RIGHTS = {
    "unconditional": EU + "access-right/PUBLIC",
    "conditional": EU + "access-right/RESTRICTED",
}
LICENSE_URIS = {
    "cc-by-4.0": EU + "licence/CC_BY_4_0",
    "other-closed": "",
}

# The classification's 类/项 → EU data theme (http://publications.europa.eu/resource/authority/data-theme).
# The longest matching prefix wins; government and public sector when none does.
DATA_THEMES: dict[str, str] = {
    "101": "SOCI",  # 人口
    "102": "ECON",  # 法人单位
    "103": "ENVI",  # 自然资源和空间地理
    "103002": "REGI",  # 不动产登记
    "104": "JUST",  # 社会信用
    "105": "GOVE",  # 电子证照
    "201": "GOVE",  # 公共服务
    "202": "HEAL",  # 健康保障
    "203": "SOCI",  # 社会保障
    "204": "AGRI",  # 食品药品安全
    "205": "ECON",  # 安全生产
    "206": "ECON",  # 价格监管
    "207": "ENER",  # 能源安全
    "208": "JUST",  # 信用体系
    "209": "REGI",  # 城乡建设
    "210": "SOCI",  # 社区治理
    "211": "ENVI",  # 生态环保
    "212": "JUST",  # 应急维稳
}


def data_theme(classification_code: str) -> str:
    for length in range(len(classification_code), 0, -1):
        if (found := DATA_THEMES.get(classification_code[:length])) is not None:
            return EU + "data-theme/" + found
    return EU + "data-theme/GOVE"


XSD = "http://www.w3.org/2001/XMLSchema#"
# 信息项数据类型 → XML Schema datatype (CSVW column datatypes).
DATATYPES: dict[str, str] = {
    "C": "string",
    "N": "decimal",
    "Y": "decimal",
    "D": "date",
    "T": "dateTime",
    "L": "boolean",
    "M": "string",
    "G": "base64Binary",
    "B": "double",
    "I": "integer",
    "F": "double",
}
