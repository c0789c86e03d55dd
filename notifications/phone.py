"""Phone numbers in E.164 and what an SMS body costs in segments (GSM-7 or UCS-2)."""

import math

import phonenumbers

# GSM 03.38: the basic alphabet (one septet each) and the extension table (escape + septet).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")
GSM7_SINGLE, GSM7_MULTIPART = 160, 153  # septets; a concatenated part spends 7 on its header
UCS2_SINGLE, UCS2_MULTIPART = 70, 67  # UTF-16 code units


class InvalidPhoneNumber(ValueError):
    pass


def normalise_e164(number, default_region=None):
    """The number in E.164 (+4915112345678), or InvalidPhoneNumber."""
    try:
        parsed = phonenumbers.parse(str(number), default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumber(f"not a phone number: {error}") from error
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_gsm7(text):
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def segments(text):
    """(encoding, segment count) as a carrier would split the text.

    An escape pair (GSM-7 extension character) or a surrogate pair (UCS-2) never straddles two
    segments, so a part may carry one unit fewer than its nominal size.
    """
    if is_gsm7(text):
        encoding, units = "GSM-7", [2 if char in GSM7_EXTENSION else 1 for char in text]
        single, multipart = GSM7_SINGLE, GSM7_MULTIPART
    else:
        encoding, units = "UCS-2", [2 if ord(char) > 0xFFFF else 1 for char in text]
        single, multipart = UCS2_SINGLE, UCS2_MULTIPART
    total = sum(units)
    if total <= single:
        return encoding, 1 if total else 0
    count, used = 1, 0
    for size in units:
        if used + size > multipart:
            count, used = count + 1, 0
        used += size
    return encoding, max(count, math.ceil(total / multipart))
