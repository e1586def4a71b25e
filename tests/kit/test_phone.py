"""normalize_phone: E.164 from the ways French and West-African numbers are usually written."""

from __future__ import annotations

import pytest

from allo.kit.errors import Unprocessable
from allo.kit.phone import normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("0612345678", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("06-12-34-56-78", "+33612345678"),
        ("  06 12 34 56 78  ", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("0033 6 12 34 56 78", "+33612345678"),
        ("01 23 45 67 89", "+33123456789"),
        # Benin moved to 10-digit numbers starting with 01 in November 2024.
        ("+229 01 97 00 00 00", "+2290197000000"),
        ("+229 0197000000", "+2290197000000"),
        ("00229 01 97 00 00 00", "+2290197000000"),
        ("+221 77 123 45 67", "+221771234567"),
        ("00221 77 123 45 67", "+221771234567"),
        ("+1 202 555 0100", "+12025550100"),
    ],
)
def test_usual_formats_become_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("01 97 00 00 00", "BJ", "+2290197000000"),
        ("77 123 45 67", "SN", "+221771234567"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        # An international number does not depend on the region it is read from.
        ("+33 6 12 34 56 78", "SN", "+33612345678"),
        ("0033612345678", "BJ", "+33612345678"),
    ],
)
def test_national_numbers_are_read_in_the_default_region(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


def test_the_default_region_is_france() -> None:
    assert normalize_phone("01 97 00 00 00") == "+33197000000"


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("hello", "FR"),
        ("+33 1", "FR"),
        ("06 12", "FR"),
        ("", "FR"),
        ("+", "FR"),
        ("06 12 34 56 78 90 12", "FR"),
        ("+33 6 12 34 56 78 9", "FR"),
        # The old 8-digit Benin numbers are no longer valid.
        ("+229 97 00 00 00", "FR"),
        ("+221 12 345 67 89", "FR"),
        ("06 12 34 56 78", "SN"),
        ("06 12 34 56 78", "ZZ"),
    ],
)
def test_unparseable_or_invalid_numbers_are_refused(raw: str, region: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        normalize_phone(raw, region)
    assert caught.value.status_code == 422
    assert caught.value.code == "invalid_phone"
    assert caught.value.details == {"phone": raw}


@pytest.mark.parametrize("raw", ["06 12 34 56 78", "+229 01 97 00 00 00", "+221 77 123 45 67"])
def test_normalising_is_idempotent(raw: str) -> None:
    once = normalize_phone(raw)
    assert normalize_phone(once) == once
    assert normalize_phone(once, "SN") == once
