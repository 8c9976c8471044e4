"""Phone numbers as contact identities: E.164, so one person's SMS and WhatsApp are one contact."""

from __future__ import annotations

import phonenumbers

#: the identity channel every phone-addressed channel (SMS, WhatsApp) records senders under
PHONE = "phone"


def to_e164(raw: str, default_region: str | None = None) -> str | None:
    """``raw`` in E.164 (``+94771234567``), or ``None`` if it is not a possible number.

    A number without ``+`` is read in ``default_region`` (an inbox setting such as ``"LK"``).
    "Possible" rather than "valid": a new number range must not turn a customer away.
    """
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    region = default_region.upper() if default_region else None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
