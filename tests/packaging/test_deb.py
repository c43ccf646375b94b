"""The Debian package as an operator gets it: built from this checkout by
packaging/build-deb.sh, checked by lintian, its contents listed, unpacked into a throw-away
root where systemd-sysusers and systemd-tmpfiles create the user and the directories, and the
packaged daemon started with the packaged configuration (no modem present) under a fake
systemd notify socket: READY=1 and WATCHDOG=1 arrive and gatewayctl shows the node.

Nothing is installed on this machine: everything lives in one temporary directory, removed at
the end, and the daemon started is stopped by its PID. Exits 77 when the package cannot be
built here (dpkg-buildpackage, debhelper or a build dependency missing), saying why.

    /usr/bin/python3 tests/packaging/test_deb.py [BUILD_DIR]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_TIMEOUT = 480


def run(cmd, timeout=120, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-4000:]}")
    return p


def skip(why: str) -> None:
    print(f"SKIP: {why}")
    sys.exit(77)


def check_can_build() -> None:
    for tool, pkg in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"),
                      ("lintian", "lintian")):
        if not shutil.which(tool):
            skip(f"{tool} is not installed (apt-get install {pkg}; packaging/install-deps.sh)")
    p = run(["dpkg-checkbuilddeps", "packaging/debian/control"], check=False, cwd=TOP)
    if p.returncode != 0:
        skip(f"build dependencies missing: {p.stdout.strip()}")


def build(out: str) -> str:
    env = dict(os.environ, DEB_BUILD_OPTIONS=f"nocheck parallel={os.cpu_count() or 2}")
    run([os.path.join(TOP, "packaging", "build-deb.sh"), out], timeout=BUILD_TIMEOUT, env=env)
    debs = [f for f in os.listdir(out) if re.fullmatch(r"gatewayd_[^_]+_[^_]+\.deb", f)]
    assert len(debs) == 1, f"expected one gatewayd_*.deb in {out}, found {os.listdir(out)}"
    return os.path.join(out, debs[0])


def check_lintian(deb: str) -> None:
    p = run(["lintian", "--tag-display-limit", "0", deb], timeout=300, check=False)
    tags = [line for line in p.stdout.splitlines() if re.match(r"[EWIPX]: ", line)]
    print("lintian:", "; ".join(tags) or "no tags")
    errors = [line for line in p.stdout.splitlines() if line.startswith("E:")]
    assert not errors and p.returncode == 0, f"lintian reports errors:\n{p.stdout}"


def check_contents(deb: str, tmp: str) -> set[str]:
    listing = run(["dpkg-deb", "-c", deb]).stdout
    files = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    for path in ("/usr/sbin/gatewayd", "/usr/bin/gatewayctl",
                 "/lib/systemd/system/gatewayd.service", "/usr/lib/sysusers.d/gatewayd.conf",
                 "/usr/lib/tmpfiles.d/gatewayd.conf", "/etc/gatewayd/gatewayd.conf",
                 "/etc/corosync/uidgid.d/gatewayd", "/usr/share/man/man8/gatewayd.8.gz",
                 "/usr/share/man/man8/gatewayctl.8.gz", "/usr/share/man/man5/gatewayd.conf.5.gz",
                 "/usr/share/doc/gatewayd/corosync.conf.example", "/usr/share/doc/gatewayd/copyright"):
        assert path in files, f"{path} missing from the package:\n{listing}"
    control = os.path.join(tmp, "control")
    run(["dpkg-deb", "-e", deb, control])
    conffiles = open(os.path.join(control, "conffiles")).read().split()
    assert "/etc/gatewayd/gatewayd.conf" in conffiles, conffiles
    assert "/etc/corosync/uidgid.d/gatewayd" in conffiles, conffiles
    fields = run(["dpkg-deb", "-f", deb, "Depends", "Suggests"]).stdout
    for dep in ("libcpg4", "libgammu8", "libzmq5", "libsystemd0", "systemd-sysusers"):
        assert dep in fields, f"Depends lacks {dep}:\n{fields}"
    assert re.search(r"^Suggests: .*corosync", fields, re.M), fields
    print(f"contents: {len(files)} paths, conffiles {conffiles}")
    return files


def check_meson_install_agrees(files: set[str], tmp: str) -> None:
    """meson's own install plan, for a /usr build, names the same files as the package."""
    builddir = os.path.join(tmp, "meson")
    run(["meson", "setup", "--prefix=/usr", builddir, TOP], timeout=120)
    plan = json.loads(run(["meson", "introspect", "--installed", builddir]).stdout)
    for dest in plan.values():
        path = dest + ".gz" if "/share/man/" in dest else dest
        assert path in files, f"meson installs {dest}, the package lacks it"
    print(f"meson install plan: {len(plan)} files, all in the package")


def unpack(deb: str, tmp: str) -> str:
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "etc"))
    # A system's own users and groups first (dialout among them), as on a real machine.
    for f in ("passwd", "group", "shadow", "gshadow"):
        if os.path.exists(f"/etc/{f}"):
            shutil.copy2(f"/etc/{f}", os.path.join(root, "etc", f))
    run(["dpkg-deb", "-x", deb, root])
    return root


def check_user_and_dirs(root: str) -> None:
    run(["systemd-sysusers", f"--root={root}", f"{root}/usr/lib/sysusers.d/gatewayd.conf"])
    passwd = {line.split(":")[0]: line.rstrip("\n").split(":")
              for line in open(f"{root}/etc/passwd")}
    groups = {line.split(":")[0]: line.rstrip("\n").split(":")
              for line in open(f"{root}/etc/group")}
    assert "gatewayd" in passwd, "systemd-sysusers did not create the user gatewayd"
    user = passwd["gatewayd"]
    assert int(user[2]) < 1000, f"gatewayd is not a system user: {user}"
    assert user[5] == "/var/lib/gatewayd" and user[6].endswith("nologin"), user
    assert groups["gatewayd"][2] == user[3], "the user's primary group is not gatewayd"
    assert "gatewayd" in groups["dialout"][3].split(","), f"not in dialout: {groups['dialout']}"

    run(["systemd-tmpfiles", f"--root={root}", "--create",
         f"{root}/usr/lib/tmpfiles.d/gatewayd.conf"])
    for d in ("/var/lib/gatewayd", "/run/gatewayd"):
        st = os.stat(root + d)
        assert oct(st.st_mode & 0o7777) == "0o750", f"{d} mode {oct(st.st_mode)}"
        assert (st.st_uid, st.st_gid) == (int(user[2]), int(user[3])), f"{d} owner"
    print(f"user gatewayd uid {user[2]}, in dialout; /var/lib/gatewayd and /run/gatewayd 0750")


def check_unit(root: str) -> None:
    unit = open(f"{root}/lib/systemd/system/gatewayd.service").read()
    for line in ("Type=notify", "ExecStart=/usr/sbin/gatewayd -c /etc/gatewayd/gatewayd.conf",
                 "WatchdogSec=30s", "User=gatewayd", "SupplementaryGroups=dialout",
                 "StateDirectory=gatewayd", "DevicePolicy=closed",
                 "DeviceAllow=char-ttyUSB rw", "DeviceAllow=char-ttyACM rw"):
        assert re.search(f"^{re.escape(line)}$", unit, re.M), f"unit lacks {line}"
    assert not re.search(r"^(PrivateNetwork|PrivateDevices)=yes", unit, re.M), \
        "PrivateNetwork/PrivateDevices would cut off corosync's IPC or the modems"
    # verify wants the ExecStart= binary where the unit says: point it at the unpacked one.
    os.makedirs(f"{root}/verify")
    with open(f"{root}/verify/gatewayd.service", "w") as f:
        f.write(unit.replace("ExecStart=/usr/sbin/", f"ExecStart={root}/usr/sbin/"))
    p = run(["systemd-analyze", "verify", "--man=no", f"{root}/verify/gatewayd.service"])
    assert not p.stdout.strip(), f"systemd-analyze verify complains:\n{p.stdout}"
    p = run(["systemd-analyze", "security", "--offline=true", "--no-pager",
             f"{root}/lib/systemd/system/gatewayd.service"], check=False)
    m = re.search(r"Overall exposure level for gatewayd\.service: ([0-9.]+)", p.stdout)
    assert m, f"no exposure level:\n{p.stdout}"
    print(f"systemd-analyze security --offline=true: exposure {m.group(1)}")
    assert float(m.group(1)) <= 2.0, f"exposure {m.group(1)} above 2.0:\n{p.stdout}"


def check_daemon(root: str, tmp: str) -> None:
    gatewayd, gatewayctl = f"{root}/usr/sbin/gatewayd", f"{root}/usr/bin/gatewayctl"
    out = run([gatewayd, "--version"]).stdout.strip()
    assert re.fullmatch(r"gatewayd \d+\.\d+\.\d+", out), out
    conf = f"{root}/etc/gatewayd/gatewayd.conf"
    out = run([gatewayd, "--check", "-c", conf]).stdout
    assert "OK (1 modem(s))" in out, out

    # The packaged configuration as shipped, with the store, the ports and the control socket
    # (its directory is the unit's RuntimeDirectory) moved aside.
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    text = open(conf).read()
    text = text.replace("state_dir = /var/lib/gatewayd", f"state_dir = {tmp}/state")
    text = text.replace("tcp://127.0.0.1:5570", f"tcp://127.0.0.1:{ports[0]}")
    text = text.replace("tcp://127.0.0.1:5571", f"tcp://127.0.0.1:{ports[1]}")
    assert "ipc:///run/gatewayd/control.sock" in text, "the shipped control socket moved"
    text = text.replace("ipc:///run/gatewayd/control.sock", f"ipc://{tmp}/control.sock")
    os.makedirs(f"{tmp}/state")
    conf = f"{tmp}/gatewayd.conf"
    open(conf, "w").write(text)

    notify_path = f"{tmp}/notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
    log = open(f"{tmp}/gatewayd.log", "w")
    proc = subprocess.Popen([gatewayd, "-c", conf], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    env["WATCHDOG_PID"] = str(proc.pid)
    try:
        seen = ""
        deadline = time.monotonic() + 30
        notify.settimeout(1)
        while not ("READY=1" in seen and "WATCHDOG=1" in seen):
            assert proc.poll() is None, f"gatewayd exited {proc.returncode}:\n" + \
                open(f"{tmp}/gatewayd.log").read()
            assert time.monotonic() < deadline, f"no READY=1 and WATCHDOG=1, got: {seen!r}"
            try:
                seen += notify.recv(4096).decode() + "\n"
            except socket.timeout:
                pass
        p = run([gatewayctl, "-e", f"tcp://127.0.0.1:{ports[0]}", "status", "--json"])
        status = json.loads(p.stdout)
        assert status["cluster"]["enabled"] is False, status["cluster"]
        assert [m["name"] for m in status["modems"]] == ["gsm0"], status["modems"]
        print(f"packaged daemon, packaged config: READY=1, WATCHDOG=1, modem gsm0 "
              f"{status['modems'][0]['state']}")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        notify.close()
        log.close()
    assert proc.returncode == 0, f"gatewayd exited {proc.returncode} on SIGTERM"


def main() -> None:
    check_can_build()
    tmp = tempfile.mkdtemp(prefix="gatewayd-test-deb.")
    try:
        started = time.monotonic()
        deb = build(os.path.join(tmp, "out"))
        print(f"built {os.path.basename(deb)} in {time.monotonic() - started:.0f} s")
        check_lintian(deb)
        files = check_contents(deb, tmp)
        check_meson_install_agrees(files, tmp)
        root = unpack(deb, tmp)
        check_user_and_dirs(root)
        check_unit(root)
        check_daemon(root, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("OK")


if __name__ == "__main__":
    main()
