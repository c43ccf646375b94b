"""Nothing accepted is lost, on one node, when the store or the transport misbehaves.

  a. another process write-locks the database for 4 s (a backup, an operator's sqlite3 shell)
     while alerts stream in: the clients wait, every one is answered "queued", status shows the
     store stalled meanwhile, and every alert is sent once;
  b. 96 requests with the longest text, of characters that JSON escapes, arrive in one loop
     turn: too big for one replicated payload, all are answered "queued" and stored;
  c. a delivery marked sending on this node with no send in progress (a result that was lost)
     is queued again, visibly, and sent.
"""
import os
import sqlite3
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dblock import lock_database  # noqa: E402
from gwtest import main, wait_until  # noqa: E402


def test_a_locked_database_is_a_delay_not_a_loss(h):
    gw = h.gateway()
    assert gw.send(["+32470000100"], "before the lock")["status"] == "queued"
    h.sim.wait_sms(1, timeout=30)
    locker = lock_database(os.path.join(gw.state_dir, "gatewayd.db"), 4.0)
    replies, stalled_seen = {}, []

    def submit(i):
        replies[i] = gw.client.request({"op": "send", "to": [f"+324700002{i:02d}"],
                                        "text": f"during the lock {i}", "key": f"lock/{i}"},
                                       timeout=30)

    threads = [threading.Thread(target=submit, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    while locker.is_alive():
        st = gw.status()
        if st.get("store", {}).get("ok") is False:
            stalled_seen.append(st["store"])
        time.sleep(0.2)
    for t in threads:
        t.join(30)
    assert all(not t.is_alive() for t in threads), "a client got no answer"
    bad = {i: r for i, r in replies.items() if r.get("status") != "queued"}
    assert not bad, f"not queued while the database was locked: {bad}"
    assert stalled_seen, "status never showed the store stalled during the lock"
    assert "locked by another process" in stalled_seen[0].get("error", ""), stalled_seen[0]
    wait_until(lambda: gw.status()["store"].get("ok") is True, 10, "the store to be ok again")
    want = {f"during the lock {i}" for i in range(20)}
    wait_until(lambda: want <= {m["text"] for m in h.sim.sms()}, 90, "all 20 sent")
    texts = [m["text"] for m in h.sim.sms() if m["text"] in want]
    assert sorted(texts) == sorted(want), f"sent more than once: {texts}"
    assert "Cannot commit" not in open(gw.log_path).read()
    print(f"     20 alerts during a 4 s lock: all queued, store seen stalled "
          f"({stalled_seen[0]}), all sent once")


def test_b_a_turn_too_big_for_one_payload(h):
    # A modem off the network: the alerts only have to be stored. Each request is as large as
    # the protocol allows once JSON-escaped: 4,999 quotes (the most a 7-bit SMS text takes;
    # two bytes each in JSON), 32 recipients, 32 copies, a key and a source of quotes. About
    # 12 KiB each, 1.1 MiB for the turn: more than one replicated payload carries.
    gw = h.gateway(extra="[submit]\nmax_parts = 255\nread_rate = 0\n",
                   modem_extra={"gsm0": "health_interval = 1\n"})
    h.sim.control({"cmd": "set", "modem": "gsm0", "registered": False})
    wait_until(lambda: gw.status()["modems"][0]["state"] == "failed", 20, "gsm0 to be failed")
    text = '"' * 4999
    ctx = zmq.Context.instance()
    socks = []
    for i in range(96):
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(gw.endpoint)
        socks.append(s)
    time.sleep(0.5)  # every connection made, so that the requests arrive together
    for i, s in enumerate(socks):
        s.send_json({"op": "send", "text": text, "key": f"{i:03d}" + '"' * 250,
                     "source": '"' * 128,
                     "to": [f"+3247{i:03d}{k:05d}" for k in range(32)],
                     "copy": [f"+3248{i:03d}{k:05d}" for k in range(32)]})
    replies = []
    for s in socks:
        assert s.poll(30000), "no reply"
        replies.append(s.recv_json())
        s.close()
    bad = [r for r in replies if r.get("status") != "queued"]
    assert not bad, f"{len(bad)} of 96 not queued: {bad[:3]}"
    for r in replies:
        got = gw.get(r["id"])
        assert got["ok"] and got["text"] == text and len(got["deliveries"]) == 64, \
            {k: got.get(k) for k in ("ok", "error")}
    log = open(gw.log_path).read()
    assert "Cannot publish" not in log, log[-2000:]
    print("     96 maximal requests (~1.1 MiB as JSON) in one turn: all queued and stored")


def test_c_a_send_left_sending_is_queued_again(h):
    gw = h.gateway(extra="[cluster]\ncheck_interval = 1\n",
                   modem_extra={"gsm0": "health_interval = 1\n"})
    h.sim.control({"cmd": "set", "modem": "gsm0", "registered": False})
    wait_until(lambda: gw.status()["modems"][0]["state"] == "failed", 20, "gsm0 to be failed")
    alert_id = gw.send(["+32470000400"], "lost result")["id"]
    # As if its send had been assigned and its result lost: sending on this node, no job.
    db = sqlite3.connect(os.path.join(gw.state_dir, "gatewayd.db"), timeout=10,
                         isolation_level=None)
    db.execute("UPDATE deliveries SET state = 'sending', node = 'a', modem = 'gsm0' "
               "WHERE alert_id = ?", (alert_id,))
    db.execute("UPDATE alerts SET state = 'sending' WHERE id = ?", (alert_id,))
    db.close()
    h.sim.control({"cmd": "set", "modem": "gsm0", "registered": True})
    sms = h.sim.wait_sms(1, timeout=30)
    assert sms[0]["text"] == "lost result", sms
    a = gw.wait_state(alert_id, "sent")
    errors = [x.get("error") for d in a["deliveries"] for x in d.get("attempts") or []]
    assert "no send was in progress for it on this node" in errors, a
    assert "no modem here has it: queued again" in open(gw.log_path).read()
    print("     a delivery left sending with no send in progress: queued again, sent")


if __name__ == "__main__":
    main(globals())
