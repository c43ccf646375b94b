"""The Debian package under a real systemd, the way an operator uses it: the .deb built from this
checkout is installed with apt in a Debian 12 container booted by systemd-nspawn, the packaged
configuration is edited, "systemctl enable --now gatewayd" starts it, and then:

  - active after 15 s with NRestarts=0 (the unit's sandbox lets the daemon live);
  - "gatewayctl status" answers as root and as a user in the group gatewayd, from /usr/bin;
  - an alert is accepted ("gatewayctl send");
  - "systemctl reload" keeps the PID and applies a changed contact number ("gatewayctl oncall");
    one that changes [submit] bind is refused by name in "gatewayctl status" and the journal;
  - a SIGSTOPped daemon is restarted by the watchdog (WatchdogSec=30s as shipped);
  - "systemd-analyze security gatewayd" reports an exposure of at most 2.0;
  - the Alertmanager receiver's unit, as shipped, answers a v4 webhook with 200;
  - solo: corosync is neither installed nor started;
  - an upgrade (the same package with a higher version) restarts it and keeps it active;
  - remove stops it, purge removes /var/lib/gatewayd.

The container recipe (tests/packaging/README.md): a minimal bookworm tree made once by
debootstrap in CACHE (outside the checkout, kept between runs), an overlayfs copy per run,
systemd-nspawn --boot with a private network, commands through nsenter. Downloads use the host's
network (nsenter without -n), the apt archives and lists are cached in CACHE too. Everything
started here is stopped by PID and unmounted at the end, also on failure.

Exits 77 (skipped) unless run as root with systemd-nspawn, debootstrap, nsenter and the
package build tools present.

    /usr/bin/python3 tests/packaging/test_systemd.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("GATEWAYD_TEST_CACHE", "/var/cache/gatewayd-test")
BASE = os.path.join(CACHE, "bookworm-base")
T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def run(cmd, timeout=120, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-4000:]}")
    return p


def skip(why: str) -> None:
    print(f"SKIP: {why}")
    sys.exit(77)


def check_can_run() -> None:
    if os.geteuid() != 0:
        skip("needs root (systemd-nspawn, overlayfs, nsenter)")
    for tool, pkg in (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"),
                      ("nsenter", "util-linux"), ("dpkg-buildpackage", "dpkg-dev"),
                      ("dh", "debhelper")):
        if not shutil.which(tool):
            skip(f"{tool} is not installed (apt-get install {pkg}; packaging/install-deps.sh)")
    p = run(["dpkg-checkbuilddeps", "packaging/debian/control"], check=False, cwd=TOP)
    if p.returncode != 0:
        skip(f"build dependencies missing: {p.stdout.strip()}")


def mirror() -> str:
    out = run(["apt-cache", "policy"]).stdout
    for m in re.finditer(r"\s(https?://\S+)\s+bookworm/main", out):
        return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_base() -> None:
    if os.path.isdir(BASE):
        return
    os.makedirs(CACHE, exist_ok=True)
    tmp = BASE + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    say(f"debootstrap into {BASE} (once; kept for later runs)")
    run(["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus,procps",
         "bookworm", tmp, mirror()], timeout=900)
    os.rename(tmp, BASE)


def build(out: str) -> str:
    env = dict(os.environ, DEB_BUILD_OPTIONS=f"nocheck parallel={os.cpu_count() or 2}")
    run([os.path.join(TOP, "packaging", "build-deb.sh"), out], timeout=600, env=env)
    debs = [f for f in os.listdir(out) if re.fullmatch(r"gatewayd_[^_]+_[^_]+\.deb", f)]
    assert len(debs) == 1, os.listdir(out)
    return os.path.join(out, debs[0])


def bump_version(deb: str, out: str) -> str:
    """The same package with a higher version: what an upgrade installs."""
    tree = os.path.join(out, "upgrade-tree")
    run(["dpkg-deb", "-R", deb, tree])
    control = os.path.join(tree, "DEBIAN", "control")
    text = open(control).read()
    version = re.search(r"^Version: (\S+)$", text, re.M).group(1)
    open(control, "w").write(text.replace(f"Version: {version}", f"Version: {version}+up1"))
    new = os.path.join(out, "upgrade", os.path.basename(deb).replace(version, version + "+up1"))
    os.makedirs(os.path.dirname(new))
    run(["dpkg-deb", "--root-owner-group", "-b", tree, new])
    return new


class Container:
    def __init__(self, tmp: str):
        self.tmp = tmp
        self.root = os.path.join(tmp, "root")
        self.mounts: list[str] = []
        self.nspawn: subprocess.Popen | None = None
        self.leader = 0

    def mount(self) -> None:
        for d in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.tmp, d))
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={BASE},upperdir={self.tmp}/upper,workdir={self.tmp}/work", self.root])
        self.mounts.append(self.root)
        # apt's downloads and lists survive the run: later runs need no network for them.
        for sub, inside in (("apt-archives", "var/cache/apt/archives"),
                            ("apt-lists", "var/lib/apt/lists")):
            src = os.path.join(CACHE, sub)
            os.makedirs(os.path.join(src, "partial"), exist_ok=True)
            dst = os.path.join(self.root, inside)
            os.makedirs(dst, exist_ok=True)
            run(["mount", "--bind", src, dst])
            self.mounts.append(dst)

    def boot(self) -> None:
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self.log = open(os.path.join(self.tmp, "console.log"), "w")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--keep-unit", "--register=no",
             "--capability=CAP_BPF", "--system-call-filter=bpf", "--private-network",
             "--resolv-conf=copy-host", "--console=pipe", f"--machine=gwtest{os.getpid()}",
             "-D", self.root], stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.leader and time.monotonic() < deadline:
            assert self.nspawn.poll() is None, "systemd-nspawn exited:\n" + self.console()
            self.leader = self.find_leader()
            time.sleep(0.2)
        assert self.leader, "no container PID 1 after 30 s"
        p = self.sh("systemctl is-system-running --wait", timeout=90, check=False)
        say(f"booted: {p.stdout.strip()}")

    def find_leader(self) -> int:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                status = open(f"/proc/{pid}/status").read()
            except OSError:
                continue
            ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
            nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            if ppid == self.nspawn.pid and nspid and nspid.group(1).split()[-1] == "1":
                return int(pid)
        return 0

    def console(self) -> str:
        try:
            return open(os.path.join(self.tmp, "console.log")).read()[-3000:]
        except OSError:
            return ""

    def sh(self, script: str, timeout=60, check=True, net=False) -> subprocess.CompletedProcess:
        """Runs script with /bin/sh inside; net=True: with the host's network."""
        ns = ["-m", "-u", "-i", "-p"] if net else ["-a"]
        cmd = ["nsenter", "-t", str(self.leader), *ns, "--", "/usr/bin/env", "-i",
               "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8", "/bin/sh", "-c", script]
        return run(cmd, timeout=timeout, check=check)

    def prop(self, unit: str, name: str) -> str:
        return self.sh(f"systemctl show -P {name} {unit}").stdout.strip()

    def teardown(self) -> None:
        if self.nspawn and self.nspawn.poll() is None:
            if self.leader:
                try:
                    os.kill(self.leader, signal.SIGRTMIN + 4)  # a clean poweroff
                except ProcessLookupError:
                    pass
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in (self.leader, self.nspawn.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.nspawn.wait(timeout=10)
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)


def wait_for(what: str, cond, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


CONFIG_ADDITIONS = """
[contact alice]
number = +32470000001

[role primary]
contacts = alice
"""

WEBHOOK = {
    "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
    "status": "firing", "receiver": "sms", "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
    "commonAnnotations": {"summary": "disk full on db1"}, "externalURL": "http://am:9093",
    "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db1"},
                "annotations": {"summary": "disk full on db1"},
                "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom/graph", "fingerprint": "0123456789abcdef"}],
}

# What Alertmanager does: POST the JSON; prints the HTTP status (also of an error answer).
POST = """import sys, urllib.error, urllib.request
req = urllib.request.Request("http://127.0.0.1:9095/", data=open(sys.argv[1], "rb").read(),
                             headers={"Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


def scenario(c: Container, deb: str, upgrade: str) -> None:
    os.makedirs(os.path.join(c.root, "root", "debs"), exist_ok=True)
    shutil.copy(deb, os.path.join(c.root, "root", "debs"))
    shutil.copytree(os.path.dirname(upgrade), os.path.join(c.root, "root", "upgrade"))
    name = os.path.basename(deb)

    say("apt: download the package's dependencies (host network)")
    c.sh("apt-get -q update && apt-get -q -y --download-only install "
         f"./root/debs/{name} python3", timeout=300, net=True)
    say("apt install ./gatewayd_*.deb")
    p = c.sh(f"cd /root/debs && apt-get -q -y install ./{name} python3", timeout=300)
    assert "not found" not in p.stdout and "parser error" not in p.stdout, p.stdout[-3000:]
    assert c.prop("gatewayd", "UnitFileState") == "disabled", "enabled before configuration"
    assert c.prop("gatewayd", "ActiveState") == "inactive", "started before configuration"
    assert c.sh("command -v gatewayctl").stdout.strip() == "/usr/bin/gatewayctl"

    # Solo: corosync is only suggested.
    p = c.sh("dpkg-query -W -f='${Status}' corosync", check=False)
    assert "install ok installed" not in p.stdout, "corosync was installed on a solo box"

    say("edit /etc/gatewayd/gatewayd.conf, systemctl enable --now gatewayd")
    with open(os.path.join(c.root, "etc/gatewayd/gatewayd.conf"), "a") as f:
        f.write(CONFIG_ADDITIONS)
    c.sh("gatewayd --check -c /etc/gatewayd/gatewayd.conf")
    c.sh("systemctl enable --now gatewayd", timeout=60)
    time.sleep(15)
    state = c.prop("gatewayd", "ActiveState")
    restarts = c.prop("gatewayd", "NRestarts")
    if state != "active" or restarts != "0":
        log = c.sh("journalctl -u gatewayd --no-pager | tail -40", check=False).stdout
        raise AssertionError(f"after 15 s: {state}, NRestarts={restarts}\n{log}")
    pid = c.prop("gatewayd", "MainPID")
    say(f"active after 15 s, NRestarts=0, PID {pid}")
    assert c.sh("systemctl is-active corosync", check=False).stdout.strip() != "active"

    # The journal: one CODE_FILE per entry (a field given twice is a list in -o json).
    entries = [json.loads(line) for line in c.sh(
        "journalctl _COMM=gatewayd -o json --no-pager").stdout.splitlines() if line.strip()]
    assert entries, "no journal entries from gatewayd"
    twice = [e for e in entries if isinstance(e.get("CODE_FILE"), list)]
    assert not twice, f"CODE_FILE twice: {twice[0]}"

    st = c.sh("gatewayctl status").stdout
    say("gatewayctl status (root): " + st.splitlines()[0] if st else "empty")
    c.sh("useradd -m -G gatewayd operator1")
    c.sh("runuser -u operator1 -- gatewayctl status")
    say("gatewayctl status as a member of the group gatewayd: answered")
    p = c.sh("gatewayctl send role:primary -m 'test from the package test'")
    say("alert accepted: " + p.stdout.strip()[:80])

    def oncall_numbers() -> str:
        return c.sh("gatewayctl oncall --json").stdout

    assert "+32470000001" in oncall_numbers(), oncall_numbers()
    c.sh("sed -i 's/^number = +32470000001/number = +32470000002/' /etc/gatewayd/gatewayd.conf")
    c.sh("systemctl reload gatewayd")
    assert c.prop("gatewayd", "MainPID") == pid, "reload changed the PID"
    wait_for("the reloaded contact", lambda: "+32470000002" in oncall_numbers(), 10)
    say("systemctl reload: same PID, the changed contact applied")
    # What cannot change live is refused by name, and the running configuration stays.
    c.sh("cp /etc/gatewayd/gatewayd.conf /root/gatewayd.conf.good && "
         "sed -i 's/^bind = tcp:\\/\\/127.0.0.1:5570$/bind = tcp:\\/\\/127.0.0.1:5580/' "
         "/etc/gatewayd/gatewayd.conf && grep -q 5580 /etc/gatewayd/gatewayd.conf")
    c.sh("systemctl reload gatewayd")
    wait_for("the refusal in gatewayctl status",
             lambda: "reload refused: [submit] bind" in c.sh("gatewayctl -e tcp://127.0.0.1:5570 "
                                                             "status").stdout, 10)
    assert c.prop("gatewayd", "MainPID") == pid
    assert "refused" in c.sh("journalctl -u gatewayd --no-pager | tail -5").stdout
    c.sh("cp /root/gatewayd.conf.good /etc/gatewayd/gatewayd.conf && systemctl reload gatewayd")
    wait_for("the warning to go", lambda: "refused" not in c.sh("gatewayctl status").stdout, 10)
    say("a reload changing [submit] bind: refused by name (status, journal), PID kept")

    score = c.sh("systemd-analyze security gatewayd --no-pager", check=False).stdout
    m = re.search(r"Overall exposure level for gatewayd.service: ([\d.]+)", score)
    assert m, score[-2000:]
    say(f"systemd-analyze security: exposure {m.group(1)}")
    assert float(m.group(1)) <= 2.0, score

    say("Alertmanager receiver: the shipped unit, a v4 webhook")
    c.sh("cp /usr/lib/gatewayd/integrations/alertmanager/gatewayd-alertmanager.service "
         "/etc/systemd/system/ && systemctl daemon-reload && "
         "systemctl enable --now gatewayd-alertmanager")
    with open(os.path.join(c.root, "root", "webhook.json"), "w") as f:
        json.dump(WEBHOOK, f)
    with open(os.path.join(c.root, "root", "post.py"), "w") as f:
        f.write(POST)
    post = "python3 /root/post.py /root/webhook.json"

    def answer() -> str:
        out = c.sh(post, check=False).stdout.strip().splitlines()
        # An HTTP status, or nothing yet while the receiver is not listening.
        return out[-1] if out and re.fullmatch(r"\d{3}", out[-1]) else ""

    code = wait_for("the receiver to answer", answer, 15)
    if code != "200":
        log = c.sh("journalctl -u gatewayd-alertmanager --no-pager | tail -20",
                   check=False).stdout
        raise AssertionError(f"webhook answered {code}\n{log}")
    say("webhook answered 200")

    say("watchdog: SIGSTOP the daemon")
    c.sh(f"kill -STOP {pid}")
    wait_for("the watchdog restart",
             lambda: c.prop("gatewayd", "NRestarts") == "1"
             and c.prop("gatewayd", "ActiveState") == "active", 75, 1)
    pid2 = c.prop("gatewayd", "MainPID")
    assert pid2 != pid
    say(f"restarted by the watchdog: PID {pid2}")

    say("upgrade")
    up = os.path.basename(upgrade)
    c.sh(f"cd /root/upgrade && apt-get -q -y install ./{up}", timeout=180)
    assert c.prop("gatewayd", "ActiveState") == "active", "not active after the upgrade"
    pid3 = c.prop("gatewayd", "MainPID")
    assert pid3 != pid2, "the upgrade did not restart the daemon"
    say(f"upgraded: active, restarted (PID {pid3})")

    c.sh("systemctl disable --now gatewayd-alertmanager")
    say("remove")
    c.sh("apt-get -q -y remove gatewayd", timeout=120)
    assert c.prop("gatewayd", "ActiveState") in ("inactive", ""), "still running after remove"
    assert c.sh(f"kill -0 {pid3}", check=False).returncode != 0, "the daemon outlived remove"
    assert c.sh("test -d /var/lib/gatewayd", check=False).returncode == 0, "remove took state"
    say("purge")
    c.sh("apt-get -q -y purge gatewayd", timeout=120)
    assert c.sh("test -e /var/lib/gatewayd", check=False).returncode != 0, "state left"
    say("removed: stopped; purged: /var/lib/gatewayd gone")


def main() -> None:
    check_can_run()
    tmp = tempfile.mkdtemp(prefix="gatewayd-systemd-")
    c = Container(tmp)
    try:
        ensure_base()
        say("build the package")
        out = os.path.join(tmp, "out")
        deb = build(out)
        upgrade = bump_version(deb, out)
        c.mount()
        c.boot()
        scenario(c, deb, upgrade)
    except BaseException:
        print("console:\n" + c.console())
        raise
    finally:
        c.teardown()
        # Never remove through a mount still there (the bind-mounted caches).
        if not any(line.split()[1].startswith(tmp) for line in open("/proc/self/mounts")):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"left {tmp}: still mounted")
    say("OK")


if __name__ == "__main__":
    main()
