"""Fills of executions (CONTRACT.md `fills`): v1 fills every execution in full."""

from __future__ import annotations

from fintank.trading.ids import fill_id
from fintank.trading.records import BUY, Execution, Fill


def fill_for(execution: Execution, now: float) -> Fill:
    """The full fill of ``execution``, stamped ``now``.

    filled_* equal requested_*. BUY: delta_shares = +shares, delta_cash = -amount;
    SELL: delta_shares = -shares, delta_cash = +amount.
    """
    amount = execution.requested_amount
    shares = execution.requested_shares
    if execution.order_type == BUY:
        delta_shares, delta_cash = shares, -amount
    else:
        delta_shares, delta_cash = -shares, amount
    return Fill(
        execution.taxpayer_id,
        execution.portfolio_order_id,
        execution.component_order_id,
        execution.market_order_id,
        execution.execution_id,
        fill_id(execution.component_order_id),
        execution.order_type,
        execution.symbol,
        amount,
        shares,
        execution.requested_price,
        delta_shares,
        delta_cash,
        now,
    )
