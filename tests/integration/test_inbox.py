"""Incoming SMS and delivery reports, end to end through the daemon; device recovery."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import main, recv_events, wait_until  # noqa: E402

FAST_INBOX = {"gsm0": "inbox_interval = 1\nhealth_interval = 5\n"}


def inbox(gw):
    return gw.request({"op": "inbox"})["messages"]


def test_received_sms_stored_evented_once_and_deleted(h):
    gw = h.gateway(modem_extra=FAST_INBOX)
    sub = gw.subscribe(("sms_received",))
    long_text = "ACK 1234 " + "multipart reply " * 12
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100001",
                   "text": "ACK 5678"})
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100002",
                   "text": long_text})
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100003",
                   "text": "Ωμέγα ✓"})
    msgs = wait_until(lambda: (lambda m: m if len(m) >= 3 else None)(inbox(gw)), 30,
                      "three received messages")
    got = {m["from"]: m for m in msgs}
    assert got["+32470100001"]["text"] == "ACK 5678", got
    assert got["+32470100002"]["text"] == long_text, got
    assert got["+32470100002"]["parts"] >= 2, got
    assert got["+32470100003"]["text"] == "Ωμέγα ✓", got
    assert all(m["modem"] == "gsm0" and m["node"] == "a" for m in msgs), msgs
    events = recv_events(sub, 5, until=lambda ev: len(ev) >= 3)
    assert sorted(e["from"] for _, e in events) == sorted(got), events
    # The journal (here the daemon's log at its default level) names the sender and the
    # length; what people wrote stays out of it.
    with open(gw.log_path, errors="replace") as f:
        log = f.read()
    assert "SMS from +32470100003 (" in log, log
    assert "Ωμέγα" not in log and "multipart reply" not in log, log
    # Deleted from the SIM only after they were stored.
    wait_until(lambda: not [x for x in h.sim.stats("gsm0")["messages"]
                            if x["kind"] == "deliver"], 15, "the SIM to be emptied")
    # A restart reads nothing twice.
    gw.stop()
    gw.start(wait_modems=1)
    time.sleep(3)
    assert len(inbox(gw)) == 3, inbox(gw)


# An SMS centre length of 0x70 in a 137-octet PDU: libgammu 1.42 decoding it smashes its stack.
HOSTILE_PDU = "70" + "91" * 136


def test_hostile_pdu_is_quarantined_and_the_daemon_lives(h):
    gw = h.gateway(modem_extra=FAST_INBOX)
    pid = gw.proc.pid
    sub = gw.subscribe(("sms_quarantined", "sms_received"))
    slot = h.sim.control({"cmd": "inject_pdu", "modem": "gsm0", "pdu": HOSTILE_PDU})
    # The next scan finds it; then a normal SMS behind it.
    time.sleep(3)
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100001",
                   "text": "still listening"})
    msgs = wait_until(lambda: (lambda m: m if len(m) >= 2 else None)(inbox(gw)), 30,
                      "the quarantined message and the normal one")
    assert gw.proc.poll() is None and gw.proc.pid == pid, gw.log_tail()
    bad = [m for m in msgs if m.get("quarantined")]
    good = [m for m in msgs if not m.get("quarantined")]
    assert len(bad) == 1 and len(good) == 1, msgs
    assert "SMSC" in bad[0]["quarantined"], bad
    assert bad[0]["text"] == HOSTILE_PDU, bad
    assert bad[0]["modem"] == "gsm0" and bad[0]["node"] == "a", bad
    assert good[0]["text"] == "still listening", good
    events = recv_events(sub, 5, until=lambda ev: len(ev) >= 2)
    kinds = sorted(name for name, _ in events)
    assert kinds == ["sms_quarantined", "sms_received"], events
    q = [e for name, e in events if name == "sms_quarantined"][0]
    assert q["slot"] == f"{slot['mem']} {slot['index']}" and "SMSC" in q["reason"], q
    # Gone from the SIM, and the modem is fine.
    wait_until(lambda: not h.sim.stats("gsm0")["messages"], 15, "the SIM to be emptied")
    assert gw.status()["modems"][0]["state"] == "ok", gw.status()["modems"][0]
    assert "Quarantined" in gw.log_tail(200) or "quarantined" in gw.log_tail(200)
    # gatewayctl marks it.
    out = subprocess.run([os.environ["GATEWAYCTL"], "-e", gw.endpoint, "inbox"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "QUARANTINED" in out.stdout, out
    # Read once: a restart stores nothing twice, and the daemon is still the same process.
    assert gw.proc.pid == pid and gw.proc.poll() is None
    gw.stop()
    gw.start(wait_modems=1)
    time.sleep(3)
    assert len(inbox(gw)) == 2, inbox(gw)


# A well-formed SMS-DELIVER from +32470100077: "decoded once too often".
PLAIN_PDU = ("07912374151616F6040B912374100070F700006221409141110016E4F2F84D2E93416FF7B80CA2BFDFA0"
             "B7995E7603")


def test_noted_decoder_crash_quarantined_after_restart(h):
    """The second line of defence: the worker notes which stored message it decodes; a
    restart that finds the note filled (the previous process died in the decoder) quarantines
    that message instead of decoding it again, then decodes normally."""
    gw = h.gateway(modem_extra=FAST_INBOX, start=False)
    slot = h.sim.control({"cmd": "inject_pdu", "modem": "gsm0", "pdu": PLAIN_PDU})
    os.makedirs(gw.state_dir, exist_ok=True)
    with open(os.path.join(gw.state_dir, "decoding-gsm0"), "w") as f:
        f.write(f"{slot['mem']} {slot['index']} {PLAIN_PDU}\n")
    gw.start(wait_modems=1)
    msgs = wait_until(lambda: inbox(gw), 30, "the noted message")
    assert len(msgs) == 1 and msgs[0]["quarantined"] == "the process died while decoding it", msgs
    assert msgs[0]["text"] == PLAIN_PDU, msgs
    wait_until(lambda: not h.sim.stats("gsm0")["messages"], 15, "the SIM to be emptied")
    # The note is cleared once that message is gone, and the next SMS is decoded as usual.
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100077",
                   "text": "decoded after all"})
    msgs = wait_until(lambda: (lambda m: m if len(m) >= 2 else None)(inbox(gw)), 30,
                      "the next message")
    assert [m["text"] for m in msgs if not m.get("quarantined")] == ["decoded after all"], msgs
    with open(os.path.join(gw.state_dir, "decoding-gsm0")) as f:
        assert f.read() == "", "the note is left filled"


def test_message_left_on_the_sim_is_stored_once_across_a_restart(h):
    gw = h.gateway(modem_extra=FAST_INBOX)
    gw.kill9()
    # Arrives while the daemon is down; read when it comes back, and only once.
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100009",
                   "text": "while you were out"})
    gw.start(wait_modems=1)
    wait_until(lambda: inbox(gw), 30, "the message")
    gw.stop()
    gw.start(wait_modems=1)
    time.sleep(3)
    msgs = inbox(gw)
    assert [m["text"] for m in msgs] == ["while you were out"], msgs


def test_delivery_report_moves_sent_to_delivered(h):
    gw = h.gateway(modem_extra={"gsm0": "delivery_reports = yes\ninbox_interval = 1\n"})
    sub = gw.subscribe(("delivered",))
    r = gw.send(["+32470000001"], "report me")
    a = gw.wait_state(r["id"], "delivered", timeout=30)
    assert a["deliveries"][0]["state"] == "delivered", a
    assert a["deliveries"][0]["attempts"][-1].get("report"), a
    events = recv_events(sub, 5, until=lambda ev: ev)
    assert events and events[0][1]["id"] == r["id"], events
    st = gw.status()
    assert st["queue"]["delivered"] == 1, st["queue"]
    assert st["modems"][0]["delivery_reports"] is True, st["modems"][0]


def test_unplug_absent_replug_back_and_sending(h):
    gw = h.gateway(modem_extra={"gsm0": "health_interval = 2\n"})
    h.sim.control({"cmd": "unplug", "modem": "gsm0"})
    r = gw.send(["+32470000001"], "after the replug")
    wait_until(lambda: gw.status()["modems"][0]["state"] == "absent", 20, "gsm0 absent")
    assert gw.status()["modems"][0]["reason"], gw.status()["modems"][0]
    time.sleep(1)
    t0 = time.monotonic()
    h.sim.control({"cmd": "replug", "modem": "gsm0"})
    h.sim.wait_sms(1, timeout=30)
    print(f"    replug -> first send: {time.monotonic() - t0:.1f} s", flush=True)
    gw.wait_state(r["id"], "sent")
    assert gw.status()["modems"][0]["state"] == "ok"


def test_renumbered_device_found_by_imei(h):
    h.start_sim(["gsm0"])
    imei = h.sim.stats("gsm0")["imei"]
    gw = h.gateway(modem_extra={"gsm0": f"imei = {imei}\nhealth_interval = 2\n"})
    h.sim.control({"cmd": "unplug", "modem": "gsm0"})
    wait_until(lambda: gw.status()["modems"][0]["state"] == "absent", 20, "gsm0 absent")
    h.sim.control({"cmd": "replug", "modem": "gsm0", "path": "ttyUSB7"})
    r = gw.send(["+32470000001"], "found again")
    h.sim.wait_sms(1, timeout=40)
    gw.wait_state(r["id"], "sent")
    m = gw.status()["modems"][0]
    assert m["state"] == "ok" and m["device"].endswith("ttyUSB7") and m["imei"] == imei, m


if __name__ == "__main__":
    main(globals())
