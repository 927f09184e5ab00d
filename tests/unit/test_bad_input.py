"""Bad input is contained: refused with a reason at the validator, never produced downstream.

Each test drives the real bolts with `fintank.testing.Harness` (no broker):
values that would overflow, event times far in the future, keys that disagree
with the record, and garbage on the internal topics.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fintank.bolt import Batch, Out
from fintank.bolts import FillsByTaxpayer, Market, Orders, Positions
from fintank.codec import dumps
from fintank.limits import DEFAULT_MAX_FUTURE, MAX_NUMBER, MIN_PRICE
from fintank.testing import Harness, Record
from fintank.ticks import parse_tick
from fintank.trading.orders import parse_order
from tests.support.garbage import non_finite_paths
from tests.support.ticks import T0, tick_json
from tests.support.trading import order_json

NOW = T0 + 1.0


def delivered(out: Out, now: float) -> list[Out]:
    """``out`` and what its ``then`` chain sends once delivered, in order."""
    outs = [out]
    while out.then is not None:
        out = out.then(now) if callable(out.then) else out.then
        outs.append(out)
    return outs


def emitted(out: Out, output: str, now: float = NOW) -> list[Any]:
    return [e.value for o in delivered(out, now) for e in o.emits if e.output == output]


def reasons(out: Out) -> list[str]:
    return [letter.reason for _, letter in out.deadletters]


def one_order(**fields: Any) -> bytes:
    return order_json(portfolio=[{"symbol": "VTI", "weight": 1}], **fields)


# --- non-finite values ------------------------------------------------------------------


def test_fintanks_codec_writes_inf_as_null_which_is_why_validators_refuse_what_overflows() -> None:
    assert dumps({"cash": float("inf"), "nan": float("nan")}) == b'{"cash":null,"nan":null}'


def test_an_order_amount_of_1e308_is_dead_lettered_with_the_reason() -> None:
    orders = Harness(Orders)

    out = orders.feed("orders", [one_order(amount=1e308)], now=NOW, keys=["po-1"])

    assert out.emits == [] and out.points == []
    assert reasons(out) == [
        "amount 1e+308 is above fintank's limit 1e+100 "
        "(the cash and shares derived from it would not stay finite)"
    ]
    assert orders.table("accepted-orders") == {}


def test_the_largest_amount_at_the_smallest_price_executes_with_finite_shares_and_cash() -> None:
    orders, market = Harness(Orders), Harness(Market)
    placed = orders.feed("orders", [one_order(amount=MAX_NUMBER)], now=NOW, keys=["po-1"])
    [component] = [dumps(c) for c in emitted(placed, "components")]
    market.feed("components", [component], now=NOW, keys=["VTI"])

    quoted = market.feed("ticks", [tick_json(bid=MIN_PRICE, ask=MIN_PRICE)], now=NOW, keys=["VTI"])

    [execution] = emitted(quoted, "executions")
    [fill] = emitted(quoted, "fills")
    assert execution.requested_shares == round(MAX_NUMBER / MIN_PRICE, 6) == 1e200
    assert fill.delta_cash_position == -MAX_NUMBER
    assert non_finite_paths([execution, fill]) == []


@pytest.mark.parametrize(
    ("bid", "ask", "why"),
    [
        (5e-324, 1.0, "bid 5e-324 is outside fintank's price range [1e-100, 1e+100]"),
        (1.0, 1.7976931348623157e308, "ask 1.7976931348623157e+308 is outside"),  # mid: inf
        (1e100, 1.0000000000000002e100, "ask 1.0000000000000002e+100 is outside"),
    ],
)
def test_prices_whose_mid_shares_or_ratios_would_overflow_are_dead_lettered(
    bid: float, ask: float, why: str
) -> None:
    out = Harness(Market).feed("ticks", [tick_json(bid=bid, ask=ask)], now=NOW)

    assert out.emits == [] and out.points == []
    [reason] = reasons(out)
    assert reason.startswith(why)


def test_the_edges_of_the_price_range_are_valid() -> None:
    assert not isinstance(parse_tick(tick_json(bid=MIN_PRICE, ask=MAX_NUMBER)), str)


def test_a_timestamp_influxdb_cannot_store_is_dead_lettered_even_without_a_future_bound() -> None:
    late = 9_300_000_000.0  # year 2264

    assert "past 2262-04-11" in str(parse_tick(tick_json(timestamp=late)))
    assert "past 2262-04-11" in str(parse_order(one_order(timestamp=late)))


# --- timestamps far in the future -------------------------------------------------------


def test_a_tick_in_milliseconds_sent_as_seconds_is_dead_lettered_with_the_reason() -> None:
    market = Harness(Market, max_future=DEFAULT_MAX_FUTURE)

    out = market.feed("ticks", [tick_json(timestamp=NOW * 1000)], now=NOW)

    [reason] = reasons(out)
    assert reason == (
        f"timestamp {NOW * 1000!r} is past 2262-04-11, the last time InfluxDB can store "
        "(milliseconds sent as seconds?)"
    )
    assert out.points == [] and market.table("books") == {}


def test_a_tick_more_than_max_future_after_now_is_dead_lettered_with_the_reason() -> None:
    market = Harness(Market, max_future=DEFAULT_MAX_FUTURE)

    out = market.feed("ticks", [tick_json(timestamp=NOW + 2 * 86_400)], now=NOW)

    [reason] = reasons(out)
    assert "is 172800 s after now" in reason
    assert "more than the 86400 s allowed (FINTANK_MAX_FUTURE" in reason
    assert out.points == [] and market.table("books") == {}


def test_the_future_bound_is_relative_to_now_and_inclusive() -> None:
    market = Harness(Market, max_future=60.0)

    out = market.feed(
        "ticks", [tick_json(timestamp=NOW + 60.0), tick_json(timestamp=NOW + 60.5)], now=NOW
    )

    assert [o for o, _ in out.deadletters] == [1]
    assert len(out.points) == 1


def test_a_tick_far_in_the_past_is_valid_as_the_contract_says() -> None:
    out = Harness(Market, max_future=60.0).feed("ticks", [tick_json(timestamp=1.0)], now=NOW)

    assert out.deadletters == [] and len(out.points) == 1


def test_without_a_bound_the_bolt_accepts_any_future_time_it_can_store() -> None:
    out = Harness(Market).feed("ticks", [tick_json(timestamp=NOW * 5)], now=NOW)

    assert out.deadletters == []


def test_an_order_in_the_far_future_is_dead_lettered_and_its_id_stays_free() -> None:
    orders = Harness(Orders, max_future=DEFAULT_MAX_FUTURE)

    out = orders.feed(
        "orders",
        [one_order(timestamp=NOW + 2 * 86_400), one_order(timestamp=NOW)],
        now=NOW,
        keys=["po-1", "po-1"],
    )

    assert [o for o, _ in out.deadletters] == [0]
    assert "FINTANK_MAX_FUTURE" in reasons(out)[0]
    assert len(emitted(out, "components")) == 1  # the valid record took the id


# --- keys ---------------------------------------------------------------------------------


def test_a_tick_whose_key_disagrees_with_its_symbol_is_dead_lettered() -> None:
    market = Harness(Market)

    out = market.feed("ticks", [tick_json(symbol="VTI")] * 2, now=NOW, keys=["IVE", "VTI"])

    assert [(o, r) for o, r in zip([o for o, _ in out.deadletters], reasons(out), strict=True)] == [
        (0, "record key 'IVE' disagrees with its symbol 'VTI'")
    ]
    assert len(out.points) == 1


def test_a_key_that_is_not_utf8_disagrees() -> None:
    market = Harness(Market)
    batch = Batch("ticks", 0, [Record("ticks", 0, 0, b"\xffVTI", tick_json())])

    out = market.bolt.process(batch, NOW)

    assert reasons(out) == ["record key b'\\xffVTI' (not UTF-8) disagrees with its symbol 'VTI'"]


def test_records_without_a_key_are_judged_by_their_value_alone() -> None:
    ticks = Harness(Market).feed("ticks", [tick_json()], now=NOW)
    orders = Harness(Orders).feed("orders", [one_order()], now=NOW)

    assert ticks.deadletters == [] and orders.deadletters == []


def test_an_order_whose_key_disagrees_with_its_id_is_dead_lettered_before_duplicates() -> None:
    orders = Harness(Orders)

    out = orders.feed(
        "orders",
        [one_order(portfolio_order_id="po-1"), one_order(portfolio_order_id="po-1")],
        now=NOW,
        keys=["po-1", "po-2"],
    )

    assert reasons(out) == ["record key 'po-2' disagrees with its portfolio_order_id 'po-1'"]


def test_invalidity_takes_precedence_over_a_key_that_disagrees() -> None:
    out = Harness(Orders).feed("orders", [one_order(amount=-5)], now=NOW, keys=["other"])

    assert reasons(out) == ["amount must be > 0, got -5"]


# --- internal topics --------------------------------------------------------------------

GARBAGE: list[bytes | None] = [
    b"\xff not json",
    None,
    b"[1, 2]",
    b'{"symbol": "VTI"}',
    b'{"taxpayer_id": 42, "fill": "no"}',
    orjson.dumps({"taxpayer_id": 42, "fill": {"fill_id": "f", "delta_cash_position": 1e308}}),
]


def test_garbage_on_the_components_topic_is_dead_lettered_and_the_next_component_executes() -> None:
    market = Harness(Market)
    market.feed("ticks", [tick_json()], now=NOW, keys=["VTI"])
    placed = Harness(Orders).feed("orders", [one_order()], now=NOW)
    [component] = [dumps(c) for c in emitted(placed, "components")]

    out = market.feed("components", [*GARBAGE, component], now=NOW)

    assert [o for o, _ in out.deadletters] == list(range(len(GARBAGE)))
    assert all(r for r in reasons(out))
    assert len(emitted(out, "executions")) == 1 and len(emitted(out, "fills")) == 1


def test_a_component_keyed_by_another_symbol_is_dead_lettered() -> None:
    placed = Harness(Orders).feed("orders", [one_order()], now=NOW)
    [component] = [dumps(c) for c in emitted(placed, "components")]

    out = Harness(Market).feed("components", [component], now=NOW, keys=["IVE"])

    assert reasons(out) == ["record key 'IVE' disagrees with its symbol 'VTI'"]


def test_garbage_on_fills_is_dead_lettered_by_fills_by_taxpayer() -> None:
    out = Harness(FillsByTaxpayer).feed("fills", GARBAGE, now=NOW)

    assert [o for o, _ in out.deadletters] == list(range(len(GARBAGE)))
    assert out.emits == []


def fill_event(fill_id: str, cash: float, taxpayer: int = 42) -> bytes:
    fill = {
        "taxpayer_id": taxpayer,
        "portfolio_order_id": "po-1",
        "component_order_id": "po-1/0",
        "market_order_id": "po-1/0/m",
        "execution_id": "po-1/0/x",
        "fill_id": fill_id,
        "order_type": "SELL",
        "symbol": "VTI",
        "filled_amount": abs(cash),
        "filled_shares": 1.0,
        "filled_price": abs(cash),
        "delta_shares_position": -1.0,
        "delta_cash_position": cash,
        "timestamp": NOW,
    }
    return orjson.dumps({"taxpayer_id": taxpayer, "fill": fill})


def test_garbage_on_positions_is_dead_lettered_and_accounts_stay_restorable() -> None:
    positions = Harness(Positions)

    out = positions.feed(
        "positions",
        [*GARBAGE, b'{"taxpayer_id": 42}', fill_event("f1", 1e250), fill_event("f2", 1e250)],
        now=NOW,
    )

    dead = dict(zip([o for o, _ in out.deadletters], reasons(out), strict=True))
    assert sorted(dead) == [*range(len(GARBAGE)), len(GARBAGE) + 2]
    assert (
        dead[len(GARBAGE) + 2] == "fill 'f2' would take taxpayer '42' beyond fintank's limit 1e+250"
    )
    account = positions.restarted().table("accounts")["42"]
    assert account.position.cash == 1e250 and account.fill_ids == {"f1"}


def test_a_positions_record_keyed_by_another_taxpayer_is_dead_lettered() -> None:
    out = Harness(Positions).feed("positions", [b'{"taxpayer_id": 42}'], now=NOW, keys=["7"])

    assert reasons(out) == ["record key '7' disagrees with its taxpayer key '42'"]


def test_unreadable_replayed_executions_and_fills_are_skipped_and_counted() -> None:
    market = Harness(Market)
    good = {
        "taxpayer_id": 42,
        "portfolio_order_id": "po-1",
        "component_order_id": "po-1/0",
        "market_order_id": "po-1/0/m",
        "execution_id": "po-1/0/x",
        "order_type": "BUY",
        "symbol": "VTI",
        "requested_amount": 100.0,
        "requested_shares": 1.0,
        "requested_price": 100.0,
        "quote_timestamp": T0,
        "timestamp": NOW,
    }
    replayed = {
        "executions": [
            Record("executions", 0, i, b"VTI", v)
            for i, v in enumerate(
                [b"junk", None, orjson.dumps({**good, "requested_price": "x"}), orjson.dumps(good)]
            )
        ],
        "fills": [Record("fills", 0, 0, b"VTI", b"{}")],
    }

    out = market.recover(replayed, NOW)

    assert isinstance(market.bolt, Market)
    assert market.bolt.replay_skipped == 4
    assert [f.component_order_id for f in emitted(out, "fills")] == [
        "po-1/0"
    ]  # its fill was missing
