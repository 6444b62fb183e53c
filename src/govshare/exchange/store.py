"""Where accepted packages live: the hub database (embedded) or NATS JetStream (scale-out).

Either way the hub database keeps one ``ExchangePackage`` row per package, so ordering,
acknowledgements and reconciliation never depend on the bus.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

from govshare.exchange.models import ExchangePackage


class PackageStore(Protocol):
    def put(self, session: Session, row: ExchangePackage, blob: bytes) -> None:
        """Keep the blob for ``row`` (already added to the session, not yet committed)."""

    def get(self, session: Session, row: ExchangePackage) -> bytes: ...

    def ping(self) -> str:
        """Whether the store answers now, described in a few words (``/readyz``);
        raises when it does not."""

    def close(self) -> None: ...


class DatabaseStore:
    """Packages as BLOB/bytea rows of the hub database."""

    def put(self, _session: Session, row: ExchangePackage, blob: bytes) -> None:
        row.payload = blob

    def get(self, _session: Session, row: ExchangePackage) -> bytes:
        if row.payload is None:
            raise LookupError(f"package {row.task_id}/{row.seq} has no payload in the database")
        return row.payload

    def ping(self) -> str:
        return "数据包保存在平台数据库中 (packages kept in the hub database)"

    def close(self) -> None:
        return None


def make_store(bus_url: str | None) -> PackageStore:
    if bus_url:
        from govshare.exchange.bus import NatsStore

        return NatsStore(bus_url)
    return DatabaseStore()
