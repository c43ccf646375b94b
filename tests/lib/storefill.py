"""Writes a long history straight into a stopped gatewayd's store, with SQL: what years of
finished alerts would have left there, in seconds instead of years. Used by the history and
cluster benchmarks (tests/bench) and by the cluster test of a long state exchange.

finished(db, ids, final_at, node): one finished alert per id ("sent" at final_at, accepted a
second before), each with its delivery and its send attempt through `node`'s gsm0. The caller
owns the connection and its transaction. The columns are those of the store's schema
(gatewayd/store/store.c); the others keep their defaults."""

from __future__ import annotations

import sqlite3

NUMBER = "+32470000001"


def finished(db: sqlite3.Connection, ids: list[str], final_at: int, node: str) -> None:
    db.executemany(
        "INSERT INTO alerts(id, key, text, priority, source, node, accepted_at, expires_at,"
        " state, final, final_at) VALUES (?, ?, 'old disk full', 0, 'storefill', ?, ?, ?,"
        " 'sent', 1, ?)",
        [(i, i, node, final_at - 10**6, final_at + 86400 * 10**6, final_at) for i in ids])
    db.executemany(
        "INSERT INTO deliveries(alert_id, number, kind, seq, state, priority, accepted_at,"
        " next_try_at, node, modem) VALUES (?, ?, 'to', 0, 'sent', 0, ?, ?, ?, 'gsm0')",
        [(i, NUMBER, final_at - 10**6, final_at, node) for i in ids])
    db.executemany(
        "INSERT INTO attempts(alert_id, number, node, modem, at, result)"
        " VALUES (?, ?, ?, 'gsm0', ?, 'sent')",
        [(i, NUMBER, node, final_at) for i in ids])
