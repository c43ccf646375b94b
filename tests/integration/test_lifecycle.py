"""An alert's whole life after it is accepted: resolved over ZeroMQ or with gatewayctl (by id or
by its dedupe key), which stops its escalation, cancels what was not sent and tells those it
reached that it is over; end to end through the daemon and the simulated modem."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYCTL, main, recv_events, wait_until  # noqa: E402
from oncall_fixture import ALICE, BOB, CAROL, oncall_config  # noqa: E402

STEP = 5  # step_timeout, seconds
OTHER = "+32470555111"


def texts_to(h, number):
    return [m["text"] for m in h.sim.sms() if m["to"] == number]


def wait_texts(h, number, count, timeout=30):
    return wait_until(lambda: (lambda t: t if len(t) >= count else None)(texts_to(h, number)),
                      timeout, f"{count} SMS to {number}")


def ctl(gw, *args):
    return subprocess.run([GATEWAYCTL, "-e", gw.endpoint, *args], capture_output=True,
                          text=True, timeout=20)


def story(gw, alert):
    out = ctl(gw, "show", alert)
    assert out.returncode == 0, out.stderr
    return [line.split(None, 3)[1:] for line in out.stdout.splitlines()
            if re.match(r"^\s*\d{4}-\d\d-\d\d", line)]


def test_resolve_stops_the_escalation_and_tells_who_was_paged(h):
    gw = h.gateway(extra=oncall_config(STEP))
    sub = gw.subscribe(("resolved", "escalated"))
    r = gw.send(["role:primary"], "db01 is DOWN", priority="critical", key="db01/ping")
    assert r["status"] == "queued", r
    alert = r["id"]
    wait_texts(h, ALICE, 1)
    out = ctl(gw, "resolve", "--by", "nagios", alert)
    assert out.returncode == 0 and out.stdout == f"{alert} resolved\n", (out.stdout, out.stderr)
    a = gw.get(alert)
    assert a["state"] == "resolved", a
    assert a["resolved"]["by"] == "nagios" and a["resolved"]["via"] == "api", a["resolved"]
    assert not a["escalation"]["active"], a["escalation"]
    # The primary hears that it is over, once; nobody further up is ever paged.
    assert wait_texts(h, ALICE, 2)[1] == "RESOLVED: db01 is DOWN"
    time.sleep(2 * STEP + 1)
    assert texts_to(h, BOB) == [] and texts_to(h, CAROL) == [], h.sim.sms()
    assert len(texts_to(h, ALICE)) == 2, texts_to(h, ALICE)
    events = recv_events(sub, 3, until=lambda ev: any(t == "resolved" for t, _ in ev))
    res = [e for t, e in events if t == "resolved"]
    assert [(e["id"], e["by"], e["via"]) for e in res] == [(alert, "nagios", "api")], events
    assert not [e for t, e in events if t == "escalated"], events
    # Once only: a second resolve has nothing open to act on.
    again = ctl(gw, "resolve", alert)
    assert again.returncode == 1 and "unknown_id" in again.stderr, (again.stdout, again.stderr)
    # Gone from the queue; its story tells the resolve and the all-clear.
    q = gw.request({"op": "queue"})
    assert alert not in [x["id"] for x in q["alerts"]], q
    kinds = [s[0] for s in story(gw, alert)]
    assert "resolved" in kinds and "all-clear" in kinds, kinds
    assert kinds.index("resolved") <= kinds.index("all-clear"), kinds
    assert gw.request({"op": "status"})["queue"]["resolved"] == 1


def test_resolve_by_key_cancels_what_was_not_sent(h):
    gw = h.gateway()
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    r = gw.send([OTHER], "web01 HTTP CRITICAL", key="web01/HTTP")
    alert = r["id"]
    wait_until(lambda: any(at["result"] != "sent" for d in gw.get(alert)["deliveries"]
                           for at in d["attempts"]), 30, "a failed attempt")
    rep = gw.request({"op": "resolve", "key": "web01/HTTP", "by": "zabbix"})
    assert rep == {"ok": True, "id": alert, "status": "resolved"}, rep
    a = gw.get(alert)
    assert [d["state"] for d in a["deliveries"]] == ["cancelled"], a["deliveries"]
    # The modem works again: the cancelled SMS never leaves, and nobody was reached, so no
    # all-clear either.
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": 0, "cms": 500})
    marker = gw.send([OTHER], "marker after the resolve")
    wait_texts(h, OTHER, 1)
    time.sleep(2)
    assert texts_to(h, OTHER) == ["marker after the resolve"], texts_to(h, OTHER)
    assert gw.get(marker["id"])["state"] == "sent"
    assert gw.get(alert)["deliveries"][0]["state"] == "cancelled"
    # Nothing open any more under that key; a key never seen is as unknown.
    for key in ("web01/HTTP", "never-seen"):
        rep = gw.request({"op": "resolve", "key": key})
        assert rep["ok"] is False and rep["error"] == "unknown_id", rep


def test_a_problem_back_after_its_recovery_pages_again(h):
    gw = h.gateway()
    first = gw.send([OTHER], "disk full on db02", key="db02/disk")["id"]
    wait_texts(h, OTHER, 1)
    assert gw.request({"op": "resolve", "key": "db02/disk"})["id"] == first
    # Well inside the dedupe window the same key fires again: not a duplicate of an alert
    # that is over, but a new one, paged again; a repeat of it is its duplicate.
    r = gw.send([OTHER], "disk full on db02 again", key="db02/disk")
    assert r["status"] == "queued" and r["id"] != first, r
    second = r["id"]
    dup = gw.send([OTHER], "disk full on db02 again", key="db02/disk")
    assert dup["status"] == "duplicate" and dup["id"] == second, dup
    assert "disk full on db02 again" in wait_texts(h, OTHER, 3)
    rep = gw.request({"op": "resolve", "key": "db02/disk"})
    assert rep["ok"] and rep["id"] == second, rep
    assert gw.get(first)["resolved"] is not None and gw.get(second)["state"] == "resolved"


def test_no_all_clear_when_notify_resolved_is_off(h):
    extra = oncall_config(STEP).replace("[escalation]\n", "[escalation]\nnotify_resolved = no\n")
    gw = h.gateway(extra=extra)
    alert = gw.send(["role:primary"], "db03 is DOWN", priority="critical")["id"]
    wait_texts(h, ALICE, 1)
    assert gw.request({"op": "resolve", "id": alert})["status"] == "resolved"
    time.sleep(3)
    assert len(texts_to(h, ALICE)) == 1, texts_to(h, ALICE)
    assert gw.get(alert)["state"] == "resolved"


def test_bad_resolve_requests_are_named(h):
    gw = h.gateway()
    cases = [
        ({"op": "resolve"}, "bad_request"),
        ({"op": "resolve", "id": "0" * 32, "key": "k"}, "bad_request"),
        ({"op": "resolve", "key": ""}, "bad_request"),
        ({"op": "resolve", "key": 7}, "bad_request"),
        ({"op": "resolve", "id": "nope"}, "unknown_id"),
        ({"op": "resolve", "id": "0" * 32}, "unknown_id"),
        ({"op": "resolve", "key": "k", "extra": 1}, "bad_request"),
    ]
    for req, code in cases:
        rep = gw.request(req)
        assert rep["ok"] is False and rep["error"] == code, (req, rep)
    usage = ctl(gw, "resolve")
    assert usage.returncode == 2 and "missing ID" in usage.stderr, usage.stderr
    both = ctl(gw, "resolve", "0" * 32, "--key", "k")
    assert both.returncode == 2 and "not both" in both.stderr, both.stderr


def test_silences_hold_back_what_they_match_and_end(h):
    gw = h.gateway(extra=oncall_config(STEP))
    out = ctl(gw, "silence", "add", "--key-prefix", "db01/", "--for", "2h", "--reason",
              "disk swap", "--by", "alice")
    assert out.returncode == 0, out.stderr
    sid = out.stdout.split()[0]
    assert re.fullmatch(r"[0-9a-f]{32}", sid) and "keys starting with 'db01/'" in out.stdout, \
        out.stdout
    listed = gw.request({"op": "silences"})["silences"]
    assert [(s["silence"], s["match"], s["by"], s["reason"]) for s in listed] == \
        [(sid, {"key_prefix": "db01/"}, "alice", "disk swap")], listed
    assert sid in ctl(gw, "silence", "list").stdout
    # Matching alerts, critical ones too, are accepted, recorded and not sent.
    quiet = gw.send([OTHER], "db01 ping lost", key="db01/ping")
    assert quiet.get("status") == "silenced" and quiet.get("silence") == sid, quiet
    crit = gw.send(["role:primary"], "db01 is DOWN", key="db01/host", priority="critical")
    assert crit["status"] == "silenced", crit
    loud = gw.send([OTHER], "web01 HTTP 500", key="web01/http")
    assert loud["status"] == "queued", loud
    # A silence that leaves critical alerts out, on the source.
    src = gw.request({"op": "silence", "match": {"source": "backup"}, "duration": 3600,
                      "except_critical": True})
    assert src["ok"], src
    assert gw.send([OTHER], "backup late", source="backup")["status"] == "silenced"
    assert gw.send([OTHER], "backup failed", source="backup",
                   priority="critical")["status"] == "queued"
    wait_texts(h, OTHER, 2)
    time.sleep(2)
    got = sorted(t.split("\n")[0] for t in texts_to(h, OTHER))
    assert got == ["backup failed", "web01 HTTP 500"], texts_to(h, OTHER)
    assert texts_to(h, ALICE) == [], texts_to(h, ALICE)
    a = gw.get(quiet["id"])
    assert a["state"] == "silenced" and a["silence"] == sid, a
    assert [d["state"] for d in a["deliveries"]] == ["cancelled"], a["deliveries"]
    assert [e["what"] for e in a["history"]] == ["silenced"], a["history"]
    assert gw.get(crit["id"])["escalation"]["active"] is False
    assert gw.request({"op": "status"})["queue"]["silenced"] == 3
    # Ended early: the same key pages again at once (not a duplicate of the silenced one).
    out = ctl(gw, "silence", "remove", sid)
    assert out.returncode == 0 and out.stdout == f"{sid} removed\n", (out.stdout, out.stderr)
    again = gw.send([OTHER], "db01 ping lost", key="db01/ping")
    assert again["status"] == "queued" and again["id"] != quiet["id"], again
    assert "db01 ping lost" in wait_texts(h, OTHER, 3)
    gone = ctl(gw, "silence", "remove", sid)
    assert gone.returncode == 1 and "unknown_id" in gone.stderr, gone.stderr
    assert [s["silence"] for s in gw.request({"op": "silences"})["silences"]] == \
        [src["silence"]]


def test_bad_silences_are_named(h):
    gw = h.gateway()
    cases = [
        {"op": "silence", "duration": 3600},
        {"op": "silence", "match": {}, "duration": 3600},
        {"op": "silence", "match": {"key_prefix": "a", "source": "b"}, "duration": 3600},
        {"op": "silence", "match": {"host": "db01"}, "duration": 3600},
        {"op": "silence", "match": {"key_prefix": ""}, "duration": 3600},
        {"op": "silence", "match": {"key_prefix": "db01/"}, "duration": 10},
        {"op": "silence", "match": {"key_prefix": "db01/"}},
        {"op": "silence", "match": {"key_prefix": "db01/"}, "duration": 3600, "x": 1},
        {"op": "silence", "match": {"key_prefix": "db01/"}, "duration": 3600,
         "except_critical": "yes"},
        {"op": "unsilence"},
    ]
    for req in cases:
        rep = gw.request(req)
        assert rep["ok"] is False and rep["error"] == "bad_request", (req, rep)
    rep = gw.request({"op": "unsilence", "silence": "0" * 32})
    assert rep["ok"] is False and rep["error"] == "unknown_id", rep
    usage = ctl(gw, "silence", "add", "--for", "1h")
    assert usage.returncode == 2 and "say what to silence" in usage.stderr, usage.stderr
    usage = ctl(gw, "silence", "add", "--source", "x")
    assert usage.returncode == 2 and "--for" in usage.stderr, usage.stderr


def test_a_heartbeat_that_stops_pages_once_and_the_next_ping_resolves_it(h):
    # The backup job pings every 10 s; 2 s of grace.
    gw = h.gateway(extra="\n[heartbeat backup]\ninterval = 10\ngrace = 2\n"
                   f"to = {OTHER}\n[submit]\nread_rate = 0\n")
    out = ctl(gw, "heartbeat", "backup")
    assert out.returncode == 0 and re.match(r"backup pinged; next ping due by \d{4}-",
                                            out.stdout), (out.stdout, out.stderr)
    hb = gw.status()["heartbeats"]
    assert [(x["name"], x["state"]) for x in hb] == [("backup", "ok")], hb
    out = ctl(gw, "status")
    assert re.search(r"^Heartbeat: backup: ok, last ping \d{4}-", out.stdout, re.M), out.stdout
    pinged = time.monotonic()
    # Nothing while it pings on time.
    for _ in range(2):
        time.sleep(5)
        # Timed before the ping: the daemon counts from when it got it.
        pinged = time.monotonic()
        assert gw.request({"op": "heartbeat", "name": "backup"})["ok"] is True
    assert texts_to(h, OTHER) == []
    # It stops: one alert, once, after interval + grace.
    got = wait_texts(h, OTHER, 1, timeout=30)
    assert time.monotonic() - pinged >= 10, "paged before interval + grace"
    assert got[0].startswith("No heartbeat from backup since "), got
    time.sleep(4)
    assert len(texts_to(h, OTHER)) == 1, texts_to(h, OTHER)
    assert gw.status()["heartbeats"][0]["state"] == "late"
    alert = [a for a in gw.request({"op": "queue"})["alerts"] if a["key"] == "heartbeat/backup"]
    alert_id = alert[0]["id"] if alert else None
    # The job is back: the alert is resolved, and who was paged hears so.
    assert ctl(gw, "heartbeat", "backup").returncode == 0
    clear = wait_texts(h, OTHER, 2)[1]
    assert clear.startswith("RESOLVED: No heartbeat from backup"), clear
    if alert_id:
        assert gw.get(alert_id)["resolved"]["via"] == "heartbeat"
    assert gw.status()["heartbeats"][0]["state"] == "ok"
    # A name nobody configured is named as such.
    r = gw.request({"op": "heartbeat", "name": "nightly"})
    assert r == {"ok": False, "error": "unknown_name",
                 "detail": "no [heartbeat nightly] in the configuration"}, r
    out = ctl(gw, "heartbeat", "nightly")
    assert out.returncode != 0 and "unknown_name" in out.stderr, (out.stdout, out.stderr)


if __name__ == "__main__":
    main(globals())
