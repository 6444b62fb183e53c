"""SM2 signatures (GB/T 32918, SM3withSM2, default user id) agree with gmssl's, the
implementation the platform used before, in both directions."""

from __future__ import annotations

import os

import pytest
from gmssl import sm2

from govshare.security import crypto


def _gmssl(private: str, public: str) -> sm2.CryptSM2:
    signer = sm2.CryptSM2(private_key=private, public_key="")
    signer.public_key = public  # gmssl's own parsing strips "04" greedily
    return signer


@pytest.mark.parametrize("size", [0, 1, 64, 333])
def test_sm2_agrees_with_gmssl(size: int) -> None:
    private, public = crypto.generate_signing_key("sm2")
    assert public == _gmssl(private, "")._kg(int(private, 16), sm2.default_ecc_table["g"])
    message = os.urandom(size)
    ours = crypto.sign("sm2", private, message)
    assert _gmssl("", public).verify_with_sm3(ours.hex(), message)
    theirs = bytes.fromhex(_gmssl(private, public).sign_with_sm3(message))
    assert crypto.verify_signature("sm2", public, message, theirs)
    assert not crypto.verify_signature("sm2", public, message + b"!", theirs)


def test_sm2_rejects_out_of_range_signatures_and_off_curve_keys() -> None:
    private, public = crypto.generate_signing_key("sm2")
    sig = crypto.sign("sm2", private, b"m")
    n = crypto._SM2_N
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    for bad_r, bad_s in [(0, s), (r, 0), (r + n, s), (r, s + n)]:
        if bad_r < 2**256 and bad_s < 2**256:
            forged = bad_r.to_bytes(32, "big") + bad_s.to_bytes(32, "big")
            assert not crypto.verify_signature("sm2", public, b"m", forged)
    off_curve = public[:64] + f"{(int(public[64:], 16) + 1) % crypto._SM2_P:064x}"
    assert not crypto.verify_signature("sm2", off_curve, b"m", sig)
