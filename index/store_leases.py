"""Process leases (table ``leases``): one row per job only one process may run at a time, such as
sending pushes. A holder renews its lease well before it expires; a holder that dies (even
``kill -9``) stops renewing, and another process takes the lease over once it has expired.
Times are wall-clock (``time.time()``): the processes share a store, not a monotonic clock.
The table comes with migration 3 (``index/schema.py``)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from index.schema import write

PUSHES = "pushes"  # the lease for sending pushes


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: float


class Leases:
    """The ``leases`` table."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def acquire(self, name: str, holder: str, ttl: float, now: float | None = None) -> bool:
        """Take or renew ``name`` for ``ttl`` seconds; False while another holder's lease runs.
        One transaction, taken before the row is read, so two processes never both win."""
        now = time.time() if now is None else now
        with write(self.db):
            row = self.db.execute(
                "SELECT holder, expires_at FROM leases WHERE name=?", (name,)
            ).fetchone()
            if row and row[0] != holder and row[1] > now:
                return False
            self.db.execute(
                "INSERT INTO leases(name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET holder=excluded.holder, "
                "expires_at=excluded.expires_at",
                (name, holder, now + ttl),
            )
        return True

    def release(self, name: str, holder: str) -> None:
        """Give the lease up (a clean stop), so another process need not wait for it to expire."""
        with write(self.db):
            self.db.execute("DELETE FROM leases WHERE name=? AND holder=?", (name, holder))

    def get(self, name: str) -> Lease | None:
        row = self.db.execute(
            "SELECT name, holder, expires_at FROM leases WHERE name=?", (name,)
        ).fetchone()
        return Lease(*row) if row else None
