"""Who is on duty: the rotation, overrides set and cleared through the protocol and gatewayctl,
what role:NAME pages, and overrides that outlive a restart or run out by themselves.

The daemon and gatewayctl run with TZ=UTC, so the weekly hand-over (Monday 09:00) is computed
here independently: whole weeks from Monday 2024-01-01 09:00 UTC, when the first contact is on
duty. Asking with "at" after the next hand-over plays the clock forward."""
import datetime
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYCTL, main, recv_events, wait_until  # noqa: E402

UTC = {"TZ": "UTC"}
NUMBERS = {"alice": "+32470100001", "bob": "+32470100002", "carol": "+32470100003"}
CONFIG = ("[contact alice]\nnumber = +32470100001\n\n"
          "[contact bob]\nnumber = +32470100002\n\n"
          "[contact carol]\nnumber = +32470100003\n\n"
          "[role primary]\ncontacts = alice, bob\nrotation = weekly\nhandoff = mon 09:00\n\n"
          "[role secondary]\ncontacts = carol\n\n"
          "[escalation]\nsteps = primary, secondary\nstep_timeout = 5m\n\n")

EPOCH = 1704099600  # Monday 2024-01-01 09:00 UTC: the first turn, alice's
WEEK = 7 * 86400


def rotation(t: float) -> tuple[str, str, int]:
    """(on duty at t, on duty next, the next hand-over) of role primary, by the rota."""
    turn = int((t - EPOCH) // WEEK)
    who = ("alice", "bob")
    return who[turn % 2], who[(turn + 1) % 2], EPOCH + (turn + 1) * WEEK


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")


def local(t: float) -> str:
    """How gatewayctl shows an instant under TZ=UTC."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%a %Y-%m-%d %H:%M UTC")


def ctl(gw, *args):
    p = subprocess.run([GATEWAYCTL, "-c", gw.config_path, "-t", "10", *args],
                       capture_output=True, text=True, timeout=30, env=dict(os.environ, **UTC))
    return p.returncode, p.stdout, p.stderr


def oncall(gw, **fields) -> dict:
    r = gw.request({"op": "oncall", **fields})
    assert r["ok"] is True, r
    return r


def role(reply: dict, name: str) -> dict:
    found = [r for r in reply["roles"] if r["role"] == name]
    assert len(found) == 1, reply
    return found[0]


def table_line(out: str, name: str) -> str:
    lines = [line for line in out.splitlines() if line.split()[:1] == [name]]
    assert len(lines) == 1, out
    return lines[0]


def settled_now() -> float:
    """Now, but not within a minute of a hand-over, so that what is asked and what is
    checked fall in the same turn."""
    now = time.time()
    _, _, handover = rotation(now)
    if handover - now < 60:
        time.sleep(handover - now + 1)
    return time.time()


def sms_to(h, count: int) -> list[str]:
    return [m["to"] for m in h.sim.wait_sms(count, timeout=30)]


def test_rotation_now_and_after_the_next_handover(h):
    gw = h.gateway(extra=CONFIG, env=UTC)
    now = settled_now()
    duty, after, handover = rotation(now)

    r = oncall(gw)
    p = role(r, "primary")
    assert (p["contact"], p["number"], p["source"], p["until"]) == \
        (duty, NUMBERS[duty], "rotation", None), p
    assert p["next"] == {"contact": after, "number": NUMBERS[after],
                         "at": rfc3339(handover)}, p
    assert (p["contacts"], p["rotation"], p["handoff"]) == \
        (["alice", "bob"], "weekly", "mon 09:00"), p
    s = role(r, "secondary")
    assert (s["contact"], s["number"], s["source"], s["next"], s["rotation"], s["handoff"]) == \
        ("carol", NUMBERS["carol"], "rotation", None, "none", None), s
    assert r["escalation"] == {"steps": ["primary", "secondary"], "step_timeout": 300}, r

    # The clock played forward: a minute before and a minute after the next hand-over, asked
    # in Unix seconds and in RFC 3339.
    assert role(oncall(gw, at=handover - 60), "primary")["contact"] == duty
    later = oncall(gw, at=rfc3339(handover + 60))
    assert later["at"] == rfc3339(handover + 60), later
    p = role(later, "primary")
    assert p["contact"] == after and p["number"] == NUMBERS[after], p
    assert p["next"]["contact"] == duty and p["next"]["at"] == rfc3339(handover + WEEK), p

    rc, out, err = ctl(gw, "oncall")
    assert rc == 0, (rc, out, err)
    assert table_line(out, "ROLE").split() == ["ROLE", "ON", "DUTY", "SOURCE", "NEXT",
                                               "HAND-OVER"], out
    line = table_line(out, "primary")
    assert f"{duty} ({NUMBERS[duty]})" in line and "rotation" in line, out
    assert f"{after}, {local(handover)}" in line, out
    assert "carol (+32470100003)" in table_line(out, "secondary"), out
    assert "Escalation: primary -> secondary, 300 s" in out, out

    when = datetime.datetime.fromtimestamp(handover + 60, datetime.timezone.utc)
    rc, out, err = ctl(gw, "oncall", "--at", when.strftime("%Y-%m-%d %H:%M"))
    assert rc == 0, (rc, out, err)
    assert f"On duty at {local(handover + 60)}" in out, out
    assert f"{after} ({NUMBERS[after]})" in table_line(out, "primary"), out

    # role:NAME pages whoever is on duty when the alert is accepted.
    sent = gw.send(["role:primary"], "db01 is DOWN")
    assert sent["status"] == "queued", sent
    assert sms_to(h, 1) == [NUMBERS[duty]]
    gw.wait_state(sent["id"], "sent")


def test_override_pages_the_stand_in_survives_a_restart_until_cleared(h):
    gw = h.gateway(extra=CONFIG, env=UTC)
    sub = gw.subscribe(("oncall_override",))
    now = settled_now()
    duty, _, handover = rotation(now)

    rc, out, err = ctl(gw, "oncall", "override", "primary", "carol", "--until", "2h",
                       "--by", "ops")
    assert rc == 0, (rc, out, err)
    assert out.startswith("primary: carol on duty until "), out
    events = recv_events(sub, 5, until=lambda ev: ev)
    assert len(events) == 1, events
    topic, ev = events[0]
    assert topic == "oncall_override" and (ev["role"], ev["contact"], ev["by"]) == \
        ("primary", "carol", "ops"), events
    until = datetime.datetime.strptime(ev["until"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(until - (now + 7200)) < 30, (ev, now)
    assert local(until) in out, out

    p = role(oncall(gw), "primary")
    assert (p["contact"], p["number"], p["source"], p["until"]) == \
        ("carol", NUMBERS["carol"], "override", ev["until"]), p
    assert p["next"]["at"] == rfc3339(handover), p  # the rota goes on underneath
    rc, out, _ = ctl(gw, "oncall")
    line = table_line(out, "primary")
    assert "carol (+32470100003)" in line and f"override until {local(until)}" in line, out

    a = gw.send(["role:primary"], "covered by carol")
    assert sms_to(h, 1) == [NUMBERS["carol"]]
    assert [d["to"] for d in gw.wait_state(a["id"], "sent")["deliveries"]] == \
        [NUMBERS["carol"]]

    # Replicated state, committed: it outlives the daemon.
    gw.stop()
    gw.start(wait_modems=1)
    p = role(oncall(gw), "primary")
    assert (p["contact"], p["source"], p["until"]) == ("carol", "override", ev["until"]), p

    sub = gw.subscribe(("oncall_override",))
    rc, out, err = ctl(gw, "oncall", "clear", "primary", "--by", "ops")
    assert rc == 0 and out == "primary: override cleared, the rotation applies\n", \
        (rc, out, err)
    events = recv_events(sub, 5, until=lambda ev: ev)
    assert [(t, e["role"], e["contact"], e["until"]) for t, e in events] == \
        [("oncall_override", "primary", None, None)], events
    p = role(oncall(gw), "primary")
    assert (p["contact"], p["source"], p["until"]) == (duty, "rotation", None), p
    gw.send(["role:primary"], "back to the rota")
    assert sms_to(h, 2)[1] == NUMBERS[duty]


def test_refused_overrides_change_nothing(h):
    gw = h.gateway(extra=CONFIG, env=UTC)
    now = settled_now()
    duty, _, _ = rotation(now)

    def refused(fields, code, words):
        r = gw.request({"op": "override", **fields})
        assert r["ok"] is False and r["error"] == code and words in r["detail"], r

    refused({"role": "primary", "contact": "carol", "until": int(now) - 60}, "bad_request",
            "in the past")
    refused({"role": "primary", "contact": "carol", "until": rfc3339(now - 3600)},
            "bad_request", "in the past")
    refused({"role": "primary", "contact": "carol", "until": int(now) + 91 * 86400},
            "bad_request", "90 days")
    refused({"role": "primary", "contact": "dave", "until": int(now) + 60}, "bad_request",
            "'dave'")
    refused({"role": "tertiary", "contact": "carol", "until": int(now) + 60}, "unknown_role",
            "'tertiary'")
    refused({"role": "tertiary", "clear": True}, "unknown_role", "'tertiary'")
    refused({"role": "primary", "contact": "carol"}, "bad_request", "'until'")

    rc, out, err = ctl(gw, "oncall", "override", "primary", "carol", "--until",
                       "2020-01-01 10:00")
    assert rc == 1 and out == "" and err.startswith("gatewayctl: bad_request: "), (rc, out, err)
    rc, out, err = ctl(gw, "oncall", "override", "tertiary", "carol", "--until", "1h")
    assert rc == 1 and "unknown_role" in err, (rc, out, err)
    rc, out, err = ctl(gw, "oncall", "override", "primary", "carol", "--until", "soon")
    assert rc == 2 and "--until" in err, (rc, out, err)

    p = role(oncall(gw), "primary")
    assert (p["contact"], p["source"]) == (duty, "rotation"), p


def test_override_runs_out_by_itself(h):
    gw = h.gateway(extra=CONFIG, env=UTC)
    now = settled_now()
    duty, _, _ = rotation(now)
    until = int(now) + 3
    r = gw.request({"op": "override", "role": "primary", "contact": "carol", "until": until,
                    "by": "ops"})
    assert r == {"ok": True, "role": "primary", "contact": "carol",
                 "until": rfc3339(until)}, r
    assert role(oncall(gw), "primary")["source"] == "override"
    # The end, asked ahead of time, and then lived through.
    assert role(oncall(gw, at=until), "primary")["contact"] == duty
    wait_until(lambda: time.time() > until + 0.2, 10, "the override's end")
    p = role(oncall(gw), "primary")
    assert (p["contact"], p["source"], p["until"]) == (duty, "rotation", None), p
    gw.send(["role:primary"], "after the override")
    assert sms_to(h, 1) == [NUMBERS[duty]]


if __name__ == "__main__":
    main(globals())
