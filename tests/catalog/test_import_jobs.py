"""Imports as jobs, on SQLite and PostgreSQL: the upload answers at once, a repeated
upload (the same file, or the same Idempotency-Key) returns the first job and imports
nothing twice, and a job a crash cut short takes back the entries it had stored."""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import func, select

from govshare.catalog import imports, spreadsheet
from govshare.catalog.models import ImportJob, ImportJobStatus, Resource
from govshare.security.roles import Role
from tests.catalog.test_import import _count_mine, _csv, _import, _row
from tests.factories import World, unique
from tests.sharing.builders import principal


def _upload(world: World, user: str, content: bytes, **headers: str) -> Any:
    with world.api(user) as c:
        return c.post(
            "/api/v1/catalog/import", files={"file": ("jobs.csv", content)}, headers=headers
        )


def test_a_repeated_upload_returns_the_first_job_and_imports_nothing_twice(
    world: World,
) -> None:
    dept = world.department()
    marker = unique("重传")
    content = _csv([_row("1", f"{marker}甲", "姓名", "xm"), _row("2", f"{marker}乙", "姓名", "xm")])
    first = _import(world, dept.registrar, "jobs.csv", content)
    assert first.ok, first.text
    assert first.job is not None
    assert (first.job["entries_total"], first.job["progress"]) == (2, 1.0)

    # The client timed out and sends the same file again: the first job answers.
    again = _upload(world, dept.registrar, content)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.job["id"]
    assert again.headers["location"] == f"/api/v1/catalog/import/jobs/{first.job['id']}"
    # The same key with a changed file is the same request too.
    key = f"upload-{first.job['id']}"
    keyed = _upload(world, dept.registrar, content + b"\n", **{"Idempotency-Key": key})
    assert keyed.status_code == 202
    retried = _upload(world, dept.registrar, content + b"\n\n", **{"Idempotency-Key": key})
    assert retried.status_code == 200
    assert retried.json()["id"] == keyed.json()["id"]
    assert _count_mine(world, dept.registrar, marker) == 2

    # Another department uploading the same bytes gets a job of its own.
    other = world.department("其他局")
    assert _upload(world, other.registrar, content).status_code == 202


def test_a_failed_job_can_be_uploaded_again_and_others_cannot_see_it(world: World) -> None:
    dept, other = world.department(), world.department("其他局")
    bad = _csv([_row("1", unique("坏"), "姓名", "xm", 信息资源分类="999")])
    failed = _import(world, dept.registrar, "bad.csv", bad)
    assert failed.job is not None
    assert failed.job["status"] == "failed"
    assert failed.job["resource_ids"] == []
    # Failed jobs do not hold the file: the same upload is checked again.
    assert _upload(world, dept.registrar, bad).status_code == 202
    with world.api(other.registrar) as c:
        r = c.get(f"/api/v1/catalog/import/jobs/{failed.job['id']}")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "import_job_not_found")
        assert failed.job["id"] not in [
            j["id"] for j in c.get("/api/v1/catalog/import/jobs").json()
        ]


def test_a_job_cut_short_by_a_crash_takes_back_what_it_stored(world: World) -> None:
    # A hub process stored the first chunk of a job and was killed: its entries are on
    # record with the job. The next start of a hub on this host takes them back.
    dept = world.department()
    marker = unique("中断")
    registrar = principal(dept.registrar, dept.id, Role.CATALOG_REGISTRAR)
    content = _csv([_row(str(i), f"{marker}第{i}条", "姓名", "xm") for i in range(1, 4)])
    factory = world.hub.session_factory
    with world.hub.db() as s:
        checked = spreadsheet.check_import(s, registrar, "cut.csv", content)
        stored = spreadsheet.store_entries(s, registrar, checked.entries[:2])
        job = ImportJob(
            department_id=dept.id,
            created_by=dept.registrar,
            filename="cut.csv",
            digest="0" * 64,
            status=ImportJobStatus.WRITING,
            rows=3,
            entries_total=3,
            entries_done=2,
            resource_ids=[r.id for r in stored],
            runner=f"{socket.gethostname()}:999999:gone",  # a process that no longer runs
        )
        s.add(job)
        s.flush()
        job_id = job.id
    assert _count_mine(world, dept.registrar, marker) == 2

    assert imports.recover(factory) >= 1
    with world.hub.db() as s:
        job = s.get(ImportJob, job_id)
        assert job is not None
        assert (job.status, job.resource_ids, job.entries_done) == (ImportJobStatus.FAILED, [], 0)
        assert job.error is not None
        assert job.error["code"] == "import_interrupted"
        left = s.scalar(select(func.count()).where(Resource.id.in_([r.id for r in stored])))
        assert left == 0
    assert _count_mine(world, dept.registrar, marker) == 0
