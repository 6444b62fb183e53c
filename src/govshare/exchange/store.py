"""Where accepted packages live: the hub database (embedded) or NATS JetStream (scale-out).

Either way the hub database keeps one ``ExchangePackage`` row per package, so ordering,
acknowledgements and reconciliation never depend on the bus, and either way the blob is
sealed with the data dir's at-rest key first (``security.atrest``). A package is kept
with its body under a data key of its own (the provider's, when it came under one) and
that key in the package's head; only the head is sealed (``keep``), so the body's bytes
are neither decrypted nor encrypted again between receiving and serving.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.exchange.models import ExchangePackage
from govshare.exchange.package import Package
from govshare.security.atrest import AtRestCipher


class PackageStore(Protocol):
    def put(self, session: Session, row: ExchangePackage, blob: bytes) -> None:
        """Keep the blob for ``row`` (already added to the session, not yet committed)."""

    def get(self, session: Session, row: ExchangePackage) -> bytes: ...

    def discard(self, session: Session, row: ExchangePackage) -> None:
        """Remove the blob of ``row`` for good (交换日志清理; the row itself stays)."""

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

    def discard(self, _session: Session, row: ExchangePackage) -> None:
        row.payload = None

    def ping(self) -> str:
        return "数据包保存在平台数据库中 (packages kept in the hub database)"

    def close(self) -> None:
        return None


class SealedStore:
    """Another store, with every new blob sealed at rest unless ``sealing`` is off; a
    sealed blob is opened whatever the setting, and one logged before sealing existed
    is served as it was stored."""

    def __init__(self, inner: PackageStore, cipher: AtRestCipher, *, sealing: bool) -> None:
        self.inner = inner
        self.cipher = cipher
        self.sealing = sealing

    def put(self, session: Session, row: ExchangePackage, blob: bytes) -> None:
        self.inner.put(session, row, self.cipher.seal(blob) if self.sealing else blob)

    def put_sealing_head(
        self, session: Session, row: ExchangePackage, head: bytes, body: bytes
    ) -> None:
        """Keep a package whose ``body`` is under a data key that ``head`` holds: only
        the head is sealed, which seals the whole (``keep`` below)."""
        self.inner.put(session, row, self.cipher.seal_head(head, body))

    def get(self, session: Session, row: ExchangePackage) -> bytes:
        return self.cipher.open(self.inner.get(session, row))

    def discard(self, session: Session, row: ExchangePackage) -> None:
        self.inner.discard(session, row)

    def ping(self) -> str:
        return self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def keep(
    store: PackageStore,
    session: Session,
    row: ExchangePackage,
    pkg: Package,
    plaintext: bytes,
    data_key: str | None,
) -> None:
    """Keep an accepted package ``pkg`` (its body ``plaintext`` checked against the
    provider's signature; ``data_key`` when it came under one): sealed at rest by a
    store that seals, else opened."""
    if isinstance(store, SealedStore) and store.sealing:
        store.put_sealing_head(session, row, *pkg.kept(plaintext, data_key, store.cipher.alg))
    else:
        store.put(session, row, pkg.reseal(plaintext, cipher="none", cipher_key=None))


def make_store(bus_url: str | None) -> PackageStore:
    if bus_url:
        from govshare.exchange.bus import NatsStore

        return NatsStore(bus_url)
    return DatabaseStore()


def hub_store(settings: Settings) -> PackageStore:
    """The package store of a hub process with these settings, sealing at rest unless
    ``at_rest_cipher`` is none."""
    alg = settings.at_rest_cipher
    return SealedStore(
        make_store(settings.bus_url),
        AtRestCipher(settings.data_dir, settings.secret_key, alg if alg != "none" else "sm4"),
        sealing=alg != "none",
    )
