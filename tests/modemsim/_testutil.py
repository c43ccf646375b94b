"""Helpers shared by the simulator's own test scripts (no pytest here).

Exit codes follow the automake/meson convention: 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)

from modemsim_client import Sim  # noqa: E402,F401

SKIP = 77
GAMMU_TIMEOUT = 60  # seconds, per gammu invocation


class Checker:
    """Counts and prints checks; a failed check does not stop the script."""

    def __init__(self, name: str):
        self.name = name
        self.failed = 0
        self.passed = 0
        self.t0 = time.monotonic()

    def __call__(self, cond, what: str, detail=None) -> bool:
        if cond:
            self.passed += 1
            print(f"  ok   {what}", flush=True)
        else:
            self.failed += 1
            print(f"  FAIL {what}" + (f"\n       {detail}" if detail is not None else ""),
                  flush=True)
        return bool(cond)

    def section(self, title: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {title}", flush=True)

    def result(self) -> int:
        took = time.monotonic() - self.t0
        verdict = "PASS" if not self.failed else "FAIL"
        print(f"{self.name}: {verdict} ({self.passed} ok, {self.failed} failed, {took:.1f} s)")
        return 1 if self.failed else 0


def temp_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


def cleanup(path: str, keep: bool) -> None:
    if keep:
        print(f"  (artifacts kept in {path})")
    else:
        shutil.rmtree(path, ignore_errors=True)


def gammu_binary() -> str | None:
    return shutil.which("gammu") or (os.path.exists("/usr/bin/gammu") and "/usr/bin/gammu") or None


def write_gammurc(path: str, device: str) -> str:
    with open(path, "w") as f:
        f.write(f"[gammu]\ndevice = {device}\nconnection = at\n")
    return path


def run_gammu(rc: str, *args: str, timeout: float = GAMMU_TIMEOUT):
    """(exit code or None on timeout, combined output, seconds)."""
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    t0 = time.monotonic()
    try:
        p = subprocess.run([gammu_binary(), "-c", rc, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout, env=env)
        return p.returncode, p.stdout + p.stderr, time.monotonic() - t0
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + (e.stderr or b"")
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        return None, out, time.monotonic() - t0
