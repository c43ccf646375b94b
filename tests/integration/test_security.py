"""Securing the sockets: CURVE keys checked by ZAP, a rate per submitter, the control socket and
the ops the submit socket serves.

Keys are made by `gatewayctl keygen`; the test clients are pyzmq sockets (CURVE needs libsodium
in libzmq: `zmq.has("curve")`) and gatewayctl itself. A refused CURVE client gets no answer at
all, so "refused" is asserted as no reply within a few seconds plus the daemon's log line naming
the client's address: a slow daemon can only make such a test pass late, never fail.
"""

import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYCTL, GATEWAYD, Client, Gateway, Skip, main, wait_until, zmq  # noqa: E402
import zmq.auth  # noqa: E402

TO = ["+32470000001"]


def need_curve():
    if not zmq.has("curve"):
        raise Skip("this libzmq has no CURVE (libsodium)")


def keygen(h, name, *extra):
    base = os.path.join(h.dir, "keys", name)
    os.makedirs(os.path.dirname(base), exist_ok=True)
    p = subprocess.run([GATEWAYCTL, "keygen", *extra, base], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return base


def allow(h, clients_dir, base):
    os.makedirs(clients_dir, exist_ok=True)
    dest = os.path.join(clients_dir, os.path.basename(base) + ".key")
    shutil.copy(base, dest)
    return dest


class CurveClient(Client):
    """A REQ client with CURVE keys; like Client, a new socket per request."""

    def __init__(self, ctx, endpoint, server_base, client_base):
        super().__init__(ctx, endpoint)
        self.server_public, _ = zmq.auth.load_certificate(server_base)
        self.public, self.secret = zmq.auth.load_certificate(client_base + "_secret")

    def request(self, obj, timeout: float = 10.0, raw=None) -> dict:
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.connect(self.endpoint)
        try:
            sock.send(json.dumps(obj).encode())
            if not sock.poll(int(timeout * 1000)):
                raise AssertionError(f"no reply within {timeout} s to {obj!r}")
            return json.loads(sock.recv())
        finally:
            sock.close()


def refused(client, seconds=3.0) -> bool:
    try:
        client.request({"op": "status"}, timeout=seconds)
    except AssertionError:
        return True
    return False


def log_has(gw, text):
    with open(gw.log_path, errors="replace") as f:
        return text in f.read()


def control_endpoint(h):
    return "ipc://" + os.path.join(h.dir, "control")


def start_with_control(h, extra, modems=("gsm0",)):
    """A gateway whose harness client talks to the control socket (the submit socket may need
    keys or serve only some ops)."""
    ctl = control_endpoint(h)
    gw = h.gateway(modems=modems, extra=extra + f"\n[control]\nbind = {ctl}\n", start=False)
    gw.client = Client(h.ctx, ctl)
    gw.start(wait_modems=len(modems))
    return gw


def curve_setup(h):
    need_curve()
    server = keygen(h, "server")
    good = keygen(h, "good")
    bad = keygen(h, "bad")
    clients = os.path.join(h.dir, "clients")
    good_file = allow(h, clients, good)
    extra = (f"[submit]\ncurve_secret_key_file = {server}_secret\n"
             f"curve_clients_dir = {clients}\n\n"
             f"[events]\ncurve_secret_key_file = {server}_secret\n"
             f"curve_clients_dir = {clients}\n")
    gw = start_with_control(h, extra)
    return gw, server, good, bad, good_file


def test_curve_listed_key_in_unknown_key_out_and_sighup(h):
    gw, server, good, bad, good_file = curve_setup(h)
    g = CurveClient(h.ctx, gw.endpoint, server, good)
    b = CurveClient(h.ctx, gw.endpoint, server, bad)

    r = g.request({"to": TO, "text": "curve works"})
    assert r["ok"] and r["status"] == "queued", r
    assert refused(b), "a client with an unknown key got an answer"
    assert refused(Client(h.ctx, gw.endpoint)), "a plain client got an answer"
    wait_until(lambda: log_has(gw, "Refused a submit client from 127.0.0.1"), 10,
               "the refusal in the log, with the address")

    # Off the list, then SIGHUP: from the next connection on, that key is refused too.
    os.unlink(good_file)
    os.kill(gw.proc.pid, signal.SIGHUP)
    wait_until(lambda: log_has(gw, "0 client key(s) allowed"), 10, "the reload")
    assert refused(g), "a removed key still got an answer after SIGHUP"
    # Back on the list: in again, without a restart.
    allow(h, os.path.dirname(good_file), good)
    os.kill(gw.proc.pid, signal.SIGHUP)
    wait_until(lambda: g.request({"op": "status"}, timeout=2)["ok"], 20, "the key let in again")
    assert gw.proc.poll() is None


def test_curve_refusals_do_not_flood_the_log(h):
    gw, server, good, bad, _ = curve_setup(h)
    b = CurveClient(h.ctx, gw.endpoint, server, bad)
    for _ in range(20):
        refused(b, seconds=0.2)
    n = sum(1 for line in open(gw.log_path, errors="replace") if "Refused a submit" in line)
    assert 1 <= n <= 5 * 3, f"{n} refusal lines"  # 5 per 10 s window, a run of at most 30 s


def test_curve_subscribers(h):
    gw, server, good, bad, _ = curve_setup(h)
    subs = {}
    for name, base in (("good", good), ("bad", bad)):
        sub = h.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.curve_serverkey, _ = zmq.auth.load_certificate(server)
        sub.curve_publickey, sub.curve_secretkey = zmq.auth.load_certificate(base + "_secret")
        sub.connect(gw.events_endpoint)
        h.sockets.append(sub)
        subs[name] = sub

    # Keep submitting until the listed subscriber hears one (its subscription needs a moment
    # to reach the publisher); the unlisted one must have heard nothing by then.
    got = []

    def heard():
        r = gw.request({"to": TO, "text": f"event {len(got)}"})
        got.append(r["id"])
        return subs["good"].poll(500)

    wait_until(heard, 30, "an event on the listed subscriber", interval=0)
    topic, body = subs["good"].recv_multipart()
    assert topic in (b"queued", b"sent"), topic
    assert json.loads(body)["id"] in got
    assert not subs["bad"].poll(2000), "an unlisted subscriber received an event"
    wait_until(lambda: log_has(gw, "Refused a events client from 127.0.0.1"), 10,
               "the subscriber's refusal in the log")


def test_gatewayctl_keygen_and_curve_end_to_end(h):
    gw, server, good, bad, _ = curve_setup(h)

    mode = stat.S_IMODE(os.stat(good + "_secret").st_mode)
    assert mode == 0o600, oct(mode)
    p = subprocess.run([GATEWAYCTL, "keygen", good], capture_output=True, text=True)
    assert p.returncode == 2 and "--force" in p.stderr, (p.returncode, p.stderr)
    assert zmq.auth.load_certificate(good + "_secret")[1], "keygen without --force changed it"

    def ctl(*args, key=good):
        return subprocess.run([GATEWAYCTL, "-e", gw.endpoint, "-t", "3", "--server-key", server,
                               "--key", key + "_secret", *args], capture_output=True, text=True,
                              timeout=30)

    p = ctl("send", TO[0], "-m", "from gatewayctl over CURVE")
    assert p.returncode == 0 and "queued" in p.stdout, (p.returncode, p.stdout, p.stderr)
    p = ctl("status", key=bad)
    assert p.returncode == 2 and "no answer" in p.stderr, (p.returncode, p.stderr)

    # --force replaces the pair: the old public key in the directory no longer matches.
    old = zmq.auth.load_certificate(good)[0]
    keygen(h, "good", "--force")
    assert zmq.auth.load_certificate(good)[0] != old
    assert stat.S_IMODE(os.stat(good + "_secret").st_mode) == 0o600
    p = ctl("status")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)


def test_keygen_never_writes_through_a_symbolic_link(h):
    keys = os.path.join(h.dir, "keys")
    os.makedirs(keys)
    elsewhere = os.path.join(h.dir, "elsewhere")
    os.makedirs(elsewhere)
    # A dangling link where the public or the secret file would go (someone else's directory
    # listing, /tmp...), with and without --force: refused, and nothing is created through it.
    for name, linked, extra in (("a", "a", ()), ("b", "b_secret", ()),
                                ("c", "c", ("--force",)), ("d", "d_secret", ("--force",))):
        target = os.path.join(elsewhere, name)
        os.symlink(target, os.path.join(keys, linked))
        p = subprocess.run([GATEWAYCTL, "keygen", *extra, os.path.join(keys, name)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "symbolic link" in p.stderr, (name, p.returncode, p.stderr)
        assert not os.path.lexists(target), f"{target} was written through the link"
        assert os.path.islink(os.path.join(keys, linked)), "the link was replaced"
        other = os.path.join(keys, name if linked != name else name + "_secret")
        assert not os.path.lexists(other), f"{other} was written"
    # A link to an existing file is refused too, and the file is left alone.
    victim = os.path.join(elsewhere, "victim")
    with open(victim, "w") as f:
        f.write("keep me\n")
    os.symlink(victim, os.path.join(keys, "e_secret"))
    p = subprocess.run([GATEWAYCTL, "keygen", "--force", os.path.join(keys, "e")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "symbolic link" in p.stderr, p.stderr
    assert open(victim).read() == "keep me\n"
    # Nothing is left behind in the directory; a plain name still works.
    assert sorted(os.listdir(keys)) == ["a", "b_secret", "c", "d_secret", "e_secret"], \
        os.listdir(keys)
    keygen(h, "f")
    assert stat.S_IMODE(os.stat(os.path.join(keys, "f_secret")).st_mode) == 0o600


def test_curve_config_errors(h):
    need_curve()
    server = keygen(h, "server")
    # zcert_load() prefers NAME_secret beside NAME; a public certificate alone has no secret.
    public_only = os.path.join(h.dir, "public-only")
    shutil.copy(server, public_only)
    conf = os.path.join(h.dir, "bad.conf")
    cases = [
        (f"curve_secret_key_file = {h.dir}/nope_secret\ncurve_clients_dir = {h.dir}\n",
         "nope_secret' cannot be read"),
        (f"curve_secret_key_file = {server}_secret\ncurve_clients_dir = {h.dir}/nodir\n",
         "nodir' cannot be read"),
        (f"curve_secret_key_file = {public_only}\ncurve_clients_dir = {h.dir}\n",
         "holds no secret key"),
        (f"curve_secret_key_file = {server}_secret\n", "needs both"),
        ("rate = fast\n", "bad value 'fast' for rate"),
        ("ops = send, launch\n", "unknown op 'launch'"),
    ]
    for body, expect in cases:
        with open(conf, "w") as f:
            f.write(f"[node]\nstate_dir = {h.dir}/s\n\n[submit]\n{body}")
        p = subprocess.run([GATEWAYD, "--check", "-c", conf], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode != 0, body
        assert f"{conf}:" in p.stderr and expect in p.stderr, (expect, p.stderr)


def test_rate_limit_per_submitter(h):
    gw = start_with_control(h, "[submit]\nrate = 1/s\nburst = 5\n")
    # One request after the other, each on a new connection: the submitter is the address,
    # not the connection, and the replies come in the order of the requests.
    n = 40
    submit = Client(h.ctx, gw.endpoint)
    t0 = time.monotonic()
    replies = [submit.request({"to": TO, "text": f"burst {i}", "key": f"burst-{i}"})
               for i in range(n)]
    elapsed = time.monotonic() - t0

    queued = [r for r in replies if r.get("ok")]
    limited = [r for r in replies if r.get("error") == "rate_limited"]
    assert len(queued) + len(limited) == n, replies
    assert all(r["status"] == "queued" for r in replies[:5]), replies[:5]
    # The burst, plus what the bucket refilled (1/s) while the requests were being served.
    assert 5 <= len(queued) <= 5 + int(elapsed) + 1, (len(queued), elapsed)
    if elapsed < n - 10:
        assert limited, "nothing was rate limited"
    detail = limited[0]["detail"]
    assert "per second" in detail and "127.0.0.1" in detail, detail
    # Nothing of the refused ones was stored: the store counts the accepted ones only.
    counts = gw.status()["queue"]
    assert sum(counts.values()) == len(queued), (counts, len(queued))

    # Another submitter (another address) is not affected.
    other = Client(h.ctx, f"tcp://127.0.0.2:0;127.0.0.1:{gw.endpoint.rsplit(':', 1)[1]}")
    r = other.request({"to": TO, "text": "from elsewhere"})
    assert r.get("status") == "queued", r
    # The control socket is never limited.
    r = gw.request({"to": TO, "text": "from the control socket"})
    assert r.get("status") == "queued", r
    # After a pause the first submitter is accepted again.
    texts = iter(range(1000))
    wait_until(lambda: Client(h.ctx, gw.endpoint).request(
        {"to": TO, "text": f"later {next(texts)}"}).get("status") == "queued", 30,
        "the first submitter accepted again", interval=0.5)


def test_ops_restricted_on_submit_all_on_control(h):
    gw = start_with_control(h, "[submit]\nops = send\n")
    submit = Client(h.ctx, gw.endpoint)

    r = submit.request({"to": TO, "text": "send is served"})
    assert r["ok"] and r["status"] == "queued", r
    alert = r["id"]
    for req in ({"op": "status"}, {"op": "queue"}, {"op": "ack", "id": alert},
                {"op": "get", "id": alert}):
        r = submit.request(req)
        assert r == {"ok": False, "error": "unknown_op", "detail": r["detail"]}, r
        assert "not served on this socket" in r["detail"], r

    for req in ({"op": "status"}, {"op": "queue"}, {"op": "get", "id": alert},
                {"op": "ack", "id": alert, "by": "test"}, {"op": "inbox"}, {"op": "oncall"},
                {"to": TO, "text": "send on control"}):
        r = gw.request(req)
        assert r["ok"], (req, r)

    path = control_endpoint(h)[len("ipc://"):]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660, oct(os.stat(path).st_mode)

    # gatewayctl -c prefers the control socket; through the submit socket it is refused.
    p = subprocess.run([GATEWAYCTL, "-c", gw.config_path, "-t", "10", "status"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "gsm0" in p.stdout, (p.returncode, p.stdout, p.stderr)
    p = subprocess.run([GATEWAYCTL, "-e", gw.endpoint, "-t", "10", "status"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "unknown_op" in p.stderr, (p.returncode, p.stderr)


def rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_seconds(pid) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def zmtp_frame(data: bytes, more: bool) -> bytes:
    flags = 1 if more else 0
    if len(data) > 255:
        return bytes([flags | 2]) + struct.pack(">Q", len(data)) + data
    return bytes([flags, len(data)]) + data


def zmtp_dealer(port: int) -> socket.socket:
    """A DEALER spoken by hand (ZMTP 3.0, NULL), so that a test sends exactly the frames it
    means to, at the pace of the kernel, and sees the daemon close the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
              + b"\x00" * 32)
    got = b""
    while len(got) < 64 + 2:  # the daemon's greeting and its READY command's header
        chunk = s.recv(64 + 2 - len(got))
        assert chunk, "the daemon closed the connection during the greeting"
        got += chunk
    body = b""
    while len(body) < got[65]:
        body += s.recv(got[65] - len(body))
    assert body.startswith(b"\x05READY"), body
    ready = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    s.sendall(bytes([0x04, len(ready)]) + ready)
    return s


# The daemon refuses a frame larger than the largest valid request (26,263 bytes with the
# default max_parts = 10, see request_max_size()) as soon as its size arrives, and closes the
# connection: it then holds nothing of that message beyond one 8 KiB receive batch. 8 MiB leaves
# room for the allocator and SQLite while staying below the smaller of the two floods (11.7 MiB),
# which libzmq would hold whole if it took the frames.
RSS_BOUND_KIB = 8 * 1024


def test_multipart_flood_does_not_grow_memory(h):
    gw = h.gateway()
    pid = gw.proc.pid
    port = int(gw.endpoint.rsplit(":", 1)[1])
    failures = []
    for frames, size in ((200, 60 * 1024), (2000, 32 * 1024)):
        base = peak = rss_kib(pid)
        s = zmtp_dealer(port)
        closed = False
        payload = zmtp_frame(b"x" * size, True)
        try:
            s.sendall(zmtp_frame(b"", True))  # the delimiter
            for i in range(frames):  # every frame says "more": the message never ends
                s.sendall(payload)
                if i % 20 == 0:
                    peak = max(peak, rss_kib(pid))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:  # let the daemon take in what the kernel still holds
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and peak - base <= RSS_BOUND_KIB:
                peak = max(peak, rss_kib(pid))
                time.sleep(0.1)
        peak = max(peak, rss_kib(pid))
        print(f"  {frames} frames of {size} bytes: RSS {base} -> {peak} KiB", flush=True)
        if peak - base > RSS_BOUND_KIB:
            failures.append(f"{frames} frames of {size} bytes: RSS grew by "
                            f"{(peak - base) // 1024} MiB")
        if not closed:
            failures.append(f"{frames} frames of {size} bytes: the daemon kept the connection")
        s.close()
        r = gw.status()
        assert r["ok"], r
    assert not failures, failures
    assert gw.proc.poll() is None


def still_open(sock: socket.socket) -> bool:
    """Whether the daemon has not ended this connection (we never send on it; what libzmq sends,
    its greeting, is read and dropped)."""
    sock.setblocking(False)
    try:
        while sock.recv(4096):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_idle_connections_are_capped(h):
    # The soft limit systemd gives services (1024), a hard limit above: the daemon raises it.
    h.wrapper = ["prlimit", "--nofile=1024:4096", "--"]
    gw = h.gateway()
    pid = gw.proc.pid
    port = int(gw.endpoint.rsplit(":", 1)[1])
    conns = []
    try:
        for _ in range(1100):  # idle: connected, never a byte of ZMTP
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        # Not pegged: the surplus is ended as it arrives, accept() never fails.
        t0, c0 = time.monotonic(), cpu_seconds(pid)
        time.sleep(2)
        load = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        print(f"  1100 idle connections: {load:.0%} of a core, {fds} descriptors", flush=True)
        assert load < 0.5, f"the daemon used {load:.0%} of a core with idle connections"
        # Within the budget: the cap (256) and the reserve, far below the 1,100.
        assert fds < 256 + 128 + 64 + 8 * 2, f"{fds} descriptors open"
        # A normal client is answered: the oldest silent connection makes room for it. (Seen
        # on the connections themselves: the log line may fall under its rate limit.)
        open_before = sum(1 for c in conns if still_open(c))
        t0 = time.monotonic()
        r = gw.client.request({"op": "status"}, timeout=30)
        print(f"  a normal client answered after {time.monotonic() - t0:.2f} s", flush=True)
        assert r["ok"] and r["modems"][0]["state"] in ("ok", "degraded"), r
        open_after = wait_until(lambda: (lambda n: n if n < open_before else None)(
            sum(1 for c in conns if still_open(c))), 5, "a silent connection dropped")
        print(f"  open before the client: {open_before}, after: {open_after}", flush=True)
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: log_has(gw, "the cap is 256 ([submit] max_clients)"), 10,
               "the refusals in the log")
    with open(gw.log_path, errors="replace") as f:
        lines = [x for x in f if "Refused a submit connection" in x]
    assert len(lines) <= 20, f"{len(lines)} refusal lines: not rate-limited"
    assert log_has(gw, "File descriptors: limit 4096 (soft limit was 1024)")
    assert gw.status()["ok"]


def test_remote_bind_needs_curve(h):
    port = h.port_pair()
    conf = os.path.join(h.dir, "remote.conf")
    cases = [
        (f"[submit]\nbind = tcp://0.0.0.0:{port}\n", 5, "[submit] bind = tcp://0.0.0.0"),
        (f"[events]\nbind = tcp://*:{port + 1}\n", 5, "[events] bind = tcp://*"),
        (f"[control]\nbind = tcp://192.0.2.1:{port + 2}\n", 5, "[control] bind"),
    ]
    for body, line, expect in cases:
        with open(conf, "w") as f:
            f.write(f"[node]\nstate_dir = {h.dir}/s\n\n{body}")
        for args in (["--check"], []):
            p = subprocess.run([GATEWAYD, *args, "-c", conf], capture_output=True, text=True,
                               timeout=30)
            assert p.returncode == 1, (args, p.returncode, p.stderr)
            assert f"{conf}:{line}: {expect}" in p.stderr, (args, p.stderr)
            assert "listens beyond loopback without CURVE" in p.stderr, p.stderr
            assert "allow_insecure_remote = true" in p.stderr, p.stderr
    # Loopback in any spelling is fine.
    for bind in ("tcp://127.0.0.1:1", "tcp://[::1]:1", "tcp://localhost:1", "ipc:///tmp/x"):
        with open(conf, "w") as f:
            f.write(f"[node]\nstate_dir = {h.dir}/s\n\n[submit]\nbind = {bind}\n")
        p = subprocess.run([GATEWAYD, "--check", "-c", conf], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, (bind, p.stderr)
    # With the switch it starts, serves, and says what it risks at every start.
    gw = h.gateway(start=False, extra="[submit]\nallow_insecure_remote = true\n")
    with open(gw.config_path) as f:
        text = f.read()
    with open(gw.config_path, "w") as f:
        f.write(text.replace("bind = tcp://127.0.0.1:", "bind = tcp://0.0.0.0:", 1))
    gw.start(wait_modems=1)
    assert log_has(gw, "listens beyond loopback without CURVE (allow_insecure_remote = true)")
    assert gw.status()["ok"]
    gw.stop()
    gw.start(wait_modems=1)
    with open(gw.log_path, errors="replace") as f:
        assert f.read().count("allow_insecure_remote = true") == 2
EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging",
                       "gatewayd.conf.example")


def test_shipped_config_keeps_every_op_but_send_and_status_off_tcp(h):
    """The example configuration as the package installs it, with this test's paths and ports:
    any local user reaches the TCP port, so it serves sends and status only; every other op is
    on the control socket (mode 0660), which gatewayctl finds in the file."""
    h.start_sim(["gsm0"])
    port = h.port_pair()
    state = os.path.join(h.dir, "state")
    ctl = os.path.join(h.dir, "control.sock")
    with open(EXAMPLE) as f:
        text = f.read()
    for old, new in (("state_dir = /var/lib/gatewayd", f"state_dir = {state}"),
                     ("bind = tcp://127.0.0.1:5570", f"bind = tcp://127.0.0.1:{port}"),
                     ("bind = tcp://127.0.0.1:5571", f"bind = tcp://127.0.0.1:{port + 1}"),
                     ("bind = ipc:///run/gatewayd/control.sock", f"bind = ipc://{ctl}"),
                     ("device = /dev/ttyUSB0\nconnection = at115200",
                      f"device = {h.sim.device('gsm0')}\nconnection = at")):
        assert old in text, f"the example configuration has no line '{old}'"
        text = text.replace(old, new)
    gw = Gateway(h, "a", text, state, port)
    gw.client = Client(h.ctx, f"ipc://{ctl}")
    gw.start(wait_modems=1)
    submit = Client(h.ctx, gw.endpoint)

    r = submit.request({"to": TO, "text": "from a monitoring script"})
    assert r["ok"] and r["status"] == "queued", r
    alert = r["id"]
    assert submit.request({"op": "status"})["ok"]
    for req in ({"op": "ack", "id": alert, "by": "anyone"}, {"op": "get", "id": alert},
                {"op": "queue"}, {"op": "inbox"}, {"op": "oncall"},
                {"op": "override", "role": "primary", "clear": True}):
        r = submit.request(req)
        assert r.get("error") == "unknown_op", (req, r)
    assert stat.S_IMODE(os.stat(ctl).st_mode) == 0o660, oct(os.stat(ctl).st_mode)
    # gatewayctl with the file (what an operator in the gatewayd group runs): the control
    # socket, every op.
    for args in (["status"], ["show", alert], ["queue"], ["ack", alert, "--by", "ops"]):
        p = subprocess.run([GATEWAYCTL, "-c", gw.config_path, "-t", "10", *args],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    assert gw.get(alert)["ack"]["by"] == "ops"


if __name__ == "__main__":
    main(globals())
