"""Delivery end to end: ZeroMQ in, the simulated modem decodes exactly the text out.

Each test asserts on what the simulator decoded from the PDUs it actually received.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import main, recv_events  # noqa: E402


def test_one_alert_reaches_the_modem(h):
    gw = h.gateway()
    sub = gw.subscribe()
    r = gw.send(["+32470000001"], "db01 DOWN")
    assert r["ok"] is True and r["status"] == "queued", r
    assert len(r["id"]) == 32 and all(c in "0123456789abcdef" for c in r["id"]), r
    sms = h.sim.wait_sms(1, timeout=30)
    assert [(m["to"], m["text"]) for m in sms] == [("+32470000001", "db01 DOWN")], sms
    a = gw.wait_state(r["id"], "sent")
    assert a["deliveries"][0]["state"] == "sent", a
    att = a["deliveries"][0]["attempts"]
    assert len(att) == 1 and att[0]["result"] == "sent" and att[0]["modem"] == "gsm0", att
    events = recv_events(sub, 5, until=lambda ev: any(t == "sent" for t, _ in ev))
    topics = [t for t, _ in events]
    assert "queued" in topics and "sent" in topics, topics
    sent = [e for t, e in events if t == "sent"][0]
    assert sent["id"] == r["id"] and sent["to"] == "+32470000001", sent
    time.sleep(1.0)
    assert len(h.sim.sms()) == 1, "sent more than once"


def test_every_recipient_and_copy(h):
    gw = h.gateway()
    to = ["+32470000001", "+32470000002", "+32470000003"]
    r = gw.send(to, "web01 DOWN", copy=["+32471000000"], source="nagios-1")
    assert r["status"] == "queued", r
    sms = h.sim.wait_sms(4, timeout=60)
    assert sorted(m["to"] for m in sms) == sorted(to + ["+32471000000"]), sms
    assert all(m["text"] == "web01 DOWN" for m in sms), sms
    a = gw.wait_state(r["id"], "sent")
    assert a["source"] == "nagios-1" and a["node"] == "a", a
    assert sorted(d["to"] for d in a["deliveries"]) == sorted(to + ["+32471000000"])


def test_unicode_and_long_text_arrive_intact(h):
    gw = h.gateway()
    uni = "Ωμέγα: диск заполнен ✓ 日本 — db01"
    long_text = ("db01 DOWN: " + "the quick brown fox jumps over the lazy dog " * 10)[:400]
    assert len(long_text) == 400
    r1 = gw.send(["+32470000001"], uni)
    r2 = gw.send(["+32470000002"], long_text)
    assert r1["status"] == "queued" and r2["status"] == "queued"
    sms = h.sim.wait_sms(2, timeout=60)
    got = {m["to"]: m for m in sms}
    assert got["+32470000001"]["text"] == uni, got["+32470000001"]
    assert got["+32470000002"]["text"] == long_text, got["+32470000002"]
    assert got["+32470000002"]["parts"] == 3, got["+32470000002"]


def test_critical_goes_before_normal(h):
    # A slow modem lets a queue build up: the critical alert overtakes the normal ones.
    gw = h.gateway(send_delay=1.5)
    first = gw.send(["+32470000001"], "normal 0")
    for i in range(1, 5):
        gw.send(["+32470000001"], f"normal {i}")
    crit = gw.send(["+32470000009"], "CRITICAL db01", priority="critical")
    assert first["status"] == "queued" and crit["status"] == "queued"
    sms = h.sim.wait_sms(6, timeout=90)
    order = [m["text"].split("\nReply ACK ")[0] for m in sms]
    # At most the two jobs already handed to the modem go before it.
    assert order.index("CRITICAL db01") <= 2, order
    assert sorted(order) == sorted(["CRITICAL db01"] + [f"normal {i}" for i in range(5)])


def test_ttl_expiry_is_visible(h):
    # No modem can send (all sends fail): the alert expires when its ttl runs out.
    gw = h.gateway()
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    sub = gw.subscribe(("expired",))
    r = gw.send(["+32470000001"], "short lived", ttl=3)
    a = gw.wait_state(r["id"], "expired", timeout=30)
    assert a["deliveries"][0]["state"] == "expired", a
    assert any(x["result"] == "error" and "500" in (x["error"] or "")
               for x in a["deliveries"][0]["attempts"]), a
    events = recv_events(sub, 5, until=lambda ev: ev)
    assert events and events[0][1]["id"] == r["id"], events
    q = gw.request({"op": "queue"})
    assert all(x["id"] != r["id"] for x in q["alerts"]), q


def test_cms_error_then_success_on_retry(h):
    gw = h.gateway()
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": 1, "cms": 500})
    r = gw.send(["+32470000001"], "retry me")
    sms = h.sim.wait_sms(1, timeout=60)
    assert [m["text"] for m in sms] == ["retry me"], sms
    a = gw.wait_state(r["id"], "sent")
    att = a["deliveries"][0]["attempts"]
    assert [x["result"] for x in att] == ["error", "sent"], att
    assert "500" in att[0]["error"], att


def test_one_bad_recipient_does_not_block_the_others(h):
    gw = h.gateway()
    h.sim.control({"cmd": "fail_number", "modem": "gsm0", "number": "+32479999999", "cms": 21})
    bad = gw.send(["+32479999999"], "to a bad number")
    goods = [gw.send([f"+3247000{i:04d}"], f"good {i}") for i in range(10)]
    sms = h.sim.wait_sms(10, timeout=90)
    assert sorted(m["text"] for m in sms) == sorted(f"good {i}" for i in range(10)), sms
    for g in goods:
        gw.wait_state(g["id"], "sent")
    a = gw.wait_state(bad["id"], "failed", timeout=60)
    assert all(x["result"] == "error" for x in a["deliveries"][0]["attempts"]), a
    assert "21" in a["deliveries"][0]["attempts"][-1]["error"], a


if __name__ == "__main__":
    main(globals())
