"""Processes the benchmark starts, and what /proc says about them.

Every daemon is started through Daemon, registered, and stopped by PID: SIGTERM, a bounded
wait, then SIGKILL to that PID; children it forked (smsd forks one process per modem) are
listed before the stop and any left afterwards are killed by their own PID, after checking
that the PID still belongs to a process of the same name. Nothing is ever killed by name.

CPU is utime+stime of the process and its live descendants (/proc/PID/stat, all threads
included), so "% of one core" = CPU seconds / wall seconds * 100.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

_registry: list["Daemon"] = []


def _stat(pid: int) -> tuple[str, str, int, float] | None:
    """(comm, state, ppid, cpu seconds) of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = data[data.index("(") + 1:data.rindex(")")]
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] = state, rest[1] = ppid, rest[11] = utime, rest[12] = stime (clock ticks)
    return comm, rest[0], int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                children.setdefault(st[2], []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pids) -> float:
    total = 0.0
    for p in pids:
        st = _stat(p)
        if st:
            total += st[3]
    return total


def vm_status(pid: int) -> dict[str, int]:
    """The Vm* lines of /proc/PID/status, in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Vm"):
                key, _, value = line.partition(":")
                out[key] = int(value.split()[0])
    return out


class Daemon:
    """One process under test, with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], log_path: str, cwd: str | None = None):
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.cwd)
        _registry.append(self)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; last lines of "
                               f"{self.log_path}:\n{self.log_tail()}")

    def tree(self) -> list[int]:
        return [self.pid] + descendants(self.pid)

    def cpu(self) -> float:
        """CPU seconds used so far by the daemon and its live children."""
        return cpu_seconds(self.tree())

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kids = [(k, (_stat(k) or ("",))[0]) for k in descendants(self.pid)]
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout)
            deadline = time.monotonic() + timeout
            for k, comm in kids:
                while time.monotonic() < deadline:
                    st = _stat(k)
                    if st is None or st[0] != comm or st[1] == "Z":
                        break
                    time.sleep(0.05)
                st = _stat(k)
                if st is not None and st[0] == comm and st[1] != "Z":
                    os.kill(k, signal.SIGKILL)
        if self in _registry:
            _registry.remove(self)


def stop_all() -> None:
    for d in list(reversed(_registry)):
        try:
            d.stop()
        except Exception as e:  # keep stopping the others
            print(f"warning: stopping {d.name}: {e}")
