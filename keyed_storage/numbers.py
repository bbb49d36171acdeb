"""One parser for every whole number read from outside: request headers, form fields, env values.

str.isdigit() accepts '²', which int() then refuses (a 500), and Arabic-Indic digits, which
int() reads as if they were ASCII; int() also takes ' 5', '+5', '5_0' and thousands of
digits. A number a client sends is ASCII digits and nothing else, at most MAX_DIGITS of them
(more than any size or count keyed_storage meets, and int() stays cheap), as responders.py
reads a Range header.
"""

from __future__ import annotations

import re

MAX_DIGITS = 18

_WHOLE = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}", re.ASCII)


def whole_number(text: object, *, maximum: int | None = None) -> int | None:
    """`text` as a whole number (0 or more) if it is 1 to MAX_DIGITS ASCII digits and at most
    `maximum`; None for anything else (not a str, a sign, spaces, other digits, too large)."""
    if not isinstance(text, str) or _WHOLE.fullmatch(text) is None:
        return None
    number = int(text)
    if maximum is not None and number > maximum:
        return None
    return number
