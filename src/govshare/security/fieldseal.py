"""字段加密: the sensitive items (敏感信息项) of shared stores and base databases are kept
sealed cell by cell, so a copy of the shared-store database, or a look over an
operator's shoulder at it, shows no ID number, name or telephone number.

The sealing is deterministic, in the synthetic-IV way (SIV), the construction a node
already uses for the keys it mirrors (``atrest.FindableSeal``): the tag is a keyed hash
of the value (HMAC-SM3, or HMAC-SHA-256 with AES), and the value is encrypted in counter
mode (SM4-CTR or AES-256-CTR) starting from the tag. Equal values seal to equal cells,
so everything that only compares values keeps working on the sealed cells inside the
database: looking a record up by a sealed key, keys' uniqueness, joining two stores on
the same ID number, grouping a base database's sources by key. The keyed hash *is* the
cell's first 16 bytes; there is no second column to keep in step. Opening a cell
decrypts it and checks the tag again, so a changed cell fails to open instead of giving
another value. What needs the value itself (a format check, a range, masking, the
answer to a caller) opens the cells it reads.

A cell is ``~`` followed by the tag and the ciphertext in URL-safe Base64 (no padding):
plain ASCII, so it fits a text column of any database and an index on it. Values are
sealed as their text (Arrow's cast to string): a store records the type each sealed
item had so readers can give numbers and dates back as such.

The key lives in ``DATA_DIR/keys/field-seal.json`` (mode 0600), sealed with
``GOVSHARE_SECRET_KEY``, never in the database. It is made on first use. ``rotate`` adds
a key of the next generation; the older ones stay, so every cell keeps opening. A new
key changes every cell, and with them the lookups and joins on them, so each store
records the generation it seals under (``SharedStore.seal_key``) and moves to the
newest only when it is resealed as a whole (``sharing.reseal``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import fcntl
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag

from govshare.errors import GovshareError
from govshare.security.atrest import ALGS, AtRestKeyError, FindableSeal
from govshare.security.crypto import seal, unseal

KEY_FILE = "field-seal.json"
MARK = "~"
_TAG_LEN = 16


class FieldSealError(GovshareError):
    """A sealed cell that does not open (changed, or sealed under another key), or a
    key file that cannot be read: an operator's problem, not the caller's."""

    status = 503
    code = "field_seal_unavailable"


def key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / KEY_FILE


class FieldSealer:
    """Seals and opens the cells of sensitive items with the data dir's field keys.

    Each key has a generation (1 for the first; ``rotate`` adds the next). A cell says
    which sealed it (``~`` then the cell of generation 1, ``~2.`` then one of generation
    2 …), so any cell opens whatever its store's key; a value is sealed under the
    generation given (``under``: a store's own, ``SharedStore.seal_key``), the first
    when none is, as for a store that records none."""

    def __init__(
        self, data_dir: Path, secret_key: str, alg: str = "sm4", generation: int | None = None
    ) -> None:
        if alg not in ALGS:
            raise ValueError(f"unknown cipher {alg!r}")
        self.data_dir = data_dir
        self.secret_key = secret_key
        self.alg = alg
        self.generation = generation
        self._ring = _Keyring(data_dir, secret_key, alg)

    def under(self, generation: int | None) -> FieldSealer:
        """This sealer sealing under key ``generation`` (None: the first)."""
        if generation == self.generation:
            return self
        bound = copy.copy(self)  # the same keyring: its keys are read once per process
        bound.generation = generation
        return bound

    def newest(self) -> int:
        """The newest key's generation (the key is made when there is none)."""
        return self._ring.newest()

    # -- one value ---------------------------------------------------------------------

    def seal(self, text: str) -> str:
        cell = self.seal_texts([text])[0]
        assert cell is not None
        return cell

    def seal_value(self, value: Any) -> str:
        """``value`` sealed as the cell its column would hold (a key looked up, a
        filter's value): sealed as its text, the way :meth:`seal_array` sees it."""
        return self.seal(text_of(value))

    def open(self, cell: str) -> str:
        """The text sealed in ``cell``; ``FieldSealError`` when it does not open."""
        return self.open_texts([cell])[0] or ""

    # -- columns -----------------------------------------------------------------------

    def seal_texts(self, texts: Iterable[str | None]) -> list[str | None]:
        """Each text's cell (None stays None), the whole batch in one pass."""
        given = list(texts)
        present = [t for t in given if t is not None]
        generation = self.generation or 1
        tags, boxes = self._ring.key(generation).seal(present)
        mark = MARK if generation == 1 else f"{MARK}{generation}."
        cells = iter(
            mark + base64.urlsafe_b64encode(bytes.fromhex(t) + b).rstrip(b"=").decode("ascii")
            for t, b in zip(tags, boxes, strict=True)
        )
        return [None if t is None else next(cells) for t in given]

    def open_texts(self, cells: Iterable[str | None]) -> list[str | None]:
        """Each cell's text (None stays None); ``FieldSealError`` when one does not
        open: changed in the database, or sealed under a key this hub does not have."""
        given = list(cells)
        # Per generation: where its cells are, their tags and ciphertexts.
        found: dict[int, tuple[list[int], list[str], list[bytes]]] = {}
        for at, cell in enumerate(given):
            if cell is None:
                continue
            generation, raw = _parts(cell)
            places, tags, boxes = found.setdefault(generation, ([], [], []))
            places.append(at)
            tags.append(raw[:_TAG_LEN].hex())
            boxes.append(raw[_TAG_LEN:])
        out: list[str | None] = [None] * len(given)
        for generation, (places, tags, boxes) in found.items():
            try:
                texts = self._ring.key(generation).open(tags, boxes)
            except (AtRestKeyError, UnicodeDecodeError):
                raise FieldSealError("加密字段无法解密: 内容被改动或字段密钥不符") from None
            for at, text in zip(places, texts, strict=True):
                out[at] = text
        return out

    def seal_array(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The column's values as sealed text (nulls stay null)."""
        texts = pc.cast(values, pa.string()) if values.type != pa.string() else values
        return pa.array(self.seal_texts(texts.to_pylist()), pa.string())

    def open_value(self, cell: Any, kind: str | None = None) -> Any:
        """The value sealed in a cell, given back as the type it had (``kind``: the
        Arrow type as recorded by the store; text when unknown). NULL stays None."""
        if cell is None:
            return None
        text = self.open(str(cell))
        if not kind or kind in ("string", "large_string"):
            return text
        return pc.cast(pa.array([text]), arrow_type(kind))[0].as_py()

    def open_array(self, cells: pa.Array | pa.ChunkedArray, kind: str | None) -> pa.Array:
        texts = pa.array(self.open_texts(cells.to_pylist()), pa.string())
        if not kind or kind in ("string", "large_string"):
            return texts
        return pc.cast(texts, arrow_type(kind))


def generation_of(cell: str) -> int:
    """The generation of the key that sealed ``cell``."""
    return _parts(cell)[0]


def _parts(cell: str) -> tuple[int, bytes]:
    """A cell's key generation and its tag and ciphertext."""
    if not cell.startswith(MARK):
        raise FieldSealError("加密字段的内容不是密文: 可能被直接改写过")
    body = cell[len(MARK) :]
    generation = 1
    if "." in body:  # never in URL-safe Base64: the generation's mark
        number, _, body = body.partition(".")
        if not number.isdigit() or not 1 < int(number) < 1_000_000:
            raise FieldSealError("加密字段的密钥代次无法识别: 可能被直接改写过")
        generation = int(number)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise FieldSealError("加密字段的内容无法解码: 可能被直接改写过") from None
    if len(raw) < _TAG_LEN:
        raise FieldSealError("加密字段的内容过短: 可能被直接改写过")
    return generation, raw


class _Keyring:
    """The field keys of a data dir, read once and again when a generation not yet seen
    is asked for (a rotation by another process)."""

    def __init__(self, data_dir: Path, secret_key: str, alg: str) -> None:
        self.data_dir, self.secret_key, self.alg = data_dir, secret_key, alg
        self._lock = threading.Lock()
        self._keys: dict[int, FindableSeal] = {}

    def newest(self) -> int:
        self._load()  # read again: another process may have rotated
        return max(self._keys)

    def key(self, generation: int) -> FindableSeal:
        found = self._keys.get(generation)
        if found is None:
            self._load()
            found = self._keys.get(generation)
        if found is None:
            raise FieldSealError(f"没有第 {generation} 代字段加密密钥: 密钥文件不全或密文被改写")
        return found

    def _load(self) -> None:
        with self._lock:
            keys = _load_or_make(self.data_dir, self.secret_key, self.alg)
            self._keys = {g: FindableSeal(k) for g, k in keys.items()}


def text_of(value: Any) -> str:
    """A value's text as Arrow casts it to string (``1.5``, ``true``, ``1990-01-02``),
    so a value looked up seals to the cell stored for it."""
    if isinstance(value, str):
        return value
    text = pc.cast(pa.array([value]), pa.string())[0].as_py()
    return str(value) if text is None else str(text)


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type recorded as ``name`` (:func:`type_name`)."""
    try:
        return pa.type_for_alias(name)
    except ValueError:
        if name.startswith("decimal128(") and name.endswith(")"):
            precision, scale = (int(p) for p in name[len("decimal128(") : -1].split(","))
            return pa.decimal128(precision, scale)
        if name.startswith("timestamp["):
            unit, _, zone = name[len("timestamp[") : -1].partition(", tz=")
            return pa.timestamp(unit, tz=zone or None)
        raise


def type_name(arrow_type: pa.DataType) -> str:
    """How a sealed item's type is recorded, so :func:`FieldSealer.open_value` can give
    the value back as it was."""
    return str(arrow_type)


def _load_or_make(data_dir: Path, secret_key: str, alg: str) -> dict[int, str]:
    """The field keys (``FindableSeal`` form) by generation, the first made on first
    use."""
    path = key_path(data_dir)
    raw = _read(path)
    if raw is None:
        with _locked(data_dir):
            raw = _read(path)
            if raw is None:
                raw = _write(path, [_new_record(1, secret_key, alg)])
    return _keys(path, raw, secret_key)


def rotate(data_dir: Path, secret_key: str, alg: str) -> int:
    """Add the next generation's key (older ones stay, to open what they sealed); returns
    its generation. Stores move to it as they are resealed (``sharing.reseal``)."""
    path = key_path(data_dir)
    with _locked(data_dir):
        raw = _read(path)
        records = _records(path, raw, secret_key) if raw is not None else []
        generation = max((int(r["generation"]) for r in records), default=0) + 1
        _write(path, [*records, _new_record(generation, secret_key, alg)])
    return generation


def key_ages(data_dir: Path) -> list[tuple[int, datetime]]:
    """Each key's generation and when it was made (nothing before the first is made);
    read without the secret, for the key list."""
    raw = _read(key_path(data_dir))
    if raw is None:
        return []
    try:
        return [
            (int(r["generation"]), datetime.fromisoformat(str(r["created_at"])))
            for r in _as_records(orjson.loads(raw))
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise FieldSealError(f"字段加密密钥文件 {key_path(data_dir)} 无法读取: {exc}") from None


def _new_record(generation: int, secret_key: str, alg: str) -> dict[str, Any]:
    return {
        "generation": generation,
        "key": seal(secret_key, FindableSeal.new_key(alg)),
        "created_at": datetime.now(UTC).isoformat(),
    }


def _as_records(data: Any) -> list[dict[str, Any]]:
    """The key file's records; the first form held one key, generation 1."""
    if "keys" in data:
        return [dict(r) for r in data["keys"]]
    return [{"generation": 1, "key": data["key"], "created_at": data["created_at"]}]


def _records(path: Path, raw: bytes, secret_key: str) -> list[dict[str, Any]]:
    _keys(path, raw, secret_key)  # every record opens with this secret
    return _as_records(orjson.loads(raw))


def _keys(path: Path, raw: bytes, secret_key: str) -> dict[int, str]:
    try:
        keys = {
            int(r["generation"]): unseal(secret_key, str(r["key"]))
            for r in _as_records(orjson.loads(raw))
        }
        for key in keys.values():
            FindableSeal(key)  # the right form
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidTag) as exc:
        raise FieldSealError(
            f"字段加密密钥文件 {path} 无法读取或不是用当前 GOVSHARE_SECRET_KEY 封存的: {exc}"
        ) from None
    if not keys:
        raise FieldSealError(f"字段加密密钥文件 {path} 中没有密钥")
    return keys


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One writer of the key file at a time: two processes starting together must not
    each make a key and seal half the cells under the one that loses."""
    folder = key_path(data_dir).parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (folder / f".{KEY_FILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write(path: Path, records: list[dict[str, Any]]) -> bytes:
    raw = orjson.dumps({"version": 2, "keys": records}, option=orjson.OPT_INDENT_2)
    tmp = path.parent / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return raw


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FieldSealError(f"无法读取字段加密密钥文件 {path}: {exc}") from exc
