"""Trading: portfolio orders -> component orders -> executions -> fills -> positions.

Pure bolts and state functions (no I/O, no clock: ``now`` is passed in)::

    orders --OrderValidator.process--> fintank-components (key=symbol) | deadletters
    fintank-components + ticks --on_component / on_ticks (SymbolBook per symbol)-->
        executions (key=symbol) --fill_for--> fills (key=symbol)
    fills --apply_fill (Position per taxpayer_key)--> GET /positions/{taxpayer_id}

Exactly once (CONTRACT.md rule 6) rests on deterministic ids (`fintank.trading.ids`)
plus three things the topology keeps in tables:

* ``accepted``: portfolio_order_id -> (partition, offset), given to and updated
  as told by `OrderValidator.process`; a redelivered accepted record re-sends
  identical components.
* ``executed``: component_order_id -> its `Execution`. A component that comes
  again after it executed (a re-sent component) must not reach `on_component`;
  re-sending the stored execution (and ``fill_for`` of it, with the stored
  timestamp) repairs a send lost in a crash without creating anything new.
  A component still resting is recognised by `on_component` itself.
* positions apply each ``fill_id`` once (`apply_fill` simply adds).
"""

from fintank.trading.components import split
from fintank.trading.fills import fill_for
from fintank.trading.matcher import (
    EMPTY_BOOK,
    SymbolBook,
    book_from_json,
    on_component,
    on_ticks,
)
from fintank.trading.orders import (
    DUPLICATE,
    Accepted,
    OrderResult,
    OrderValidator,
    Redelivered,
    Rejected,
    parse_order,
)
from fintank.trading.positions import (
    EMPTY_POSITION,
    Position,
    apply_fill,
    position_from_json,
    position_json,
)
from fintank.trading.records import (
    ComponentOrder,
    Execution,
    Fill,
    PortfolioEntry,
    PortfolioOrder,
    component_from_json,
    execution_from_json,
    fill_from_json,
    taxpayer_key,
)

__all__ = [
    "DUPLICATE",
    "EMPTY_BOOK",
    "EMPTY_POSITION",
    "Accepted",
    "ComponentOrder",
    "Execution",
    "Fill",
    "OrderResult",
    "OrderValidator",
    "PortfolioEntry",
    "PortfolioOrder",
    "Position",
    "Redelivered",
    "Rejected",
    "SymbolBook",
    "apply_fill",
    "book_from_json",
    "component_from_json",
    "execution_from_json",
    "fill_for",
    "fill_from_json",
    "on_component",
    "on_ticks",
    "parse_order",
    "position_from_json",
    "position_json",
    "split",
    "taxpayer_key",
]
