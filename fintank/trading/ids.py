"""Deterministic ids: the same portfolio order always yields the same ids downstream.

Scheme (CONTRACT.md rule 1 and rule 6)::

    component_order_id = f"{portfolio_order_id}/{index}"   index: 0-based position of the
                                                            entry in the order's portfolio
    market_order_id    = f"{component_order_id}/m"
    execution_id       = f"{component_order_id}/x"
    fill_id            = f"{component_order_id}/f"

The index counts every entry, weight-0 ones included, so an id never depends
on other entries' weights. The symbol is deliberately not part of the id:
symbols and portfolio order ids may both contain ``/`` (``BRK/B``), and two
free-form strings joined by a separator can collide; ``{id}/{integer}``
cannot (read the integer after the last ``/``). A component has exactly one
market order, one execution and one fill in v1, so the suffixes are unique,
and since they are not integers they never look like a component id.
Re-processing a component after a crash therefore re-creates identical ids,
which is what lets consumers recognise a repeat.
"""

from __future__ import annotations


def component_order_id(portfolio_order_id: str, index: int) -> str:
    """Id of the component made from entry ``index`` of the portfolio order."""
    return f"{portfolio_order_id}/{index}"


def market_order_id(component_order_id: str) -> str:
    """Id of the (one, v1) market order placed for a component."""
    return component_order_id + "/m"


def execution_id(component_order_id: str) -> str:
    """Id of the (one) execution of a component."""
    return component_order_id + "/x"


def fill_id(component_order_id: str) -> str:
    """Id of the (one, v1 full) fill of a component's execution."""
    return component_order_id + "/f"
