"""Candle queries against a plain filter over every emitted candle."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fintank.analytics.candles import INTERVALS
from fintank.analytics.http import candles_response
from tests.support.analytics import START, candle


@given(
    st.sets(st.integers(0, 3000), max_size=60),
    st.sampled_from(sorted(INTERVALS)),
    st.integers(1, 1440),
    st.booleans(),
)
def test_candles_response_is_the_inclusive_cut_oldest_first(
    slots: set[int], interval: str, minutes: int, with_open: bool
) -> None:
    step = INTERVALS[interval]
    emitted = [candle(start=START + step * k, interval=interval) for k in sorted(slots)]
    still_open = candle(start=START + step * 4000, interval=interval) if with_open else None

    body = candles_response(emitted, still_open, interval, minutes)

    final = body[:-1] if with_open else body
    if emitted:
        newest_end = emitted[-1].start + step
        assert final == [c for c in emitted if c.start >= newest_end - minutes * 60]
    else:
        assert final == []
    if with_open:
        assert body[-1]["final"] is False
