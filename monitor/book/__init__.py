"""The book: columnar numpy state of many accounts' collateral and positions.

Dense integer ids (``account_ix``, ``instrument_ix``, ``asset_ix``, margin ``unit``
ids and position rows) index growable arrays; external names map to ids only at the
edge (account names through a compact :class:`NameIndex`). A per-instrument holder
index lets a price change touch only the positions in that instrument, and only the
blocks of them whose price bands it left. Pure: no I/O, no clock.
"""

from monitor.book._book import Book
from monitor.book._bulk import load_cross_accounts
from monitor.book._collateral import AssetTable
from monitor.book._columns import ID, MAX_ROWS, Ids, Index
from monitor.book._holders import BLOCK as HOLDER_BLOCK
from monitor.book._holders import BLOCK_SHIFT as HOLDER_BLOCK_SHIFT
from monitor.book._holders import Holders
from monitor.book._names import NameIndex, NamesById
from monitor.book._positions import FLAT_QTY_REL, NO_ROW, PositionTable, trade
from monitor.book._seen import digest_of
from monitor.book._snapshot import load_snapshots
from monitor.book._snapshot_copy import BookMoved
from monitor.book._snapshot_image import (
    PartitionImage,
    Piece,
    export_accounts,
    export_partition,
)
from monitor.book._tables import (
    COLLATERAL,
    CROSS,
    GROSS,
    INITIAL,
    ISOLATED,
    MAINTENANCE,
    PORTFOLIO,
    UPNL,
    AccountTable,
    UnitTable,
)

__all__ = [
    "COLLATERAL",
    "CROSS",
    "FLAT_QTY_REL",
    "GROSS",
    "HOLDER_BLOCK",
    "HOLDER_BLOCK_SHIFT",
    "ID",
    "INITIAL",
    "ISOLATED",
    "MAINTENANCE",
    "MAX_ROWS",
    "NO_ROW",
    "PORTFOLIO",
    "UPNL",
    "AccountTable",
    "AssetTable",
    "Book",
    "BookMoved",
    "Holders",
    "Ids",
    "Index",
    "NameIndex",
    "NamesById",
    "PartitionImage",
    "Piece",
    "PositionTable",
    "UnitTable",
    "digest_of",
    "export_accounts",
    "export_partition",
    "load_cross_accounts",
    "load_snapshots",
    "trade",
]
