"""The web server's instrument and candle answers (CONTRACT.md "HTTP")."""

from __future__ import annotations

from fintank.analytics.http import (
    candles_response,
    candles_route,
    instruments_response,
    parse_candle_query,
)
from fintank.analytics.records import Candle
from tests.support.analytics import START, MemoryCandles, candle
from tests.support.ticks import tick

QUOTES = {"VTI": tick("VTI", 109.71, 109.74, START)}
VTI_ONLY = MemoryCandles({"VTI"})


def minutes_of(n: int, interval: str = "1m") -> list[Candle]:
    step = 60 if interval == "1m" else 1
    return [candle(start=START + step * i, interval=interval) for i in range(n)]


def test_instruments_lists_every_quote() -> None:
    quotes = {"VTI": tick("VTI", 1.0, 2.0, START), "IVE": tick("IVE", 3.0, 4.0, START + 1)}

    response = instruments_response(quotes)

    assert response.status == 200
    assert response.body == [
        {"symbol": "IVE", "exchange": "NYSE", "bid": 3.0, "ask": 4.0, "timestamp": START + 1},
        {"symbol": "VTI", "exchange": "NYSE", "bid": 1.0, "ask": 2.0, "timestamp": START},
    ]


def test_query_defaults_to_one_minute_candles_over_30_minutes() -> None:
    query = parse_candle_query({})

    assert not isinstance(query, str)
    assert (query.interval, query.minutes) == ("1m", 30)


def test_bad_interval_is_400() -> None:
    response = candles_route("VTI", {"interval": "5m"}, VTI_ONLY)

    assert response.status == 400
    assert "interval" in response.body["error"]


def test_minutes_must_be_an_integer_from_1_to_1440() -> None:
    for bad in ["0", "1441", "abc", "1.5", "", "-1", " 5", "1e2", "٣"]:
        response = candles_route("VTI", {"minutes": bad}, VTI_ONLY)
        assert response.status == 400, bad
        assert "minutes" in response.body["error"]
    for good in ["1", "1440", "030"]:
        assert candles_route("VTI", {"minutes": good}, VTI_ONLY).status == 200


def test_bad_parameters_are_checked_before_the_symbol() -> None:
    response = candles_route("NOPE", {"minutes": "0"}, VTI_ONLY)

    assert response.status == 400


def test_a_symbol_never_ticked_is_404() -> None:
    response = candles_route("NOPE", {}, VTI_ONLY)

    assert response.status == 404
    assert "NOPE" in response.body["error"]


def test_a_symbol_with_ticks_but_no_candle_gives_an_empty_list() -> None:
    assert candles_route("VTI", {}, VTI_ONLY).body == []


def test_the_open_candle_comes_last_marked_not_final() -> None:
    emitted = {("VTI", "1m"): minutes_of(2)}
    still_open = {("VTI", "1m"): candle(start=START + 120, open=101.0)}

    body = candles_route("VTI", {}, MemoryCandles({"VTI"}, emitted, still_open)).body

    assert body[:2] == emitted[("VTI", "1m")]
    assert body[-1] == {
        "symbol": "VTI",
        "interval": "1m",
        "start": START + 120,
        "open": 101.0,
        "high": 101.0,
        "low": 101.0,
        "close": 101.0,
        "count": 1,
        "final": False,
    }


def test_the_cut_is_inclusive_and_relative_to_the_newest_candle_end() -> None:
    emitted = minutes_of(40)  # starts START .. START + 39 min; newest ends at START + 40 min

    body = candles_response(emitted, None, "1m", 30)

    assert body == emitted[10:]  # start >= START + 40 min - 30 min
    assert body[0].start == START + 600


def test_one_second_candles_are_selected_by_their_own_interval() -> None:
    emitted = minutes_of(200, interval="1s")

    body = candles_response(emitted, None, "1s", 1)

    assert body == emitted[-60:]
