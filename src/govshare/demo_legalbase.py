"""The demo's 法人库: a base database keyed by 统一社会信用代码, assembled from the stores of
市场监管 and 税务 fed by their demo nodes, with conflicts and invalid codes planted in
known numbers.

Sources (each a business table read by its department's front-end node):

* 市场监管 市场主体登记信息 (``scztdj`` on the 市场监管 node) — authoritative for 企业名称,
  法定代表人, 登记住所, 企业类型 and 行政区划代码;
* 税务 税务登记信息 (``swdj`` on the 税务 node) — authoritative for 纳税状态 (its
  纳税人状态), evidence for 企业名称 (its 纳税人名称).

Planted (``PLANTED``), all 市场监管's: 6 taxpayers 税务 still names by a former name
(青岛市… where the registration now says 青岛…), and 4 taxpayers whose 统一社会信用代码
税务 keyed in with a wrong check digit — unknown to 市场监管, so their names are
conflicts too: 10 conflicts. Names that differ only in full-width brackets (（青岛） and
(青岛)) or in leading and trailing blanks are planted too and are not conflicts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.orm import Session
from stdnum.cn import uscc

from govshare.basedata import service as basedata
from govshare.basedata.schemas import BaseCreate, BaseItemIn
from govshare.catalog.codes import SharingType
from govshare.demo import Entry, it
from govshare.demo_basedata import (
    DISTRICTS,
    add_entry,
    born_on,
    feed_store,
    people_of,
    provider_task,
    published,
    src,
    write_table,
)
from govshare.exchange.models import ExchangeNode
from govshare.security.service import Principal

BASE_NAME = "法人基础信息库"
ENTERPRISES = 300
# 企业名称: 6 former names at 税务, and the 4 taxpayers with a broken code 市场监管 does not
# know (their name is evidence against an authoritative "nothing").
PLANTED = {"name_conflicts": 10, "invalid_codes": 4}
_FORMER_NAMES = 6
_WIDTHS = 6  # （青岛） at 市场监管, (青岛) at 税务
_BLANKS = 6  # a blank before, an ideographic space after

# 字号 are two of these; the industry word comes with its GB/T 4754 行业代码.
_TRADE_CHARS = (
    "海润鑫源华通恒泰瑞丰金盛宏达博远嘉禾信诚天成德隆中联新港蓝万和昌康健同创启航明珠纳福祥"
)
_INDUSTRIES = [
    ("科技", "I6510"),
    ("贸易", "F5199"),
    ("食品", "C1499"),
    ("建筑工程", "E4890"),
    ("物流", "G5990"),
    ("网络科技", "I6420"),
    ("医疗器械", "C3589"),
    ("海洋生物", "C2760"),
    ("机械制造", "C3490"),
    ("餐饮管理", "H6210"),
    ("文化传媒", "R8710"),
    ("供应链管理", "L7219"),
    ("电子商务", "F5292"),
    ("新能源", "D4415"),
]
# 企业类型代码 with the name's ending.
_KINDS = [("1100", "有限公司"), ("1151", "有限公司"), ("1200", "股份有限公司")]
_ROADS = ["株洲路", "松岭路", "海尔路", "同安路", "深圳路", "苗岭路", "秦岭路", "黄河东路"]
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _organization_code(digits: str) -> str:
    """A GB 11714 组织机构代码: 8 digits and their check character."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    check = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return digits + {10: "X", 11: "0"}.get(check, str(check))


def credit_code(rng: random.Random, area: str, founded: date) -> str:
    """A valid 统一社会信用代码 of an enterprise (工商 9, 企业 1) registered in ``area``:
    before the 2015 reform the old 组织机构代码 is its body, after it a new ``MA`` one."""
    if founded.year < 2016:
        body = _organization_code(f"{rng.randrange(10**8):08d}")
    else:
        body = "MA" + "".join(rng.choice(_USCC_CHARS) for _ in range(7))
    code = f"91{area}{body}"
    return code + uscc.calc_check_digit(code)


def _wrong_check_digit(code: str) -> str:
    right = code[-1]
    return code[:-1] + next(c for c in _USCC_CHARS if c != right)


@dataclass(frozen=True, slots=True)
class Firm:
    """An enterprise as 市场监管 registered it."""

    n: int
    code: str
    name: str
    representative: str
    area: str
    seat: str
    kind: str
    sector: str
    founded: date

    def row(self) -> tuple[object, ...]:
        district = DISTRICTS[self.area]
        return (
            self.n,
            self.code,
            self.name,
            self.representative,
            self.area,
            self.seat,
            self.kind,
            self.sector,
            self.founded.isoformat(),
            f"青岛市{district}市场监督管理局",
            "1",  # 登记状态: 存续
            self.n,
        )


def enterprises(population_db: Path, seed: int = 32100) -> list[Firm]:
    """``ENTERPRISES`` made-up enterprises, their legal representatives drawn from
    公安's adult residents."""
    rng = random.Random(seed)
    adults = [p for p in people_of(population_db) if born_on(p[0]).year <= 2000]
    names: set[str] = set()
    codes: set[str] = set()
    firms: list[Firm] = []
    while len(firms) < ENTERPRISES:
        trade = "".join(rng.sample(_TRADE_CHARS, 2))
        industry, sector = rng.choice(_INDUSTRIES)
        kind, ending = rng.choice(_KINDS)
        # One in five names its seat in brackets, full-width as registered.
        name = (
            f"{trade}{industry}（青岛）{ending}"
            if rng.random() < 0.2
            else f"青岛{trade}{industry}{ending}"
        )
        area = rng.choice(list(DISTRICTS))
        founded = date(2000, 1, 1) + timedelta(days=rng.randrange(25 * 365))
        code = credit_code(rng, area, founded)
        if name in names or code in codes:
            continue
        names.add(name)
        codes.add(code)
        seat = f"山东省青岛市{DISTRICTS[area]}{rng.choice(_ROADS)}{rng.randint(1, 400)}号"
        firms.append(
            Firm(
                len(firms) + 1,
                code,
                name,
                rng.choice(adults)[1],
                area,
                seat,
                kind,
                sector,
                founded,
            )
        )
    return firms


def make_registers(population_db: Path, register_db: Path, tax_db: Path, seed: int = 32100) -> None:
    """市场监管's 市场主体登记 and 税务's 税务登记 of most of the enterprises."""
    firms = enterprises(population_db, seed)
    write_table(
        register_db,
        "CREATE TABLE IF NOT EXISTS scztdj (id INTEGER PRIMARY KEY, tyshxydm TEXT, "
        "qymc TEXT, fddbr TEXT, xzqhdm TEXT, djzs TEXT, qylx TEXT, hy TEXT, clrq TEXT, "
        "djjg TEXT, djzt TEXT, version INTEGER NOT NULL);",
        "scztdj",
        [f.row() for f in firms],
    )
    rng = random.Random(seed + 1)
    # 税务 registered nine in ten; four of the rest with a mistyped check digit.
    taxed = [f for f in firms if f.n % 10 != 0]
    mistyped = [f for f in firms if f.n % 10 == 0][: PLANTED["invalid_codes"]]
    plain = [f.n for f in taxed if f.name.startswith("青岛")]
    former = set(rng.sample(plain, _FORMER_NAMES))
    widths = set(rng.sample([f.n for f in taxed if "（青岛）" in f.name], _WIDTHS))
    blanks = set(rng.sample([n for n in plain if n not in former], _BLANKS))
    rows: list[tuple[object, ...]] = []
    for firm in [*taxed, *mistyped]:
        name = firm.name
        if firm.n in former:
            name = "青岛市" + name.removeprefix("青岛")
        elif firm.n in widths:
            name = name.replace("（青岛）", "(青岛)")
        elif firm.n in blanks:
            name = f" {name}\u3000"
        code = _wrong_check_digit(firm.code) if firm in mistyped else firm.code
        registered = firm.founded + timedelta(days=rng.randrange(30))
        roll = rng.random()
        status = "05" if roll < 0.04 else "08" if roll < 0.1 else "03"  # 停业, 非正常, 正常
        n = len(rows) + 1
        rows.append((n, code, code, name, registered.isoformat(), status, n))
    write_table(
        tax_db,
        "CREATE TABLE IF NOT EXISTS swdj (id INTEGER PRIMARY KEY, nsrsbh TEXT, "
        "tyshxydm TEXT, nsrmc TEXT, djrq TEXT, nsrzt TEXT, version INTEGER NOT NULL);",
        "swdj",
        rows,
    )


def setup(
    session: Session, admin: Principal, nodes: dict[str, ExchangeNode], base_dir: Path
) -> None:
    """Create the registers, their tasks and stores, and define the 法人库."""
    make_registers(
        base_dir / "gaj-business.db", base_dir / "scj-business.db", base_dir / "swj-business.db"
    )
    register = published(session, admin, "市场主体登记信息")
    tax = published(session, admin, "税务登记信息")
    register_store = feed_store(
        session,
        admin,
        register,
        provider_task(
            session,
            admin,
            nodes["scj"],
            register,
            name="市场主体登记信息发送",
            source="business",
            table="scztdj",
        ),
        {
            c: c
            for c in (
                "tyshxydm",
                "qymc",
                "fddbr",
                "xzqhdm",
                "djzs",
                "qylx",
                "hy",
                "clrq",
                "djjg",
                "djzt",
            )
        },
        key_item="tyshxydm",
    )
    tax_store = feed_store(
        session,
        admin,
        tax,
        provider_task(
            session,
            admin,
            nodes["swj"],
            tax,
            name="税务登记信息发送",
            source="business",
            table="swdj",
        ),
        {
            "nsrsbh": "nsrsbh",
            "tyshxydm": "tyshxydm",
            "nsrmc": "qymc",
            "djrq": "djrq",
            "nsrzt": "nsrzt",
        },
        # 税务 is queried by 纳税人识别号, which a comparison job (demo_compare's
        # registered_untaxed) may therefore join on; the base joins it by its code below.
        key_item="nsrsbh",
    )
    resource = add_entry(
        session,
        admin,
        Entry(
            "dsj",
            "102001",
            BASE_NAME,
            "由市场监管、税务等部门的共享信息库归集的法人基础信息，每个信息项只有一个权威来源。",
            [
                it("统一社会信用代码", "tyshxydm", "C", 18, "GB 32100 统一社会信用代码"),
                it("企业名称", "qymc", "C", 200),
                it("法定代表人", "fddbr", "C", 50),
                it("登记住所", "djzs", "C", 200),
                it("企业类型", "qylx", "C", 4),
                it("行政区划代码", "xzqhdm", "C", 6),
                it("纳税状态", "nszt", "C", 2, "03 正常 05 停业 08 非正常"),
            ],
            sharing=SharingType.UNCONDITIONAL,
            modes=("api", "query"),
        ),
    )
    basedata.create_base(
        session,
        admin,
        BaseCreate(
            resource_id=resource.id,
            key_item="tyshxydm",
            items=[
                BaseItemIn(
                    item="qymc",
                    source=src(register_store, "qymc"),
                    evidence=[src(tax_store, "qymc")],
                ),
                BaseItemIn(item="fddbr", source=src(register_store, "fddbr")),
                BaseItemIn(item="djzs", source=src(register_store, "djzs")),
                BaseItemIn(item="qylx", source=src(register_store, "qylx")),
                BaseItemIn(item="xzqhdm", source=src(register_store, "xzqhdm")),
                BaseItemIn(item="nszt", source=src(tax_store, "nsrzt")),
            ],
            keys={str(tax_store.id): "tyshxydm"},
        ),
    )
    # The 企业开办 window brings an enterprise's details over from the base (带出).
    from govshare.demo_collab import enterprise_prefill

    enterprise_prefill(session, admin, resource)
