"""fintank.replay: each exchange field's conversion, skipped control messages, every kind of bad
line with its reason, the symbol map, the shipped samples, and the pacing schedule (fake clock).

The conversions are pure, so expected values are written out by hand from
the exchanges' documented examples; hypothesis checks that no input makes
a converter raise and that every tick it returns is one the worker accepts.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fintank.records import Tick
from fintank.replay import samples
from fintank.replay.fields import decimal, iso_seconds, millis
from fintank.replay.formats import FORMATS, Bad, Skip, Ticks, convert, encode
from fintank.replay.pacing import Retimer, Schedule
from fintank.replay.run import read_lines
from fintank.replay.symbols import SymbolMapError, parse_symbol_map, symbol_map
from fintank.ticks import parse_tick

NOW = 1_900_000_000.5  # the replay clock in these tests: far from every recorded time


def line(obj: Any) -> bytes:
    return orjson.dumps(obj)


def ticks_of(result: object) -> tuple[Tick, ...]:
    assert type(result) is Ticks, result
    return result.ticks


def reason_of(result: object) -> str:
    assert type(result) is Bad, result
    return result.reason


# --------------------------------------------------------------------------- okx

OKX_ITEM = {
    "instType": "SPOT",
    "instId": "BTC-USDT",
    "last": "9999.99",
    "lastSz": "0.1",
    "askPx": "9999.99",
    "askSz": "11",
    "bidPx": "8888.88",
    "bidSz": "5",
    "open24h": "9000",
    "high24h": "10000",
    "low24h": "8888.88",
    "volCcy24h": "2222",
    "vol24h": "2222",
    "sodUtc0": "2222",
    "sodUtc8": "2222",
    "ts": "1597026383085",
}


def okx(*items: dict[str, Any], inst: str = "BTC-USDT") -> bytes:
    return line({"arg": {"channel": "tickers", "instId": inst}, "data": list(items)})


def okx_item(**changes: Any) -> dict[str, Any]:
    item = {**OKX_ITEM, **changes}
    return {k: v for k, v in item.items() if v is not None}


def test_okx_push_fields_become_a_tick() -> None:
    result = convert("okx", okx(OKX_ITEM), NOW)

    assert ticks_of(result) == (
        Tick("BTC-USDT", "OKX", 8888.88, 9999.99, 1597026383.085, 5.0, 11.0),
    )
    assert type(result) is Ticks and result.recorded == 1597026383.085


def test_okx_ts_in_ms_is_seconds_exactly() -> None:
    [tick] = ticks_of(convert("okx", okx(okx_item(ts="1597026383001")), NOW))
    assert tick.timestamp == 1597026383001 / 1000 == float(Fraction(1597026383001, 1000))


def test_okx_item_without_inst_id_takes_the_arg_s() -> None:
    [tick] = ticks_of(convert("okx", okx(okx_item(instId=None), inst="ETH-USDT"), NOW))
    assert tick.symbol == "ETH-USDT"


def test_okx_several_items_are_several_ticks_paced_by_the_earliest() -> None:
    result = convert(
        "okx",
        okx(okx_item(ts="2000"), okx_item(instId="ETH-USDT", ts="1000", bidPx="1", askPx="2")),
        NOW,
    )
    ticks = ticks_of(result)
    assert [(t.symbol, t.bid, t.ask, t.timestamp) for t in ticks] == [
        ("BTC-USDT", 8888.88, 9999.99, 2.0),
        ("ETH-USDT", 1.0, 2.0, 1.0),
    ]
    assert type(result) is Ticks and result.recorded == 1.0


def test_okx_numbers_a_recorder_wrote_as_json_numbers_are_taken() -> None:
    [tick] = ticks_of(
        convert("okx", okx(okx_item(bidPx=1.5, askPx=2, bidSz=0, askSz=3.25, ts=1000)), NOW)
    )
    assert (tick.bid, tick.ask, tick.bid_size, tick.ask_size, tick.timestamp) == (
        1.5,
        2.0,
        0.0,
        3.25,
        1.0,
    )


def test_okx_sizes_are_optional() -> None:
    [tick] = ticks_of(convert("okx", okx(okx_item(bidSz=None, askSz=None)), NOW))
    assert tick.bid_size is None and tick.ask_size is None
    assert b"size" not in encode(tick)


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (
            line({"event": "subscribe", "arg": {"channel": "tickers", "instId": "BTC-USDT"}}),
            "event subscribe",
        ),
        (line({"event": "error", "code": "60012", "msg": "Invalid request"}), "event error"),
        (line({"event": "unsubscribe", "arg": {"channel": "tickers"}}), "event unsubscribe"),
        (line({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": []}), "channel trades"),
        (line({"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": []}), "empty data"),
        (b"pong", "keepalive"),
        (b"ping\r", "keepalive"),
        (b"", "blank line"),
        (b"  \t", "blank line"),
    ],
)
def test_okx_control_messages_are_skipped(raw: bytes, what: str) -> None:
    assert convert("okx", raw, NOW) == Skip(what)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"arg":{"channel":"tickers"},"data":[{', "not valid JSON: "),
        (b"\xff\xfe", "not valid JSON: "),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (line({"data": [OKX_ITEM]}), "not an OKX push: no 'arg' object with a 'channel'"),
        (line({"arg": "tickers", "data": []}), "not an OKX push: no 'arg' object"),
        (
            line({"arg": {"channel": "tickers"}, "data": {}}),
            "'data' must be an array, got an object",
        ),
        (line({"arg": {"channel": "tickers"}}), "'data' must be an array, got null"),
        (okx([1]), "expected an object, got an array"),  # type: ignore[arg-type]
        (okx(okx_item(bidPx="")), "bidPx must be a decimal number, got a string ''"),
        (okx(okx_item(askPx="abc")), "askPx must be a decimal number, got a string 'abc'"),
        (okx(okx_item(askPx="nan")), "askPx must be a decimal number, got a string 'nan'"),
        (okx(okx_item(askPx="1_000")), "askPx must be a decimal number"),
        (okx(okx_item(askPx="1e999")), "askPx is out of range: a string '1e999'"),
        (
            okx(okx_item(bidPx=None)),
            "bidPx must be a decimal number, got nothing (missing or null)",
        ),
        (okx(okx_item(bidPx=True)), "bidPx must be a decimal number, got a boolean True"),
        (
            okx(okx_item(bidSz="-1")),
            "bid_size must be a number >= 0 when present, got a number -1.0",
        ),
        (okx(okx_item(askSz="")), "askSz must be a decimal number, got a string ''"),
        (okx(okx_item(bidPx="10000")), "bid 10000.0 is above ask 9999.99"),
        (okx(okx_item(bidPx="0")), "bid must be > 0, got 0.0"),
        (okx(okx_item(ts=None)), "ts must be epoch milliseconds, got nothing (missing or null)"),
        (okx(okx_item(ts="1.5e12")), "ts must be epoch milliseconds, got a string '1.5e12'"),
        (okx(okx_item(ts="0")), "timestamp must be > 0, got 0.0"),
        (okx(okx_item(instId=7)), "the symbol must be a string, got a number"),
        (okx(okx_item(instId="")), "symbol must not be empty"),
    ],
)
def test_okx_bad_lines_say_why(raw: bytes, reason: str) -> None:
    assert reason_of(convert("okx", raw, NOW)).startswith(reason)


def test_okx_one_bad_item_makes_the_whole_line_bad() -> None:
    result = convert("okx", okx(OKX_ITEM, okx_item(bidPx="x")), NOW)
    assert reason_of(result) == "data[1]: bidPx must be a decimal number, got a string 'x'"


def test_a_long_bad_value_is_shortened_in_the_reason() -> None:
    reason = reason_of(convert("okx", okx(okx_item(bidPx="9" * 500 + "x")), NOW))
    assert len(reason) < 120 and reason.endswith("...")


# ----------------------------------------------------------------------- binance

BOOK = {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}  # fmt: skip


def book(**changes: Any) -> dict[str, Any]:
    obj = {**BOOK, **changes}
    return {k: v for k, v in obj.items() if v is not None}


def test_binance_spot_book_ticker_without_a_time_takes_the_replay_clock() -> None:
    result = convert("binance", line(BOOK), NOW)

    assert ticks_of(result) == (Tick("BNBUSDT", "BINANCE", 25.3519, 25.3652, NOW, 31.21, 40.66),)
    assert type(result) is Ticks and result.recorded is None  # nothing to pace by


def test_binance_combined_stream_with_a_recorded_receive_time() -> None:
    raw = line({"stream": "bnbusdt@bookTicker", "data": BOOK, "recv_ts": 1710417600123})
    result = convert("binance", raw, NOW)

    [tick] = ticks_of(result)
    assert (tick.symbol, tick.bid, tick.ask, tick.timestamp) == (
        "BNBUSDT",
        25.3519,
        25.3652,
        1710417600.123,
    )
    assert type(result) is Ticks and result.recorded == 1710417600.123


def test_binance_bare_line_with_recv_ts() -> None:
    [tick] = ticks_of(convert("binance", line(book(recv_ts=1000)), NOW))
    assert tick.timestamp == 1.0


def test_binance_futures_transaction_time_comes_first_then_event_time() -> None:
    futures = book(e="bookTicker", E=1568014460893, T=1568014460891, recv_ts=5)
    [tick] = ticks_of(convert("binance", line(futures), NOW))
    assert tick.timestamp == 1568014460.891
    [tick] = ticks_of(convert("binance", line(book(E=1568014460893, recv_ts=5)), NOW))
    assert tick.timestamp == 1568014460.893


@pytest.mark.parametrize(
    ("obj", "what"),
    [
        ({"result": None, "id": 1}, "subscription reply"),
        ({"error": {"code": 2, "msg": "Invalid request"}, "id": 1}, "subscription reply"),
        ({"stream": "bnbusdt@trade", "data": {"e": "trade"}}, "stream bnbusdt@trade"),
        ({"stream": "bnbusdt@depth", "data": 1}, "stream bnbusdt@depth"),
        ({"e": "depthUpdate", "s": "BNBUSDT"}, "event depthUpdate"),
    ],
)
def test_binance_control_messages_and_other_streams_are_skipped(
    obj: dict[str, Any], what: str
) -> None:
    assert convert("binance", line(obj), NOW) == Skip(what)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (book(s=None), "not a bookTicker: missing field 's'"),
        ({"stream": "x@bookTicker", "data": [BOOK]}, "'data' must be an object, got an array"),
        (book(b="abc"), "b (best bid price) must be a decimal number, got a string 'abc'"),
        (book(a=None), "a (best ask price) must be a decimal number, got nothing"),
        (book(B="-3"), "bid_size must be a number >= 0 when present, got a number -3.0"),
        (book(A="x"), "A (best ask qty) must be a decimal number, got a string 'x'"),
        (book(b="0.00000000"), "bid must be > 0, got 0.0"),
        (book(b="26"), "bid 26.0 is above ask 25.3652"),
        (book(T="soon"), "T must be epoch milliseconds, got a string 'soon'"),
        (book(E=None, T=True), "T must be epoch milliseconds, got a boolean True"),
        (book(recv_ts="yesterday"), "recv_ts must be epoch milliseconds, got a string 'yesterday'"),
        (book(s=["BNBUSDT"]), "the symbol must be a string, got an array"),
    ],
)
def test_binance_bad_lines_say_why(obj: dict[str, Any], reason: str) -> None:
    assert reason_of(convert("binance", line(obj), NOW)).startswith(reason)


# ---------------------------------------------------------------------- coinbase

TICKER = {
    "type": "ticker",
    "sequence": 37475248783,
    "product_id": "ETH-USD",
    "price": "1285.22",
    "open_24h": "1310.79",
    "volume_24h": "245532.79269678",
    "low_24h": "1280.52",
    "high_24h": "1313.8",
    "volume_30d": "9788783.60117027",
    "best_bid": "1285.04",
    "best_bid_size": "0.46688654",
    "best_ask": "1285.27",
    "best_ask_size": "1.56637040",
    "side": "buy",
    "time": "2022-10-19T23:28:22.061769Z",
    "trade_id": 370843401,
    "last_size": "11.4396987",
}


def ticker(**changes: Any) -> bytes:
    obj = {**TICKER, **changes}
    return line({k: v for k, v in obj.items() if v is not None})


def test_coinbase_ticker_fields_become_a_tick() -> None:
    result = convert("coinbase", line(TICKER), NOW)

    assert ticks_of(result) == (
        Tick("ETH-USD", "COINBASE", 1285.04, 1285.27, 1666222102.061769, 0.46688654, 1.5663704),
    )
    assert type(result) is Ticks and result.recorded == 1666222102.061769


def test_coinbase_time_is_epoch_seconds_exactly() -> None:
    exact = datetime(2022, 10, 19, 23, 28, 22, 61769, tzinfo=UTC)
    [tick] = ticks_of(convert("coinbase", line(TICKER), NOW))
    assert tick.timestamp == exact.timestamp()
    assert tick.timestamp == float(Fraction(1666222102_061769, 10**6))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1970-01-01T00:00:00Z", Fraction(0)),
        ("2022-10-19T23:28:22Z", Fraction(1666222102)),
        ("2022-10-19T23:28:22.5Z", Fraction(1666222102_5, 10)),
        ("2022-10-20T01:28:22.061769+02:00", Fraction(1666222102_061769, 10**6)),
        ("2022-10-19T20:58:22.061769-02:30", Fraction(1666222102_061769, 10**6)),
        ("2022-10-19T23:28:22.061769123Z", Fraction(1666222102_061769123, 10**9)),
        ("2024-02-29T00:00:00.000001Z", Fraction(1709164800_000001, 10**6)),
    ],
)
def test_iso_times_are_the_nearest_float_to_the_exact_instant(text: str, seconds: Fraction) -> None:
    assert iso_seconds("time", text) == float(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2022-10-19T23:28:22.061769", "time must be an ISO-8601 time like"),
        ("2022-10-19 23:28:22Z", "time must be an ISO-8601 time like"),
        ("2022-10-19T23:28:22.0617691234Z", "time must be an ISO-8601 time like"),
        ("2022-02-30T00:00:00Z", "time has no such date"),
        ("2022-10-19T24:00:00Z", "time has no such time of day"),
        ("2022-10-19T23:60:00Z", "time has no such time of day"),
        ("2016-12-31T23:59:60Z", "time has no such time of day"),
        ("2022-10-19T23:28:22+24:00", "time has no such UTC offset"),
        ("２０２２-10-19T23:28:22Z", "time must be an ISO-8601 time like"),
    ],
)
def test_bad_iso_times_say_why(text: str, reason: str) -> None:
    assert str(iso_seconds("time", text)).startswith(reason)


@given(st.datetimes(timezones=st.just(UTC)))
def test_iso_seconds_agrees_with_datetime(moment: datetime) -> None:
    text = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert iso_seconds("time", text) == moment.timestamp()


@given(st.integers(min_value=0, max_value=10**18))
def test_millis_is_the_nearest_float_to_the_exact_seconds(ms: int) -> None:
    assert millis("ts", str(ms)) == float(Fraction(ms, 1000)) == millis("ts", ms)


def test_decimal_strings_are_numbers() -> None:
    assert decimal("b", "25.35190000") == 25.3519
    assert decimal("b", "1E-3") == 0.001
    assert decimal("b", "-2") == -2.0
    assert decimal("b", 3) == 3.0
    for bad in ("", " 1", "1 ", "+1", ".5", "5.", "inf", "NaN", "0x10", "١", None, [], {}):
        assert type(decimal("b", bad)) is str, bad


@pytest.mark.parametrize(
    ("obj", "what"),
    [
        ({"type": "subscriptions", "channels": [{"name": "ticker"}]}, "type subscriptions"),
        (
            {"type": "heartbeat", "sequence": 90, "time": "2014-11-07T08:19:28.464459Z"},
            "type heartbeat",
        ),  # fmt: skip
        ({"type": "error", "message": "Failed to subscribe"}, "type error"),
        ({"type": "l2update", "product_id": "BTC-USD"}, "type l2update"),
    ],
)
def test_coinbase_non_ticker_messages_are_skipped(obj: dict[str, Any], what: str) -> None:
    assert convert("coinbase", line(obj), NOW) == Skip(what)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (line({"product_id": "BTC-USD"}), "not a Coinbase Exchange message: no 'type'"),
        (ticker(time=None), "time must be an ISO-8601 time, got nothing"),
        (ticker(time="2022-10-19T23:28:22"), "time must be an ISO-8601 time like"),
        (ticker(time=1666222102), "time must be an ISO-8601 time, got a number 1666222102"),
        (ticker(product_id=None), "not a ticker: missing field 'product_id'"),
        (ticker(best_bid=""), "best_bid must be a decimal number, got a string ''"),
        (ticker(best_ask=None), "best_ask must be a decimal number, got nothing"),
        (ticker(best_ask_size="lots"), "best_ask_size must be a decimal number"),
        (ticker(best_bid="1300"), "bid 1300.0 is above ask 1285.27"),
        (b"null", "expected a JSON object, got null"),
    ],
)
def test_coinbase_bad_lines_say_why(raw: bytes, reason: str) -> None:
    assert reason_of(convert("coinbase", raw, NOW)).startswith(reason)


# ----------------------------------------------------------------------- fintank


def test_fintank_lines_are_contract_ticks_with_only_the_contract_s_fields() -> None:
    raw = b'{"symbol":"VTI","exchange":"NYSE","bid":109.71,"ask":109.74,"timestamp":1763722800.125,"ask_size":3,"note":"x"}'  # fmt: skip
    result = convert("fintank", raw, NOW)

    [tick] = ticks_of(result)
    assert tick == Tick("VTI", "NYSE", 109.71, 109.74, 1763722800.125, None, 3.0)
    assert type(result) is Ticks and result.recorded == 1763722800.125
    assert orjson.loads(encode(tick)) == {
        "symbol": "VTI",
        "exchange": "NYSE",
        "bid": 109.71,
        "ask": 109.74,
        "timestamp": 1763722800.125,
        "ask_size": 3.0,
    }


def test_fintank_bad_lines_carry_the_worker_s_reason() -> None:
    raw = b'{"symbol":"VTI","exchange":"NYSE","bid":"109.71","ask":109.74,"timestamp":1}'
    assert reason_of(convert("fintank", raw, NOW)) == parse_tick(raw)
    assert reason_of(convert("fintank", b"{", NOW)).startswith("not valid JSON")


# ---------------------------------------------------------------------- symbol map


def test_the_symbol_map_renames_and_passes_the_rest_unchanged() -> None:
    symbols = parse_symbol_map("BTC-USDT=BTCUSDT, ETH-USDT = ETHUSDT")
    assert symbols == {"BTC-USDT": "BTCUSDT", "ETH-USDT": "ETHUSDT"}

    pushes = okx(OKX_ITEM, okx_item(instId="ETH-USDT"), okx_item(instId="SOL-USDT"))
    assert [t.symbol for t in ticks_of(convert("okx", pushes, NOW, symbols))] == [
        "BTCUSDT",
        "ETHUSDT",
        "SOL-USDT",
    ]
    renamed = {"BNBUSDT": "BNB", "ETH-USD": "ETH", "VTI": "VTI.US"}
    assert ticks_of(convert("binance", line(BOOK), NOW, renamed))[0].symbol == "BNB"
    assert ticks_of(convert("coinbase", line(TICKER), NOW, renamed))[0].symbol == "ETH"
    tick = b'{"symbol":"VTI","exchange":"NYSE","bid":1,"ask":2,"timestamp":3}'
    assert ticks_of(convert("fintank", tick, NOW, renamed))[0].symbol == "VTI.US"


def test_a_symbol_map_that_names_an_empty_symbol_cannot_slip_a_bad_tick_through() -> None:
    tick = b'{"symbol":"VTI","exchange":"NYSE","bid":1,"ask":2,"timestamp":3}'
    assert reason_of(convert("fintank", tick, NOW, {"VTI": ""})) == "symbol must not be empty"
    assert reason_of(convert("okx", okx(OKX_ITEM), NOW, {"BTC-USDT": ""})) == (
        "symbol must not be empty"
    )


def test_a_symbol_map_file_has_pairs_per_line_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "symbols.txt"
    path.write_text(
        "# OKX -> ours\nBTC-USDT=BTCUSDT\n\nETH-USDT=ETHUSDT, SOL-USDT=SOLUSDT  # two\n"
    )
    assert symbol_map(str(path)) == {
        "BTC-USDT": "BTCUSDT",
        "ETH-USDT": "ETHUSDT",
        "SOL-USDT": "SOLUSDT",
    }
    assert symbol_map("A=B") == {"A": "B"}
    assert parse_symbol_map("A=B,A=B") == {"A": "B"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BTC-USDT", "'BTC-USDT' is not FROM=TO"),
        ("A=", "'A=' is not FROM=TO"),
        ("=B", "'=B' is not FROM=TO"),
        ("A=B,A=C", "'A' is mapped twice ('B' and 'C')"),
        (" , ", "no FROM=TO pair"),
        ("# only a comment", "no FROM=TO pair"),
        ("A\udcff=B", "is not valid UTF-8 text"),
    ],
)
def test_a_bad_symbol_map_says_why(text: str, message: str) -> None:
    with pytest.raises(SymbolMapError, match="--symbol-map") as caught:
        parse_symbol_map(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------ never raises

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", "0", "1", "-1", "1.5", "1e999", "abc", "1597026383085", "2022-10-19T23:28:22.061769Z"]
    )  # fmt: skip
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


def shaped(fmt: str) -> st.SearchStrategy[Any]:
    """JSON shaped like the format's messages, with arbitrary values in its fields."""
    value = JSON_SCALARS | JSON
    if fmt == "okx":
        item = st.fixed_dictionaries(
            {},
            optional={k: value for k in ("instId", "bidPx", "askPx", "bidSz", "askSz", "ts")},
        )
        return st.fixed_dictionaries(
            {
                "arg": st.fixed_dictionaries(
                    {"channel": st.just("tickers") | value}, optional={"instId": value}
                ),
                "data": st.lists(item, max_size=3) | value,
            },
            optional={"event": value},
        )
    if fmt == "binance":
        body = st.fixed_dictionaries(
            {}, optional={k: value for k in ("s", "b", "a", "B", "A", "E", "T", "e")}
        )
        wrapped = st.fixed_dictionaries(
            {"stream": st.just("x@bookTicker") | value, "data": body | value},
            optional={"recv_ts": value},
        )
        return body | wrapped
    if fmt == "coinbase":
        return st.fixed_dictionaries(
            {"type": st.just("ticker") | value},
            optional={
                k: value
                for k in (
                    "product_id",
                    "best_bid",
                    "best_ask",
                    "best_bid_size",
                    "best_ask_size",
                    "time",
                )  # fmt: skip
            },
        )
    return st.fixed_dictionaries(
        {},
        optional={k: value for k in ("symbol", "exchange", "bid", "ask", "timestamp", "bid_size")},
    )


def assert_well_formed(result: object) -> None:
    """A result is one of the three, and every tick it holds is one the worker accepts as is."""
    assert type(result) in (Ticks, Skip, Bad)
    if type(result) is Ticks:
        for tick in result.ticks:
            assert parse_tick(encode(tick)) == tick
    if type(result) is Bad:
        assert result.reason and "\n" not in result.reason


@settings(max_examples=300)
@given(st.sampled_from(sorted(FORMATS)), st.binary(max_size=200))
def test_no_bytes_make_a_converter_raise(fmt: str, raw: bytes) -> None:
    assert_well_formed(convert(fmt, raw, NOW))


@settings(max_examples=300)
@given(st.sampled_from(sorted(FORMATS)), JSON)
def test_no_json_makes_a_converter_raise(fmt: str, value: Any) -> None:
    assert_well_formed(convert(fmt, orjson.dumps(value), NOW))


@settings(max_examples=300)
@given(st.data())
def test_no_message_of_the_right_shape_makes_a_converter_raise(data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(sorted(FORMATS)))
    message = data.draw(shaped(fmt))
    symbols = data.draw(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2))
    assert_well_formed(convert(fmt, orjson.dumps(message), NOW, symbols))


# ----------------------------------------------------------------------- samples

SAMPLES = {
    "okx.jsonl": "okx",
    "binance.jsonl": "binance",
    "coinbase.jsonl.gz": "coinbase",
    "fintank.jsonl": "fintank",
}
# Per bad sample: its format, and the bad lines with the start of their reasons.
BAD_SAMPLES: dict[str, tuple[str, dict[int, str]]] = {
    "okx-bad.jsonl": (
        "okx",
        {
            3: "bidPx must be a decimal number, got a string ''",
            4: "bid 3561.4 is above ask 3561.28",
            5: "not valid JSON: unexpected end of data",
            6: "ts must be epoch milliseconds, got nothing (missing or null)",
        },
    ),
    "binance-bad.jsonl": (
        "binance",
        {
            3: "bid must be > 0, got 0.0",
            4: "a (best ask price) must be a decimal number, got nothing (missing or null)",
            5: "recv_ts must be epoch milliseconds, got a string 'yesterday'",
            8: "not valid JSON: unexpected end of data",
        },
    ),
    "coinbase-bad.jsonl": (
        "coinbase",
        {
            3: "time must be an ISO-8601 time like",
            4: "best_ask must be a decimal number, got a string ''",
            5: "not valid JSON: str is not valid UTF-8",
            8: "not a Coinbase Exchange message: no 'type'",
        },
    ),
}


def sample(name: str) -> Path:
    return Path(str(samples() / name))


@pytest.mark.parametrize(("name", "fmt"), sorted(SAMPLES.items()))
def test_each_sample_converts_cleanly_over_a_few_seconds_of_several_symbols(
    name: str, fmt: str
) -> None:
    results = [convert(fmt, raw, NOW) for _, raw in read_lines(sample(name))]
    ticks = [t for r in results if type(r) is Ticks for t in r.ticks]

    assert not [r for r in results if type(r) is Bad]
    assert 20 <= len(results) <= 50
    assert len({t.symbol for t in ticks}) == 3
    assert max(t.timestamp for t in ticks) - min(t.timestamp for t in ticks) > 5
    assert all(type(r) is not Ticks or r.recorded is not None for r in results)
    for symbol in {t.symbol for t in ticks}:  # in event-time order per symbol: no late tick
        times = [t.timestamp for t in ticks if t.symbol == symbol]
        assert times == sorted(times)


def test_the_coinbase_sample_is_gzip_and_read_by_its_magic_bytes(tmp_path: Path) -> None:
    gz = sample("coinbase.jsonl.gz")
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    plain = tmp_path / "coinbase.jsonl"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    renamed = tmp_path / "recording.jsonl"  # gzip without the .gz name: told by its bytes
    renamed.write_bytes(gz.read_bytes())
    assert list(read_lines(gz)) == list(read_lines(plain)) == list(read_lines(renamed))


@pytest.mark.parametrize("name", sorted(BAD_SAMPLES))
def test_each_bad_sample_has_its_bad_lines_and_good_ones(name: str) -> None:
    fmt, bad = BAD_SAMPLES[name]
    results = dict((n, convert(fmt, raw, NOW)) for n, raw in read_lines(sample(name)))

    got = {n: r.reason for n, r in results.items() if type(r) is Bad}
    assert sorted(got) == sorted(bad)
    for n, reason in bad.items():
        assert got[n].startswith(reason), (n, got[n])
    assert sum(type(r) is Ticks for r in results.values()) == 2
    assert any(type(r) is Skip for r in results.values())


# ------------------------------------------------------------------------ pacing


class FakeClock:
    """A monotonic clock that moves only when the replay sleeps (plus a set oversleep)."""

    def __init__(self, start: float = 100.0, oversleep: float = 0.0) -> None:
        self.now = start
        self.oversleep = oversleep

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.oversleep


def send_times(
    pacer: Schedule, recorded: list[float | None], clock: FakeClock, work: float = 0.0
) -> list[float]:
    """The clock reading at which each line is sent, as the replay loop does it."""
    sent = []
    for r in recorded:
        wait = pacer.wait(r, clock.now)
        if wait > 0:
            clock.sleep(wait)
        sent.append(clock.now)
        clock.now += work  # converting and handing the record to the producer
    return sent


def test_speed_1_keeps_the_recorded_gaps() -> None:
    clock = FakeClock()
    assert send_times(Schedule(1), [1000.0, 1000.5, 1002.0, 1002.25], clock) == [
        100.0,
        100.5,
        102.0,
        102.25,
    ]


@pytest.mark.parametrize(("speed", "gaps"), [(2, [0, 0.25, 1.0]), (0.5, [0, 1.0, 4.0])])
def test_speed_scales_the_gaps(speed: float, gaps: list[float]) -> None:
    clock = FakeClock(start=0.0)
    assert send_times(Schedule(speed), [10.0, 10.5, 12.0], clock) == gaps


def test_speed_0_never_waits() -> None:
    clock = FakeClock(start=5.0)
    assert send_times(Schedule(0), [1.0, 100.0, 10_000.0], clock) == [5.0, 5.0, 5.0]


def test_oversleeping_and_work_do_not_add_up() -> None:
    """Each line is late by at most one oversleep plus one send's work, however long the replay."""
    clock = FakeClock(start=0.0, oversleep=0.003)
    recorded = [1000.0 + i * 0.01 for i in range(10_000)]  # 100 s recorded, a line every 10 ms
    sent = send_times(Schedule(1), recorded, clock, work=0.001)

    lateness = [s - (r - 1000.0) for s, r in zip(sent, recorded, strict=True)]
    assert max(lateness) <= 0.004 + 1e-9
    assert sent[-1] == pytest.approx(99.99, abs=0.005)  # not 10,000 x 4 ms behind


def test_a_slow_stretch_is_caught_up_not_carried() -> None:
    pacer, clock = Schedule(1), FakeClock(start=0.0)
    assert pacer.wait(50.0, clock.now) == 0  # anchors: recorded 50 is clock 0
    assert pacer.wait(51.0, 3.0) == 0  # a stall: 2 s behind, sent at once
    assert pacer.wait(54.0, 3.0) == 1.0  # then back on the original schedule


def test_lines_without_recorded_time_or_out_of_order_are_sent_at_once() -> None:
    pacer = Schedule(1)
    assert pacer.wait(None, 0.0) == 0 and pacer.anchor is None
    assert pacer.wait(10.0, 0.0) == 0 and pacer.anchor == (10.0, 0.0)
    assert pacer.wait(None, 0.0) == 0
    assert pacer.wait(9.0, 0.5) == 0  # recorded before the anchor: late, at once
    assert pacer.wait(12.0, 0.5) == 1.5


@pytest.mark.parametrize("speed", [-1.0, float("nan"), float("inf")])
def test_a_bad_speed_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Schedule(speed)


def test_due_times_are_measured_from_the_anchor() -> None:
    pacer = Schedule(4)
    assert pacer.due(5.0) is None
    pacer.wait(1.0, 10.0)
    assert pacer.due(5.0) == 11.0
    assert pacer.due(1.0 + timedelta(hours=1).total_seconds()) == 10.0 + 900.0


# ---------------------------------------------------------------- --shift-to-now


@pytest.mark.parametrize(
    ("speed", "want"),
    [(1, [5000.0, 5000.5, 5002.0]), (2, [5000.0, 5000.25, 5001.0]), (0, [5000.0, 5000.5, 5002.0])],
)
def test_shifted_times_are_when_the_schedule_sends_each_line(
    speed: float, want: list[float]
) -> None:
    retimer = Retimer(speed)
    retimer.start(10.0, 5000.0)
    retimer.start(11.0, 9999.0)  # anchored once
    assert [retimer.shift(r) for r in (10.0, 10.5, 12.0)] == want
