"""Exchange field values -> numbers, exactly: decimal strings, epoch milliseconds, ISO-8601 times.

Each function returns the number, or a `str`: the reason the value cannot be
one (bad input is a value here, never an exception). Exchanges send prices
and sizes as decimal strings ("25.35190000") so that no float rounding
happens on their side; a recorder may have turned them into JSON numbers, so
both are accepted. Times are converted with integer arithmetic and one final
correctly rounded division, so the float is the nearest one to the exact
instant (Python's int / int is correctly rounded).
"""

from __future__ import annotations

import math
import re
from datetime import date

from fintank.codec import show

# What exchanges write for a price or size: digits, an optional fraction, an
# optional exponent. Stricter than float(): no "nan", "inf", "1_000", " 1", "0x1".
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[-+][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_SHOWN = 60  # characters of a bad value quoted in a reason


def _shown(value: object) -> str:
    text = show(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def decimal(name: str, value: object) -> float | str:
    """A price or size: a decimal string or a JSON number -> float, or why not."""
    if type(value) is str:
        if _DECIMAL.fullmatch(value) is None:
            return f"{name} must be a decimal number, got {_shown(value)}"
        number = float(value)
    elif type(value) is int or type(value) is float:
        number = float(value)
    else:
        return f"{name} must be a decimal number, got {_shown(value)}"
    if not math.isfinite(number):
        return f"{name} is out of range: {_shown(value)}"
    return number


def millis(name: str, value: object) -> float | str:
    """Epoch milliseconds (a string of digits or a JSON number) -> epoch seconds, or why not."""
    if type(value) is str:
        if _DIGITS.fullmatch(value) is None:
            return f"{name} must be epoch milliseconds, got {_shown(value)}"
        return int(value) / 1000
    if type(value) is int:
        return value / 1000
    if type(value) is float and math.isfinite(value):
        return value / 1000
    return f"{name} must be epoch milliseconds, got {_shown(value)}"


def iso_seconds(name: str, value: object) -> float | str:
    """An ISO-8601 UTC time with up to 9 fraction digits -> epoch seconds (nearest float), or why not.

    ``2022-10-19T23:28:22.061769Z`` -> 1666222102.061769; an offset such as
    ``+02:00`` is honoured. Date and time fields are checked (no 25:00, no
    February 30; no leap second).
    """
    if type(value) is not str:
        return f"{name} must be an ISO-8601 time, got {_shown(value)}"
    match = _ISO.fullmatch(value)
    if match is None:
        return (
            f"{name} must be an ISO-8601 time like 2022-10-19T23:28:22.061769Z, got {_shown(value)}"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_DAY
    except ValueError:
        return f"{name} has no such date: {_shown(value)}"
    h, m, s = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or s > 59:
        return f"{name} has no such time of day: {_shown(value)}"
    offset = 0
    if zone != "Z":
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            return f"{name} has no such UTC offset: {_shown(value)}"
        offset = (oh * 3600 + om * 60) * (1 if zone[0] == "+" else -1)
    whole = days * 86400 + h * 3600 + m * 60 + s - offset
    digits = fraction or ""
    scale: int = 10 ** len(digits)
    return (whole * scale + int(digits or "0")) / scale
