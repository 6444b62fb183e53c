"""National and international algorithms: SM2/Ed25519 signatures, SM3/SHA-256 digests,
SM4/AES-GCM encryption."""

from __future__ import annotations

import pytest

from govshare.security import crypto


def test_sm3_known_answer() -> None:
    # GB/T 32905 example 1: SM3("abc").
    assert (
        crypto.digest("sm3", b"abc")
        == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


@pytest.mark.parametrize("alg", ["sm2", "ed25519"])
def test_signatures_verify_and_reject(alg: str) -> None:
    private, public = crypto.generate_signing_key(alg)
    sig = crypto.sign(alg, private, b"package header")
    assert crypto.verify_signature(alg, public, b"package header", sig)
    assert not crypto.verify_signature(alg, public, b"package headeR", sig)
    assert not crypto.verify_signature(
        alg, public, b"package header", sig[:-1] + bytes([sig[-1] ^ 1])
    )
    _, other = crypto.generate_signing_key(alg)
    assert not crypto.verify_signature(alg, other, b"package header", sig)
    assert not crypto.verify_signature(alg, "zz", b"package header", sig)


def test_sm2_keys_whose_point_starts_with_04_work() -> None:
    # gmssl strips a leading "04" greedily; such keys once failed one time in 128.
    for _ in range(2000):
        private, public = crypto.generate_signing_key("sm2")
        if public.startswith(("04", "40", "00")):
            break
    else:
        pytest.fail("no key with the awkward prefix found")
    assert crypto.verify_signature("sm2", public, b"x", crypto.sign("sm2", private, b"x"))


@pytest.mark.parametrize("alg", ["sm4", "aes"])
def test_ciphers_round_trip_and_detect_tampering(alg: str) -> None:
    key = crypto.generate_cipher_key(alg)
    nonce, box = crypto.encrypt(alg, key, b"rows" * 100)
    assert crypto.decrypt(alg, key, nonce, box) == b"rows" * 100
    with pytest.raises(ValueError, match="authentication"):
        crypto.decrypt(alg, key, nonce, box[:-1] + bytes([box[-1] ^ 1]))
    with pytest.raises(ValueError, match="authentication"):
        crypto.decrypt(alg, crypto.generate_cipher_key(alg), nonce, box)
