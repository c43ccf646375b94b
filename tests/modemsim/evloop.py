"""A minimal single-threaded event loop: selectors for fds, a heap for timers.

The simulator must answer in well under a millisecond and must never spin,
so everything (pty masters, the control socket, signals, delayed replies,
URC floods, call progress) is driven from one select() whose timeout is the
next timer's deadline.  Signals reach the loop through signal.set_wakeup_fd,
so SIGTERM interrupts a select() that would otherwise sleep until a timer.
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import signal
import socket
import time
from typing import Callable


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    # Longest single sleep; only a safety net, timers and fds wake us earlier.
    MAX_SLEEP = 60.0

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._handlers: dict[int, list] = {}  # fd -> [reader, writer]
        self.running = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.add_reader(self._wake_r.fileno(), self._drain_wakeup)
        self._on_signal: Callable[[int], None] | None = None
        self._pending_signals: list[int] = []

    # ---- fds -----------------------------------------------------------
    def _update(self, fd: int) -> None:
        reader, writer = self._handlers[fd]
        events = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        registered = fd in self._sel.get_map()
        if not events:
            if registered:
                self._sel.unregister(fd)
            del self._handlers[fd]
        elif registered:
            self._sel.modify(fd, events)
        else:
            self._sel.register(fd, events)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self._handlers.setdefault(fd, [None, None])[0] = callback
        self._update(fd)

    def set_writer(self, fd: int, callback: Callable[[], None] | None) -> None:
        if fd not in self._handlers and callback is None:
            return
        self._handlers.setdefault(fd, [None, None])[1] = callback
        self._update(fd)

    def remove(self, fd: int) -> None:
        if fd in self._handlers:
            self._handlers[fd] = [None, None]
            self._update(fd)

    # ---- timers --------------------------------------------------------
    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        t = Timer(time.monotonic() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (t.when, next(self._seq), t))
        return t

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, t = heapq.heappop(self._timers)
            if not t.cancelled:
                t.cancelled = True
                t.callback()

    def _timeout(self) -> float:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return self.MAX_SLEEP
        return min(self.MAX_SLEEP, max(0.0, self._timers[0][0] - time.monotonic()))

    # ---- signals -------------------------------------------------------
    def handle_signals(self, signums, callback: Callable[[int], None]) -> None:
        self._on_signal = callback
        signal.set_wakeup_fd(self._wake_w.fileno())
        for s in signums:
            signal.signal(s, self._signal_handler)

    def _signal_handler(self, signum, _frame) -> None:
        self._pending_signals.append(signum)

    def _drain_wakeup(self) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except BlockingIOError:
            pass
        pending, self._pending_signals = self._pending_signals, []
        for s in pending:
            if self._on_signal:
                self._on_signal(s)

    # ---- running -------------------------------------------------------
    def stop(self) -> None:
        self.running = False

    def run(self) -> None:
        self.running = True
        while self.running:
            for key, events in self._sel.select(self._timeout()):
                handlers = self._handlers.get(key.fd)
                if handlers and events & selectors.EVENT_READ and handlers[0]:
                    handlers[0]()
                handlers = self._handlers.get(key.fd)  # the reader may have removed it
                if handlers and events & selectors.EVENT_WRITE and handlers[1]:
                    handlers[1]()
            self._run_timers()

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)
