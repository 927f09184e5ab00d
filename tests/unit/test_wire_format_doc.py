"""docs/wire-format.md held to the code it describes.

The doc is fintank's own statement of its wire format (contract v1 plus
fintank's extensions), and the test suite reads it rather than anything
beside the repository. These checks tie it to the code: the topics of
`fintank.config.Topics`; the fields of every record, in the order the codec
writes them; the measurements, tags and fields the real line builders write;
the routes the worker serves; the analytics and HTTP defaults. The doc's own
examples and its list of extensions are checked against its tables.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from dataclasses import MISSING, dataclass, fields
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fintank.analytics import http as analytics_http
from fintank.analytics import points as analytics_points
from fintank.analytics.candles import INTERVALS
from fintank.analytics.records import Alert, Candle, Indicator, Signal
from fintank.codec import dumps, loads
from fintank.config import Settings, Topics
from fintank.records import DeadLetter, Tick
from fintank.sinks import lines as sink_lines
from fintank.trading import ids
from fintank.trading import points as trading_points
from fintank.trading.components import split
from fintank.trading.fills import fill_for
from fintank.trading.matcher import execute
from fintank.trading.orders import DUPLICATE
from fintank.trading.records import (
    ComponentOrder,
    Execution,
    Fill,
    PortfolioEntry,
    PortfolioOrder,
)
from tests.support.ticks import tick
from tests.support.trading import entry, order

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "wire-format.md"
# Where the worker's routes are declared: the topology, and the runtime's built-in ones.
SERVERS = (REPO / "topologies" / "fintank.py", REPO / "fintank" / "runtime.py")
EXTENSION = "fintank extension"
TOPICS = Topics()
# Fields of Topics that name fintank's internal topics (not part of contract v1).
INTERNAL = ("components", "positions")


# --- reading the doc ---------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    level: int
    title: str
    body: str  # text up to the next heading of any level
    parent: str  # title of the enclosing level-2 section


@cache
def sections() -> tuple[Section, ...]:
    """Every heading of the doc (outside code blocks), in order, with its text."""
    out: list[Section] = []
    level, title, body, parent = 1, "", [], ""
    fenced = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#{1,6}) (.+)$", line)
        if heading is None:
            body.append(line)
            continue
        out.append(Section(level, title, "\n".join(body), parent))
        level, title, body = len(heading.group(1)), heading.group(2).strip(), []
        if level <= 2:
            parent = title
    out.append(Section(level, title, "\n".join(body), parent))
    return tuple(out)


def section(title: str) -> Section:
    found = [s for s in sections() if s.title == title]
    assert len(found) == 1, f"docs/wire-format.md: {len(found)} sections titled {title!r}"
    return found[0]


def topic_sections() -> dict[str, Section]:
    """Topic name -> its section (headings "### `name` — ...")."""
    out = {}
    for s in sections():
        match = re.match(r"`([\w.-]+)` — ", s.title)
        if s.level == 3 and match:
            assert match.group(1) not in out, f"topic {match.group(1)} documented twice"
            out[match.group(1)] = s
    return out


def route_sections() -> dict[str, Section]:
    """Route path -> its section (headings "### `GET /path`")."""
    out = {}
    for s in sections():
        match = re.fullmatch(r"`GET (/\S*)`", s.title)
        if s.level == 3 and match:
            out[match.group(1)] = s
    return out


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables in ``text``: rows of stripped cells, header first, no separator."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def unquote(cell: str) -> str:
    return cell.strip().strip("`")


@dataclass(frozen=True)
class DocField:
    name: str
    json_type: str
    constraints: str
    meaning: str


def field_table(s: Section) -> list[DocField]:
    """The one table of a section headed ``field | JSON type | constraints | meaning``."""
    found = [t for t in tables(s.body) if t[0] == ["field", "JSON type", "constraints", "meaning"]]
    assert len(found) == 1, f"section {s.title!r}: {len(found)} field tables"
    return [DocField(unquote(row[0]), *row[1:]) for row in found[0][1:]]


def example(s: Section) -> Any:
    """The JSON example of a section (its one ```json block)."""
    blocks = re.findall(r"```json\n(.*?)\n```", s.body, re.S)
    assert len(blocks) == 1, f"section {s.title!r}: {len(blocks)} JSON examples"
    return json.loads(blocks[0])


def documented_measurements() -> dict[str, tuple[set[str], set[str]]]:
    """Every ``measurement | tags | fields`` table of the InfluxDB section, merged."""
    text = "\n".join(s.body for s in sections() if s.parent == "InfluxDB measurements")
    out: dict[str, tuple[set[str], set[str]]] = {}
    for table in tables(text):
        if table[0] != ["measurement", "tags", "fields"]:
            continue
        for name, tags, fields_ in table[1:]:
            assert name not in out, f"measurement {name} documented twice"
            out[name] = (
                {t.strip() for t in tags.split(",")},
                {f.strip() for f in fields_.split(",")},
            )
    return out


# --- what the code writes ----------------------------------------------------------

# Each record class, with the doc section that lists its fields.
RECORDS: list[tuple[str, type]] = [
    (f"`{TOPICS.ticks}` — input, keyed by symbol", Tick),
    (f"`{TOPICS.orders}` — input, keyed by portfolio_order_id", PortfolioOrder),
    ("Portfolio entries", PortfolioEntry),
    (f"`{TOPICS.executions}` — output, keyed by symbol", Execution),
    (f"`{TOPICS.fills}` — output, keyed by symbol", Fill),
    (f"`{TOPICS.candles}` — output, keyed by symbol", Candle),
    (f"`{TOPICS.indicators}` — output, keyed by symbol", Indicator),
    (f"`{TOPICS.signals}` — output, keyed by symbol", Signal),
    (f"`{TOPICS.alerts}` — output, keyed by symbol", Alert),
    (f"`{TOPICS.deadletters}` — output, keyed by the name of the source topic", DeadLetter),
    (f"`{TOPICS.components}` — internal, keyed by symbol", ComponentOrder),
]


def wire_keys(cls: type) -> list[str]:
    """The keys of a record as fintank's codec writes it, in order."""
    record = cls(*(0 for _ in fields(cls)))
    return list(loads(dumps(record)))


def sample_lines() -> dict[str, str]:
    """One line of every measurement fintank writes, built by its own line builders."""
    po = order(entry("VTI", 0.5), entry("IVE", 0.5, limit_price=94.0), timestamp=1763722800.5)
    comp = split(po)[0]
    executed = execute(comp, tick(ask=109.74), now=1763722801.0)
    candle = Candle("VTI", "1m", 1763722800.0, 109.7, 109.8, 109.6, 109.75, 12)
    built = {
        "BidAskLines.lines": sink_lines.BidAskLines().lines([tick(exchange="NYSE")])[0],
        "deadletter_line": sink_lines.deadletter_line(TOPICS.ticks, 1763722801.5),
        "portfolio_order_line": trading_points.portfolio_order_line(po),
        "component_line": trading_points.component_line(comp),
        "execution_line": trading_points.execution_line(executed),
        "fill_line": trading_points.fill_line(fill_for(executed, 1763722801.2)),
        "candle_line": analytics_points.candle_line(candle),
    }
    return built


def line_builders(module: ModuleType) -> set[str]:
    """Names of the public line builders a module defines (``*_line`` functions)."""
    return {
        name
        for name, obj in vars(module).items()
        if name.endswith("_line")
        and not name.startswith("_")
        and inspect.isfunction(obj)
        and obj.__module__ == module.__name__
    }


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(measurement, tags, fields) of one line (the samples have no escaped characters)."""
    head, field_set, _time = line.split(" ")
    measurement, *tags = head.split(",")
    return (
        measurement,
        dict(t.split("=", 1) for t in tags),
        dict(f.split("=", 1) for f in field_set.split(",")),
    )


# --- topics ------------------------------------------------------------------------


def test_every_topic_of_the_config_is_documented_and_no_other() -> None:
    names = {getattr(TOPICS, f.name) for f in fields(Topics)}
    overview = tables(section("Topics").body)[0]

    assert set(topic_sections()) == names
    assert {unquote(row[0]) for row in overview[1:]} == names


def test_internal_topics_are_marked_as_fintank_extensions() -> None:
    internal = {getattr(TOPICS, name) for name in INTERNAL}
    overview = {unquote(row[0]): row for row in tables(section("Topics").body)[0][1:]}
    marked = {name for name, s in topic_sections().items() if EXTENSION in s.parent}

    assert marked == internal
    for name in internal:
        assert EXTENSION in overview[name][2], f"{name}: not marked in the topics table"


# --- records -----------------------------------------------------------------------


@pytest.mark.parametrize(("title", "cls"), RECORDS, ids=[c.__name__ for _, c in RECORDS])
def test_documented_fields_are_the_record_fields_in_wire_order(title: str, cls: type) -> None:
    documented = [f.name for f in field_table(section(title))]

    assert documented == [f.name for f in fields(cls)]
    assert documented == wire_keys(cls)


@pytest.mark.parametrize(("title", "cls"), RECORDS, ids=[c.__name__ for _, c in RECORDS])
def test_fields_marked_optional_are_those_the_record_may_lack(title: str, cls: type) -> None:
    optional = {f.name for f in fields(cls) if f.default is not MISSING}
    marked = {f.name for f in field_table(section(title)) if "optional" in f.constraints}

    assert marked == optional


def test_every_example_record_uses_the_documented_fields_in_order() -> None:
    for title, cls in RECORDS:
        if cls is PortfolioEntry:
            continue  # its examples are inside the order's
        s = section(title)
        documented = field_table(s)
        record = example(s)
        required = [f.name for f in documented if "optional" not in f.constraints]
        order_of = {f.name: i for i, f in enumerate(documented)}

        assert set(record) <= set(order_of), f"{title}: {sorted(set(record) - set(order_of))}"
        assert set(required) <= set(record), f"{title}: example lacks {set(required) - set(record)}"
        assert list(record) == sorted(record, key=order_of.__getitem__), title
        if cls is PortfolioOrder:
            entries = [f.name for f in field_table(section("Portfolio entries"))]
            for item in record["portfolio"]:
                assert set(item) <= set(entries) and {"symbol", "weight"} <= set(item)


def test_deadletter_extension_fields_are_marked_and_listed_at_a_glance() -> None:
    glance = section("Extensions at a glance").body
    marked = [
        f.name
        for title, _ in RECORDS
        for f in field_table(section(title))
        if EXTENSION in f.constraints
    ]
    deadletter = field_table(section(RECORDS[-2][0]))
    optional = [f.name for f in fields(DeadLetter) if f.default is not MISSING]
    sourced = [f.name for f in fields(ComponentOrder) if f.default is not MISSING]

    assert sorted(marked) == sorted(optional + sourced)  # both: where a record was read
    assert all(EXTENSION in f.constraints for f in deadletter if f.name in optional)
    for name in marked:
        assert f"`{name}`" in glance, f"{name} is not in 'Extensions at a glance'"


def test_the_duplicate_reason_and_the_id_scheme_are_the_code_s() -> None:
    orders = section(RECORDS[1][0]).body + section("Validity and duplicates").body
    matching = section("From orders to executions").body
    component = ids.component_order_id("P", "i")  # type: ignore[arg-type]

    assert f"`{DUPLICATE}`" in orders
    assert f"`{component}`" in matching
    for made in (ids.market_order_id, ids.execution_id, ids.fill_id):
        assert f"`{made(component)}`" in matching


# --- measurements ------------------------------------------------------------------


def test_the_samples_cover_every_line_builder_fintank_has() -> None:
    covered = {name for name in sample_lines() if name.endswith("_line")}
    builders = (
        line_builders(sink_lines) | line_builders(trading_points) | line_builders(analytics_points)
    )

    assert covered == builders
    assert "BidAskLines" in vars(sink_lines)


def test_measurements_table_is_what_the_line_builders_write() -> None:
    written = {}
    for line in sample_lines().values():
        measurement, tags, field_set = parse_line(line)
        assert measurement not in written, f"two builders write {measurement}"
        written[measurement] = (set(tags), set(field_set))

    assert documented_measurements() == written


def test_count_is_the_only_integer_field_as_documented() -> None:
    integers = set()
    for line in sample_lines().values():
        measurement, _, field_set = parse_line(line)
        integers |= {(measurement, k) for k, v in field_set.items() if v.endswith("i")}
    filling = section("How fintank fills the measurements").body

    assert integers == {("candles", "count"), ("deadletters", "count")}
    assert "every field is a float except `count`" in " ".join(filling.split())


def test_the_deadletters_measurement_is_marked_as_an_extension() -> None:
    ext = section("`deadletters` measurement (fintank extension)")
    names = {row[0] for t in tables(ext.body) for row in t[1:]}
    head, count, _ = sink_lines.deadletter_line(TOPICS.ticks, 1.0).split(" ")

    assert names == {head.split(",")[0]}
    assert count == "count=1i"
    assert "Measurement:** `deadletters`" in section("Extensions at a glance").body


# --- HTTP --------------------------------------------------------------------------


def served_routes() -> set[str]:
    """The paths of the worker's web server, read from the source without running it.

    A path is the first argument, a string starting with ``/``, of a call to
    ``app.page`` (faust's decorator), ``topology.route`` or ``Route`` in the
    topology module and in the runtime that adds the built-in routes.
    """
    paths = set()
    for source in SERVERS:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("page", "route", "Route")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.startswith("/")
            ):
                paths.add(first.value)
    return paths


def test_every_route_the_worker_serves_is_documented_and_no_other() -> None:
    served = served_routes()

    assert {"/instruments", "/candles/{symbol}", "/positions/{taxpayer_id}"} <= served
    assert set(route_sections()) == served


def test_routes_marked_as_extensions_are_listed_at_a_glance() -> None:
    glance = section("Extensions at a glance").body
    marked = {
        path
        for path, s in route_sections().items()
        if s.body.strip().startswith(f"**({EXTENSION})")
    }

    assert marked, "no route is marked as a fintank extension"
    for path in marked:
        assert f"`GET {path}`" in glance, f"GET {path} is not in 'Extensions at a glance'"


def test_candle_query_defaults_are_the_server_s() -> None:
    body = " ".join(route_sections()["/candles/{symbol}"].body.split())
    candles = {f.name: f for f in field_table(section(RECORDS[5][0]))}

    assert f"(default `{analytics_http.DEFAULT_INTERVAL}`)" in body
    assert (
        f"from {analytics_http.MIN_MINUTES} to {analytics_http.MAX_MINUTES} "
        f"(default {analytics_http.DEFAULT_MINUTES})" in body
    )
    assert " or ".join(f"`{i}`" for i in INTERVALS) in body
    assert " or ".join(f'`"{i}"`' for i in INTERVALS) == candles["interval"].constraints


# --- analytics defaults ------------------------------------------------------------


def test_analytics_defaults_are_the_settings_defaults() -> None:
    table = next(
        t for t in tables(section("Analytics").body) if t[0] == ["rule", "default", "setting"]
    )
    defaults = Settings()
    documented = {}
    for _rule, default, variable in table[1:]:
        name = unquote(variable).removeprefix("FINTANK_").lower()
        documented[name] = float(default)

    assert set(documented) == {
        "candle_grace",
        "sma_period",
        "ema_period",
        "rsi_period",
        "rsi_low",
        "rsi_high",
        "alert_window",
        "alert_threshold_pct",
    }
    for name, value in documented.items():
        assert getattr(defaults, name) == value, name
