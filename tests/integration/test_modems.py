"""Several modems: load sharing, failover at once, a hung modem, health driving routing."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import main, wait_until  # noqa: E402

# A backoff this long would fail every wait below: what passes was retried at once.
SLOW_RETRY = "[delivery]\nretry_min = 120\nretry_max = 300\n"


def modem_of(gw, alert_id):
    a = gw.get(alert_id)
    return [x["modem"] for x in a["deliveries"][0]["attempts"]]


def test_load_is_shared(h):
    gw = h.gateway(modems=["gsm0", "gsm1"])
    for i in range(8):
        gw.send([f"+3247000000{i}"], f"shared {i}")
    sms = h.sim.wait_sms(8, timeout=60)
    used = {m["modem"] for m in sms}
    assert used == {"gsm0", "gsm1"}, sms


def test_cms_error_fails_over_to_the_other_modem_at_once(h):
    gw = h.gateway(modems=["gsm0", "gsm1"], extra=SLOW_RETRY)
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    ids = [gw.send([f"+3247000001{i}"], f"failover {i}")["id"] for i in range(4)]
    sms = h.sim.wait_sms(4, timeout=40)
    assert {m["modem"] for m in sms} == {"gsm1"}, sms
    moved = 0
    for i in ids:
        a = gw.wait_state(i, "sent", timeout=20)
        att = a["deliveries"][0]["attempts"]
        if att[0]["modem"] == "gsm0":
            moved += 1
            assert att[0]["result"] == "error" and "500" in att[0]["error"], att
            assert att[1]["modem"] == "gsm1" and att[1]["result"] == "sent", att
    assert moved >= 1, "no alert was routed to the failing modem; the test proved nothing"


def test_hung_modem_work_moves_and_daemon_answers(h):
    gw = h.gateway(modems=["gsm0", "gsm1"], extra=SLOW_RETRY,
                   modem_extra={"gsm0": "send_timeout = 5\n"})
    h.sim.control({"cmd": "hang", "modem": "gsm0", "on": True, "after": "CMGS"})
    ids = [gw.send([f"+3247000002{i}"], f"hang {i}")["id"] for i in range(4)]
    # During the hang the daemon keeps answering.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        assert gw.status()["ok"]
        time.sleep(0.2)
    sms = h.sim.wait_sms(4, timeout=60)
    texts = {m["text"] for m in sms}
    assert texts == {f"hang {i}" for i in range(4)}, sms
    for i in ids:
        gw.wait_state(i, "sent", timeout=30)
    st = gw.status()
    gsm0 = [m for m in st["modems"] if m["name"] == "gsm0"][0]
    assert gsm0["failed"] >= 1, gsm0


def test_unregistered_modem_is_not_used(h):
    gw = h.gateway(modems=["gsm0", "gsm1"], modem_extra={"gsm0": "health_interval = 1\n"})
    h.sim.control({"cmd": "set", "modem": "gsm0", "registered": False})
    wait_until(lambda: [m for m in gw.status()["modems"] if m["name"] == "gsm0"][0]["state"]
               == "failed", 20, "gsm0 to be failed")
    gsm0 = [m for m in gw.status()["modems"] if m["name"] == "gsm0"][0]
    assert "regist" in (gsm0["reason"] or ""), gsm0
    for i in range(4):
        gw.send([f"+3247000003{i}"], f"registered only {i}")
    sms = h.sim.wait_sms(4, timeout=40)
    assert {m["modem"] for m in sms} == {"gsm1"}, sms


def test_wrong_pin_fails_with_a_reason_others_unaffected(h):
    h.start_sim(["gsm0", "gsm1"], pin="1234")
    gw = h.gateway(modems=["gsm0", "gsm1"], wait_modems=False,
                   modem_extra={"gsm0": "pin = 9999\n", "gsm1": "pin = 1234\n"})
    gw.wait_modems_ok(1)
    wait_until(lambda: [m for m in gw.status()["modems"] if m["name"] == "gsm0"][0]["state"]
               == "failed", 30, "gsm0 to be failed")
    gsm0 = [m for m in gw.status()["modems"] if m["name"] == "gsm0"][0]
    assert "PIN" in (gsm0["reason"] or ""), gsm0
    gw.send(["+32470000041"], "pin check")
    sms = h.sim.wait_sms(1, timeout=30)
    assert sms[0]["modem"] == "gsm1", sms



def test_unsolicited_flood_during_sends(h):
    gw = h.gateway(modems=["gsm0"])
    h.sim.control({"cmd": "urc_flood", "modem": "gsm0", "interval": 0.3,
                   "lines": ["+CREG: 1", "^RSSI: 20", "+CSQ: 20,0"]})
    ids = [gw.send([f"+3247000005{i}"], f"flooded {i}")["id"] for i in range(6)]
    sms = h.sim.wait_sms(6, timeout=60)
    h.sim.control({"cmd": "urc_flood", "modem": "gsm0", "interval": 0})
    for i in ids:
        a = gw.wait_state(i, "sent", timeout=30)
        assert [x["result"] for x in a["deliveries"][0]["attempts"]] == ["sent"], a
    time.sleep(1)
    texts = [m["text"] for m in h.sim.sms()]
    assert sorted(texts) == sorted(f"flooded {i}" for i in range(6)), texts  # no duplicates


def test_one_invalid_recipient_among_fifty_good_ones(h):
    gw = h.gateway(modems=["gsm0", "gsm1"])
    for m in ("gsm0", "gsm1"):
        h.sim.control({"cmd": "fail_number", "modem": m, "number": "+32479999999", "cms": 21})
    bad = gw.send(["+32479999999"], "never arrives")
    for i in range(50):
        gw.send([f"+324701{i:05d}"], f"good {i:02d}")
    sms = h.sim.wait_sms(50, timeout=120)
    assert sorted(m["text"] for m in sms) == sorted(f"good {i:02d}" for i in range(50))
    a = gw.wait_state(bad["id"], "failed", timeout=60)
    assert "21" in a["deliveries"][0]["attempts"][-1]["error"], a


if __name__ == "__main__":
    main(globals())
