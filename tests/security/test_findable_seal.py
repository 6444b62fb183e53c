"""确定性加密 of keys that must be found again once sealed (a node's key mirror): equal
values give equal tags under one key and none other; each value opens only under the
tag it was sealed with; nothing of the value shows in either."""

from __future__ import annotations

import pytest

from govshare.security.atrest import AtRestKeyError, FindableSeal

VALUES = ["370202199001010001", "370202199001010002", "", "1", "姓名" * 40, "K" * 17]


@pytest.mark.parametrize("alg", ["sm4", "aes"])
def test_a_value_is_found_by_its_tag_and_opened_from_its_sealed_copy(alg: str) -> None:
    seal = FindableSeal(FindableSeal.new_key(alg))
    tags, sealed = seal.seal(VALUES)
    assert tags == seal.tags(VALUES)  # the lookup needs only the tag
    assert len(set(tags)) == len(VALUES)
    assert all(len(t) == 32 for t in tags)
    assert [len(b) for b in sealed] == [len(v.encode()) for v in VALUES]
    for value, blob in zip(VALUES[:2], sealed[:2], strict=True):
        assert value.encode() not in blob
    assert seal.open(tags, sealed) == VALUES
    # Another key: other tags for the same values, and its copies do not open here.
    other = FindableSeal(FindableSeal.new_key(alg))
    other_tags, other_sealed = other.seal(VALUES[:2])
    assert set(other_tags).isdisjoint(tags)
    with pytest.raises(AtRestKeyError):
        seal.open(other_tags, other_sealed)


def test_a_sealed_copy_opens_only_under_its_own_tag() -> None:
    seal = FindableSeal(FindableSeal.new_key("sm4"))
    tags, sealed = seal.seal(VALUES[:2])
    with pytest.raises(AtRestKeyError, match="无法解密"):
        seal.open(tags, [sealed[1], sealed[0]])
    flipped = bytes([sealed[0][0] ^ 1]) + sealed[0][1:]
    with pytest.raises(AtRestKeyError):
        seal.open(tags[:1], [flipped])


@pytest.mark.parametrize("key", ["", "sm4:00", "des:" + "00" * 48, "aes:" + "00" * 48])
def test_a_key_of_the_wrong_shape_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="findable-seal key"):
        FindableSeal(key)
