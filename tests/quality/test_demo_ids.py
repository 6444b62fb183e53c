"""The demo's made-up people carry valid 公民身份号码, so a quality scan of the demo's
stores reports the defects planted on purpose and not every ID number: stdnum's
``ric.calc_check_digit`` takes the whole number and skips its last character, and was
given the 17-digit body, which made almost every demo ID number fail its check digit."""

from __future__ import annotations

import random

from govshare.demo_exchange import _resident
from govshare.demo_sharing import id_number
from govshare.rules.validators import citizen_id_problem


def test_demo_people_have_valid_id_numbers() -> None:
    rng = random.Random(7)
    numbers = [id_number(rng) for _ in range(200)] + [_resident(rng)[0] for _ in range(200)]
    assert [n for n in numbers if citizen_id_problem(n)] == []
