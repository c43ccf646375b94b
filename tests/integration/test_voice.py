"""Voice fallback: when every SMS path has failed for a critical alert, a human is called."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import VOICE_CENTER, ack_code, main, recv_events, wait_until  # noqa: E402

CENTER = VOICE_CENTER


def test_critical_alert_calls_recipient_then_contact_center(h):
    gw = h.voice_gateway()
    sub = gw.subscribe(("voice_call",))
    t0 = time.monotonic()
    r = gw.send(["+32470000001"], "db01 DOWN", priority="critical")
    wait_until(lambda: h.dials(), 20, "a dial-out")
    print(f"    all SMS paths failed -> ATD: {time.monotonic() - t0:.2f} s", flush=True)
    wait_until(lambda: len(h.dials()) >= 2, 30, "the second call")
    assert h.dials()[:2] == ["+32470000001", CENTER], h.dials()
    a = wait_until(lambda: (lambda x: x if len(x["calls"]) >= 2 else None)(gw.get(r["id"])),
                   30, "two recorded calls")
    assert [c["number"] for c in a["calls"]] == ["+32470000001", CENTER], a["calls"]
    # Answered, but nobody pressed a key on a modem that reports them: nobody proved to have
    # heard it (a voicemail, a pocket).
    assert all(c["outcome"] == "answered_no_key" and c["node"] == "a" for c in a["calls"]), a
    assert a["ack"] is None, a  # an answered call is not an acknowledgment
    events = recv_events(sub, 5, until=lambda ev: len(ev) >= 2)
    assert [e["outcome"] for _, e in events] == ["answered_no_key"] * 2, events
    st = gw.status()
    assert st["voice"] == {"calls": 2, "last_outcome": "answered_no_key",
                           "key_presses": True}, st["voice"]
    hangups = [c for c in h.sim.calls() if c.get("event") == "hangup"]
    assert len(hangups) >= 2 and all(c["by"] == "local" for c in hangups), hangups


def test_normal_alert_never_dials(h):
    gw = h.voice_gateway()
    r = gw.send(["+32470000002"], "disk 80 %")
    wait_until(lambda: len(gw.get(r["id"])["deliveries"][0]["attempts"]) >= 1, 20,
               "a failed attempt")
    time.sleep(3)
    assert h.dials() == [], h.dials()
    assert gw.get(r["id"])["calls"] == []


def test_dtmf_one_acknowledges(h):
    gw = h.voice_gateway(dtmf="1")
    r = gw.send(["+32470000003"], "db02 DOWN", priority="critical")
    a = wait_until(lambda: (lambda x: x if x["ack"] else None)(gw.get(r["id"])), 40,
                   "the acknowledgment by DTMF")
    assert a["ack"]["via"] == "voice" and a["ack"]["by"] == "+32470000003", a
    # Acknowledged: the contact center is not called any more.
    time.sleep(3)
    assert CENTER not in h.dials(), h.dials()


def test_answered_without_a_key_is_tried_again(h):
    gw = h.voice_gateway(retries="retries = 1\nretry_delay = 2\n")
    r = gw.send(["+32470000007"], "db07 DOWN", priority="critical")
    a = wait_until(lambda: (lambda x: x if len(x["calls"]) >= 4 else None)(gw.get(r["id"])),
                   60, "four recorded calls")
    assert [c["outcome"] for c in a["calls"]] == ["answered_no_key"] * 4, a["calls"]
    assert h.dials().count("+32470000007") == 2, h.dials()
    assert a["ack"] is None


def test_calls_go_on_until_a_human_presses_a_key(h):
    # Call until reached: once its one retry is spent, the recipient is called again every
    # [voice] recall while nobody presses a key, also after a restart (from the recorded
    # calls, the contact center too), and a 1 ends it.
    gw = h.voice_gateway(retries="retries = 1\nretry_delay = 2\nrecall = 3\n")
    who = "+32470000011"
    r = gw.send([who], "db11 DOWN", priority="critical")
    wait_until(lambda: h.dials().count(who) >= 3, 90, "a third call: the first recall")
    gw.kill9()
    gw.start(wait_modems=1)
    before, center_before = h.dials().count(who), h.dials().count(CENTER)
    wait_until(lambda: h.dials().count(who) > before, 90, "a call after the restart")
    wait_until(lambda: h.dials().count(CENTER) > center_before, 90,
               "the contact center's call after the restart")
    a = gw.get(r["id"])
    assert a["ack"] is None, a
    assert {c["outcome"] for c in a["calls"]} == {"answered_no_key"}, a["calls"]
    h.sim.control({"cmd": "call_outcome", "modem": "voice0", "outcome": "answer",
                   "after": 1.0, "persist": True, "dtmf": "1"})
    a = wait_until(lambda: (lambda x: x if x["ack"] else None)(gw.get(r["id"])), 90,
                   "the acknowledgment by key")
    assert a["ack"]["via"] == "voice", a
    dialled = len(h.dials())
    time.sleep(8)  # more than two recalls' time: none comes
    assert len(h.dials()) == dialled, h.dials()[dialled:]


def test_recall_off_gives_up_after_the_retries(h):
    gw = h.voice_gateway(retries="retries = 1\nretry_delay = 2\nrecall = 0\n")
    who = "+32470000012"
    gw.send([who], "db12 DOWN", priority="critical")
    wait_until(lambda: h.dials().count(who) >= 2, 60, "the call and its retry")
    time.sleep(10)
    assert h.dials().count(who) == 2, h.dials()


def test_two_passes_the_alert_to_the_next_step_now(h):
    from oncall_fixture import ALICE, BOB, oncall_config
    gw = h.voice_gateway(dtmf="2", extra=oncall_config(300))
    r = gw.send(["role:primary"], "db08 DOWN", priority="critical")
    # Alice presses 2: bob is paged at once, not after the five minutes of step_timeout.
    a = wait_until(lambda: (lambda x: x if x["escalation"]["step"] >= 2 else None)(
        gw.get(r["id"])), 60, "the next step")
    assert a["escalation"]["role"] == "secondary" and a["ack"] is None, a
    wait_until(lambda: BOB in h.dials(), 60, "bob's call")
    assert h.dials()[0] == ALICE, h.dials()
    calls = gw.get(r["id"])["calls"]
    assert calls[0]["number"] == ALICE and calls[0]["outcome"] == "answered", calls


def test_busy_and_no_answer_recorded_and_retried(h):
    gw = h.voice_gateway(outcome="busy", retries="retries = 1\nretry_delay = 2\n")
    r = gw.send(["+32470000004"], "db03 DOWN", priority="critical")
    # recipient busy, contact center busy, then each once more
    a = wait_until(lambda: (lambda x: x if len(x["calls"]) >= 4 else None)(gw.get(r["id"])),
                   60, "four recorded calls")
    assert [c["outcome"] for c in a["calls"]] == ["busy"] * 4, a["calls"]
    assert sorted(c["number"] for c in a["calls"]) == sorted(["+32470000004", CENTER] * 2)
    h.sim.control({"cmd": "call_outcome", "modem": "voice0", "outcome": "no_answer",
                   "persist": True})
    r = gw.send(["+32470000006"], "db05 DOWN", priority="critical")
    a = wait_until(lambda: (lambda x: x if x["calls"] else None)(gw.get(r["id"])), 40,
                   "a recorded call")
    assert a["calls"][0]["outcome"] == "no_answer", a["calls"]
    hangup = [c for c in h.sim.calls() if c.get("event") == "hangup"][-1]
    assert hangup["by"] == "local", hangup  # the gateway hung up the ringing line


def test_modem_hanging_during_the_call_fails_and_recovers(h):
    h.start_sim(["gsm0"])
    h.sim.control({"cmd": "call_outcome", "modem": "gsm0", "outcome": "no_answer",
                   "persist": True})
    gw = h.gateway(modems=["gsm0"],
                   extra="[voice]\nmodem = gsm0\nring_timeout = 30\nretries = 0\n")
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": 1, "cms": 500})
    r = gw.send(["+32470000007"], "db06 DOWN", priority="critical")
    wait_until(lambda: h.dials(), 30, "the dial-out")
    h.sim.control({"cmd": "hang", "modem": "gsm0", "on": True})
    a = wait_until(lambda: (lambda x: x if x["calls"] else None)(gw.get(r["id"])), 60,
                   "the failed call")
    assert a["calls"][0]["outcome"] == "failed", a["calls"]
    h.sim.control({"cmd": "hang", "modem": "gsm0", "on": False})
    # Given back to SMS duty and recovered: the alert still goes out by SMS.
    gw.wait_state(r["id"], "sent", timeout=60)


def test_borrowed_sms_modem_dials_and_comes_back(h):
    h.start_sim(["gsm0"])
    h.sim.control({"cmd": "call_outcome", "modem": "gsm0", "outcome": "answer", "after": 1.0,
                   "persist": True})
    gw = h.gateway(modems=["gsm0"], extra="[voice]\nmodem = gsm0\nhold = 1\nretries = 0\n")
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": 1, "cms": 500})
    r = gw.send(["+32470000005"], "db04 DOWN", priority="critical")
    a = wait_until(lambda: (lambda x: x if x["calls"] else None)(gw.get(r["id"])), 40,
                   "a call through the borrowed modem")
    assert a["calls"][0]["outcome"] == "answered_no_key" and a["calls"][0]["modem"] == "gsm0", a
    # The modem is given back to SMS duty and the alert still goes out by SMS.
    gw.wait_state(r["id"], "sent", timeout=60)
    assert gw.status()["modems"][0]["state"] == "ok"
    # With a voice line, the SMS says what the keys of a call do.
    assert [m["text"] for m in h.sim.sms()] == [f"db04 DOWN\nReply ACK {ack_code(r['id'])} "
                                                "to acknowledge (on a call: 1 acknowledges, 2 "
                                                "passes it on)"], h.sim.sms()


def voice_config(h) -> str:
    return (f"[voice]\ndevice = {h.sim.device('voice0')}\ncontact_center = {CENTER}\n"
            "ring_timeout = 5\nhold = 1\nretries = 0\n")


def test_critical_alert_while_the_modem_connects_goes_out_as_sms(h):
    # The SMS modem answers slowly, so it is still connecting when a critical alert comes
    # (as after a reboot): that is not a failed path. No call; the SMS leaves once it is up.
    h.start_sim(["gsm0", "voice0"])
    h.sim.control({"cmd": "call_outcome", "modem": "voice0", "outcome": "answer", "after": 1.0,
                   "persist": True})
    h.sim.control({"cmd": "set", "modem": "gsm0", "reply_delay": 0.3})
    gw = h.gateway(modems=["gsm0"], extra=voice_config(h), wait_modems=False)
    modem = gw.status()["modems"][0]
    assert modem["state"] != "ok" and modem["connecting_until"], modem
    r = gw.send(["+32470000009"], "db09 DOWN", priority="critical")
    gw.wait_state(r["id"], "sent", timeout=90)
    time.sleep(2)
    assert h.dials() == [], h.dials()
    assert gw.get(r["id"])["calls"] == []
    # With a voice line, the SMS says what the keys of a call do.
    assert [m["text"] for m in h.sim.sms()] == [f"db09 DOWN\nReply ACK {ack_code(r['id'])} "
                                                "to acknowledge (on a call: 1 acknowledges, 2 "
                                                "passes it on)"], h.sim.sms()
    assert gw.status()["modems"][0]["connecting_until"] is None


def test_a_modem_that_never_comes_up_is_a_failed_path_once_the_grace_ends(h):
    # The SIM wants a PIN nobody configured: the modem never comes up. The alert waits for
    # the connect grace (5 s from the start), then the recipient is called.
    h.start_sim(["gsm0", "voice0"])
    h.sim.control({"cmd": "call_outcome", "modem": "voice0", "outcome": "answer", "after": 1.0,
                   "persist": True})
    h.sim.control({"cmd": "pin", "modem": "gsm0", "required": True, "pin": "1234"})
    gw = h.gateway(modems=["gsm0"], extra=voice_config(h) + "connect_grace = 5\n",
                   wait_modems=False)
    t0 = time.monotonic()
    r = gw.send(["+32470000010"], "db10 DOWN", priority="critical")
    time.sleep(1.0)
    assert h.dials() == [], "called while the modem could still come up"
    wait_until(lambda: h.dials(), 30, "a call once the grace ended")
    print(f"    call {time.monotonic() - t0:.1f} s after the alert (grace 5 s)", flush=True)
    assert h.dials()[0] == "+32470000010", h.dials()
    assert gw.status()["modems"][0]["state"] != "ok"
    assert gw.get(r["id"])["deliveries"][0]["state"] != "sent"


if __name__ == "__main__":
    main(globals())
