"""The Prometheus text file ([metrics] textfile): what node_exporter's textfile collector reads.

The file is parsed strictly (every sample `name{labels} value`, every family with its TYPE
before its samples, grouped, no sample twice, label values escaped), its figures are compared
with what happened and with `status`, and it is read thousands of times while the daemon
rewrites it: a reader never sees a partial file.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYD, main, wait_until  # noqa: E402

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_labels(s: str, line: str) -> tuple[dict, str]:
    """Parses `{a="x",b="y"}` at the start of s; returns the labels and the rest."""
    assert s[0] == "{", line
    labels, i = {}, 1
    while s[i] != "}":
        m = LABEL.match(s, i)
        assert m and s[m.end()] == "=" and s[m.end() + 1] == '"', f"bad label in {line!r}"
        name, i, value = m.group(), m.end() + 2, ""
        while s[i] != '"':
            if s[i] == "\\":
                esc = s[i + 1]
                assert esc in '\\"n', f"bad escape \\{esc} in {line!r}"
                value += "\n" if esc == "n" else esc
                i += 2
            else:
                assert s[i] != "\n", line
                value += s[i]
                i += 1
        assert name not in labels, f"label {name} twice in {line!r}"
        labels[name] = value
        i += 1
        if s[i] == ",":
            i += 1
    return labels, s[i + 1:]


def parse(text: str) -> dict:
    """Strict Prometheus text format 0.0.4: returns {(name, frozenset(labels)): value}."""
    assert text.endswith("\n"), "the file does not end with a newline (cut short?)"
    types, helps, samples, done = {}, {}, {}, set()
    current = None
    for line in text[:-1].split("\n"):
        assert line, "empty line"
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], *line[7:].split(" ", 1)
            assert NAME.fullmatch(name), line
            if name != current:
                assert name not in done, f"family {name} not grouped"
                if current:
                    done.add(current)
                current = name
            table = helps if kind == "HELP" else types
            assert name not in table, f"{kind} of {name} twice"
            table[name] = rest
            if kind == "TYPE":
                assert rest in TYPES, line
            continue
        assert not line.startswith("#"), f"unexpected comment {line!r}"
        m = NAME.match(line)
        assert m, f"bad sample {line!r}"
        name, rest = m.group(), line[m.end():]
        labels = {}
        if rest.startswith("{"):
            labels, rest = parse_labels(rest, line)
        assert rest.startswith(" "), f"no value in {line!r}"
        fields = rest[1:].split(" ")
        assert len(fields) == 1, f"timestamps are refused by the textfile collector: {line!r}"
        value = float(fields[0])  # accepts NaN, +Inf, -Inf
        assert name == current and name in types, f"{name} sampled without its TYPE first"
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"sample twice: {line!r}"
        samples[key] = value
    for name in types:
        assert name in helps, f"{name} has no HELP"
        assert name.startswith("gatewayd_"), name
    return samples


def value(samples: dict, name: str, **labels):
    return samples.get((name, frozenset(labels.items())))


def read(path: str) -> dict | None:
    try:
        with open(path) as f:
            return parse(f.read())
    except FileNotFoundError:
        return None


def metrics_config(path: str, interval: str = "1") -> str:
    return f"[metrics]\ntextfile = {path}\ninterval = {interval}\n"


def test_figures_match_what_happened(h):
    path = os.path.join(h.dir, "textfile", "gatewayd.prom")
    os.mkdir(os.path.dirname(path))
    h.start_sim(["gsm0"])
    h.sim.control({"cmd": "set", "modem": "gsm0", "signal": 17})
    gw = h.gateway(extra=metrics_config(path))

    wait_until(lambda: os.path.exists(path), 10, "the metrics file")
    s = read(path)
    assert value(s, "gatewayd_up") == 1, s
    version = subprocess.run([GATEWAYD, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    assert value(s, "gatewayd_build_info", version=version, node="a") == 1, s
    assert value(s, "gatewayd_cluster_enabled") == 0, s
    assert value(s, "gatewayd_cluster_member_up", node="a") == 1, s

    ids = [gw.send([f"+3247000000{i}"], f"metrics {i}")["id"] for i in range(3)]
    h.sim.wait_sms(3, timeout=30)
    for i in ids:
        gw.wait_state(i, "sent")
    assert gw.request({"op": "ack", "id": ids[0], "by": "alice"})["ok"] is True

    def settled():
        s = read(path)
        return s if (value(s, "gatewayd_alerts", state="sent") == 3
                     and value(s, "gatewayd_alerts_acknowledged") == 1) else None
    s = wait_until(settled, 15, "3 sent and 1 acknowledged in the metrics file", interval=0.2)
    for state in ("queued", "sending", "delivered", "failed", "expired"):
        assert value(s, "gatewayd_alerts", state=state) == 0, (state, s)
    assert value(s, "gatewayd_queue_oldest_age_seconds") == 0, s
    modem = [m for m in gw.status()["modems"] if m["name"] == "gsm0"][0]
    assert modem["signal"] == 17, modem
    assert value(s, "gatewayd_modem_signal", node="a", modem="gsm0") == 17, s
    assert value(s, "gatewayd_modem_sent", node="a", modem="gsm0") == 3 == modem["sent"], s
    assert value(s, "gatewayd_modem_failed", node="a", modem="gsm0") == 0, s
    for state in ("ok", "degraded", "failed", "absent"):
        assert value(s, "gatewayd_modem_state", node="a", modem="gsm0",
                     state=state) == (state == "ok"), (state, s)
    assert value(s, "gatewayd_escalations") == 0 and value(s, "gatewayd_voice_calls") == 0, s

    # A send the network refuses: the alert waits, its age grows, the failure is counted.
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    stuck = gw.send(["+32470000009"], "refused")["id"]

    def waiting():
        s = read(path)
        return s if (value(s, "gatewayd_modem_failed", node="a", modem="gsm0") >= 1
                     and value(s, "gatewayd_queue_oldest_age_seconds") >= 1.0
                     and value(s, "gatewayd_alerts", state="queued") == 1) else None
    wait_until(waiting, 20, "a failed attempt and a waiting alert in the metrics file",
               interval=0.2)
    # Waiting: between two tries, or in one (the network refuses it in a few ms).
    assert gw.get(stuck)["state"] in ("queued", "sending"), gw.get(stuck)

    # A clean stop says so, and leaves no temporary file behind.
    gw.stop()
    s = read(path)
    assert value(s, "gatewayd_up") == 0, s
    assert os.listdir(os.path.dirname(path)) == ["gatewayd.prom"], os.listdir(
        os.path.dirname(path))


def test_never_a_partial_file(h):
    path = os.path.join(h.dir, "gatewayd.prom")
    h.gateway(modems=["gsm0", "gsm1"], extra=metrics_config(path))
    wait_until(lambda: os.path.exists(path), 10, "the metrics file")
    inodes, reads = set(), 0
    deadline = time.monotonic() + 60
    # Until the daemon has replaced the file 4 times under the reader (1 s interval).
    while len(inodes) < 5 and time.monotonic() < deadline:
        with open(path) as f:
            inodes.add(os.fstat(f.fileno()).st_ino)
            text = f.read()
        s = parse(text)  # raises on anything cut short or half-written
        assert value(s, "gatewayd_up") == 1, text
        assert value(s, "gatewayd_cluster_member_up", node="a") == 1, text
        reads += 1
    assert len(inodes) >= 5, f"the file was replaced {len(inodes) - 1} times in 60 s"
    assert reads > 100, reads
    leftovers = [n for n in os.listdir(h.dir) if n.startswith(".gatewayd.prom.")]
    assert len(leftovers) <= 1, leftovers  # at most the one being written right now


def test_write_failure_is_logged_once_and_not_fatal(h):
    directory = os.path.join(h.dir, "not-yet")
    path = os.path.join(directory, "gatewayd.prom")
    gw = h.gateway(extra=metrics_config(path))

    def warnings():
        with open(gw.log_path, errors="replace") as f:
            return f.read().count("Cannot write the metrics file")
    wait_until(warnings, 10, "the write failure in the log")
    r = gw.send(["+32470000001"], "still serving")
    assert r["status"] == "queued", r
    h.sim.wait_sms(1, timeout=30)
    # Several more intervals fail: still one line.
    time.sleep(3)
    assert warnings() == 1, gw.log_tail()
    os.mkdir(directory)
    wait_until(lambda: read(path), 10, "the metrics file once its directory exists")
    wait_until(lambda: "metrics file '%s' works again" % path in gw.log_tail(200), 10,
               "the recovery in the log")
    assert gw.proc.poll() is None


def test_bad_settings_stop_start_up(h):
    h.start_sim(["gsm0"])
    for extra, words in (("[metrics]\ntextfile = relative.prom\n", "an absolute path"),
                         ("[metrics]\ninterval = 0\n", "1s to 1h"),
                         ("[metrics]\nport = 9100\n", "unknown key 'port' in [metrics]")):
        gw = h.gateway(extra=extra, start=False)
        p = subprocess.run([GATEWAYD, "--check", "-c", gw.config_path], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode != 0, (extra, p.stdout, p.stderr)
        assert f"{gw.config_path}:" in p.stderr and words in p.stderr, (extra, p.stderr)


if __name__ == "__main__":
    main(globals())
