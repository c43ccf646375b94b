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
import stat
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
