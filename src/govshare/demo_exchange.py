"""The demo's exchange: 公安's front-end node shares a population table (made-up residents)
with 人社 and 民政 through the hub, and a little business system keeps changing it,
so a newcomer running ``make run`` sees data flow. The departments' nodes also feed the
stores the 人口库 (``demo_basedata``) and the 法人库 (``demo_legalbase``) are assembled
from, and those the built-in comparison templates read (``demo_compare``)."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.cn import ric

from govshare import demo_basedata, demo_compare, demo_legalbase
from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.demo_sharing import ensure_published
from govshare.exchange import service as exchange
from govshare.exchange.models import ExchangeNode, TaskKind, TaskState
from govshare.exchange.schemas import TaskCreate
from govshare.security.models import Department, User
from govshare.security.roles import permissions_for
from govshare.security.service import Principal
from govshare.sharing import store as shared
from govshare.sharing.schemas import StoreCreate, VerifyRule

PEOPLE = 3000
RESOURCE_NAME = "常住人口基本信息"


@dataclass(frozen=True)
class DemoNode:
    abbr: str
    label: str


NODES = [
    DemoNode("gaj", "公安前置机"),
    DemoNode("rsj", "人社前置机"),
    DemoNode("mzj", "民政前置机"),
    DemoNode("wjw", "卫健前置机"),
    DemoNode("scj", "市场监管前置机"),
    DemoNode("swj", "税务前置机"),
    DemoNode("zjj", "住建前置机"),
    DemoNode("cl", "残联前置机"),
    DemoNode("dsj", "大数据局前置机"),
]
# The business databases each node reads (数据源名 → file in the demo directory); 人社's,
# 民政's and 卫健's feed the 人口库 (``demo_basedata``), 市场监管's and 税务's the 法人库
# (``demo_legalbase``); 住建's and 残联's only the comparison templates' stores
# (``demo_compare``), which 人社's and 公安's feed too.
NODE_SOURCES = {
    "gaj": {"business": "gaj-business.db"},
    "rsj": {"business": "gaj-business.db", "social": "rsj-business.db"},
    "mzj": {"business": "gaj-business.db", "civil": "mzj-business.db"},
    "wjw": {"business": "wjw-business.db"},
    "scj": {"business": "scj-business.db"},
    "swj": {"business": "swj-business.db"},
    "zjj": {"business": "zjj-business.db"},
    "cl": {"business": "cl-business.db"},
    # The bureau's node reads the hub's own shared-store database (source ``shared``,
    # added in ``setup``): the comparison cases delivered to 人社 (交付).
    "dsj": {},
}


def _admin(session: Session) -> Principal:
    user = session.scalar(select(User).where(User.username == "admin"))
    assert user is not None
    return Principal(
        kind="user",
        name=user.username,
        department_id=user.department_id,
        permissions=permissions_for(user.roles),
        roles=tuple(user.roles),
        user_id=user.id,
    )


# Small pools for the demo's residents: enough variety for search, masking and charts.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
# characters of given names, one or two drawn
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍建文国红梅鹏飞海燕志晓东春"
    "俊子涵欣怡浩然雨轩梓萱一诺宇航思远佳"
)
_DISTRICTS = ["市南区", "市北区", "李沧区", "崂山区", "黄岛区", "城阳区", "即墨区"]
_ROADS = [
    "香港中路",
    "山东路",
    "延安三路",
    "燕儿岛路",
    "辽阳西路",
    "重庆南路",
    "长江中路",
    "正阳路",
    "李村路",
    "银川东路",
    "福州南路",
    "宁夏路",
    "南京路",
    "台东一路",
]
_PHONE_PREFIXES = [
    "130",
    "133",
    "135",
    "136",
    "138",
    "139",
    "150",
    "152",
    "158",
    "176",
    "177",
    "180",
    "186",
    "187",
    "189",
    "199",
]


def _resident(rng: random.Random) -> tuple[str, str, str, str]:
    """公民身份号码, 姓名, 住址, 手机号码 of a made-up 青岛 resident."""
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 70))
    area = rng.choice(["370202", "370203", "370211", "370212", "370213", "370214", "370281"])
    body = f"{area}{born:%Y%m%d}{rng.randrange(1000):03d}"
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))
    address = (
        f"山东省青岛市{rng.choice(_DISTRICTS)}{rng.choice(_ROADS)}{rng.randint(1, 300)}号"
        f"{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元{rng.randint(101, 2802)}户"
    )
    phone = f"{rng.choice(_PHONE_PREFIXES)}{rng.randrange(10**8):08d}"
    return body + ric.calc_check_digit(body + "?"), rng.choice(_SURNAMES) + given, address, phone


def make_population(path: Path, people: int = PEOPLE, seed: int = 2026) -> None:
    """A 公安 business table of residents (常住人口), with a row version for extraction."""
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE IF NOT EXISTS czrk (id INTEGER PRIMARY KEY, gmsfhm TEXT NOT NULL, "
        "xm TEXT NOT NULL, "
        "xb TEXT, csrq TEXT, hjdz TEXT, lxdh TEXT, version INTEGER NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS ix_czrk_version ON czrk (version, id)")
    rows = []
    for i in range(1, people + 1):
        ssn, name, address, phone = _resident(rng)
        rows.append(
            (
                i,
                ssn,
                name,
                "1" if int(ssn[16]) % 2 else "2",
                f"{ssn[6:10]}-{ssn[10:12]}-{ssn[12:14]}",
                address,
                phone,
                i,
            )
        )
    db.executemany("INSERT OR IGNORE INTO czrk VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def setup(session: Session, settings: Settings, hub_url: str) -> list[Path]:
    """Create (once) the demo nodes and tasks; return the node.toml files to run."""
    base = settings.data_dir.resolve() / "demo-exchange"
    base.mkdir(parents=True, exist_ok=True)
    configs = [base / f"{n.abbr}.toml" for n in NODES]
    if session.scalar(select(ExchangeNode.id).where(ExchangeNode.name == NODES[0].label)):
        # A data directory an older demo set up lacks the nodes added since: run those
        # it has (a fresh directory gets them all).
        return [c for c in configs if c.exists()]
    admin = _admin(session)
    depts = {d.short_name: d for d in session.scalars(select(Department))}
    by_abbr = {
        "gaj": depts["公安"],
        "rsj": depts["人社"],
        "mzj": depts["民政"],
        "wjw": depts["卫健"],
        "scj": depts["市场监管"],
        "swj": depts["税务"],
        "zjj": depts["住建"],
        "cl": depts["残联"],
        "dsj": depts["大数据局"],
    }
    resource = session.scalar(select(Resource).where(Resource.name == RESOURCE_NAME))
    assert resource is not None
    ensure_published(session, admin, resource, "演示交换")
    make_population(base / "gaj-business.db")
    nodes = {}
    for node, config in zip(NODES, configs, strict=True):
        row, token = exchange.enroll_node(
            session, settings, admin, name=node.label, department_id=by_abbr[node.abbr].id
        )
        nodes[node.abbr] = row
        urls = {name: f"sqlite:///{base / file}" for name, file in NODE_SOURCES[node.abbr].items()}
        if node.abbr == "dsj":
            urls["shared"] = settings.resolved_shared_store_url
        sources = "".join(f'[sources.{name}]\nurl = "{url}"\n\n' for name, url in urls.items())
        # The store's secret (前置机本地库口令) beside the configuration, not in the store.
        secret = base / "secrets" / f"{node.abbr}.secret"
        secret.parent.mkdir(mode=0o700, exist_ok=True)
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        config.write_text(
            f'hub_url = "{hub_url}"\nnode_id = {row.id}\nenrollment_token = "{token}"\n'
            f'store = "store-{node.abbr}"\nsecret_file = "secrets/{node.abbr}.secret"\n'
            f"heartbeat_seconds = 3\n\n{sources}"
            f'[targets.local]\nurl = "sqlite:///{base / f"{node.abbr}-local.db"}"\n',
            encoding="utf-8",
        )
    provider = exchange.create_task(
        session,
        admin,
        TaskCreate(
            name="常住人口信息发送",
            kind=TaskKind.PROVIDER,
            node_id=nodes["gaj"].id,
            resource_id=resource.id,
            config={
                "source": "business",
                "table": "czrk",
                "key": ["id"],
                "cursor_column": "version",
                "delete_detection": "keyset",
                "keyset_every_seconds": 60,
                "batch_rows": 5000,
                "schedule": {"interval_seconds": 2},
            },
        ),
    )
    exchange.set_task_state(session, admin, provider.id, TaskState.RUNNING)
    # The hub's 共享信息库 of the population, served to grant holders by the data services.
    population = shared.create_store(
        session,
        admin,
        StoreCreate(
            resource_id=resource.id,
            source_task_id=provider.id,
            key_item="sfzhm",
            mapping={"gmsfhm": "sfzhm", "xm": "xm", "xb": "xb", "csrq": "csrq", "hjdz": "hjdz"},
            verify_rules=[
                VerifyRule(
                    name="gender",
                    label="性别",
                    kind="status",
                    item="xb",
                    values={"1": "男", "2": "女"},
                ),
                VerifyRule(
                    name="registered",
                    label="户籍登记",
                    kind="presence",
                    present="本市户籍",
                    absent="非本市户籍",
                ),
            ],
        ),
    )
    session.flush()
    demo_basedata.setup(session, admin, nodes, population, base)
    demo_legalbase.setup(session, admin, nodes, base)
    # After both: its templates read the 人口库 and its tables extend the 法人库's sources.
    demo_compare.setup(session, admin, nodes, base)
    demo_compare.grant_templates(session, admin.actor)
    demo_compare.create_template_jobs(session, admin.actor)
    demo_compare.deliver_cases(
        session, admin, "dead_pension", bureau_node=nodes["dsj"], department_node=nodes["rsj"]
    )
    for abbr in ("rsj", "mzj"):
        sub = exchange.create_task(
            session,
            admin,
            TaskCreate(
                name=f"常住人口信息接收({by_abbr[abbr].short_name})",
                kind=TaskKind.SUBSCRIBER,
                node_id=nodes[abbr].id,
                resource_id=resource.id,
                source_task_id=provider.id,
                config={
                    "target": "local",
                    "table": "czrk_copy",
                    "code_maps": {"xb": {"1": "男", "2": "女"}},
                    "schedule": {"interval_seconds": 2},
                },
            ),
        )
        exchange.set_task_state(session, admin, sub.id, TaskState.RUNNING)
    return configs


def _die_with_parent() -> None:
    """Linux: the node gets SIGTERM when the hub process ends, however it ends."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Running:
    """The demo's node processes and business system, stopped when the hub stops."""

    def __init__(self, configs: list[Path], business_db: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        for config in configs:
            log = (config.parent / f"{config.stem}.log").open("ab")
            self.procs.append(
                subprocess.Popen(  # noqa: S603 - our own CLI and a config file we wrote
                    [sys.executable, "-m", "govshare.cli", "node", "run", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")},
                    preexec_fn=_die_with_parent,
                )
            )
            log.close()
        self.halt = threading.Event()
        self.business = threading.Thread(target=self._business, args=(business_db,), daemon=True)
        self.business.start()
        atexit.register(self.stop)

    def _business(self, path: Path) -> None:
        """Every few seconds somebody moves house or changes a phone number."""
        rng = random.Random()
        while not self.halt.wait(5):
            db = sqlite3.connect(path, timeout=10)
            with db:
                version = db.execute("SELECT max(version) + 1 FROM czrk").fetchone()[0]
                for n in range(rng.randint(1, 20)):
                    db.execute(
                        "UPDATE czrk SET lxdh = ?, version = ? WHERE id = ?",
                        (
                            f"1{rng.randint(3000000000, 9999999999)}",
                            version + n,
                            rng.randint(1, PEOPLE),
                        ),
                    )
            db.close()

    def stop(self) -> None:
        self.halt.set()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
