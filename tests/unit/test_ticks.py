"""The tick deserializer: one test per rule of CONTRACT.md `ticks`."""

import pytest

from fintank.records import DeadLetter, Tick
from fintank.ticks import TickDeserializer, parse_tick
from tests.support.ticks import T0, tick_json


def test_valid_tick_is_parsed_with_float_prices() -> None:
    result = parse_tick(tick_json(bid=109, ask=110))

    assert result == Tick("VTI", "NYSE", 109.0, 110.0, T0)
    assert type(result.bid) is float  # type: ignore[union-attr]


def test_optional_sizes_are_kept() -> None:
    result = parse_tick(tick_json(bid_size=300, ask_size=0))

    assert isinstance(result, Tick)
    assert (result.bid_size, result.ask_size) == (300.0, 0.0)


def test_empty_exchange_is_valid_and_unknown_fields_are_ignored() -> None:
    assert isinstance(parse_tick(tick_json(exchange="", venue="X")), Tick)


def test_bid_equal_to_ask_is_valid() -> None:
    assert isinstance(parse_tick(tick_json(bid=5.0, ask=5.0)), Tick)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON: str is not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b'{"symbol":"A","exchange":"X","bid":NaN,"ask":1,"timestamp":1}', "not valid JSON"),
        (b'{"symbol":"A","exchange":"X","bid":1e999,"ask":1,"timestamp":1}', "not valid JSON"),
        (tick_json(symbol=None), "missing field 'symbol'"),
        (tick_json(symbol=""), "symbol must not be empty"),
        (tick_json(symbol=7), "symbol must be a string"),
        (tick_json(exchange=None), "missing field 'exchange'"),
        (tick_json(exchange=1), "exchange must be a string"),
        (tick_json(bid="109.7"), "bid must be a JSON number, got a string"),
        (tick_json(ask=True), "ask must be a JSON number, got a boolean"),
        (tick_json(timestamp=None), "missing field 'timestamp'"),
        (tick_json(bid=0), "bid must be > 0"),
        (tick_json(ask=-1), "ask must be > 0"),
        (tick_json(bid=2.0, ask=1.0), "bid 2.0 is above ask 1.0"),
        (tick_json(timestamp=0), "timestamp must be > 0"),
        (tick_json(bid_size=-1), "bid_size must be a number >= 0"),
        (tick_json(ask_size="10"), "ask_size must be a number >= 0"),
    ],
)
def test_invalid_tick_gives_reason(raw: bytes, reason: str) -> None:
    result = parse_tick(raw)

    assert isinstance(result, str)
    assert reason in result


def test_null_value_gives_reason() -> None:
    assert parse_tick(None) == "empty record value (null)"


def test_process_dead_letters_with_source_topic_payload_and_now() -> None:
    bolt = TickDeserializer("ticks-in")

    letter = bolt.process(b"oops", now=42.0)

    assert isinstance(letter, DeadLetter)
    assert (letter.source_topic, letter.payload, letter.timestamp) == ("ticks-in", "oops", 42.0)


def test_non_utf8_payload_is_base64_with_prefix() -> None:
    letter = TickDeserializer("ticks").process(b"\xff\x00", now=1.0)

    assert isinstance(letter, DeadLetter)
    assert letter.payload == "b64:/wA="


def test_batch_keeps_order_and_splits_valid_from_invalid() -> None:
    raws = [tick_json(timestamp=T0 + i) if i % 3 else b"bad" for i in range(9)]

    batch = TickDeserializer("ticks").process_batch(raws, now=1.0)

    assert [t.timestamp for t in batch.ticks] == [T0 + i for i in range(9) if i % 3]
    assert len(batch.deadletters) == 3
