"""Another process's write lock on a node's SQLite database, as a backup job or an operator's
sqlite3 shell would hold it: the fault behind "a commit that fails on one node only"."""
import sqlite3
import threading
import time


def lock_database(path: str, seconds: float) -> threading.Thread:
    """Holds BEGIN EXCLUSIVE on the database at path for `seconds` from its own connection;
    returns once the lock is held (the thread ends when it is released)."""
    locked = threading.Event()

    def run():
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(seconds)
            db.execute("ROLLBACK")
        finally:
            db.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    if not locked.wait(15):
        raise AssertionError(f"could not lock {path}")
    return t
