"""The demo's data for the six built-in comparison templates (比对模板,
``govshare.compare.templates``): business tables on the departments' front-end nodes,
their stores on the hub, and in each a known set of planted anomalies (线索) and of
decoys a correct job must not report.

Tables (each read by its department's front-end node, fed to a shared store):

* 人社 养老金发放信息 (``ylfs``), 失业保险金领取信息 (``syj``) and 就业登记信息 (``jydj``)
  in the 人社 node's ``social`` source;
* 公安 居住证办理信息 (``jzz``) beside the population table;
* 住建 住房保障申请信息 (``zfbz``) on the 住建 node;
* 残联 残疾人证信息 (``cjrz``) and 按比例安排残疾人就业申报明细 (``cjrjy``, an entry this
  module adds) on the 残联 node;
* and a few more rows in 税务's 税务登记 (``swdj``, ``demo_legalbase``).

Planted (``PLANTED``, by template code) and the decoys beside them:

* ``dead_pension``: deceased pensioners (死亡日期 from 卫健's certificates, the 人口库's
  authoritative source) paid after their death, some written with the 15-digit ID
  number of before 1999 or in full-width digits. Decoys: pensioners whose payments
  stopped at death (one paid on the very day), living pensioners written with 15 digits
  or full-width, and two deaths only 公安 registered (the 人口库 has no 死亡日期 for them).
* ``unemployed_employed``: recipients of 失业保险金 with a new job (就业状态 1) registered
  on or before a payment (one on the day of the last payment). Decoys: a new job
  registered after the last payment (one the day after), and every recipient's former
  job (就业状态 2, registered years before).
* ``housing_no_hukou``: 住房保障 applicants with no 公安 population record, two written
  with 15 digits. Decoys: non-residents whose application was refused (审核结果 03), and
  residents written with 15 digits, full-width digits or a lower-case x.
* ``registered_untaxed``: enterprises 市场监管 registered without a 税务登记 whose
  纳税人识别号 is their 统一社会信用代码, the 4 税务 keyed in with a wrong check digit
  among them. Decoys: 6 registrations whose 纳税人识别号 税务 wrote in lower case or
  with a leading or trailing blank. Only the 纳税人识别号 is written so: the
  统一社会信用代码 column feeds the 法人库, whose planted counts must not move.
* ``migrant_no_permit``: employed persons (就业状态 1) who are neither residents nor hold a
  居住证, two written with 15 digits. Decoys: permit holders written in full-width, with
  blanks or a lower-case x, migrants no longer employed, and residents with blanks.
* ``disability_quota``: enterprises that declared an employee without a 残疾人证 (a
  resident, or a made-up ID number). Decoys: enterprises whose declared employees all
  hold one, written with 15 digits, full-width digits or a lower-case x.

``expected_cases`` reads the tables back and finds the cases with plain Python, the way
the templates' definitions describe them, for tests to hold a job's cases against.
"""

from __future__ import annotations

import random
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.cn import ric

from govshare.catalog.models import Resource
from govshare.demo import ENTERPRISE, Entry, it
from govshare.demo_basedata import (
    DISTRICTS,
    add_entry,
    born_on,
    feed_store,
    people_of,
    provider_task,
    published,
    write_table,
)
from govshare.demo_sharing import demo_grant
from govshare.exchange import service as exchange
from govshare.exchange.models import ExchangeNode, ExchangeTask, TaskKind
from govshare.exchange.schemas import TaskCreate
from govshare.security import audit
from govshare.security.audit import SYSTEM, Actor
from govshare.security.models import Department
from govshare.security.service import Principal
from govshare.sharing.models import SharedStore, SharingGrant, SharingMode

PENSION_NAME = "养老金发放信息"
BENEFIT_NAME = "失业保险金领取信息"
EMPLOYMENT_NAME = "就业登记信息"
PERMIT_NAME = "居住证办理信息"
HOUSING_NAME = "住房保障申请信息"
CERTIFICATE_NAME = "残疾人证信息"
QUOTA_NAME = "按比例安排残疾人就业申报明细"

PLANTED: dict[str, int] = {
    "dead_pension": 14,
    "unemployed_employed": 12,
    "housing_no_hukou": 18,
    "registered_untaxed": 24,
    "migrant_no_permit": 22,
    "disability_quota": 12,
}

# Monthly payments of the pensions: the 15th, January 2025 to February 2026.
_PAYDAYS = [date(2025 + (m - 1) // 12, 1 + (m - 1) % 12, 15) for m in range(1, 15)]
# 失业保险金 is paid on the 10th.
_BENEFIT_MONTHS = [date(2025 + (m - 1) // 12, 1 + (m - 1) % 12, 10) for m in range(1, 15)]
# ID numbers of persons from outside 青岛 (济南, 潍坊, 临沂, 郑州, 石家庄, 合肥, 哈尔滨).
_ELSEWHERE = ["370102", "370702", "371302", "410102", "130102", "340102", "230102"]
_EMPLOYERS = [
    "青岛海润科技有限公司",
    "青岛港湾物流有限公司",
    "青岛金盛食品有限公司",
    "青岛瑞丰建筑工程有限公司",
    "青岛蓝海餐饮管理有限公司",
    "青岛德隆机械制造有限公司",
]
_FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
_ROADS = ["辽阳西路", "黑龙江中路", "长江中路", "金水路", "九水东路", "重庆中路"]


# -- how the sources write ID numbers and codes -------------------------------------------


def old_number(number: str) -> str:
    """The 15-digit 公民身份号码 of before 1999 (no century, no check digit)."""
    return number[:6] + number[8:17]


def full_width(code: str) -> str:
    """The code keyed in with full-width digits (and Ｘ)."""
    return code.translate(_FULL_WIDTH)


def lower_x(number: str) -> str:
    return number[:-1] + number[-1].lower()


def normal_key(value: str, *, id18: bool = True) -> str:
    """A key as a comparison job links it: full-width made half-width, blanks trimmed,
    upper case, and (``id18``) a 15-digit 公民身份号码 raised to 18 digits."""
    text = unicodedata.normalize("NFKC", value).strip().upper()
    if id18 and len(text) == 15 and text.isdigit():
        body = f"{text[:6]}19{text[6:]}"
        text = body + ric.calc_check_digit(body + "?")  # it skips the last character
    return text


def _born_before_1999(number: str) -> bool:
    # Only they ever had a 15-digit number, and only theirs upgrade by adding "19".
    return born_on(number).year < 1999


# -- generating the tables ---------------------------------------------------------------------


@dataclass
class Planting:
    """What ``make_tables`` meant: per template code, the case keys it planted and the
    keys of the decoys (normalised, as ``expected_cases`` gives them)."""

    cases: dict[str, set[str]] = field(default_factory=dict)
    decoys: dict[str, set[str]] = field(default_factory=dict)


class _People:
    """The demo's residents and made-up persons from elsewhere, drawn without repeats."""

    def __init__(self, base_dir: Path, rng: random.Random) -> None:
        self.rng = rng
        self.residents = people_of(base_dir / "gaj-business.db")
        self.names = dict(self.residents)
        self.taken: set[str] = set()
        wjw = sqlite3.connect(base_dir / "wjw-business.db")
        gaj = sqlite3.connect(base_dir / "gaj-business.db")
        try:
            self.certified = {
                str(k): str(v) for k, v in wjw.execute("SELECT gmsfhm, swrq FROM swzm")
            }
            self.police_dead = {str(k) for (k,) in gaj.execute("SELECT gmsfhm FROM swzx")}
        finally:
            wjw.close()
            gaj.close()

    def living(self, n: int, *, born: tuple[int, int], x: bool | None = None) -> list[str]:
        """``n`` living residents born in the years ``born`` (inclusive) not drawn yet;
        ``x``: only (or never) those whose number ends in X."""
        pool = [
            k
            for k, _ in self.residents
            if k not in self.taken
            and k not in self.police_dead
            and born[0] <= born_on(k).year <= born[1]
            and (x is None or k.endswith("X") == x)
        ]
        drawn = self.rng.sample(pool, n)
        self.taken.update(drawn)
        return drawn

    def from_elsewhere(self, n: int) -> list[str]:
        """``n`` valid ID numbers of persons born outside 青岛, none a resident's."""
        out: list[str] = []
        while len(out) < n:
            born = date(1965, 1, 1) + timedelta(days=self.rng.randrange(365 * 38))
            body = f"{self.rng.choice(_ELSEWHERE)}{born:%Y%m%d}{self.rng.randrange(1000):03d}"
            number = body + ric.calc_check_digit(body + "?")
            if number not in self.names and number not in self.taken:
                self.taken.add(number)
                out.append(number)
        return out

    def name(self, number: str) -> str:
        found = self.names.get(number)
        if found is not None:
            return found
        # A surname and a given name of two residents: names that look like the city's.
        a, b = self.rng.choice(self.residents)[1], self.rng.choice(self.residents)[1]
        return a[0] + b[1:]


def _numbered(rows: Iterable[tuple[object, ...]], start: int = 1) -> list[tuple[object, ...]]:
    """Rows with their id in front and the row version (the id) behind."""
    return [(n, *row, n) for n, row in enumerate(rows, start=start)]


def make_tables(base_dir: Path, seed: int = 1212) -> Planting:
    """Write the tables of the six scenarios beside the demo's population (``czrk``),
    certificates (``swzm``) and registers (``scztdj``, ``swdj``); answer what was
    planted. Writing twice writes nothing more."""
    rng = random.Random(seed)
    people = _People(base_dir, rng)
    planting = Planting()
    _pensions(base_dir, people, planting)
    employed = _benefits(base_dir, people, planting)
    _migrants(base_dir, people, planting, employed)
    _housing(base_dir, people, planting)
    _untaxed(base_dir, rng, planting)
    _quota(base_dir, people, planting)
    for code, count in PLANTED.items():
        assert len(planting.cases[code]) == count, (code, len(planting.cases[code]))
        assert not planting.cases[code] & planting.decoys[code], code
    return planting


def _pensions(base_dir: Path, people: _People, planting: Planting) -> None:
    """人社's pension payments: living pensioners, and the deceased born before 1965 (old
    enough to draw one), two in three paid on after death."""
    dead = sorted(
        (k for k in people.certified if born_on(k).year < 1965),
        key=lambda k: people.certified[k],
    )
    died = {k: date.fromisoformat(people.certified[k]) for k in dead}
    # Paid on the 15th: a death on the 15th stopped with a payment on the very day.
    stopped = {k for i, k in enumerate(dead) if i % 3 == 2 or died[k].day == 15}
    paid_on = [k for k in dead if k not in stopped]
    only_police = sorted(people.police_dead - set(people.certified))
    people.taken.update(dead, only_police)
    living = people.living(150, born=(1940, 1964))
    old15 = set(paid_on[:3]) | set(living[:5]) | set(sorted(stopped)[:2])
    wide = set(paid_on[3:5]) | set(living[5:8])
    written: dict[str, str] = {}
    for k in [*dead, *only_police, *living]:
        if k in old15:
            written[k] = old_number(k)
        elif k in wide:
            written[k] = full_width(k)
        elif k.endswith("X"):
            written[k] = lower_x(k)  # the system of record writes a small x
        else:
            written[k] = k
    rows: list[tuple[object, ...]] = []
    for k in [*living, *dead, *only_police]:
        amount = round(people.rng.uniform(1800, 6500), 2)
        for day in _PAYDAYS:
            if k in stopped and day > died[k]:
                break
            rows.append((written[k], people.name(k), f"{day:%Y%m}", day.isoformat(), amount, "1"))
    write_table(
        base_dir / "rsj-business.db",
        "CREATE TABLE IF NOT EXISTS ylfs (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "ffny TEXT, ffrq TEXT, ffje REAL, ffzt TEXT, version INTEGER NOT NULL);",
        "ylfs",
        _numbered(rows),
    )
    planting.cases["dead_pension"] = set(paid_on)
    planting.decoys["dead_pension"] = stopped | set(only_police) | set(living[:8])


def _benefits(base_dir: Path, people: _People, planting: Planting) -> list[str]:
    """人社's 失业保险金 payments and 就业登记: every recipient's former job, a new job for
    some; and plain registrations of employed residents. Answers the employed residents
    (the driving rows of ``migrant_no_permit`` that are no cases)."""
    recipients = people.living(120, born=(1970, 2002))
    hired, late = recipients[:12], recipients[12:20]
    payments: list[tuple[object, ...]] = []
    jobs: list[tuple[object, ...]] = []
    rng = people.rng
    for i, k in enumerate(recipients):
        start = rng.randrange(9)
        months = _BENEFIT_MONTHS[start : start + rng.randint(3, 12)]
        amount = float(rng.choice([1710, 1800, 1881]))
        for day in months:
            payments.append(
                (
                    k,
                    people.name(k),
                    f"{months[0]:%Y%m}",
                    f"{months[-1]:%Y%m}",
                    amount,
                    day.isoformat(),
                )
            )
        lost = months[0] - timedelta(days=rng.randint(400, 3000))
        jobs.append((k, people.name(k), rng.choice(_EMPLOYERS), lost.isoformat(), "2"))
        if k in hired:
            # On the day of the last payment (>= holds), else a while before it.
            day = months[-1] if i == 0 else months[-1] - timedelta(days=rng.randint(1, 50))
            jobs.append((k, people.name(k), rng.choice(_EMPLOYERS), day.isoformat(), "1"))
        elif k in late:
            day = months[-1] + timedelta(days=1 if k == late[0] else rng.randint(2, 60))
            jobs.append((k, people.name(k), rng.choice(_EMPLOYERS), day.isoformat(), "1"))
    employed = people.living(300, born=(1965, 2005))
    blanks = set(employed[:5])
    for k in employed:
        day = date(2015, 1, 1) + timedelta(days=rng.randrange(3650))
        jobs.append(
            (
                f" {k}\u3000" if k in blanks else k,
                people.name(k),
                rng.choice(_EMPLOYERS),
                day.isoformat(),
                "1",
            )
        )
    write_table(
        base_dir / "rsj-business.db",
        "CREATE TABLE IF NOT EXISTS syj (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "lqqsy TEXT, lqzzy TEXT, ylqje REAL, ffrq TEXT, version INTEGER NOT NULL);",
        "syj",
        _numbered(payments),
    )
    # ``migrant_no_permit`` appends the migrants' registrations after these.
    write_table(
        base_dir / "rsj-business.db",
        "CREATE TABLE IF NOT EXISTS jydj (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "jydw TEXT, jyrq TEXT, jyzt TEXT, version INTEGER NOT NULL);",
        "jydj",
        _numbered(jobs),
    )
    planting.cases["unemployed_employed"] = set(hired)
    planting.decoys["unemployed_employed"] = set(recipients[12:])
    return employed


def _migrants(base_dir: Path, people: _People, planting: Planting, employed: list[str]) -> None:
    """Employed persons from elsewhere in 就业登记, and 公安's 居住证 of most of them."""
    rng = people.rng
    migrants = people.from_elsewhere(70)
    holders, without, left = migrants[:40], migrants[40:62], migrants[62:]
    written = {k: k for k in migrants}
    for k in holders[:4]:
        written[k] = full_width(k)
    for k in holders[4:7]:
        written[k] = f"{k} "
    for k in holders:
        if k.endswith("X"):
            written[k] = lower_x(k)
    for k in [k for k in without if _born_before_1999(k)][:2]:
        written[k] = old_number(k)
    jobs = [
        (
            written[k],
            people.name(k),
            rng.choice(_EMPLOYERS),
            (date(2023, 1, 1) + timedelta(days=rng.randrange(900))).isoformat(),
            "2" if k in left else "1",
        )
        for k in migrants
    ]
    # Ids of their own past the residents' registrations (``_benefits`` writes fewer
    # than 5000), so writing twice writes nothing more.
    write_table(base_dir / "rsj-business.db", "", "jydj", _numbered(jobs, start=5001))
    permits = []
    for n, k in enumerate(holders, start=1):
        issued = date(2023, 6, 1) + timedelta(days=rng.randrange(700))
        district = rng.choice(list(DISTRICTS.values()))
        permits.append(
            (
                k,
                people.name(k),
                f"3702{issued:%Y}{n:08d}",
                f"山东省青岛市{district}{rng.choice(_ROADS)}{rng.randint(1, 300)}号",
                issued.isoformat(),
                (issued + timedelta(days=365)).isoformat(),
            )
        )
    write_table(
        base_dir / "gaj-business.db",
        "CREATE TABLE IF NOT EXISTS jzz (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "jzzh TEXT, jzdz TEXT, qfrq TEXT, yxqz TEXT, version INTEGER NOT NULL);",
        "jzz",
        _numbered(permits),
    )
    with_blanks = {normal_key(k) for k in employed[:5]}
    planting.cases["migrant_no_permit"] = {normal_key(written[k]) for k in without}
    planting.decoys["migrant_no_permit"] = set(holders) | set(left) | with_blanks


def _housing(base_dir: Path, people: _People, planting: Planting) -> None:
    """住建's 住房保障 applications of residents and of persons from elsewhere."""
    rng = people.rng
    residents = people.living(120, born=(1950, 1998), x=False)
    with_x = people.living(3, born=(1950, 1998), x=True)
    outsiders = people.from_elsewhere(25)
    pending, refused = outsiders[:18], outsiders[18:]
    written = {k: k for k in [*residents, *with_x, *outsiders]}
    for k in residents[:6]:
        written[k] = old_number(k)
    for k in residents[6:10]:
        written[k] = full_width(k)
    for k in with_x:
        written[k] = lower_x(k)
    for k in [k for k in pending if _born_before_1999(k)][:2]:
        written[k] = old_number(k)
    rows = []
    for k in rng.sample(list(written), len(written)):  # in the order they applied
        verdict = "03" if k in refused else rng.choice(["01", "02"])
        if k in residents[20:] and rng.random() < 0.15:
            verdict = "03"  # residents are refused too, for their income
        rows.append(
            (written[k], people.name(k), rng.choice(["01", "02"]), rng.randint(1, 5), verdict)
        )
    write_table(
        base_dir / "zjj-business.db",
        "CREATE TABLE IF NOT EXISTS zfbz (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "sqlx TEXT, jtrk INTEGER, shjg TEXT, version INTEGER NOT NULL);",
        "zfbz",
        _numbered(rows),
    )
    planting.cases["housing_no_hukou"] = {normal_key(written[k]) for k in pending}
    planting.decoys["housing_no_hukou"] = set(refused) | set(residents[:10]) | set(with_x)


def _untaxed(base_dir: Path, rng: random.Random, planting: Planting) -> None:
    """税务登记 rows of 6 of the enterprises ``demo_legalbase`` left without one, their
    纳税人识别号 written otherwise than the 统一社会信用代码."""
    scj = sqlite3.connect(base_dir / "scj-business.db")
    swj = sqlite3.connect(base_dir / "swj-business.db")
    try:
        firms = [
            (str(c), str(n), date.fromisoformat(str(d)))
            for c, n, d in scj.execute("SELECT tyshxydm, qymc, clrq FROM scztdj ORDER BY id")
        ]
        taxed = {str(c) for (c,) in swj.execute("SELECT nsrsbh FROM swdj")}
    finally:
        scj.close()
        swj.close()
    untaxed = [f for f in firms if f[0] not in taxed]
    # Those 税务 registered with a wrong check digit stay as they are: cases.
    mistyped = {c[:17] for c in taxed}
    free = [f for f in untaxed if f[0][:17] not in mistyped]
    # Lower case needs letters: the codes given since 2016 (…MA…) have them. No
    # full-width digits: 3 bytes each, past the 20 bytes 纳税人识别号 is declared with,
    # and 税务's quality scan would count them invalid beside the 4 wrong check digits.
    lettered = [f for f in free if any(ch.isalpha() for ch in f[0])][:4]
    rest = [f for f in free if f not in lettered]
    rows: list[tuple[object, ...]] = []
    for (code, name, founded), written in [
        *((f, f[0].lower()) for f in lettered[:3]),
        *((f, f"{f[0].lower()} ") for f in lettered[3:]),
        *((f, f" {f[0]}") for f in rest[:1]),
        *((f, f"{f[0]} ") for f in rest[1:2]),
    ]:
        registered = founded + timedelta(days=rng.randrange(30))
        rows.append((written, code, name, registered.isoformat(), "03"))
    # Ids of their own past 税务's 274 rows, should ``make_registers`` grow.
    write_table(base_dir / "swj-business.db", "", "swdj", _numbered(rows, start=1001))
    decoys = {f[0] for f in [*lettered, *rest[:2]]}
    planting.cases["registered_untaxed"] = {f[0] for f in untaxed} - decoys
    planting.decoys["registered_untaxed"] = decoys


def _quota(base_dir: Path, people: _People, planting: Planting) -> None:
    """残联's 残疾人证 and the enterprises' declarations of their disabled employees."""
    rng = people.rng
    holders = people.living(200, born=(1960, 2004), x=False)
    holders_x = people.living(6, born=(1960, 2004), x=True)
    certificates: dict[str, str] = {}
    rows: list[tuple[object, ...]] = []
    for k in [*holders, *holders_x]:
        kind, grade = rng.randint(1, 7), rng.randint(1, 4)
        certificates[k] = f"{k}{kind}{grade}"
        rows.append((k, people.name(k), certificates[k], str(kind), str(grade)))
    write_table(
        base_dir / "cl-business.db",
        "CREATE TABLE IF NOT EXISTS cjrz (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "cjrzh TEXT, cjlb TEXT, cjdj TEXT, version INTEGER NOT NULL);",
        "cjrz",
        _numbered(rows),
    )
    scj = sqlite3.connect(base_dir / "scj-business.db")
    try:
        firms = [
            (str(c), str(n))
            for c, n in scj.execute("SELECT tyshxydm, qymc FROM scztdj ORDER BY id")
        ]
    finally:
        scj.close()
    declaring = rng.sample(firms, 60)
    cheats, honest = declaring[:12], declaring[12:]
    strangers = people.living(10, born=(1960, 2004)) + people.from_elsewhere(2)
    old = [k for k in holders if _born_before_1999(k)]
    # Honest declarations written otherwise: 4 with 15 digits, 3 full-width, 3 small x.
    odd = [
        *(old_number(k) for k in old[:4]),
        *(full_width(k) for k in holders[-3:]),
        *(lower_x(k) for k in holders_x[:3]),
    ]
    plain = [
        k
        for k in [*holders, *holders_x]
        if k not in set(old[:4]) | set(holders[-3:]) and k not in holders_x[:3]
    ]
    rng.shuffle(plain)
    declarations: list[tuple[object, ...]] = []
    for i, (code, name) in enumerate(declaring):
        wage = round(rng.uniform(90_000, 135_000), 2)  # 上年职工年平均工资, the 保障金 per person
        declared = [plain.pop() for _ in range(rng.randint(0, 2))]
        if i < len(cheats):
            declared.append(strangers[i])
        elif i - len(cheats) < len(odd):
            declared.append(odd[i - len(cheats)])
        elif not declared:
            declared.append(plain.pop())
        for written in declared:
            key = normal_key(written)
            number = certificates.get(key) or f"{key}{rng.randint(1, 7)}{rng.randint(1, 4)}"
            declarations.append((code, name, written, people.name(key), number, "2025", wage))
    write_table(
        base_dir / "cl-business.db",
        "CREATE TABLE IF NOT EXISTS cjrjy (id INTEGER PRIMARY KEY, tyshxydm TEXT, qymc TEXT, "
        "gmsfhm TEXT, xm TEXT, cjrzh TEXT, sbnd TEXT, zdje REAL, version INTEGER NOT NULL);",
        "cjrjy",
        _numbered(declarations),
    )
    planting.cases["disability_quota"] = {c for c, _ in cheats}
    planting.decoys["disability_quota"] = {c for c, _ in honest[: len(odd)]}


# -- what a correct job finds ----------------------------------------------------------------


def _rows(path: Path, sql: str) -> list[tuple[str, ...]]:
    db = sqlite3.connect(path)
    try:
        return [tuple("" if v is None else str(v) for v in row) for row in db.execute(sql)]
    finally:
        db.close()


def expected_cases(base_dir: Path) -> dict[str, set[str]]:
    """Per template code, the case keys (normalised: 18-digit upper-case ID numbers,
    half-width credit codes) a correct job over the demo's tables finds — read from the
    business tables and compared in plain Python, not by the job's own joins."""
    rsj, gaj = base_dir / "rsj-business.db", base_dir / "gaj-business.db"
    residents = {normal_key(k) for (k,) in _rows(gaj, "SELECT gmsfhm FROM czrk")}
    # The 人口库's 死亡日期 is 卫健's (its authoritative source), not 公安's register.
    died = {
        normal_key(k): date.fromisoformat(d)
        for k, d in _rows(base_dir / "wjw-business.db", "SELECT gmsfhm, swrq FROM swzm")
    }
    dead_paid = {
        normal_key(k)
        for k, paid in _rows(rsj, "SELECT gmsfhm, ffrq FROM ylfs")
        if normal_key(k) in died and date.fromisoformat(paid) > died[normal_key(k)]
    }

    hired: dict[str, list[date]] = {}
    for k, day, state in _rows(rsj, "SELECT gmsfhm, jyrq, jyzt FROM jydj"):
        if state == "1":
            hired.setdefault(normal_key(k), []).append(date.fromisoformat(day))
    paid_while_employed = {
        normal_key(k)
        for k, paid in _rows(rsj, "SELECT gmsfhm, ffrq FROM syj")
        if any(date.fromisoformat(paid) >= day for day in hired.get(normal_key(k), []))
    }

    housing = {
        normal_key(k)
        for k, verdict in _rows(base_dir / "zjj-business.db", "SELECT gmsfhm, shjg FROM zfbz")
        if verdict != "03" and normal_key(k) not in residents
    }

    swj = base_dir / "swj-business.db"
    taxpayers = {normal_key(k, id18=False) for (k,) in _rows(swj, "SELECT nsrsbh FROM swdj")}
    untaxed = {
        normal_key(k, id18=False)
        for k, state in _rows(base_dir / "scj-business.db", "SELECT tyshxydm, djzt FROM scztdj")
        if state == "1" and normal_key(k, id18=False) not in taxpayers
    }

    permits = {normal_key(k) for (k,) in _rows(gaj, "SELECT gmsfhm FROM jzz")}
    migrants = {
        normal_key(k)
        for k, state in _rows(rsj, "SELECT gmsfhm, jyzt FROM jydj")
        if state == "1" and normal_key(k) not in residents | permits
    }

    cl = base_dir / "cl-business.db"
    certified = {normal_key(k) for (k,) in _rows(cl, "SELECT gmsfhm FROM cjrz")}
    cheats = {
        normal_key(code, id18=False)
        for code, k in _rows(cl, "SELECT tyshxydm, gmsfhm FROM cjrjy")
        if normal_key(k) not in certified
    }
    return {
        "dead_pension": dead_paid,
        "unemployed_employed": paid_while_employed,
        "housing_no_hukou": housing,
        "registered_untaxed": untaxed,
        "migrant_no_permit": migrants,
        "disability_quota": cheats,
    }


# -- the hub's side ----------------------------------------------------------------------------


QUOTA_ENTRY = Entry(
    "cl",
    "203",
    QUOTA_NAME,
    "用人单位按年度申报的在职残疾职工明细，是按比例安排残疾人就业年审和"
    "残疾人就业保障金折抵的依据。",
    [
        *ENTERPRISE,
        it("残疾职工公民身份号码", "sfzhm", "C", 18, "GB 11643 公民身份号码"),
        it("残疾职工姓名", "xm", "C", 50),
        it("残疾人证号", "cjrzh", "C", 20),
        it("申报年度", "sbnd", "C", 4),
        it("折抵保障金额", "zdje", "Y", 12, "按上年职工年平均工资折抵的残疾人就业保障金"),
    ],
)


def setup(
    session: Session,
    admin: Principal,
    nodes: dict[str, ExchangeNode],
    base_dir: Path,
) -> list[SharedStore]:
    """Write the scenarios' tables, publish their entries and feed a store of each from
    its department's node. Needs the population, the 人口库's and the 法人库's sources
    (``demo_basedata``, ``demo_legalbase``) set up first."""
    make_tables(base_dir)
    person = {"gmsfhm": "sfzhm", "xm": "xm"}
    # (node, entry, task name, source, table, mapping beside the person's, key item)
    feeds: list[tuple[str, str, str, str, str, dict[str, str], str]] = [
        (
            "rsj",
            PENSION_NAME,
            "养老金发放信息发送",
            "social",
            "ylfs",
            {**person, "ffny": "ffny", "ffrq": "ffrq", "ffje": "ffje", "ffzt": "ffzt"},
            "sfzhm",
        ),
        (
            "rsj",
            BENEFIT_NAME,
            "失业保险金领取信息发送",
            "social",
            "syj",
            {**person, "lqqsy": "lqqsy", "lqzzy": "lqzzy", "ylqje": "ylqje", "ffrq": "ffrq"},
            "sfzhm",
        ),
        (
            "rsj",
            EMPLOYMENT_NAME,
            "就业登记信息发送",
            "social",
            "jydj",
            {**person, "jydw": "jydw", "jyrq": "jyrq", "jyzt": "jyzt"},
            "sfzhm",
        ),
        (
            "gaj",
            PERMIT_NAME,
            "居住证办理信息发送",
            "business",
            "jzz",
            {**person, "jzzh": "jzzh", "jzdz": "jzdz", "qfrq": "qfrq", "yxqz": "yxqz"},
            "sfzhm",
        ),
        (
            "zjj",
            HOUSING_NAME,
            "住房保障申请信息发送",
            "business",
            "zfbz",
            {**person, "sqlx": "sqlx", "jtrk": "jtrk", "shjg": "shjg"},
            "sfzhm",
        ),
        (
            "cl",
            CERTIFICATE_NAME,
            "残疾人证信息发送",
            "business",
            "cjrz",
            {**person, "cjrzh": "cjrzh", "cjlb": "cjlb", "cjdj": "cjdj"},
            "sfzhm",
        ),
        (
            "cl",
            QUOTA_NAME,
            "残疾人就业申报明细发送",
            "business",
            "cjrjy",
            {
                "tyshxydm": "tyshxydm",
                "qymc": "qymc",
                **person,
                "cjrzh": "cjrzh",
                "sbnd": "sbnd",
                "zdje": "zdje",
            },
            "tyshxydm",
        ),
    ]
    add_entry(session, admin, QUOTA_ENTRY)
    stores = []
    for abbr, name, task_name, source, table, mapping, key in feeds:
        resource = published(session, admin, name)
        task = provider_task(
            session, admin, nodes[abbr], resource, name=task_name, source=source, table=table
        )
        stores.append(feed_store(session, admin, resource, task, mapping, key_item=key))
    return stores


DELIVERY_NAME = "死亡人员仍领取养老金比对线索"  # delivery.entry_name of its job
DELIVERY_TABLE = "yljxs"  # in 人社's own database (its node's ``local`` target)


def deliver_cases(
    session: Session,
    admin: Principal,
    template: str,
    *,
    bureau_node: ExchangeNode,
    department_node: ExchangeNode,
) -> ExchangeTask:
    """交付 of the job made from ``template``: its cases reach the department's own
    database (its node's ``local`` target, table ``yljxs``) the way docs/compare.md sets
    it up by hand — the bureau's entry for the copy (its items as the job describes
    them), the bureau node's task reading it from the shared-store database (source
    ``shared``), the department's 订阅 grant and its subscription. Returns the
    department's receiving task; the cases arrive once the job has run."""
    from govshare.compare import delivery
    from govshare.compare.models import CompareJob
    from govshare.sharing import subscriptions

    job = session.scalar(select(CompareJob).where(CompareJob.template == template))
    assert job is not None, template
    job.deliver = True
    items = delivery.catalog_items(session, job.definition)
    entry = add_entry(
        session,
        admin,
        Entry(
            "dsj",
            "301",
            delivery.entry_name(job),
            delivery.entry_abstract(job),
            [it(i.name, i.code, i.data_type, i.length, i.description) for i in items],
        ),
    )
    source = exchange.create_task(
        session,
        admin,
        TaskCreate(
            name="比对线索发送",
            kind=TaskKind.PROVIDER,
            node_id=bureau_node.id,
            resource_id=entry.id,
            config={
                "source": "shared",
                "table": delivery.table_name(job.id),
                "key": [delivery.KEY],
                "cursor_column": delivery.VERSION,
                "schedule": {"interval_seconds": 2},
            },
        ),
    )
    grant = demo_grant(
        session,
        admin.actor,
        entry,
        job.department_id,
        [i.code for i in items],
        f"交付: {job.name}",
        SharingMode.SUBSCRIPTION,
    )
    subscription = subscriptions.subscribe(
        session,
        admin,
        grant,
        node_id=department_node.id,
        source_task_id=source.id,
        target_config={
            "target": "local",
            "table": DELIVERY_TABLE,
            "schedule": {"interval_seconds": 2},
        },
        name=f"{job.name}线索接收",
    )
    receiver = session.get(ExchangeTask, subscription.subscriber_task_id)
    assert receiver is not None
    return receiver


def _department(session: Session, short_name: str) -> Department:
    found = session.scalar(select(Department).where(Department.short_name == short_name))
    assert found is not None, short_name
    return found


def grant_templates(session: Session, actor: Actor = SYSTEM) -> list[SharingGrant]:
    """What each template's department must hold to run it: a grant for reading (查询)
    every input another department provides, for the items the template reads — as if
    each had applied and been approved (申请已批准), so the demo's templates run at once."""
    from govshare.compare.templates import TEMPLATES, instantiate

    made = []
    for template in TEMPLATES:
        dept = _department(session, template.department)
        for spec in instantiate(session, template.code, dept.id).inputs:
            resource = session.scalar(select(Resource).where(Resource.code == spec.resource))
            assert resource is not None, spec.resource
            if resource.provider_department_id == dept.id:
                continue
            made.append(
                demo_grant(
                    session, actor, resource, dept.id, list(spec.items), f"比对: {template.name}"
                )
            )
    return made


def create_template_jobs(session: Session, actor: Actor = SYSTEM) -> list[int]:
    """One job per template for its department, on demand, ready to run once the demo's
    nodes have fed the stores. Saved as ``compare.service.create_job`` saves a job but
    without its check, which needs the 人口库 assembled (it is, seconds after start):
    the templates' own test shows each one plans and finds its planted cases."""
    from govshare.compare.models import CompareJob
    from govshare.compare.templates import TEMPLATES, instantiate

    made = []
    for template in TEMPLATES:
        dept = _department(session, template.department)
        data = instantiate(session, template.code, dept.id)
        definition = data.as_definition()
        job = CompareJob(
            name=data.name,
            description=data.description,
            department_id=dept.id,
            template=template.code,
            definition=definition.model_dump(mode="json"),
            created_by=actor.name,
        )
        session.add(job)
        session.flush()
        audit.record(
            session,
            actor,
            "compare.job.create",
            object_type="compare_job",
            object_id=job.id,
            after={"name": job.name, "department_id": dept.id, **job.definition},
        )
        made.append(job.id)
    return made
