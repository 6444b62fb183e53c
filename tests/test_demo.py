"""Demo data: the seeds' departments and realistic entries a newcomer can explore."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from govshare import db
from govshare.catalog import search
from govshare.catalog.codes import ResourceStatus
from govshare.catalog.models import InformationItem, Resource
from govshare.config import Settings
from govshare.demo import load_demo
from govshare.security.audit import verify_chain
from govshare.security.models import Department
from govshare.security.validators import credit_code_problem, division_code_problem


@pytest.mark.parametrize("backend", ["sqlite"])
def test_demo_loads_a_believable_city(fresh_settings: Settings) -> None:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    with db.session_scope(factory) as s:
        counts = load_demo(s, "demo-password-1")
    with db.session_scope(factory) as s:
        depts = list(s.scalars(select(Department)))
        assert len(depts) >= 20
        assert {"公安", "人社", "市场监管", "税务", "民政", "卫健", "残联", "不动产", "公积金"} <= {
            d.short_name for d in depts
        }
        assert all(credit_code_problem(d.credit_code) is None for d in depts)
        assert all(division_code_problem(d.division_code) is None for d in depts)
        total = s.scalar(select(func.count()).select_from(Resource))
        assert total is not None
        assert 180 <= total <= 300
        assert counts["resources"] == total
        statuses = dict(
            s.execute(select(Resource.status, func.count()).group_by(Resource.status)).all()
        )
        assert statuses[ResourceStatus.PUBLISHED] > total // 2
        assert statuses[ResourceStatus.PENDING_REGISTRATION] > 0
        assert statuses[ResourceStatus.PENDING_PUBLICATION] > 0
        item_names = set(s.scalars(select(InformationItem.name)))
        # SPEC §4: birth, death, social insurance, enterprise and tax registration items.
        assert {
            "出生医学证明号",
            "新生儿姓名",
            "死亡证编号",
            "个人社保号",
            "险种类型",
            "统一社会信用代码",
            "法定代表人",
            "登记机关",
            "纳税人识别号",
        } <= item_names
        found = search.search(
            s, search.SearchQuery(q="出生医学证明", scope="all", viewer_is_admin=True)
        )
        assert any(r.name == "出生医学证明信息" for r in found.rows)
        assert verify_chain(s).intact
    engine.dispose()
