"""The one bounded wait of the test helpers (gwtest, gwcluster, corosync_lab use it)."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05,
               error: type[Exception] = AssertionError):
    """Polls predicate until it returns a true value, which is returned; after timeout seconds
    raises error("timed out after T s waiting for WHAT"). A predicate may raise to abort at once
    (a daemon died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
