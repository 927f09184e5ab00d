"""The positions bolt: accepted taxpayers and fills in, one `Account` per taxpayer out.

Fills arrive keyed by symbol; the topology re-keys them by taxpayer onto an
internal topic, so all of a taxpayer's events meet on one partition. A fill
is applied at most once: the account remembers the deterministic ``fill_id``
of every fill in it, because a re-keyed fill can arrive twice after a crash
between re-keying and committing. The ids live *in* the account, so position
and "already applied" are one changelog record and cannot disagree after a
crash. (Its size grows with the taxpayer's fills; see README.md, limits.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fintank.trading.positions import EMPTY_POSITION, Position, apply_fill, position_from_json
from fintank.trading.records import TaxpayerId, fill_from_json, taxpayer_key


@dataclass(frozen=True, slots=True)
class Account:
    """A taxpayer (as first given on an order) and their position."""

    taxpayer_id: TaxpayerId
    position: Position = EMPTY_POSITION
    fill_ids: frozenset[str] = frozenset()


def account_from_json(obj: dict[str, Any]) -> Account:
    return Account(
        obj["taxpayer_id"],
        position_from_json(obj["position"]),
        frozenset(obj["fill_ids"]),
    )


class Store(Protocol):
    def get(self, key: str) -> Any: ...

    def set(self, partition: int, key: str, value: Any) -> None: ...


class PositionKeeper:
    """Bolt: ``{"taxpayer_id"[, "fill"]}`` events -> accounts (cash and shares summed from fills)."""

    def __init__(self, accounts: Store) -> None:
        self.accounts = accounts

    def on_event(self, partition: int, event: dict[str, Any]) -> None:
        """An accepted order (no ``fill``) opens the account; a fill is applied once."""
        taxpayer_id = event["taxpayer_id"]
        key = taxpayer_key(taxpayer_id)
        account = self.accounts.get(key)
        fill = event.get("fill")
        if fill is None:
            if account is None:
                self.accounts.set(partition, key, Account(taxpayer_id))
            return
        account = account or Account(taxpayer_id)
        fill_id = fill["fill_id"]
        if fill_id in account.fill_ids:
            return
        position = apply_fill(account.position, fill_from_json(fill))
        self.accounts.set(
            partition, key, Account(account.taxpayer_id, position, account.fill_ids | {fill_id})
        )
