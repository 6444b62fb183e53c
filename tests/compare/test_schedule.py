"""Scheduled jobs and runs whose process died: the hub's runner queues a job when its
cron time has come (once, then the next time), and fails a run whose lease ran out,
removing the snapshot its killed worker left."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from govshare import db
from govshare.compare import runner
from govshare.compare.models import CompareJob, CompareRun
from govshare.compare.schemas import RunStatus
from govshare.config import Settings
from govshare.rules.clock import CHINA
from govshare.security.models import Department, DepartmentLevel
from tests.compare.builders import dead_pension, grant, pension_scene, save
from tests.factories import World

pytestmark = pytest.mark.xdist_group("compare")
NOW = datetime(2026, 6, 15, 2, 0, 30, tzinfo=UTC)


def test_a_due_schedule_queues_one_run_and_moves_on(world: World) -> None:
    scene = pension_scene(world)
    grant(world, scene.police, scene.social, scene.people.resource_id, ["sfzhm", "swrq"])
    job_id = save(world, scene.social, dead_pension(scene, schedule="0 2 * * *"))
    with world.hub.db() as s:
        job = s.get(CompareJob, job_id)
        assert job is not None
        assert job.next_run_at is not None
        # Read in Beijing time: 02:00 in China is 18:00 UTC the day before.
        assert (job.next_run_at.hour, job.next_run_at.minute) == (18, 0)
        assert job.next_run_at.astimezone(CHINA).hour == 2
        # Uncommitted: the live hub's own runner does not see the time moved back.
        job.next_run_at = NOW - timedelta(seconds=30)
        assert runner.queue_due(s, NOW) == 1
        assert runner.queue_due(s, NOW) == 0  # not twice for one time
        assert job.next_run_at == datetime(2026, 6, 15, 18, 0, tzinfo=UTC)
        queued = list(s.scalars(select(CompareRun).where(CompareRun.job_id == job_id)))
        assert [(r.trigger, r.status, r.requested_by) for r in queued] == [
            ("schedule", RunStatus.QUEUED, "system")
        ]
        s.rollback()


def test_a_run_whose_lease_ran_out_is_failed_and_its_snapshot_removed(world: World) -> None:
    scene = pension_scene(world)
    grant(world, scene.police, scene.social, scene.people.resource_id, ["sfzhm", "swrq"])
    job_id = save(world, scene.social, dead_pension(scene))
    with world.hub.db() as s:
        running = CompareRun(
            job_id=job_id,
            requested_by="test",
            status=RunStatus.RUNNING,
            started_at=NOW - timedelta(minutes=10),
            lease_until=NOW - timedelta(seconds=1),
        )
        alive = CompareRun(
            job_id=job_id,
            requested_by="test",
            status=RunStatus.RUNNING,
            started_at=NOW,
            lease_until=NOW + timedelta(minutes=1),
        )
        s.add_all([running, alive])
        s.flush()
        data_dir = world.hub.settings.data_dir
        # A killed worker's snapshot: the inputs' rows, sealed items opened.
        for run in (running, alive):
            (runner.run_folder(data_dir, run.id) / "snapshot").mkdir(parents=True)
            (runner.run_folder(data_dir, run.id) / "snapshot" / "a.parquet").write_bytes(b"x")
        try:
            assert runner.expire_lost(s, NOW, data_dir) == 1
            assert running.status is RunStatus.FAILED
            assert "租约过期" in running.error
            assert alive.status is RunStatus.RUNNING
            assert not runner.run_folder(data_dir, running.id).exists()
            assert (runner.run_folder(data_dir, alive.id) / "snapshot" / "a.parquet").exists()
        finally:
            s.rollback()
            for run in (running, alive):
                shutil.rmtree(runner.run_folder(data_dir, run.id), ignore_errors=True)


def test_two_hub_processes_queue_one_run_for_one_scheduled_time(fresh_settings: Settings) -> None:
    """Two hub processes (two engines on one database) both see a job due. The first
    queues its run, and the run finishes before the second gets to it: the second must
    not queue the same time again (before, it checked only for an open run)."""
    engines = [db.make_engine(fresh_settings) for _ in range(2)]
    first, second = (db.make_session_factory(e, fresh_settings) for e in engines)
    try:
        with db.session_scope(first) as s:
            dept = Department(
                name="比对测试局", short_name="比对", credit_code="11370200MB0000001X",
                division_code="370200", level=DepartmentLevel.CITY,
            )  # fmt: skip
            s.add(dept)
            s.flush()
            due_at = NOW - timedelta(seconds=30)
            job = CompareJob(
                name="按时比对", department_id=dept.id, definition={}, schedule="0 2 * * *",
                next_run_at=due_at, created_by="test",
            )  # fmt: skip
            s.add(job)
            s.flush()
            job_id = job.id
        with second() as late:
            seen = late.execute(
                select(CompareJob.id, CompareJob.schedule, CompareJob.next_run_at)
            ).one()  # the second process has read the job as due ...
            late.commit()
            with db.session_scope(first) as s:  # ... when the first queues and finishes
                assert runner.queue_due(s, NOW) == 1
                for run in s.scalars(select(CompareRun).where(CompareRun.job_id == job_id)):
                    run.status = RunStatus.SUCCEEDED
            assert runner.queue_scheduled(late, seen[0], seen[1], seen[2], NOW) is False
            late.commit()
        with db.session_scope(first) as s:
            runs = s.scalars(select(CompareRun).where(CompareRun.job_id == job_id)).all()
            assert len(runs) == 1
            assert s.get(CompareJob, job_id).next_run_at == datetime(  # type: ignore[union-attr]
                2026, 6, 15, 18, 0, tzinfo=UTC
            )
    finally:
        for e in engines:
            e.dispose()
