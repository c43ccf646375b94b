"""The peers bench.py measures gatewayd against: their configurations and how alerts reach them.

smstools3 3.1.21 (`smsd`) and gammu-smsd 1.42 (files backend), both as Debian 12 ships them,
each run in the foreground with a configuration file of its own under a temporary directory:
spool directories, pid file, log and info file all live there, nothing under /etc or /var is
read or written. Settings follow ../../../shared/lab/modem.md:

* smstools3 "aggressive": delaytime 1, delaytime_mainprocess 1, trust_outgoing yes (the
  fastest setting that still idles at ~0 % CPU; delaytime 0 gains nothing and burns a core);
  "default": delaytime 10, delaytime_mainprocess unset (= delaytime).
* gammu-smsd "fast": LoopSleep 1, CommTimeout 1 (~1 s polling at ~0 % CPU; LoopSleep 0
  busy-loops a core); "default": LoopSleep 1, CommTimeout 30. For bursts (SMS per second)
  "burst": LoopSleep 0, CommTimeout 0, gammu-smsd's fastest (modem.md's throughput setting;
  with LoopSleep 1 about one send in three waits a further 1 s), at ~95 % of a core idle.

Injection is what a monitoring system would do with these daemons: a file is written in a
staging directory on the same file system and rename()d into the spool directory the daemon
polls (smstools3 `outgoing/`, gammu-smsd `outbox/`); the caller takes its t0 just before the
rename. Writing in place is unsafe (modem.md: gammu-smsd read half-written files).

gammu-smsd outbox names are `OUT<prio><yyyymmdd>_<hhmmss>_<serial>_<number>_<note>.txt`; we
use prio C, serial 00 and a unique note (`OUTC20261123_105300_00_+32470000001_b17.txt`).
"""

from __future__ import annotations

import os
import time

from sysproc import Daemon

SMSD = "/usr/sbin/smsd"
GAMMU_SMSD = "/usr/bin/gammu-smsd"

SMSTOOLS_SETTINGS = {
    "aggressive": ("delaytime 1 / delaytime_mainprocess 1 / trust_outgoing",
                   {"delaytime": "1", "delaytime_mainprocess": "1", "trust_outgoing": "yes"},
                   1.0),
    "default": ("default (delaytime 10)", {}, 10.0),
}

GAMMU_SETTINGS = {
    "fast": ("LoopSleep 1 / CommTimeout 1", {"LoopSleep": "1", "CommTimeout": "1"}, 1.0),
    "burst": ("LoopSleep 0 / CommTimeout 0", {"LoopSleep": "0", "CommTimeout": "0"}, 1.0),
    "default": ("default (LoopSleep 1 / CommTimeout 30)", {}, 30.0),
}


class Peer:
    """One peer daemon on one simulated modem, with its own directory."""

    kind = "?"

    def __init__(self, workdir: str, modem: str, device: str, settings: str):
        self.dir = os.path.join(workdir, f"{self.kind}-{settings}-{modem}")
        self.modem = modem
        self.device = device
        self.settings = settings
        self.staging = os.path.join(self.dir, "staging")
        self.serial = 0
        self.daemon: Daemon | None = None
        os.makedirs(self.staging, exist_ok=True)

    @property
    def label(self) -> str:
        return f"{self.kind}, {self.describe}"

    def start(self) -> Daemon:
        self.daemon = Daemon(self.label, self.command(), os.path.join(self.dir, "daemon.log"),
                             cwd=self.dir).start()
        return self.daemon

    def stop(self) -> None:
        if self.daemon:
            self.daemon.stop()

    # A message is staged (written and closed) first, then released by one rename().
    def stage(self, number: str, text: str) -> tuple[str, str]:
        raise NotImplementedError

    @staticmethod
    def release(staged: tuple[str, str]) -> float:
        t0 = time.monotonic()
        os.rename(*staged)
        return t0

    def inject(self, number: str, text: str) -> float:
        return self.release(self.stage(number, text))


class Smstools(Peer):
    kind = "smstools3"

    def __init__(self, workdir, modem, device, settings="aggressive"):
        super().__init__(workdir, modem, device, settings)
        self.describe, self.globals, self.poll = SMSTOOLS_SETTINGS[settings]
        self.spool = {d: os.path.join(self.dir, d)
                      for d in ("outgoing", "checked", "failed", "sent", "incoming")}
        for d in self.spool.values():
            os.makedirs(d, exist_ok=True)
        self.config = os.path.join(self.dir, "smsd.conf")
        lines = ["devices = GSM1"]
        lines += [f"{k} = {v}" for k, v in self.spool.items()]
        lines += [f"logfile = {self.dir}/smsd.log",
                  f"infofile = {self.dir}/smsd.working",
                  f"pidfile = {self.dir}/smsd.pid",
                  "receive_before_send = no",
                  "autosplit = 3"]
        lines += [f"{k} = {v}" for k, v in self.globals.items()]
        # the modem process only sends (incoming = no), as a paging gateway would
        lines += ["", "[GSM1]", f"device = {device}", "incoming = no", "baudrate = 115200", ""]
        with open(self.config, "w") as f:
            f.write("\n".join(lines))

    def command(self) -> list[str]:
        # -t: stay in the foreground ("terminal mode"); the log then goes to stdout
        return [SMSD, "-t", f"-c{self.config}"]

    def stage(self, number, text):
        self.serial += 1
        name = f"bench{self.serial:05d}"
        tmp = os.path.join(self.staging, name)
        with open(tmp, "w") as f:
            f.write(f"To: {number.lstrip('+')}\n\n{text}\n")
        return tmp, os.path.join(self.spool["outgoing"], name)


class GammuSmsd(Peer):
    kind = "gammu-smsd"

    def __init__(self, workdir, modem, device, settings="fast"):
        super().__init__(workdir, modem, device, settings)
        self.describe, self.smsd_keys, self.poll = GAMMU_SETTINGS[settings]
        self.paths = {k: os.path.join(self.dir, k) for k in ("inbox", "outbox", "sent", "error")}
        for d in self.paths.values():
            os.makedirs(d, exist_ok=True)
        self.config = os.path.join(self.dir, "gammu-smsdrc")
        lines = ["[gammu]", f"device = {device}", "connection = at", "logformat = nothing", "",
                 "[smsd]", "service = files", f"logfile = {self.dir}/smsd.log", "debuglevel = 0",
                 f"inboxpath = {self.paths['inbox']}/", f"outboxpath = {self.paths['outbox']}/",
                 f"sentsmspath = {self.paths['sent']}/", f"errorsmspath = {self.paths['error']}/"]
        lines += [f"{k} = {v}" for k, v in self.smsd_keys.items()]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        # no -d: gammu-smsd stays in the foreground unless told to daemonize
        return [GAMMU_SMSD, "-c", self.config, "-p", os.path.join(self.dir, "gammu-smsd.pid")]

    def stage(self, number, text):
        self.serial += 1
        stamp = time.strftime("%Y%m%d_%H%M%S")
        name = f"OUTC{stamp}_00_{number}_b{self.serial}.txt"
        tmp = os.path.join(self.staging, name)
        with open(tmp, "w") as f:
            f.write(text)
        return tmp, os.path.join(self.paths["outbox"], name)
