"""The orjson codec owns the wire format: golden bytes, not just round trips."""

from fintank import codec
from fintank.records import DeadLetter, Tick


def test_dead_letter_golden_bytes() -> None:
    letter = DeadLetter("ticks", "bid 2.0 is above ask 1.0", '{"bid":2.0}', 1763722800.5, 3, 17)

    assert codec.dumps(letter) == (
        b'{"source_topic":"ticks","reason":"bid 2.0 is above ask 1.0",'
        b'"payload":"{\\"bid\\":2.0}","timestamp":1763722800.5,'
        b'"source_partition":3,"source_offset":17}'
    )


def test_tick_golden_bytes_in_contract_field_order() -> None:
    tick = Tick("VTI", "NYSE", 109.71, 109.74, 1763722800.125)

    assert codec.dumps(tick).startswith(
        b'{"symbol":"VTI","exchange":"NYSE","bid":109.71,"ask":109.74,"timestamp":1763722800.125'
    )


def test_payload_text_keeps_utf8_and_prefixes_base64() -> None:
    assert codec.payload_text("é".encode()) == "é"
    assert codec.payload_text(b"\xff") == "b64:/w=="
    assert codec.payload_text(None) == ""
