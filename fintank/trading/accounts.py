"""The positions bolt: accepted taxpayers and fills in, one `Account` per taxpayer out.

Fills arrive keyed by symbol; the topology re-keys them by taxpayer onto an
internal topic, so all of a taxpayer's events meet on one partition. A fill
is applied at most once, because a re-keyed fill can arrive twice after a crash
between re-keying and committing. Each re-keyed fill carries where it was read
(``fills`` partition and offset); a taxpayer's fills from one ``fills``
partition arrive in offset order (a re-send starts again from the committed
offset), so the account keeps, per ``fills`` partition, the highest offset
applied: bounded by the partition count, where a set of every ``fill_id``
grew with the taxpayer's fills. (Events without a source, written before
sources existed, are still judged by ``fill_ids``.) The marks live *in* the
account, so position and "already applied" are one changelog record and
cannot disagree after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fintank.limits import MAX_DERIVED, finite
from fintank.trading.positions import EMPTY_POSITION, Position, apply_fill, position_from_json
from fintank.trading.records import TaxpayerId, fill_from_json, taxpayer_key


@dataclass(frozen=True, slots=True)
class Account:
    """A taxpayer (as first given on an order) and their position."""

    taxpayer_id: TaxpayerId
    position: Position = EMPTY_POSITION
    fill_ids: frozenset[str] = frozenset()  # fills applied without a source (legacy)
    # fills partition -> highest offset applied from it (keys: partitions as strings, as JSON)
    sources: tuple[tuple[str, int], ...] = ()

    def applied(self, partition: int, offset: int) -> bool:
        key = str(partition)
        return any(p == key and offset <= o for p, o in self.sources)

    def with_source(self, partition: int, offset: int) -> tuple[tuple[str, int], ...]:
        key = str(partition)
        return (*((p, o) for p, o in self.sources if p != key), (key, offset))


def account_from_json(obj: dict[str, Any]) -> Account:
    return Account(
        obj["taxpayer_id"],
        position_from_json(obj["position"]),
        frozenset(obj["fill_ids"]),
        tuple((str(p), int(o)) for p, o in obj.get("sources", ())),
    )


class Store(Protocol):
    def get(self, key: str) -> Any: ...

    def set(self, partition: int, key: str, value: Any) -> None: ...


class PositionKeeper:
    """Bolt: ``{"taxpayer_id"[, "fill"]}`` events -> accounts (cash and shares summed from fills)."""

    def __init__(self, accounts: Store) -> None:
        self.accounts = accounts

    def on_event(self, partition: int, event: dict[str, Any]) -> str | None:
        """An accepted order (no ``fill``) opens the account; a fill is applied once.

        Returns why the event was refused, if it was: a fill that would take the
        cash or a share count beyond fintank's limit (never stored: orjson would
        write an infinite sum as null and the account could not be restored).
        """
        taxpayer_id = event["taxpayer_id"]
        key = taxpayer_key(taxpayer_id)
        account = self.accounts.get(key)
        fill = event.get("fill")
        if fill is None:
            if account is None:
                self.accounts.set(partition, key, Account(taxpayer_id))
            return None
        account = account or Account(taxpayer_id)
        fill_id = fill["fill_id"]
        source: int | None = event.get("source_partition")
        offset: int | None = event.get("source_offset")
        if fill_id in account.fill_ids:
            return None
        if source is not None and offset is not None and account.applied(source, offset):
            return None
        position = apply_fill(account.position, fill_from_json(fill))
        if not (finite(position.cash) and all(finite(n) for _, n in position.shares)):
            return f"fill {fill_id!r} would take taxpayer {key!r} beyond fintank's limit {MAX_DERIVED:g}"
        if source is not None and offset is not None:
            updated = Account(
                account.taxpayer_id, position, account.fill_ids, account.with_source(source, offset)
            )
        else:
            updated = Account(
                account.taxpayer_id, position, account.fill_ids | {fill_id}, account.sources
            )
        self.accounts.set(partition, key, updated)
        return None
