"""The call journal: each batch of data-service calls spends its nonces, appends its
audit entries to the chain and adds its usage counts in one transaction, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from govshare import db
from govshare.config import Settings
from govshare.security import audit
from govshare.security.errors import ReplayedRequest
from govshare.security.models import ApiNonce, AuditEntry
from govshare.sharing import journal as journal_module
from govshare.sharing.journal import Call, CallJournal


def _journal(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    on_loop: bool = False,
    nonce_ttl_seconds: int = 600,
) -> CallJournal:
    return CallJournal(
        engine,
        audit_alg=settings.audit_digest,
        audit_key=factory.kw["info"]["audit_key"],
        nonce_ttl_seconds=nonce_ttl_seconds,
        lock_path=settings.data_dir / "journal.lock" if settings.is_sqlite else None,
        on_loop=on_loop,
    )


@pytest.fixture
def journal(fresh_settings: Settings) -> Iterator[tuple[CallJournal, Session]]:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    j = _journal(engine, factory, fresh_settings)
    with factory() as session:
        yield j, session
    j.close()
    engine.dispose()


def _call(
    nonce: str,
    *,
    app_key: str = "app-1",
    action: str = "data.lookup",
    key_hash: str = "0123456789abcdef",
    resource_id: int = 7,
) -> Call:
    return Call(
        client_id=1,
        app_key=app_key,
        department_id=None,  # type: ignore[arg-type]
        remote_addr="127.0.0.1",
        nonce=nonce,
        action=action,
        resource_id=resource_id,
        grant_id=None,
        keys=1,
        rows=1,
        key_hashes=[key_hash],
    )


def _entries(session: Session) -> list[AuditEntry]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def test_a_batch_refuses_nonces_spent_before_or_twice_within_it(
    journal: tuple[CallJournal, Session],
) -> None:
    j, session = journal
    assert j.write([_call("n1"), _call("n2")]) == set()

    again, fresh, twin_a, twin_b, other_app = (
        _call("n1"),
        _call("n3"),
        _call("n4"),
        _call("n4"),
        _call("n1", app_key="app-2"),
    )
    replays = j.write([again, fresh, twin_a, twin_b, other_app])

    # n1 was spent by the first batch; of the two n4 calls the first spends it; a nonce
    # belongs to its app key, so app-2 may use n1.
    assert replays == {id(again), id(twin_b)}
    entries = _entries(session)
    assert [(e.action, e.actor) for e in entries] == [
        ("data.lookup", "app-1"),  # the first batch: both calls in one entry
        ("data.replay_refused", "app-1"),
        ("data.lookup", "app-1"),  # n3 and the first n4
        ("data.replay_refused", "app-1"),
        ("data.lookup", "app-2"),
    ]
    assert entries[1].after == {"nonce": "n1", "action": "data.lookup"}
    assert [c["nonce"] for c in audit.journalled_calls(entries[0].after)] == ["n1", "n2"]
    assert [c["nonce"] for c in audit.journalled_calls(entries[2].after)] == ["n3", "n4"]
    assert audit.journalled_calls(entries[4].after)[0]["key_hashes"] == ["0123456789abcdef"]
    spent = session.execute(select(ApiNonce.app_key, ApiNonce.nonce)).all()
    assert sorted(spent) == [
        ("app-1", "n1"),
        ("app-1", "n2"),
        ("app-1", "n3"),
        ("app-1", "n4"),
        ("app-2", "n1"),
    ]


def test_journal_batches_and_single_records_form_one_unbroken_chain(
    journal: tuple[CallJournal, Session],
) -> None:
    j, session = journal
    j.write([_call(f"a{i}") for i in range(3)])
    audit.record(session, audit.SYSTEM, "test.between", object_type="test", after={"x": 1})
    session.commit()
    j.write([_call(f"b{i}") for i in range(40)])

    report = audit.verify_chain(session)
    assert report.entries == 3  # a batch's calls of one client share an entry
    assert report.problems == []
    assert [e.seq for e in _entries(session)] == [1, 2, 3]
    assert len(audit.journalled_calls(_entries(session)[2].after)) == 40


def test_a_failed_batch_leaves_no_nonce_entry_or_count(
    journal: tuple[CallJournal, Session],
) -> None:
    j, session = journal
    j.write([_call("kept")])
    broken = _call("lost")
    broken.grant_id = 999_999  # no such grant: the usage count breaks the foreign key
    broken.day = db.utcnow().date()

    with pytest.raises(Exception, match=r"(?i)foreign key"):
        j.write([_call("also-lost"), broken])

    assert [e.action for e in _entries(session)] == ["data.lookup"]
    assert session.scalar(select(func.count()).select_from(ApiNonce)) == 1
    assert audit.verify_chain(session).problems == []
    # and the journal goes on: the same nonces are still unspent
    assert j.write([_call("lost"), _call("also-lost")]) == set()


def test_a_waiting_call_learns_it_was_a_replay(journal: tuple[CallJournal, Session]) -> None:
    j, _ = journal
    j.commit(_call("once"))
    with pytest.raises(ReplayedRequest):
        j.commit(_call("once"))


def test_each_call_of_a_shared_entry_stays_findable_on_its_own(
    journal: tuple[CallJournal, Session],
) -> None:
    """One entry per client and object per batch (the decision for the service's tail
    latency), but an auditor still finds each call: by client, action and object in the
    entry's columns, and by key hash down to the single call that asked for the key."""
    j, session = journal
    wanted, other = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
    j.write(
        [
            _call("c1", key_hash=other),
            _call("c2", key_hash=wanted),
            _call("c3", key_hash=other, resource_id=8),
            _call("c4", app_key="app-2", key_hash=wanted),
            _call("c5", action="data.verify", key_hash=other),
        ]
    )
    entries = _entries(session)
    assert [(e.actor, e.action, e.object_id) for e in entries] == [
        ("app-1", "data.lookup", "7"),
        ("app-1", "data.lookup", "8"),
        ("app-2", "data.lookup", "7"),
        ("app-1", "data.verify", "7"),
    ]
    assert entries[0].after is not None
    assert entries[0].after["keys"] == 2
    assert entries[0].after["rows"] == 2
    calls = audit.journalled_calls(entries[0].after)
    assert [c["nonce"] for c in calls] == ["c1", "c2"]
    assert all(c["at"] and c["resource_id"] == 7 for c in calls)

    found = audit.list_entries(session, audit.AuditFilter(key_hash=wanted))
    assert [
        (e.actor, [c["nonce"] for c in audit.calls_with_key(e.after, wanted)]) for e in found
    ] == [
        ("app-2", ["c4"]),
        ("app-1", ["c2"]),
    ]
    by_client = audit.list_entries(session, audit.AuditFilter(key_hash=wanted, actor="app-1"))
    assert [e.seq for e in by_client] == [entries[0].seq]
    assert audit.list_entries(session, audit.AuditFilter(key_hash="cccccccccccccccc")) == []
    # never a LIKE pattern of the caller's making
    with pytest.raises(ValueError, match="not a key hash"):
        audit.list_entries(session, audit.AuditFilter(key_hash="%"))


def test_entries_written_one_per_call_are_still_read_as_calls() -> None:
    """Entries from before calls shared an entry hold the call itself in ``after``."""
    old = {"resource_id": 7, "keys": 1, "rows": 0, "key_hashes": ["aaaaaaaaaaaaaaaa"]}
    assert audit.journalled_calls(old) == [old]
    assert audit.calls_with_key(old, "aaaaaaaaaaaaaaaa") == [old]
    assert audit.calls_with_key(old, "bbbbbbbbbbbbbbbb") == []
    assert audit.journalled_calls({"nonce": "n1", "action": "data.lookup"}) == []


def test_on_sqlite_the_event_loop_writes_its_batch_or_hands_it_to_the_thread(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the calls that finish in one turn of the event loop are written by the
    loop itself in one batch; when another writer holds the database, the batch goes
    to the writer thread, which waits for it, so the loop never blocks."""
    if not fresh_settings.is_sqlite:
        pytest.skip("the loop writes only to SQLite")
    monkeypatch.setattr(journal_module, "CHECKPOINT_SECONDS", 0.0)
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    j = _journal(engine, factory, fresh_settings, on_loop=True)

    release: Callable[[], bool] | None = None  # called by the loop after some turns
    answered_before_release: list[bool] = []

    async def calls(prefix: str, n: int) -> list[BaseException | None]:
        waiting = asyncio.gather(
            *(j.wait(_call(f"{prefix}{i}")) for i in range(n)), _call_again(j, f"{prefix}0")
        )
        ticks = 0
        while not waiting.done():  # the loop stays free for other requests meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == 5 and release is not None:
                answered_before_release.append(waiting.done())
                release()
        return waiting.result()

    try:
        # the replay of l0 is in the same batch: refused; the others answered
        outcome = asyncio.run(calls("l", 5))
        assert outcome[:5] == [None] * 5
        with factory() as session:
            entries = _entries(session)
        assert [e.action for e in entries] == ["data.lookup", "data.replay_refused"]
        assert [c["nonce"] for c in audit.journalled_calls(entries[0].after)] == [
            f"l{i}" for i in range(5)
        ]
        assert j.batches == 1
        # the loop never checkpoints the WAL (an fsync); it asks the writer thread to
        loop_checkpoints = j._loop_conn.cursor().execute("PRAGMA wal_autocheckpoint")
        assert loop_checkpoints.fetchone()[0] == 0
        deadline = time.monotonic() + 5
        while j.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert j.checkpoints == 1

        # another writer holds the write lock: the loop hands the batch over at once
        holder = sqlite3.connect(
            fresh_settings.data_dir / "govshare.db", timeout=0, check_same_thread=False
        )
        holder.execute("BEGIN IMMEDIATE")
        lock = threading.Lock()
        released_by: list[str] = []

        def release_from(who: str) -> bool:
            with lock:
                if not released_by:
                    released_by.append(who)
                    holder.commit()
            return True

        # The lock is given back only once the loop has turned five more times with the
        # batch waiting (a blocked loop never would); a timer stands by so that a
        # blocked loop fails the test instead of hanging it. No timing is asserted: a
        # loaded machine (CI) may stall any process for half a second.
        def release_by_loop() -> bool:
            return release_from("loop")

        release = release_by_loop
        fallback = threading.Timer(20, release_from, ("timer",))
        fallback.start()
        outcome = asyncio.run(calls("t", 3))
        fallback.cancel()
        release = None
        assert outcome[:3] == [None] * 3
        assert released_by == ["loop"]  # the loop kept turning while the lock was held
        assert answered_before_release == [False]  # answered only once the entry is in
        with factory() as session:
            assert len(audit.journalled_calls(_entries(session)[2].after)) == 3
            assert audit.verify_chain(session).problems == []
        holder.close()
    finally:
        j.close()
        engine.dispose()


def test_on_sqlite_an_answer_waits_no_turn_of_the_loop_after_its_batch_is_in(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's write of a batch settles its calls' waits itself: each request resumes
    in the next turn of the loop, not after a thread-safe callback, a wrapped and a
    shielded future (four turns, each behind every other request ready then: under load
    those turns were the answers' tail). Still never before the batch is committed, and
    a request given up (cancelled) leaves its call in the batch, written."""
    if not fresh_settings.is_sqlite:
        pytest.skip("the loop writes only to SQLite")
    monkeypatch.setattr(journal_module, "CHECKPOINT_SECONDS", 3600.0)  # no housekeeping
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    j = _journal(engine, factory, fresh_settings, on_loop=True)
    committed_at: list[int] = []
    turn = 0
    write_locked = j._write_locked

    def write_and_note(batch: list[Call], conn: object = None) -> set[int]:
        replays = write_locked(batch, conn)
        committed_at.append(turn)
        return replays

    monkeypatch.setattr(j, "_write_locked", write_and_note)

    async def scenario() -> tuple[list[int], list[BaseException | None]]:
        nonlocal turn
        resumed: list[int] = []

        async def one(nonce: str) -> None:
            await j.wait(_call(nonce))
            resumed.append(turn)

        tasks = [asyncio.ensure_future(one(f"w{i}")) for i in range(4)]
        given_up = asyncio.ensure_future(j.wait(_call("gone")))
        await asyncio.sleep(0)  # every request reaches the journal in this turn
        given_up.cancel()
        while not all(t.done() for t in tasks):
            turn += 1
            await asyncio.sleep(0)
        outcome = await asyncio.gather(*tasks, given_up, return_exceptions=True)
        return resumed, [o if isinstance(o, BaseException) else None for o in outcome]

    try:
        resumed, outcome = asyncio.run(scenario())
        assert outcome[:4] == [None] * 4
        assert isinstance(outcome[4], asyncio.CancelledError)
        assert j.batches == 1
        assert len(committed_at) == 1
        # answered after the commit, and in the loop's very next turn
        assert resumed == [committed_at[0] + 1] * 4
        with factory() as session:
            [entry] = _entries(session)
        assert [c["nonce"] for c in audit.journalled_calls(entry.after)] == [
            "w0",
            "w1",
            "w2",
            "w3",
            "gone",
        ]
    finally:
        j.close()
        engine.dispose()


def test_on_sqlite_the_loop_and_the_writer_thread_exclude_each_other(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop keeps its lock file open between batches; while the writer thread holds
    the journal's file lock (pruning, say), the loop still does not write: it hands the
    batch over, and its calls are answered once the thread could write them."""
    if not fresh_settings.is_sqlite:
        pytest.skip("the loop writes only to SQLite")
    monkeypatch.setattr(journal_module, "CHECKPOINT_SECONDS", 3600.0)  # no housekeeping
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    j = _journal(engine, factory, fresh_settings, on_loop=True)
    try:
        asyncio.run(j.wait(_call("first")))  # the loop wrote it and keeps its lock file
        assert j.batches == 1
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with j._file_lock():
                holding.set()
                release.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(5)
        released = threading.Timer(0.3, release.set)
        released.start()
        started = time.monotonic()
        asyncio.run(j.wait(_call("second")))
        assert time.monotonic() - started >= 0.25  # not before the thread let go
        holder.join()
        released.join()
        assert j.batches == 2  # written by the thread: the loop never began a batch
        with factory() as session:
            entries = _entries(session)
            assert [c["nonce"] for e in entries for c in audit.journalled_calls(e.after)] == [
                "first",
                "second",
            ]
            assert audit.verify_chain(session).problems == []
    finally:
        j.close()
        engine.dispose()


async def _call_again(j: CallJournal, nonce: str) -> BaseException | None:
    try:
        await j.wait(_call(nonce))
    except ReplayedRequest as exc:
        return exc
    return None


def test_spent_nonces_are_pruned_by_the_thread_never_by_the_loop(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the nonces past their time is thousands of rows under load: on SQLite the
    writer thread does it in its housekeeping, so a request never waits for it."""
    if not fresh_settings.is_sqlite:
        pytest.skip("the loop writes only to SQLite")
    monkeypatch.setattr(journal_module, "CHECKPOINT_SECONDS", 3600.0)  # no housekeeping
    monkeypatch.setattr(journal_module, "PRUNE_SECONDS", 0.0)
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    # every nonce is past its time at once
    j = _journal(engine, factory, fresh_settings, on_loop=True, nonce_ttl_seconds=0)

    async def one(nonce: str) -> None:
        await j.wait(_call(nonce))

    def spent() -> int:
        with factory() as session:
            return session.scalar(select(func.count()).select_from(ApiNonce)) or 0

    try:
        asyncio.run(one("first"))
        asyncio.run(one("second"))
        assert spent() == 2  # the loop wrote both batches and deleted nothing
        j._housekeep()
        assert spent() == 0
    finally:
        j.close()
        engine.dispose()


def test_batch_sizes_are_measured(journal: tuple[CallJournal, Session]) -> None:
    from prometheus_client import REGISTRY

    def observed() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("govshare_data_journal_batch_calls_count") or 0.0
        total = REGISTRY.get_sample_value("govshare_data_journal_batch_calls_sum") or 0.0
        return count, total

    j, _session = journal
    count, total = observed()
    j.write([_call("size-1"), _call("size-2"), _call("size-3")])
    assert observed() == (count + 1, total + 3)
