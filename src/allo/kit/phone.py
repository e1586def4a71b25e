from __future__ import annotations

import phonenumbers

from allo.kit.errors import Unprocessable


def normalize_phone(raw: str, default_region: str = "FR") -> str:
    """E.164 form of a phone number written any usual way (06 12 34 56 78, +229 97…, 0033 6…)."""
    candidate = raw.strip()
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    try:
        number = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException as exc:
        raise Unprocessable(
            f"Unparseable phone number: {raw!r}", code="invalid_phone", details={"phone": raw}
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise Unprocessable(f"Invalid phone number: {raw!r}", code="invalid_phone", details={"phone": raw})
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
