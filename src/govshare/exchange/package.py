"""Exchange packages (交换数据包): a signed, digested, optionally encrypted batch of changes.

Wire layout, in order::

    b"GSPK\\x01" | u32 header length | header (msgpack) | u16 signature length | signature
                | u32 envelope length | envelope (msgpack) | body

The header names the task, its sequence number, the counts and the digest of the
*plaintext* body; the node's signature covers the header, so it also covers the body.
The envelope says how the body is encrypted for this hop (node→hub, hub→node) and is
not signed: the hub may re-encrypt for each receiver without breaking the provider's
signature. The body is an Arrow IPC stream (zstd) whose first column ``__op`` says
I (insert), U (update) or D (delete) for each row; repetitive text columns may be
dictionary-encoded (``decode_rows`` returns plain columns either way).

Envelopes, by how the body is encrypted:

* ``{"enc": "none"}``: not encrypted (a hop without a cipher, a package kept opened);
* ``{"enc", "nonce"}``: under the hop's own key (the node's transport key, 传输密钥);
* ``{"enc", "nonce", "wrap": {"enc", "nonce", "key"}}``: under a data key (数据密钥) of
  its own, made for the package, which travels wrapped under the hop's key. The hub
  passes such a body on as it came and wraps the data key again for each receiver and
  for keeping at rest: one pass over the body's bytes at the hub instead of four
  (open the hop, seal at rest, open at rest, seal for the receiver);
* ``{"enc", "nonce", "data_key"}``: the form the hub keeps, the data key in the clear —
  only ever stored with the head sealed at rest (``AtRestCipher.seal_head``), never sent.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

import msgpack
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from govshare.security import crypto

MAGIC = b"GSPK\x01"
OP_COLUMN = "__op"
OPS = ("I", "U", "D")


class PackageError(ValueError):
    """A package that cannot be trusted: malformed, altered, unsigned or misaddressed."""


def _portable(values: Sequence[Any]) -> Sequence[Any]:
    """Values every target can hold, for the types a business database has beyond the
    common ones: JSON documents and arrays as JSON text (not Python's repr), UUIDs as
    their text, times of day with a zone as ISO text (Arrow's time has no zone).
    Decided by the column's first value: a typed database gives one type per column."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, dict | list):
        return [None if v is None else orjson.dumps(v, default=str).decode() for v in values]
    if isinstance(first, uuid.UUID):
        return [None if v is None else str(v) for v in values]
    if isinstance(first, time) and first.tzinfo is not None:
        return [None if v is None else v.isoformat() for v in values]
    return values


def _column(values: Sequence[Any]) -> pa.Array:
    values = _portable(values)
    try:
        return _dictionary(pa.array(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # SQLite columns may mix types; text keeps every value exactly.
        return _dictionary(
            pa.array([None if v is None else str(v) for v in values], type=pa.string())
        )


def _dictionary(array: pa.Array) -> pa.Array:
    """Text columns with few distinct values (codes, names, districts) travel as a
    dictionary: about 40 % fewer bytes to compress, digest, encrypt and send, per hop.
    ``decode_rows`` gives them back as plain text."""
    if not pa.types.is_string(array.type) or len(array) < 64:
        return array
    encoded = pc.dictionary_encode(array)
    return encoded if len(encoded.dictionary) * 2 <= len(array) else array


def encode_rows(
    columns: Sequence[str], ops: list[str], rows: list[tuple[Any, ...]] | pa.Table
) -> bytes:
    """Arrow IPC (zstd) of the rows, column by column, with their operations. ``rows``
    may be an Arrow table already (a node's native read), in the types ``_column``
    would give its values."""
    data = [_dictionary(pa.array(ops, type=pa.string()))]
    if isinstance(rows, pa.Table):
        data += [_dictionary(rows.column(name).combine_chunks()) for name in columns]
    elif rows:
        data += [_column(col) for col in zip(*rows, strict=True)]
    else:
        data += [pa.array([], type=pa.string()) for _ in columns]
    batch = pa.RecordBatch.from_arrays(data, names=[OP_COLUMN, *columns])
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def decode_columns(body: bytes) -> pa.Table:
    """The body's table as it travels: repetitive text columns stay dictionary-encoded
    (for a reader that turns them into Python values itself, which is faster from the
    dictionary)."""
    try:
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise PackageError(f"package body is not an Arrow stream: {exc}") from None


def decode_rows(body: bytes) -> pa.Table:
    table = decode_columns(body)
    if not any(pa.types.is_dictionary(f.type) for f in table.schema):
        return table
    plain = pa.schema(
        [
            f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
            for f in table.schema
        ]
    )
    return table.cast(plain)


@dataclass(frozen=True, slots=True)
class Signer:
    """A node's identity for signing: its id, algorithm and private key."""

    node_id: int
    sig_alg: str
    private_key: str
    digest_alg: str = "sm3"


def build(
    signer: Signer,
    *,
    task_id: int,
    seq: int,
    columns: Sequence[str],
    key: Sequence[str],
    body: bytes,
    counts: dict[str, int],
    kind: str = "rows",
    extra: dict[str, Any] | None = None,
    cipher: str = "none",
    cipher_key: str | None = None,
    wrap: bool = False,
) -> bytes:
    header = {
        "v": 1,
        "kind": kind,
        "task": task_id,
        "seq": seq,
        "node": signer.node_id,
        "created_at": datetime.now(UTC).isoformat(),
        "columns": list(columns),
        "key": list(key),
        "counts": counts,
        "rows": sum(counts.values()),
        "digest_alg": signer.digest_alg,
        "digest": crypto.digest(signer.digest_alg, body),
        "sig_alg": signer.sig_alg,
        "body_len": len(body),
        **(extra or {}),
    }
    header_bytes = msgpack.packb(header)
    signature = crypto.sign(signer.sig_alg, signer.private_key, header_bytes)
    return assemble(header_bytes, signature, body, cipher=cipher, cipher_key=cipher_key, wrap=wrap)


def assemble(
    header_bytes: bytes,
    signature: bytes,
    body: bytes,
    *,
    cipher: str,
    cipher_key: str | None,
    wrap: bool = False,
) -> bytes:
    """The package with ``body`` encrypted for the hop under ``cipher_key``; with
    ``wrap``, under a data key of its own that travels wrapped under ``cipher_key``
    (for a receiver that said it opens such envelopes)."""
    envelope: dict[str, Any] = {"enc": cipher}
    if cipher != "none":
        if not cipher_key:
            raise ValueError("a cipher key is needed to encrypt")
        if wrap:
            data_key = crypto.generate_cipher_key(cipher)
            envelope["nonce"], body = crypto.encrypt(cipher, data_key, body)
            envelope["wrap"] = wrapped_key(data_key, cipher, cipher_key)
        else:
            envelope["nonce"], body = crypto.encrypt(cipher, cipher_key, body)
    return head_bytes(header_bytes, signature, envelope) + body


def head_bytes(header_bytes: bytes, signature: bytes, envelope: dict[str, Any]) -> bytes:
    """Everything of a package before its body."""
    env_bytes = msgpack.packb(envelope)
    return b"".join(
        [
            MAGIC,
            struct.pack(">I", len(header_bytes)),
            header_bytes,
            struct.pack(">H", len(signature)),
            signature,
            struct.pack(">I", len(env_bytes)),
            env_bytes,
        ]
    )


def wrapped_key(data_key: str, cipher: str, cipher_key: str) -> dict[str, Any]:
    nonce, box = crypto.encrypt(cipher, cipher_key, bytes.fromhex(data_key))
    return {"enc": cipher, "nonce": nonce, "key": box}


@dataclass(frozen=True, slots=True)
class Package:
    header: dict[str, Any]
    header_bytes: bytes
    signature: bytes
    envelope: dict[str, Any]
    body: bytes  # as on the wire: ciphertext when the envelope says so

    @property
    def task_id(self) -> int:
        return int(self.header["task"])

    @property
    def seq(self) -> int:
        return int(self.header["seq"])

    @property
    def digest(self) -> str:
        return str(self.header["digest"])

    def signed_by(self, public_key: str) -> bool:
        """Whether ``public_key`` verifies the signature (the header, hence the body's digest)."""
        return crypto.verify_signature(
            self.header["sig_alg"], public_key, self.header_bytes, self.signature
        )

    def open(self, public_key: str, cipher_key: str | None = None) -> bytes:
        """Decrypt, check the digest and the signature; return the plaintext body."""
        return self.open_keyed(public_key, cipher_key)[0]

    def open_keyed(self, public_key: str, cipher_key: str | None) -> tuple[bytes, str | None]:
        """``open``, and the body's data key when it came under one (wrapped)."""
        data_key = self.data_key(cipher_key)
        body = self.plaintext(data_key)
        if (
            len(body) != self.header.get("body_len")
            or crypto.digest(self.header["digest_alg"], body) != self.digest
        ):
            raise PackageError("package digest does not match its body (tampered)")
        if not self.signed_by(public_key):
            raise PackageError("package signature is not valid for the sending node")
        return body, data_key if "wrap" in self.envelope else None

    def data_key(self, cipher_key: str | None = None) -> str | None:
        """The key the body is encrypted under: the wrapped data key opened with the
        hop's ``cipher_key``, the kept one, or the hop's key itself; None when the body
        is not encrypted."""
        envelope = self.envelope
        if envelope.get("enc", "none") == "none":
            return None
        if "data_key" in envelope:
            return str(envelope["data_key"])
        if not cipher_key:
            raise PackageError("package is encrypted but no key is known for this hop")
        wrap = envelope.get("wrap")
        if wrap is None:
            return cipher_key
        try:
            return crypto.decrypt(wrap["enc"], cipher_key, wrap["nonce"], wrap["key"]).hex()
        except (ValueError, KeyError, TypeError):
            raise PackageError(
                "package data key cannot be unwrapped (tampered or wrong key)"
            ) from None

    def plaintext(self, data_key: str | None = None) -> bytes:
        """The body decrypted under ``data_key`` (``data_key()`` gives it) — not yet
        checked against the header's digest."""
        enc = self.envelope.get("enc", "none")
        if enc == "none":
            return self.body
        if data_key is None:
            data_key = self.data_key()
        try:
            return crypto.decrypt(enc, str(data_key), self.envelope["nonce"], self.body)
        except (ValueError, KeyError, TypeError):
            raise PackageError("package decryption failed (tampered or wrong key)") from None

    def reseal(
        self, plaintext: bytes, *, cipher: str, cipher_key: str | None, wrap: bool = False
    ) -> bytes:
        """The same signed package with the body encrypted for the next hop."""
        return assemble(
            self.header_bytes,
            self.signature,
            plaintext,
            cipher=cipher,
            cipher_key=cipher_key,
            wrap=wrap,
        )

    def kept(self, plaintext: bytes, data_key: str | None, alg: str) -> tuple[bytes, bytes]:
        """(head, body) of the package as the hub keeps it: the body under its data key
        (the one it came under, or a new one of ``alg`` it is encrypted under now) and
        that key in the head's envelope — a head that must be sealed before it is
        stored."""
        if data_key is None:
            data_key = crypto.generate_cipher_key(alg)
            nonce, body = crypto.encrypt(alg, data_key, plaintext)
        else:
            alg, nonce, body = self.envelope["enc"], self.envelope["nonce"], self.body
        envelope = {"enc": alg, "nonce": nonce, "data_key": data_key}
        return head_bytes(self.header_bytes, self.signature, envelope), body

    def for_hop(self, cipher: str, cipher_key: str | None, *, wrap: bool) -> bytes:
        """A kept package as sent to a node whose hop is ``cipher`` under ``cipher_key``:
        its data key wrapped for the node when the node opens wrapped envelopes (the
        body as it is kept), else the body opened and encrypted again."""
        data_key = self.envelope.get("data_key")
        if wrap and data_key is not None and cipher != "none" and cipher_key:
            envelope = {
                "enc": self.envelope["enc"],
                "nonce": self.envelope["nonce"],
                "wrap": wrapped_key(str(data_key), cipher, cipher_key),
            }
            return head_bytes(self.header_bytes, self.signature, envelope) + self.body
        return self.reseal(self.plaintext(), cipher=cipher, cipher_key=cipher_key)


def keyed_tail(blob: bytes) -> int:
    """How many of the package's last bytes are a body under a data key its head holds
    (wrapped or kept): sealing the head then seals the whole. 0 for any other package."""
    pkg = parse(blob)
    if pkg.envelope.get("enc", "none") == "none":
        return 0
    return len(pkg.body) if "wrap" in pkg.envelope or "data_key" in pkg.envelope else 0


def resign(blob: bytes, signer: Signer) -> bytes:
    """The same package signed again with ``signer``'s key: header, envelope and body as
    they are (a node that rotated its key re-signs what still waits in its outbox)."""
    pkg = parse(blob)
    signature = crypto.sign(signer.sig_alg, signer.private_key, pkg.header_bytes)
    return head_bytes(pkg.header_bytes, signature, pkg.envelope) + pkg.body


def parse(blob: bytes) -> Package:
    """Split a package into its parts; nothing is trusted until ``open`` succeeds."""
    try:
        if not blob.startswith(MAGIC):
            raise PackageError("not a govshare package (bad magic)")
        pos = len(MAGIC)
        (hlen,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        header_bytes = blob[pos : pos + hlen]
        pos += hlen
        (slen,) = struct.unpack_from(">H", blob, pos)
        pos += 2
        signature = blob[pos : pos + slen]
        pos += slen
        (elen,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        envelope = msgpack.unpackb(blob[pos : pos + elen])
        pos += elen
        header = msgpack.unpackb(header_bytes)
    except (
        struct.error,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        ValueError,
    ) as exc:
        if isinstance(exc, PackageError):
            raise
        raise PackageError(f"package is malformed: {exc}") from None
    if not isinstance(header, dict) or not isinstance(envelope, dict):
        raise PackageError("package header is malformed")
    for field in ("task", "seq", "node", "digest", "digest_alg", "sig_alg", "body_len"):
        if field not in header:
            raise PackageError(f"package header lacks {field}")
    if not signature:
        raise PackageError("package is not signed")
    return Package(
        header=header,
        header_bytes=header_bytes,
        signature=signature,
        envelope=envelope,
        body=blob[pos:],
    )
