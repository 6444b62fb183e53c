"""The node's local store (前置交换库): keys, task cursors, the key mirror, the outbox,
and the answers to the hub's commands with the checksums still to take.

Everything an extraction produces — the package, the advanced cursor, the keys it
touched — is written here in one SQLite transaction before anything leaves the node,
so a crash or a hub outage loses nothing and repeats nothing.

With a secret (``secret_file`` or ``GOVSHARE_NODE_SECRET``) the store is sealed at rest
(静态加密): the node's private keys, the hub's transport key, every package waiting in
the outbox and the task cursors are kept encrypted (SM4-GCM by default) under a key in
``STORE/keys/at-rest.json``, itself sealed with the secret, which lives outside the
store; the key mirror keeps each key as a keyed tag beside a sealed copy
(``MirrorKeys``). A copy of the store directory then neither signs as the node nor
reads the departments' rows waiting to leave or the keys of those sent. A store kept
unsealed before is sealed in place at the first start with a secret.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from govshare.security.atrest import (
    AtRestCipher,
    AtRestKey,
    AtRestKeyError,
    FindableSeal,
    add_key,
    is_sealed,
    key_path,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS identity (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_state (
    task_id INTEGER PRIMARY KEY,
    cursor TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_keyset_at REAL NOT NULL DEFAULT 0,
    stats TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS mirror (
    task_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    rowhash INTEGER,
    sealed_key TEXT,
    PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_state (
    task_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    next_chunk INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (task_id, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied (task_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    task_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    blob BLOB NOT NULL,
    rows INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (task_id, seq)
);
CREATE TABLE IF NOT EXISTS command_answer (
    command_id INTEGER PRIMARY KEY,
    ok INTEGER NOT NULL,
    result TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_checksum (
    command_id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    at_seq INTEGER NOT NULL
);
"""


SEALED_TEXT = "sealed:"
SEALED_MARK = "at_rest"  # identity entry: this store has been sealed and rewritten
MIRROR_MARK = "mirror_sealed"  # identity entry: the key mirror holds no key in the clear
MIRROR_KEY = "mirror_key"


def is_secret(name: str) -> bool:
    """Identity entries that would let a thief sign as the node or open its packages."""
    return name in ("cipher_key", MIRROR_KEY) or name.endswith((".private", ".next_private"))


# A key of at most this many digits is a row number: too short to be a 公民身份号码 or a
# 统一社会信用代码 (18 characters) or a mobile number (11 digits).
ROW_NUMBER_DIGITS = 10


def is_row_number(key: str) -> bool:
    return len(key) <= ROW_NUMBER_DIGITS and key.isascii() and key.isdigit()


class MirrorKeys:
    """How a sealed store keeps the keys it sent (the key mirror): each as its tag, to
    find it by, beside its sealed copy (``FindableSeal``), since keys are often 公民身份号码
    or credit codes. A row number identifies nobody outside its own table and is kept as
    it is: tags are random, and a mirror of random keys is written several times slower
    than one of row numbers, which arrive in order."""

    def __init__(self, seal: FindableSeal) -> None:
        self.seal = seal
        # How the keys of the batch last looked up are kept: its new keys are added next.
        self._batch: dict[str, str] = {}

    def stored(self, keys: list[str], *, batch: bool = False) -> list[str]:
        """Each key as the mirror keeps it (``batch``: remembered for ``sealed``)."""
        known = self._batch
        if known and not batch and all(k in known for k in keys):
            return [known[k] for k in keys]
        hidden = [k for k in keys if not is_row_number(k)]
        if not hidden:
            if batch:
                self._batch = {}
            return keys
        tags = dict(zip(hidden, self.seal.tags(hidden), strict=True))
        out = [tags.get(k, k) for k in keys]
        if batch:
            self._batch = dict(zip(keys, out, strict=True))
        return out

    def sealed(self, keys: list[str], stored: list[str]) -> list[str | None]:
        """The sealed copy (hex) of each key kept as a tag; None for row numbers."""
        hidden = [i for i, k in enumerate(keys) if not is_row_number(k)]
        out: list[str | None] = [None] * len(keys)
        if hidden:
            _, blobs = self.seal.seal([keys[i] for i in hidden], [stored[i] for i in hidden])
            for i, blob in zip(hidden, blobs, strict=True):
                out[i] = blob.hex()
        return out

    def opened(self, rows: Sequence[tuple[str, str | None]]) -> list[str]:
        """The keys of mirror rows (stored form, sealed copy)."""
        hidden = [(tag, bytes.fromhex(copy)) for tag, copy in rows if copy is not None]
        values = iter(self.seal.open([t for t, _ in hidden], [b for _, b in hidden]))
        return [key if copy is None else next(values) for key, copy in rows]


class StoreSealed(RuntimeError):
    """The store was sealed, and this process was given no secret to open it."""


class LocalStore:
    def __init__(self, directory: Path, cipher: AtRestCipher | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "node-store.db"
        self.cipher = cipher
        # With a cipher, the key mirror keeps each key as a tag to find it by and a
        # sealed copy (the keys are often 公民身份号码): see ``_seal_mirror``.
        self.keyseal: MirrorKeys | None = None
        self.db = self.connect()
        self.db.executescript(SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(mirror)")}
        if "sealed_key" not in columns:  # a store made before keys were sealed
            self.db.execute("ALTER TABLE mirror ADD COLUMN sealed_key TEXT")
        sealed = self.db.execute(
            "SELECT value FROM identity WHERE value LIKE ? LIMIT 1", (SEALED_TEXT + "%",)
        ).fetchone()
        if cipher is None and sealed is not None:
            raise StoreSealed(
                f"前置机本地库 {self.path} 已加密保存, 但未给出口令: 请在 node.toml 中设置 "
                "secret_file 或设置环境变量 GOVSHARE_NODE_SECRET"
            )
        if cipher is not None:
            # Open something now: a wrong secret, or a lost key file, is told at the start.
            if sealed is not None:
                if not key_path(directory).exists():  # opening would make a new, useless key
                    raise AtRestKeyError(
                        f"本地库已加密保存, 但密钥文件 {key_path(directory)} 不存在, "
                        "没有该密钥无法打开: 请从备份放回该文件"
                    )
                self._open(bytes.fromhex(sealed[0][len(SEALED_TEXT) :]))
            else:
                cipher.seal(b"")
            if self._raw_get(SEALED_MARK) is None:
                self._seal_in_place()
            if self._raw_get(MIRROR_MARK) != "sealed":
                self._seal_mirror()
            self.keyseal = MirrorKeys(FindableSeal(self.get(MIRROR_KEY) or ""))
        self.db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS batch_keys (key TEXT PRIMARY KEY) WITHOUT ROWID"
        )
        try:  # SQLite's JSON functions (built in since 3.38) look a batch's keys up fastest
            self.db.execute("SELECT value FROM json_each('[]')").fetchall()
            self.has_json = True
        except sqlite3.OperationalError:
            self.has_json = False

    def connect(self) -> sqlite3.Connection:
        """A connection of its own to the store, for a thread that works beside the agent's
        (autocommit unless a transaction is begun explicitly)."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- identity -------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        value = self._raw_get(name)
        return None if value is None else self._open_text(value)

    def put(self, name: str, value: str) -> None:
        if self.cipher is not None and is_secret(name):
            value = self._seal_text(value)
        self.db.execute(
            "INSERT OR REPLACE INTO identity (name, value) VALUES (?, ?)", (name, value)
        )

    def _raw_get(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM identity WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    # -- sealing at rest ---------------------------------------------------------------

    def _seal(self, blob: bytes) -> bytes:
        return blob if self.cipher is None else self.cipher.seal(blob)

    def _seal_text(self, text: str) -> str:
        """Text as a sealed text value (``sealed:`` and the blob's hex)."""
        assert self.cipher is not None
        return SEALED_TEXT + self.cipher.seal(text.encode("utf-8")).hex()

    def _open_text(self, value: str) -> str:
        """A text value as stored: opened when sealed, else as it is."""
        if not value.startswith(SEALED_TEXT):
            return value
        return self._open(bytes.fromhex(value[len(SEALED_TEXT) :])).decode("utf-8")

    def _open(self, blob: bytes) -> bytes:
        if self.cipher is not None:
            return self.cipher.open(blob)
        if is_sealed(blob):
            raise StoreSealed(f"前置机本地库 {self.path} 中的内容已加密保存, 但未给出口令")
        return blob

    def rotate_key(self) -> AtRestKey:
        """A new at-rest key seals from now on, and the node's secrets are sealed again
        with it; waiting packages keep the key they were sealed with (the old key stays
        in the key file to open them) and leave with the next upload."""
        if self.cipher is None:
            raise StoreSealed("本地库未加密保存 (未配置口令), 没有可轮换的密钥")
        key = add_key(self.path.parent, self.cipher.secret_key, self.cipher.alg)
        with self.transaction() as conn:
            for (name,) in conn.execute("SELECT name FROM identity").fetchall():
                if is_secret(name) and (opened := self.get(name)) is not None:
                    self.put(name, opened)
        return key

    def _seal_in_place(self) -> None:
        """Seal what an unsealed store kept in the clear — the secret identity entries
        and the waiting packages — in one transaction, then let nothing of the clear
        text stay behind in freed pages, the write-ahead log or the old file's pages."""
        assert self.cipher is not None
        self.db.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed
        with self.transaction() as conn:
            for name, value in conn.execute("SELECT name, value FROM identity").fetchall():
                if is_secret(name) and not value.startswith(SEALED_TEXT):
                    self.put(name, value)
            for task_id, seq in conn.execute("SELECT task_id, seq FROM outbox").fetchall():
                (blob,) = conn.execute(
                    "SELECT blob FROM outbox WHERE task_id = ? AND seq = ?", (task_id, seq)
                ).fetchone()
                if not is_sealed(blob):
                    conn.execute(
                        "UPDATE outbox SET blob = ? WHERE task_id = ? AND seq = ?",
                        (self.cipher.seal(blob), task_id, seq),
                    )
        # Marked last: a node killed before this seals again (nothing left to seal) and
        # rewrites the file again at its next start.
        self._rewrite_file(SEALED_MARK)

    def _seal_mirror(self) -> None:
        """Replace the key mirror's keys in the clear by their tags and sealed copies, and
        seal the task cursors (a cursor ends with the last row's key), in one transaction
        (a node killed meanwhile finds both as they were and starts again), then rewrite
        the file so no freed page keeps a key."""
        assert self.cipher is not None
        if self._raw_get(MIRROR_MARK) == "rewrite":  # killed before the file was rewritten
            self._rewrite_file(MIRROR_MARK)
            return
        if self._raw_get(MIRROR_KEY) is None:
            self.put(MIRROR_KEY, FindableSeal.new_key(self.cipher.alg))
        keyseal = MirrorKeys(FindableSeal(self.get(MIRROR_KEY) or ""))
        self.db.execute("PRAGMA secure_delete = ON")
        with self.transaction() as conn:
            conn.execute("DROP TABLE IF EXISTS mirror_sealing")
            conn.execute(
                "CREATE TABLE mirror_sealing (task_id INTEGER NOT NULL, key TEXT NOT NULL, "
                "rowhash INTEGER, sealed_key TEXT, PRIMARY KEY (task_id, key)) WITHOUT ROWID"
            )
            clear = conn.execute("SELECT task_id, key, rowhash FROM mirror")
            converted = 0
            while rows := clear.fetchmany(50_000):
                keys = [r[1] for r in rows]
                stored = keyseal.stored(keys)
                conn.executemany(
                    "INSERT OR IGNORE INTO mirror_sealing (task_id, key, rowhash, sealed_key) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        (r[0], k, r[2], c)
                        for r, k, c in zip(rows, stored, keyseal.sealed(keys, stored), strict=True)
                    ),
                )
                converted += len(rows)
            conn.execute("DROP TABLE mirror")
            conn.execute("ALTER TABLE mirror_sealing RENAME TO mirror")
            for task_id, cursor in conn.execute(
                "SELECT task_id, cursor FROM task_state WHERE cursor IS NOT NULL"
            ).fetchall():
                if not cursor.startswith(SEALED_TEXT):
                    conn.execute(
                        "UPDATE task_state SET cursor = ? WHERE task_id = ?",
                        (self._sealed_cursor(json.loads(cursor)), task_id),
                    )
                    converted += 1
            # Converted: never again (its tags would be taken for keys), whatever follows.
            conn.execute(
                "INSERT OR REPLACE INTO identity (name, value) VALUES (?, ?)",
                (MIRROR_MARK, "rewrite" if converted else "sealed"),
            )
        if converted:
            self._rewrite_file(MIRROR_MARK)
        self.db.execute("PRAGMA secure_delete = OFF")

    def _rewrite_file(self, mark: str) -> None:
        """Rewrite the store's file (no page of the old contents left), then mark it done."""
        self.db.execute("PRAGMA secure_delete = ON")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA secure_delete = OFF")
        self.put(mark, "sealed")

    def drop(self, name: str) -> None:
        self.db.execute("DELETE FROM identity WHERE name = ?", (name,))

    # -- task state -----------------------------------------------------------------------

    def state(self, task_id: int) -> tuple[list[Any] | None, int, float]:
        row = self.db.execute(
            "SELECT cursor, last_seq, last_keyset_at FROM task_state WHERE task_id = ?", (task_id,)
        ).fetchone()
        if row is None:
            self.db.execute("INSERT INTO task_state (task_id) VALUES (?)", (task_id,))
            return None, 0, 0.0
        cursor = self._open_text(row[0]) if row[0] else None
        return (json.loads(cursor) if cursor else None), int(row[1]), float(row[2])

    def set_cursor(
        self, conn: sqlite3.Connection, task_id: int, cursor: list[Any] | None, seq: int
    ) -> None:
        conn.execute(
            "UPDATE task_state SET cursor = ?, last_seq = ? WHERE task_id = ?",
            (self._sealed_cursor(cursor), seq, task_id),
        )

    def _sealed_cursor(self, cursor: list[Any] | None) -> str | None:
        """A cursor as stored: sealed with a cipher, since it ends with the last row's key."""
        if cursor is None:
            return None
        text = json.dumps(cursor, default=str)
        return text if self.cipher is None else self._seal_text(text)

    def next_seq(self, conn: sqlite3.Connection, task_id: int) -> int:
        conn.execute("INSERT OR IGNORE INTO task_state (task_id) VALUES (?)", (task_id,))
        conn.execute("UPDATE task_state SET last_seq = last_seq + 1 WHERE task_id = ?", (task_id,))
        return int(
            conn.execute(
                "SELECT last_seq FROM task_state WHERE task_id = ?", (task_id,)
            ).fetchone()[0]
        )

    def set_keyset_time(self, task_id: int, at: float) -> None:
        self.db.execute("UPDATE task_state SET last_keyset_at = ? WHERE task_id = ?", (at, task_id))

    def reset_task(self, task_id: int) -> None:
        """Re-sync from scratch: forget the cursor (sent keys stay, so re-sent rows are updates)."""
        self.db.execute("UPDATE task_state SET cursor = NULL WHERE task_id = ?", (task_id,))

    def forget_sent(self, task_id: int) -> None:
        """快照: send the whole table again — forget the cursor and every key sent, so
        each row goes out again (as an insert) whether or not it changed."""
        with self.transaction() as conn:
            conn.execute("UPDATE task_state SET cursor = NULL WHERE task_id = ?", (task_id,))
            conn.execute("DELETE FROM mirror WHERE task_id = ?", (task_id,))

    # -- key mirror -----------------------------------------------------------------------

    def existing_keys(
        self, conn: sqlite3.Connection, task_id: int, keys: list[str]
    ) -> dict[str, int | None]:
        """The batch's keys already sent, with the row hash they were sent with."""
        stored = keys if self.keyseal is None else self.keyseal.stored(keys, batch=True)
        if stored is not keys:
            by_stored = dict(zip(stored, keys, strict=True))
            found = self._existing(conn, task_id, list(by_stored))
            return {by_stored[k]: h for k, h in found.items()}
        return self._existing(conn, task_id, keys)

    def _existing(
        self, conn: sqlite3.Connection, task_id: int, keys: list[str]
    ) -> dict[str, int | None]:
        listed = self._json_list(keys)
        if listed is not None:
            return {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT key, rowhash FROM mirror WHERE task_id = ? "
                    "AND key IN (SELECT value FROM json_each(?))",
                    (task_id, listed),
                )
            }
        conn.execute("DELETE FROM batch_keys")
        conn.executemany("INSERT OR IGNORE INTO batch_keys (key) VALUES (?)", ((k,) for k in keys))
        return {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT b.key, m.rowhash FROM batch_keys b "
                "JOIN mirror m ON m.task_id = ? AND m.key = b.key",
                (task_id,),
            )
        }

    def mirror_empty(self, task_id: int) -> bool:
        found = self.db.execute("SELECT 1 FROM mirror WHERE task_id = ? LIMIT 1", (task_id,))
        return found.fetchone() is None

    def mirror_count(self, task_id: int) -> int:
        return int(
            self.db.execute("SELECT count(*) FROM mirror WHERE task_id = ?", (task_id,)).fetchone()[
                0
            ]
        )

    def _json_list(self, keys: Iterable[str]) -> bytes | None:
        """Keys as one JSON array, so SQLite walks a whole batch in a single statement
        (None when SQLite lacks JSON or a key is not valid Unicode text)."""
        if not self.has_json:
            return None
        try:
            return orjson.dumps(keys if isinstance(keys, list) else list(keys))
        except orjson.JSONEncodeError:
            return None

    def add_keys(
        self,
        conn: sqlite3.Connection,
        task_id: int,
        keys: Iterable[str],
        hashes: Iterable[int | None] | None = None,
    ) -> None:
        keys = keys if isinstance(keys, list) else list(keys)
        stored = keys if self.keyseal is None else self.keyseal.stored(keys)
        if stored is not keys:
            assert self.keyseal is not None
            rows = sorted(  # in key order: tags are random, and so are their pages
                zip(
                    stored,
                    self.keyseal.sealed(keys, stored),
                    hashes if hashes is not None else itertools.repeat(None),
                    strict=hashes is not None,
                ),
                key=itemgetter(0),
            )
            verb = "IGNORE" if hashes is None else "REPLACE"
            if self.has_json:  # one statement for the batch (executemany binds row by row)
                conn.execute(
                    f"INSERT OR {verb} INTO mirror (task_id, key, sealed_key, rowhash) "
                    "SELECT ?, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)",
                    (task_id, orjson.dumps(rows)),
                )
            else:
                conn.executemany(
                    f"INSERT OR {verb} INTO mirror (task_id, key, sealed_key, rowhash) "
                    "VALUES (?, ?, ?, ?)",
                    ((task_id, *r) for r in rows),
                )
            return
        if hashes is None:
            listed = self._json_list(keys)
            if listed is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO mirror (task_id, key) SELECT ?, value FROM json_each(?)",
                    (task_id, listed),
                )
                return
            conn.executemany(
                "INSERT OR IGNORE INTO mirror (task_id, key) VALUES (?, ?)",
                ((task_id, k) for k in keys),
            )
            return
        conn.executemany(
            "INSERT OR REPLACE INTO mirror (task_id, key, rowhash) VALUES (?, ?, ?)",
            ((task_id, k, h) for k, h in zip(keys, hashes, strict=True)),
        )

    def remove_keys(self, conn: sqlite3.Connection, task_id: int, keys: Iterable[str]) -> None:
        keys = keys if isinstance(keys, list) else list(keys)
        if not keys:
            return
        if self.keyseal is not None:
            keys = self.keyseal.stored(keys)
        listed = self._json_list(keys)
        if listed is not None:
            conn.execute(
                "DELETE FROM mirror WHERE task_id = ? AND key IN (SELECT value FROM json_each(?))",
                (task_id, listed),
            )
            return
        conn.executemany(
            "DELETE FROM mirror WHERE task_id = ? AND key = ?", ((task_id, k) for k in keys)
        )

    def missing_keys(self, task_id: int, source_keys: Iterable[str]) -> list[str]:
        """Keys sent earlier that the source no longer has (deleted there)."""
        with self.transaction() as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS scan_keys (key TEXT PRIMARY KEY) WITHOUT ROWID"
            )
            conn.execute("DELETE FROM scan_keys")
            keys = iter(source_keys)
            while chunk := list(itertools.islice(keys, 50_000)):
                if self.keyseal is not None:
                    chunk = self.keyseal.stored(chunk)
                listed = self._json_list(chunk)
                if listed is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO scan_keys (key) SELECT value FROM json_each(?)",
                        (listed,),
                    )
                else:
                    conn.executemany(
                        "INSERT OR IGNORE INTO scan_keys (key) VALUES (?)", ((k,) for k in chunk)
                    )
            rows = conn.execute(
                "SELECT key, sealed_key FROM mirror WHERE task_id = ? "
                "AND key NOT IN (SELECT key FROM scan_keys)",
                (task_id,),
            ).fetchall()
            conn.execute("DELETE FROM scan_keys")
        if self.keyseal is not None:
            return self.keyseal.opened(rows)
        return [r[0] for r in rows]

    # -- outbox ---------------------------------------------------------------------------

    def enqueue(
        self,
        conn: sqlite3.Connection,
        task_id: int,
        seq: int,
        blob: bytes,
        rows: int,
        at: float,
        *,
        encrypted_tail: int = 0,
    ) -> None:
        """Queue a package to leave. ``encrypted_tail``: how many of its last bytes are
        its body encrypted under a data key that the rest holds (wrapped): only the rest
        is sealed, which seals the whole without a pass over the body."""
        if self.cipher is not None and 0 < encrypted_tail < len(blob):
            split = len(blob) - encrypted_tail
            kept = self.cipher.seal_head(blob[:split], blob[split:])
        else:
            kept = self._seal(blob)
        conn.execute(
            "INSERT INTO outbox (task_id, seq, blob, rows, created_at) VALUES (?, ?, ?, ?, ?)",
            (task_id, seq, kept, rows, at),
        )

    def pending(
        self, limit: int = 100, conn: sqlite3.Connection | None = None
    ) -> Iterator[tuple[int, int, bytes]]:
        """Waiting packages in order, each read only when it is reached (they may be large)."""
        db = conn or self.db
        waiting = db.execute(
            "SELECT task_id, seq FROM outbox ORDER BY task_id, seq LIMIT ?", (limit,)
        ).fetchall()
        for task_id, seq in waiting:
            for (blob,) in db.execute(
                "SELECT blob FROM outbox WHERE task_id = ? AND seq = ?", (task_id, seq)
            ).fetchall():
                yield task_id, seq, self._open(blob)

    def pending_counts(self) -> dict[int, tuple[int, int]]:
        """Per task: packages and rows waiting to leave."""
        return {
            int(t): (int(n), int(r or 0))
            for t, n, r in self.db.execute(
                "SELECT task_id, count(*), sum(rows) FROM outbox GROUP BY task_id"
            )
        }

    def resign_outbox(
        self,
        conn: sqlite3.Connection,
        resign: Callable[[bytes], bytes | None],
        *,
        since: float = 0.0,
        until: float | None = None,
    ) -> int:
        """Replace each waiting package (queued from ``since`` up to ``until``) by
        ``resign(blob)`` unless that is None; returns how many were replaced. One package
        in memory at a time (they may be large)."""
        changed = 0
        waiting = conn.execute(
            "SELECT task_id, seq FROM outbox WHERE created_at >= ? AND created_at <= ? "
            "ORDER BY task_id, seq",
            (since, float("inf") if until is None else until),
        ).fetchall()
        for task_id, seq in waiting:
            (blob,) = conn.execute(
                "SELECT blob FROM outbox WHERE task_id = ? AND seq = ?", (task_id, seq)
            ).fetchone()
            again = resign(self._open(blob))
            if again is not None:
                conn.execute(
                    "UPDATE outbox SET blob = ? WHERE task_id = ? AND seq = ?",
                    (self._seal(again), task_id, seq),
                )
                changed += 1
        return changed

    def sent(self, task_id: int, seq: int, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.db).execute(
            "DELETE FROM outbox WHERE task_id = ? AND seq = ?", (task_id, seq)
        )

    # -- answers to the hub's commands ----------------------------------------------------

    def keep_answer(
        self,
        command_id: int,
        ok: bool,
        result: dict[str, Any],
        at: float,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Keep an answer until the hub has acknowledged it (the first one kept stands)."""
        (conn or self.db).execute(
            "INSERT OR IGNORE INTO command_answer (command_id, ok, result, created_at) "
            "VALUES (?, ?, ?, ?)",
            (command_id, int(ok), json.dumps(result, default=str), at),
        )

    def answers(self) -> list[tuple[int, bool, dict[str, Any]]]:
        """Answers not yet acknowledged by the hub, oldest first."""
        return [
            (int(c), bool(ok), json.loads(r))
            for c, ok, r in self.db.execute(
                "SELECT command_id, ok, result FROM command_answer ORDER BY command_id"
            )
        ]

    def has_answer(self, command_id: int) -> bool:
        found = self.db.execute("SELECT 1 FROM command_answer WHERE command_id = ?", (command_id,))
        return found.fetchone() is not None

    def answer_delivered(self, command_id: int) -> None:
        self.db.execute("DELETE FROM command_answer WHERE command_id = ?", (command_id,))

    def add_pending_checksum(self, command_id: int, task_id: int, at_seq: int) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO pending_checksum (command_id, task_id, at_seq) VALUES (?, ?, ?)",
            (command_id, task_id, at_seq),
        )

    def pending_checksums(self) -> list[tuple[int, int, int]]:
        """Subscriber checksums asked for and not yet taken: (command id, task, at seq)."""
        return [
            (int(c), int(t), int(s))
            for c, t, s in self.db.execute(
                "SELECT command_id, task_id, at_seq FROM pending_checksum ORDER BY command_id"
            )
        ]

    def drop_pending_checksum(
        self, command_id: int, conn: sqlite3.Connection | None = None
    ) -> None:
        (conn or self.db).execute(
            "DELETE FROM pending_checksum WHERE command_id = ?", (command_id,)
        )
