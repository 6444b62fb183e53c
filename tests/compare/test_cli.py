"""``govshare compare``: create a job from a YAML file, run it with a progress bar, list
it; mistakes answered with the field that is wrong and exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from govshare.compare.schemas import RunStatus
from tests.compare.builders import cases, dead_pension, grant, pension_scene
from tests.conftest import TEST_SECRET
from tests.factories import World

pytestmark = pytest.mark.xdist_group("compare")


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    settings = world.hub.settings
    env = {**os.environ, "GOVSHARE_SECRET_KEY": TEST_SECRET, "COLUMNS": "200"}
    env.pop("GOVSHARE_DEMO", None)
    if settings.database_url:
        env["GOVSHARE_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args, "--data-dir", str(settings.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_create_run_and_list_from_the_command_line(world: World, tmp_path: Path) -> None:
    scene = pension_scene(world)
    grant(world, scene.police, scene.social, scene.people.resource_id, ["sfzhm", "swrq"])
    who = scene.social.resource_admin
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**dead_pension(scene), "amount": "pay.xm"}), "utf-8")
    refused = _cli(world, "compare", "create", str(bad), "--as", who)
    assert refused.returncode == 1
    assert "涉及金额须是数值型信息项" in refused.stderr
    assert "[amount]" in refused.stderr

    good = tmp_path / "job.yaml"
    good.write_text(yaml.safe_dump(dead_pension(scene), allow_unicode=True), "utf-8")
    created = _cli(world, "compare", "create", str(good), "--as", who)
    assert created.returncode == 0, created.stderr
    job_id = int(created.stdout.split("#")[1].split()[0])

    ran = _cli(world, "compare", "run", str(job_id), "--as", who)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert "线索 3 条 (新发现 3，已消失 0)" in ran.stdout
    assert len(cases(world, job_id)) == 3

    listed = _cli(world, "compare", "list", "--as", who)
    assert listed.returncode == 0, listed.stderr
    assert "死亡人员仍领取养老金" in listed.stdout
    assert RunStatus.SUCCEEDED.label in listed.stdout

    unknown = _cli(world, "compare", "list", "--as", "no-such-user")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "用户不存在: no-such-user")
    huge = _cli(world, "compare", "run", "99999999999999999999", "--as", who)
    assert huge.returncode == 2  # refused by the argument's range, not a traceback
    assert "Traceback" not in huge.stderr

    stranger = world.department("民政").resource_admin
    denied = _cli(world, "compare", "run", str(job_id), "--as", stranger)
    assert denied.returncode == 1
    assert "只有负责部门和平台管理员" in denied.stderr
