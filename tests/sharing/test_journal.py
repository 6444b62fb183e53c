"""The call journal: each batch of data-service calls spends its nonces, appends its
audit entries to the chain and adds its usage counts in one transaction, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare import db
from govshare.config import Settings
from govshare.security import audit
from govshare.security.errors import ReplayedRequest
from govshare.security.models import ApiNonce, AuditEntry
from govshare.sharing.journal import Call, CallJournal


@pytest.fixture
def journal(fresh_settings: Settings) -> Iterator[tuple[CallJournal, Session]]:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    j = CallJournal(
        engine,
        audit_alg=fresh_settings.audit_digest,
        audit_key=factory.kw["info"]["audit_key"].mac_key,
        nonce_ttl_seconds=600,
        lock_path=fresh_settings.data_dir / "journal.lock" if fresh_settings.is_sqlite else None,
    )
    with factory() as session:
        yield j, session
    j.close()
    engine.dispose()


def _call(nonce: str, *, app_key: str = "app-1", action: str = "data.lookup") -> Call:
    return Call(
        client_id=1,
        app_key=app_key,
        department_id=None,  # type: ignore[arg-type]
        remote_addr="127.0.0.1",
        nonce=nonce,
        action=action,
        resource_id=7,
        grant_id=None,
        keys=1,
        key_hashes=["0123456789abcdef"],
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
    assert [e.action for e in entries] == [
        "data.lookup",
        "data.lookup",
        "data.replay_refused",
        "data.lookup",
        "data.lookup",
        "data.replay_refused",
        "data.lookup",
    ]
    assert entries[2].after == {"nonce": "n1", "action": "data.lookup"}
    assert entries[0].after is not None
    assert entries[0].after["key_hashes"] == ["0123456789abcdef"]
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
    assert report.entries == 44
    assert report.problems == []
    assert [e.seq for e in _entries(session)] == list(range(1, 45))


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
