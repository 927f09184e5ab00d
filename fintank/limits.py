"""fintank's input limits: the rules a record must pass beyond the letter of contract v1.

Contract v1 calls any finite positive number a valid price or amount, but
fintank computes with them: mids ``(bid + ask) / 2``, shares ``amount / price``,
sums of a taxpayer's cash and shares, SMA sums, alert ratios ``(m - min) / min``.
A float overflows to ``inf`` past 1.8e308, and a ratio with a tiny divisor
overflows much sooner. orjson writes ``inf`` and ``nan`` as ``null``, so a
non-finite value would reach Kafka and the changelogs as ``null`` and break the
next restore. The validators therefore refuse the inputs that could make one
(docs/wire-format.md, "fintank's limits"):

* a price (``bid``, ``ask``) lies within [`MIN_PRICE`, `MAX_NUMBER`];
* an order ``amount`` is at most `MAX_NUMBER`;
* a ``timestamp`` lies before `MAX_TIMESTAMP` (the last instant InfluxDB can
  store: int64 nanoseconds), and at most ``max_future`` seconds after the
  ``now`` the bolt is given (setting ``FINTANK_MAX_FUTURE``, default one day):
  milliseconds sent as seconds (1.7e12) are dead-lettered, not stored in year 55000.

Within those, every value fintank derives stays far inside the float range:
mids and component amounts about 1e100 at most, shares 1e200, alert ratios
1e202, an SMA sum 1e105; a taxpayer's cash or shares would need 1e108 fills
to overflow. Internal records are held to `MAX_DERIVED`.
"""

from __future__ import annotations

import math

#: Largest price or order amount fintank accepts.
MAX_NUMBER = 1e100
#: Smallest price fintank accepts (the divisor of shares and of alert ratios).
MIN_PRICE = 1e-100
#: Largest magnitude of a number on an internal record (components, fills, positions):
#: what fintank itself derives stays below 1e201.
MAX_DERIVED = 1e250
#: First timestamp (epoch seconds) InfluxDB cannot store: 2**63 - 1 ns is 2262-04-11.
MAX_TIMESTAMP = (2**63 - 1) / 1e9
#: Default of ``FINTANK_MAX_FUTURE``: how far (seconds) an event time may lie after ``now``.
DEFAULT_MAX_FUTURE = 86_400.0


def too_far_ahead(timestamp: float, now: float, max_future: float | None) -> str | None:
    """Why ``timestamp`` is too far after ``now`` (None: it is not, or there is no bound)."""
    if max_future is None or timestamp <= now + max_future:
        return None
    return (
        f"timestamp {timestamp!r} is {timestamp - now:.0f} s after now ({now:.3f}), more than "
        f"the {max_future:g} s allowed (FINTANK_MAX_FUTURE; milliseconds sent as seconds?)"
    )


def bad_key(key: bytes | None, field: str, value: str) -> str | None:
    """Why a record keyed ``key`` cannot carry ``field`` = ``value`` (None: it may).

    A record without a key (None) passes: Kafka's partitioner placed it, and its
    value alone is judged (docs/wire-format.md, "Keys").
    """
    if key is None or key == value.encode("utf-8", "surrogatepass"):
        return None
    try:
        shown = repr(key.decode("utf-8"))
    except UnicodeDecodeError:
        shown = f"{key!r} (not UTF-8)"
    return f"record key {shown} disagrees with its {field} {value!r}"


def finite(value: float, bound: float = MAX_DERIVED) -> bool:
    """Whether ``value`` is a finite number of magnitude at most ``bound``."""
    return math.isfinite(value) and -bound <= value <= bound
