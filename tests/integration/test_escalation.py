"""On-call: escalation steps, acknowledgment by SMS reply and over ZeroMQ, the gateway's replies,
flood bundling and customer copies, end to end through the daemon and the simulated modem."""
import datetime
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYCTL, ack_code, main, recv_events, wait_until  # noqa: E402
from oncall_fixture import ALICE, BOB, CAROL, DAVE, oncall_config  # noqa: E402

STEP = 5  # step_timeout, seconds
ONCALL = oncall_config(STEP)

FAST_INBOX = {"gsm0": "inbox_interval = 1\nhealth_interval = 5\n"}


def gateway(h, extra=""):
    return h.gateway(extra=ONCALL + extra, modem_extra=FAST_INBOX)


def texts_to(h, number):
    return [m["text"] for m in h.sim.sms() if m["to"] == number]


def wait_texts(h, number, count, timeout=30):
    return wait_until(lambda: (lambda t: t if len(t) >= count else None)(texts_to(h, number)),
                      timeout, f"{count} SMS to {number}")


def reply(h, sender, text):
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": sender, "text": text})


def page(gw, text="db01 DOWN", **kw):
    r = gw.send(["role:primary"], text, priority="critical", **kw)
    assert r["status"] == "queued", r
    return r["id"]


def test_unacknowledged_primary_escalates_and_the_secondary_acks_by_sms(h):
    gw = gateway(h)
    sub = gw.subscribe(("escalated", "acknowledged"))
    alert = page(gw)
    code = ack_code(alert)
    first = wait_texts(h, ALICE, 1)
    assert first == [f"db01 DOWN\nReply ACK {code} to acknowledge"], first
    # Nobody answers: the secondary is paged after step_timeout, with the same code.
    t0 = time.monotonic()
    to_bob = wait_texts(h, BOB, 1, timeout=STEP + 15)
    assert to_bob == first, to_bob
    assert time.monotonic() - t0 >= STEP - 2.5, "the secondary was paged before step_timeout"
    reply(h, BOB, f"ack {code}")
    a = wait_until(lambda: (lambda a: a if a["ack"] else None)(gw.get(alert)), 20,
                   "the acknowledgment")
    assert a["ack"]["by"] == "bob" and a["ack"]["via"] == "sms", a["ack"]
    # Confirmed to bob; management never paged, however long we wait.
    confirm = wait_texts(h, BOB, 2)[1]
    assert confirm.startswith(f"Acknowledged ({code}) by bob: db01 DOWN"), confirm
    # Alice answers late: told who did, nothing changes.
    reply(h, ALICE, f"ACK {code}")
    late = wait_texts(h, ALICE, 2)[1]
    assert late == f"ACK {code}: already acknowledged by bob.", late
    time.sleep(2 * STEP + 1)
    assert texts_to(h, CAROL) == [], texts_to(h, CAROL)
    assert len(texts_to(h, ALICE)) == 2, texts_to(h, ALICE)
    assert gw.get(alert)["ack"]["by"] == "bob"
    events = recv_events(sub, 5, until=lambda ev: any(t == "acknowledged" for t, _ in ev))
    esc = [e for t, e in events if t == "escalated"]
    assert [(e["step"], e["role"], e["contact"], e["to"]) for e in esc] == \
        [(2, "secondary", "bob", BOB)], events
    # The whole story, in time order, as an operator reads it.
    out = subprocess.run([GATEWAYCTL, "-e", gw.endpoint, "show", alert], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    story = [line for line in out.stdout.splitlines() if re.match(r"^\s*\d{4}-\d\d-\d\d", line)]
    kinds = [line.split()[1] for line in story]
    assert kinds[0] == "received", story
    assert kinds.index("escalated") < kinds.index("acknowledged"), story
    assert kinds.count("sent") >= 2, story
    assert any("bob" in line and "sms" in line for line in story if "acknowledged" in line), \
        story


def test_ack_over_zeromq_stops_escalation_and_is_confirmed(h):
    gw = gateway(h)
    alert = page(gw)
    wait_texts(h, ALICE, 1)
    r = gw.request({"op": "ack", "id": alert, "by": "alice"})
    assert r["ok"], r
    confirm = wait_texts(h, ALICE, 2)[1]
    assert confirm.startswith(f"Acknowledged ({ack_code(alert)}) by alice"), confirm
    time.sleep(STEP + 3)
    assert texts_to(h, BOB) == [], texts_to(h, BOB)
    a = gw.get(alert)
    assert a["ack"]["by"] == "alice" and a["ack"]["via"] == "api", a
    assert a["escalation"]["active"] is False, a["escalation"]


def test_chain_repeats_then_stops_and_code_a_works(h):
    # The chain once more after the first time: alice, bob, carol, alice, bob, carol, then
    # nobody, however long nobody answers.
    gw = gateway(h, extra="repeat = 1\n")
    alert = page(gw, text="core switch DOWN")
    to_bob = wait_texts(h, BOB, 2, timeout=3 * STEP + 20)
    assert to_bob[0] == to_bob[1], to_bob
    a = wait_until(lambda: (lambda a: a if not a["escalation"]["active"] else None)(
        gw.get(alert)), STEP + 10, "the end of the chain")
    assert a["escalation"]["step"] == 6 and a["escalation"]["role"] == "management", a
    wait_texts(h, CAROL, 2)
    pages = {n: len([t for t in texts_to(h, n) if t.startswith("core switch")])
             for n in (ALICE, BOB, CAROL)}
    assert pages == {ALICE: 2, BOB: 2, CAROL: 2}, pages
    time.sleep(2 * STEP + 2)
    again = {n: len([t for t in texts_to(h, n) if t.startswith("core switch")])
             for n in (ALICE, BOB, CAROL)}
    assert again == pages, again
    # Acknowledging is still possible after the chain ended (a code followed by A).
    reply(h, CAROL, f"{ack_code(alert)}A")
    wait_until(lambda: gw.get(alert)["ack"], 20, "carol's acknowledgment")
    assert gw.get(alert)["ack"]["by"] == "carol"


def at(t: str) -> float:
    """Seconds since the epoch of an RFC 3339 time of the gateway's ("...Z")."""
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def test_each_step_waits_step_timeout_from_its_own_send(h):
    # One modem at 3 s per SMS and ten critical alerts at once: the later ones reach the
    # primary long after step_timeout, and must still give her the whole of it. (A step_timeout
    # of 20 s: the last page leaves after some 40 s, before the backstop of 3 step_timeouts.)
    step = 20
    gw = h.gateway(extra=oncall_config(step) + "repeat = 0\n", modem_extra=FAST_INBOX,
                   send_delay=3)
    alerts = [page(gw, f"disk {i} full", key=f"disk/{i}") for i in range(10)]
    wait_until(lambda: all((gw.get(a)["escalation"] or {}).get("step", 0) >= 2 for a in alerts),
               180, "every alert at the secondary", interval=1.0)  # within the read rate
    late = 0
    for a in alerts:
        alert = gw.get(a)
        sent = [at(x["at"]) for d in alert["deliveries"] if d["to"] == ALICE
                for x in d["attempts"] if x["result"] == "sent"]
        step2 = [at(e["at"]) for e in alert["history"]
                 if e["what"] == "escalated" and e["detail"].startswith("step 2:")]
        assert sent and step2, alert
        assert step2[0] - sent[0] >= step - 0.01, (a, sent[0] - at(alert["accepted_at"]),
                                                   step2[0] - sent[0], alert["history"])
        late += sent[0] - at(alert["accepted_at"]) > step
        timers = [e for e in alert["history"] if e["what"] == "timer started"]
        assert timers and ALICE in timers[0]["detail"], alert["history"]
    assert late >= 3, f"only {late} alerts reached the primary later than step_timeout"
    for a in alerts:
        gw.request({"op": "ack", "id": a, "by": "test"})


def test_replies_that_do_not_acknowledge_are_answered_and_never_act(h):
    gw = gateway(h)
    alert = page(gw)
    code = ack_code(alert)
    wait_texts(h, ALICE, 1)
    reply(h, ALICE, "ACK 0000" if code != "0000" else "ACK 1111")
    got = wait_texts(h, ALICE, 2)
    assert "no alert sent to you has this code" in got[1], got
    reply(h, ALICE, "on my way")
    got = wait_texts(h, ALICE, 3)
    assert got[2].startswith("Not understood"), got
    # Five answers to messages that did nothing, then the number is answered no more (for an
    # hour): the sixth gets nothing.
    for i in range(4):
        reply(h, ALICE, f"hello {i}")
    wait_texts(h, ALICE, 6)
    time.sleep(8)
    assert len(texts_to(h, ALICE)) == 6, texts_to(h, ALICE)
    assert gw.get(alert)["ack"] is None
    # A real acknowledgment still works, and is still confirmed.
    reply(h, ALICE, f"ACK {code}")
    wait_until(lambda: gw.get(alert)["ack"], 20, "alice's acknowledgment")
    confirm = wait_texts(h, ALICE, 7)[6]
    assert confirm.startswith(f"Acknowledged ({code}) by alice"), confirm
    inbox = gw.request({"op": "inbox"})["messages"]
    assert len(inbox) == 7, inbox


def test_an_incident_run_by_sms(h):
    # A long step: whatever moves the chain here is a command, not the clock.
    gw = h.gateway(extra=oncall_config(300), modem_extra=FAST_INBOX)
    alert = page(gw)
    code = ack_code(alert)
    wait_texts(h, ALICE, 1)
    reply(h, ALICE, "who")
    who = wait_texts(h, ALICE, 2)[1]
    assert who == (f"On call: primary alice {ALICE}, secondary bob {BOB}, "
                   f"management carol {CAROL}"), who
    reply(h, ALICE, "HELP")
    assert wait_texts(h, ALICE, 3)[2].startswith("Reply ACK <code>, RES <code>, ESC <code>")
    # ESC: the secondary is paged now, not in 300 s.
    reply(h, ALICE, f"ESC {code}")
    assert wait_texts(h, BOB, 1) == [f"db01 DOWN\nReply ACK {code} to acknowledge"]
    assert wait_texts(h, ALICE, 4)[3] == f"ESC {code}: paging bob (secondary) now."
    assert gw.get(alert)["escalation"]["step"] == 2
    # RES from the secondary: resolved, confirmed to bob, the all-clear to alice only.
    reply(h, BOB, f"res {code}")
    a = wait_until(lambda: (lambda a: a if a["resolved"] else None)(gw.get(alert)), 20,
                   "the resolve by SMS")
    assert (a["state"], a["resolved"]["by"], a["resolved"]["via"]) == ("resolved", "bob", "sms")
    assert wait_texts(h, BOB, 2)[1] == f"Resolved ({code}) by bob: db01 DOWN. Escalation stopped."
    assert wait_texts(h, ALICE, 5)[4] == "RESOLVED: db01 DOWN"
    # TAKE: carol takes over the primary role for two hours.
    reply(h, CAROL, "TAKE 2h")
    took = wait_texts(h, CAROL, 1)[0]
    assert took.startswith("TAKE: you are on call for primary until "), took
    primary = [r for r in gw.request({"op": "oncall"})["roles"] if r["role"] == "primary"][0]
    assert (primary["contact"], primary["source"]) == ("carol", "override"), primary
    # MAINT: a silence of two hours for the keys starting with db09/.
    reply(h, CAROL, "MAINT db09/ 2h")
    maint = wait_texts(h, CAROL, 2)[1]
    assert maint.startswith("MAINT: alerts with keys starting with db09/ are held back"), maint
    silences = gw.request({"op": "silences"})["silences"]
    assert [(s["match"], s["by"]) for s in silences] == [({"key_prefix": "db09/"}, "carol")]
    held = gw.send(["role:primary"], "db09 DOWN", key="db09/ping", priority="critical")
    assert held["status"] == "silenced", held
    # A stranger's commands do nothing and get nothing.
    for text in ("WHO", "TAKE", f"RES {code}", "HELP", "MAINT db 1d"):
        reply(h, "+32499999999", text)
    wait_until(lambda: len(gw.request({"op": "inbox"})["messages"]) >= 11, 30, "the inbox")
    time.sleep(4)
    assert not [m for m in h.sim.sms() if m["to"] == "+32499999999"], h.sim.sms()
    primary = [r for r in gw.request({"op": "oncall"})["roles"] if r["role"] == "primary"][0]
    assert primary["contact"] == "carol", primary
    assert len(gw.request({"op": "silences"})["silences"]) == 1
    story = ctl_story(gw, alert)
    assert "escalation asked" in story and "resolved" in story, story
    assert len(texts_to(h, BOB)) == 2 and len(texts_to(h, ALICE)) == 5, h.sim.sms()


def ctl_story(gw, alert):
    out = subprocess.run([GATEWAYCTL, "-e", gw.endpoint, "show", alert], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_strangers_are_recorded_never_answered_never_obeyed(h):
    gw = gateway(h)
    alert = page(gw)
    code = ack_code(alert)
    wait_texts(h, ALICE, 1)
    # A stranger's phone, a premium-rate number, an alphanumeric sender, a short code: each
    # tries to acknowledge, then chats.
    strangers = ("+32499999999", "+32903123456", "Proximus", "1234")
    for sender in strangers:
        reply(h, sender, f"ACK {code}")
        reply(h, sender, "hello?")
    wait_until(lambda: len(gw.request({"op": "inbox"})["messages"]) >= 8, 30,
               "the strangers' messages in the inbox")
    time.sleep(6)
    assert not [m for m in h.sim.sms() if m["to"] in strangers], h.sim.sms()
    assert gw.get(alert)["ack"] is None
    senders = {m["from"] for m in gw.request({"op": "inbox"})["messages"]}
    assert senders == set(strangers), senders


def test_only_a_contact_paged_for_the_alert_acknowledges_it(h):
    gw = gateway(h)
    alert = page(gw)
    code = ack_code(alert)
    wait_texts(h, ALICE, 1)
    # Dave is a configured contact but was never paged for it: refused, and told why.
    reply(h, DAVE, f"ACK {code}")
    got = wait_texts(h, DAVE, 1)
    assert got[0] == f"ACK {code}: no alert sent to you has this code; nothing was " \
        "acknowledged.", got
    reply(h, DAVE, "ACK")
    got = wait_texts(h, DAVE, 2)
    assert got[1] == "No open alert of yours to acknowledge.", got
    assert gw.get(alert)["ack"] is None
    # Alice was paged: her acknowledgment counts, and records who sent it from where.
    reply(h, ALICE, f"ACK {code}")
    a = wait_until(lambda: (lambda a: a if a["ack"] else None)(gw.get(alert)), 20,
                   "alice's acknowledgment")
    assert a["ack"]["by"] == "alice" and a["ack"]["via"] == "sms", a["ack"]
    assert a["ack"]["from"] == ALICE, a["ack"]
    line = [e for e in a["history"] if e["what"] == "acknowledged"]
    assert len(line) == 1 and f"by alice from {ALICE} via sms" in line[0]["detail"], a["history"]
    out = subprocess.run([GATEWAYCTL, "-e", gw.endpoint, "show", alert], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    acks = [x for x in out.stdout.splitlines() if "acknowledged" in x and "by alice" in x]
    assert len(acks) == 1 and ALICE in acks[0], out.stdout
    assert f"Acknowledged: by alice from {ALICE} via sms at " in out.stdout, out.stdout


def test_bare_ack_takes_the_only_open_alert_else_lists_codes(h):
    gw = gateway(h)
    one = gw.send([ALICE], "disk full", priority="critical")["id"]
    wait_texts(h, ALICE, 1)
    reply(h, ALICE, "ACK")
    a = wait_until(lambda: gw.get(one)["ack"], 20, "the bare acknowledgment")
    assert a["by"] == "alice", a
    wait_texts(h, ALICE, 2)  # the confirmation
    x = gw.send([ALICE], "web01 DOWN", priority="critical")["id"]
    y = gw.send([ALICE], "web02 DOWN", priority="critical")["id"]
    wait_texts(h, ALICE, 4)
    reply(h, ALICE, "ack")
    got = wait_texts(h, ALICE, 5)
    assert got[4].startswith("You have 2 open alerts"), got
    assert f"ACK {ack_code(x)}" in got[4] and f"ACK {ack_code(y)}" in got[4], got
    assert gw.get(x)["ack"] is None and gw.get(y)["ack"] is None


def test_escalation_deadline_survives_a_restart(h):
    gw = gateway(h)
    alert = page(gw)
    wait_texts(h, ALICE, 1)
    accepted = time.monotonic()
    gw.kill9()
    time.sleep(1)
    gw.start(wait_modems=1)
    wait_texts(h, BOB, 1, timeout=STEP + 20)
    assert time.monotonic() - accepted >= STEP - 2.5
    a = gw.get(alert)
    assert a["escalation"] == {"step": 2, "role": "secondary", "active": True,
                               "next_at": a["escalation"]["next_at"]}, a["escalation"]


def test_every_step_gets_the_voice_fallback_when_sms_fails(h):
    # No SMS goes out at all: the primary is called, then, once the step times out, the
    # secondary.
    gw = h.voice_gateway(dtmf=None, extra=ONCALL, modem_extra=FAST_INBOX)
    alert = page(gw)
    wait_until(lambda: ALICE in h.dials(), 30, "the primary's call")
    wait_until(lambda: BOB in h.dials(), STEP + 40, "the secondary's call after the step")
    got = h.dials()
    assert got.index(ALICE) < got.index(BOB), got
    a = wait_until(lambda: (lambda a: a if BOB in [c["number"] for c in a["calls"]] else None)(
        gw.get(alert)), 30, "the secondary's call recorded")
    assert a["escalation"]["step"] >= 2 and a["ack"] is None, a
    assert ALICE in [c["number"] for c in a["calls"]], a["calls"]
    assert texts_to(h, ALICE) == [] and texts_to(h, BOB) == [], h.sim.sms()


def test_a_drill_nobody_acknowledges_escalates(h):
    # A daily drill a few seconds from now (local time, as the daemon reads it); five minutes
    # of step_timeout, 8 s to acknowledge the drill.
    at = time.strftime("%H:%M:%S", time.localtime(time.time() + 8))
    gw = h.gateway(extra=oncall_config(300) + f"\n[drill]\nat = {at}\nto = role:primary\n"
                   "ack_within = 8\n[submit]\nread_rate = 0\n", modem_extra=FAST_INBOX)
    first = wait_texts(h, ALICE, 1, timeout=40)[0]
    sent = time.monotonic()
    assert first.startswith("DRILL: a test page from the alert gateway, nothing is wrong."), first
    assert "\nReply ACK " in first, first
    # Nobody answers: the next step is paged, with the same drill, long before step_timeout.
    second = wait_texts(h, BOB, 1, timeout=40)[0]
    assert time.monotonic() - sent >= 5, "escalated before ack_within"
    assert second == first, (first, second)
    drill = [a for a in gw.request({"op": "queue"})["alerts"] if a["source"] == "drill"]
    assert len(drill) == 1, drill
    esc = gw.get(drill[0]["id"])["escalation"]
    assert esc["step"] == 2 and esc["role"] == "secondary", esc


def test_flood_to_one_engineer_is_bundled(h):
    # The check below reads all 50 alerts back at once: no read rate limit for it.
    gw = gateway(h, extra="\n[bundle]\nthreshold = 5\nwindow = 4\n[submit]\nread_rate = 0\n")
    ids = []
    for i in range(50):
        ids.append(gw.send([DAVE], f"disk {i} full")["id"])
        time.sleep(0.1)
    wait_until(lambda: all(gw.get(i)["state"] == "sent" for i in ids), 60,
               "every alert of the flood sent")
    texts = texts_to(h, DAVE)
    summaries = [t for t in texts if re.match(r"\d+ alerts: ", t)]
    singles = [t for t in texts if t not in summaries]
    assert singles == [f"disk {i} full" for i in range(5)], texts
    counts = [int(re.match(r"(\d+) alerts: ", t).group(1)) for t in summaries]
    assert sum(counts) == 45, texts
    assert len(texts) <= 10, f"{len(texts)} SMS for a flood of 50: {texts}"
    assert "disk 5 full" in summaries[0], summaries


def test_critical_alerts_are_never_bundled_and_copies_go_once(h):
    gw = gateway(h, extra="\n[bundle]\nthreshold = 2\nwindow = 30\n")
    customer = "+32471000000"
    ids = [gw.send([DAVE], f"db{i} DOWN", priority="critical", copy=[customer])["id"]
           for i in range(4)]
    got = wait_texts(h, DAVE, 4)
    assert sorted(t.split("\n")[0] for t in got) == [f"db{i} DOWN" for i in range(4)], got
    assert all("Reply ACK" in t for t in got), got
    # The customer gets each once, without the acknowledgment instruction, and is never
    # escalated to or called.
    copies = wait_until(lambda: (lambda t: t if len(t) >= 4 else None)(
        texts_to(h, customer)), 30, "the customer copies")
    time.sleep(2)
    copies = texts_to(h, customer)
    assert len(copies) == 4 and not any("ACK" in t for t in copies), copies
    for i in ids:
        kinds = {d["to"]: d["kind"] for d in gw.get(i)["deliveries"]}
        assert kinds == {DAVE: "to", customer: "copy"}, kinds


main(globals())
