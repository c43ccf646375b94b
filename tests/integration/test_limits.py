"""Per-person limits ([limits]): no phone gets more than so many SMS and voice calls per window;
what is over is held and grouped into the next message, never dropped, and one voice call
covers all of a person's pending critical alerts. End to end through the daemon and the
simulated modems."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYCTL, VOICE_CENTER, ack_code, main, wait_until  # noqa: E402
from oncall_fixture import ALICE, DAVE, oncall_config  # noqa: E402

WINDOW = 20  # seconds of [limits] sms in these tests
FAST_INBOX = {"gsm0": "inbox_interval = 1\nhealth_interval = 5\n"}
READS = "[submit]\nread_rate = 0\n"  # the checks read every alert often


def sms_to(h, number):
    return [m for m in h.sim.sms() if m["to"] == number]


def history(gw, alert_id):
    return [e["what"] for e in gw.get(alert_id)["history"]]


def test_sms_over_the_limit_wait_and_go_out_grouped(h):
    # dave is a contact: his replies count.
    gw = h.gateway(extra=oncall_config(300) + READS
                   + f"[limits]\nsms = 3/{WINDOW}s\ncalls = off\n",
                   modem_extra=FAST_INBOX)
    # Three alerts, one at a time: each is its own SMS, and the number has had its three.
    first = []
    for i in range(3):
        first.append(gw.send([DAVE], f"web{i} DOWN", priority="critical")["id"])
        gw.wait_state(first[-1], "sent", timeout=30)
    # Four more: held, not sent, not dropped.
    held = [gw.send([DAVE], f"db{i} DOWN", priority="critical")["id"] for i in range(4)]
    wait_until(lambda: all("held" in history(gw, i) for i in held), 20, "the holds")
    assert len(sms_to(h, DAVE)) == 3, sms_to(h, DAVE)
    assert all(gw.get(i)["state"] == "queued" for i in held)
    out = subprocess.run([GATEWAYCTL, "-e", gw.endpoint, "show", held[0]],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and re.search(r"held .*had its 3 SMS per 20 s", out.stdout), \
        out.stdout
    # Once the first leaves the window: one message for the four, each with its code.
    for i in held:
        gw.wait_state(i, "sent", timeout=WINDOW + 30)
    got = sms_to(h, DAVE)
    assert len(got) == 4, [m["text"] for m in got]
    group = got[3]["text"]
    assert group.startswith("4 critical alerts: "), group
    for n, i in enumerate(held):
        assert f"db{n} DOWN (ACK {ack_code(i)})" in group, group
    # Never more than three in any window (the simulator's clock; a second for the send).
    monos = [m["mono"] for m in got]
    assert monos[3] - monos[0] >= WINDOW - 1.5, monos
    # A code from the grouped message acknowledges that alert.
    h.sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": DAVE,
                   "text": f"ACK {ack_code(held[2])}"})
    wait_until(lambda: gw.get(held[2])["ack"], 30, "the acknowledgment by its code")
    assert gw.get(held[1])["ack"] is None


def test_a_burst_larger_than_the_room_goes_out_as_one_message(h):
    gw = h.gateway(extra=READS + f"[limits]\nsms = 3/{WINDOW}s\ncalls = off\n")
    # Held back while the modem is down, then all due at once.
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    ids = [gw.send([DAVE], f"disk{i} full")["id"] for i in range(12)]
    wait_until(lambda: all(gw.get(i)["deliveries"][0]["attempts"] for i in ids), 30,
               "a failed attempt of each")
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": 0})
    for i in ids:
        gw.wait_state(i, "sent", timeout=60)
    got = sms_to(h, DAVE)
    texts = [m["text"] for m in got]
    groups = [t for t in texts if re.match(r"\d+ alerts: ", t)]
    assert groups, texts
    singles = len(texts) - len(groups)
    assert singles + sum(int(t.split()[0]) for t in groups) == 12, texts
    # However the retries fell due, never more than three SMS in a window.
    monos = [m["mono"] for m in got]
    assert all(monos[i + 3] - monos[i] >= WINDOW - 1.5 for i in range(len(monos) - 3)), monos


def test_one_call_covers_a_persons_alerts_after_a_reboot(h):
    # Every SMS fails; the voice line is configured only after the "reboot": twenty critical
    # alerts to one person are queued by then. One call covers them all.
    h.start_sim(["gsm0", "voice0"])
    h.sim.control({"cmd": "call_outcome", "modem": "voice0", "outcome": "answer",
                   "after": 1.0, "persist": True})
    gw = h.gateway(modems=["gsm0"], extra=READS + "[limits]\nsms = off\ncalls = 2/10m\n")
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    ids = [gw.send([ALICE], f"db{i} DOWN", priority="critical")["id"] for i in range(20)]
    # The modem fails the first few again and again (and drops out after three errors): most
    # of the twenty never had an attempt, and are covered all the same.
    wait_until(lambda: gw.get(ids[0])["deliveries"][0]["attempts"], 30, "a failed attempt")
    gw.stop()
    with open(gw.config_path, "a") as f:
        f.write(f"\n[voice]\ndevice = {h.sim.device('voice0')}\n"
                f"contact_center = {VOICE_CENTER}\nring_timeout = 5\nhold = 1\nretries = 0\n"
                "connect_grace = 3\n")
    gw.start(wait_modems=1)
    wait_until(lambda: all(gw.get(i)["calls"] for i in ids), 90, "a call for every alert")
    time.sleep(3)
    dials = h.dials()
    assert dials.count(ALICE) == 1, dials
    assert dials.count(VOICE_CENTER) == 1, dials
    at = {c["at"] for i in ids for c in gw.get(i)["calls"] if c["number"] == ALICE}
    assert len(at) == 1, at
    # Two calls per ten minutes. With the SMS modem unplugged, every new critical alert needs a
    # call at once: the next one gets the second call, the one after that waits.
    h.sim.control({"cmd": "unplug", "modem": "gsm0"})
    wait_until(lambda: gw.status()["modems"][0]["state"] != "ok", 30, "the modem gone")
    more = gw.send([ALICE], "web1 DOWN", priority="critical")["id"]
    wait_until(lambda: gw.get(more)["calls"], 60, "the second call")
    last = gw.send([ALICE], "web2 DOWN", priority="critical")["id"]
    wait_until(lambda: "had its 2 voice calls per 600 s" in open(gw.log_path).read(), 60,
               "the third call held back")
    time.sleep(3)
    assert h.dials().count(ALICE) == 2, h.dials()
    assert [c for c in gw.get(last)["calls"] if c["number"] == ALICE] == [], gw.get(last)
    assert gw.get(last)["state"] == "queued"


if __name__ == "__main__":
    main(globals())
