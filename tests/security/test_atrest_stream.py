"""Files sealed at rest as a stream open to exactly the bytes sealed, and to nothing else:
a changed, moved, repeated or missing chunk, a cut-off end or bytes added after it are
told, never served as other content."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from govshare.security.atrest import STREAM_MAGIC, AtRestCipher, AtRestKeyError, add_key

SECRET = "stream-test-secret-0123456789abcdef0123456789"
HEADER = len(STREAM_MAGIC) + 8


def _cipher(tmp_path: Path, alg: str = "sm4") -> AtRestCipher:
    return AtRestCipher(tmp_path, SECRET, alg)


def _sealed(cipher: AtRestCipher, chunks: list[bytes]) -> bytes:
    return b"".join(cipher.seal_stream(iter(chunks)))


def _opened(cipher: AtRestCipher, data: bytes, chunk: int = 1 << 20) -> bytes:
    return b"".join(cipher.open_stream(io.BytesIO(data), chunk))


def _records(data: bytes) -> tuple[bytes, list[bytes]]:
    """The header and each whole record (length prefix included) of a sealed stream."""
    header, rest, records = data[:HEADER], data[HEADER:], []
    while rest:
        (length,) = struct.unpack(">I", rest[:4])
        records.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return header, records


@pytest.mark.parametrize("alg", ["sm4", "aes"])
@pytest.mark.parametrize(
    "chunks",
    [[b"one chunk"], [b"a" * 1000, b"b" * 1000, b"c" * 7], [b"", b"x", b""], [b""]],
    ids=["one", "three", "empties", "nothing"],
)
def test_a_stream_opens_to_the_bytes_sealed(tmp_path: Path, alg: str, chunks: list[bytes]) -> None:
    cipher = _cipher(tmp_path, alg)
    sealed = _sealed(cipher, chunks)
    assert sealed.startswith(STREAM_MAGIC)
    assert all(c not in sealed for c in chunks if len(c) > 3)
    assert _opened(cipher, sealed) == b"".join(chunks)


def test_a_file_stored_unsealed_is_read_as_it_is(tmp_path: Path) -> None:
    plain = b"%PDF-1.4 stored before sealing existed" * 100
    assert _opened(_cipher(tmp_path), plain, chunk=64) == plain
    assert _opened(_cipher(tmp_path), b"") == b""
    assert _opened(_cipher(tmp_path), STREAM_MAGIC[:3]) == STREAM_MAGIC[:3]


def test_a_changed_moved_repeated_or_missing_chunk_is_told(tmp_path: Path) -> None:
    cipher = _cipher(tmp_path)
    sealed = _sealed(cipher, [b"first " * 50, b"second " * 50, b"third " * 50])
    header, (one, two, three) = _records(sealed)
    flipped = bytearray(sealed)
    flipped[HEADER + 40] ^= 0x01
    for broken in (
        bytes(flipped),
        header + two + one + three,  # moved
        header + one + one + two + three,  # repeated
        header + one + three,  # a middle chunk dropped
        header + one + two,  # the end cut off at a record
        sealed[:-5],  # the end cut off inside a record
        sealed + b"more",  # bytes after the last record
    ):
        with pytest.raises(AtRestKeyError):
            _opened(cipher, broken)


def test_a_stream_sealed_before_a_rotation_still_opens(tmp_path: Path) -> None:
    cipher = _cipher(tmp_path)
    before = _sealed(cipher, [b"sealed under the first key"])
    add_key(tmp_path, SECRET, "aes")
    os.utime(tmp_path / "keys" / "at-rest.json", ns=(1, 1))  # a new stamp whatever the clock
    after = _sealed(cipher, [b"sealed under the second key"])
    assert before[len(STREAM_MAGIC) : HEADER] != after[len(STREAM_MAGIC) : HEADER]
    assert _opened(cipher, before) == b"sealed under the first key"
    assert _opened(_cipher(tmp_path), after) == b"sealed under the second key"


def test_a_stream_of_another_secret_is_told(tmp_path: Path) -> None:
    sealed = _sealed(_cipher(tmp_path), [b"ours"])
    with pytest.raises(AtRestKeyError):
        _opened(AtRestCipher(tmp_path, "another-secret-0123456789abcdef0123456789", "sm4"), sealed)
