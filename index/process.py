"""Worker processes that leave with their parent.

A worker whose parent was killed outright (kill -9, the OOM killer) would otherwise wait for
work forever, holding the store's files open: bulk-ingest workers and the bot's answer workers
both watch their parent and leave once it is gone.
"""

from __future__ import annotations

import os
import threading
import time


def _exit_when_orphaned(parent: int, every: float) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


def leave_with_parent(parent: int, every: float = 1.0) -> None:
    """Call in the worker: it exits within ``every`` seconds of ``parent`` going away."""
    threading.Thread(
        target=_exit_when_orphaned, args=(parent, every), name="leave-with-parent", daemon=True
    ).start()
