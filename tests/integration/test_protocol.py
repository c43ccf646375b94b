"""The submission protocol over a real ZeroMQ socket: every error code, dedupe, the ops."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import zmq  # noqa: E402
from gwtest import main, wait_until  # noqa: E402

GOOD = "+32470000001"
ROLES = ("[contact alice]\nnumber = +32470100001\n\n"
         "[role primary]\ncontacts = alice\n\n")


def err(reply, code):
    assert reply["ok"] is False and reply["error"] == code, reply
    assert reply["detail"], reply


def test_every_error_code(h):
    gw = h.gateway(extra=ROLES)
    c = gw.client
    err(c.request(None, raw=b"not json"), "bad_json")
    err(c.request(None, raw=b"[1, 2]"), "bad_json")
    err(c.request(None, raw=b'{"to": ["+32470000001"], "text": "\xff"}'), "bad_json")
    err(c.request({"text": "x"}), "bad_request")
    err(c.request({"to": [], "text": "x"}), "bad_request")
    err(c.request({"to": [GOOD], "text": ""}), "bad_request")
    err(c.request({"to": [GOOD], "text": "x", "priority": "urgent"}), "bad_request")
    err(c.request({"to": [GOOD], "text": "x", "ttl": -5}), "bad_request")
    err(c.request({"to": [GOOD], "text": "x", "priorty": "critical"}), "bad_request")
    err(c.request({"op": "launch"}), "unknown_op")
    err(c.request({"to": ["0470 12 34 56"], "text": "x"}), "invalid_number")
    err(c.request({"to": ["+1234"], "text": "x"}), "invalid_number")
    err(c.request({"to": ["role:nobody"], "text": "x"}), "unknown_role")
    err(c.request({"to": [GOOD], "text": "x" * 2000}), "text_too_long")
    err(c.request({"op": "get", "id": "0" * 32}), "unknown_id")
    err(c.request({"op": "ack", "id": "0" * 32}), "unknown_id")
    # A detail quoting a long non-ASCII value is cut before a character, never inside one
    # (else the reply is not valid UTF-8 and never leaves).
    for r in (c.request({"to": ["a" + "é" * 21], "text": "x"}),
              c.request({"to": ["role:" + "€" * 30], "text": "x"}),
              c.request({"op": "x" + "€" * 20})):
        assert r["ok"] is False and "\ufffd" not in r["detail"], r
    err(c.request({"to": ["a" + "é" * 21], "text": "x"}), "invalid_number")
    # The daemon still serves everyone after all that.
    r = c.request({"to": ["role:primary"], "text": "after the errors"})
    assert r["status"] == "queued", r
    sms = h.sim.wait_sms(1, timeout=30)
    assert sms[0]["to"] == "+32470100001" and sms[0]["text"] == "after the errors", sms


def test_max_parts(h):
    gw = h.gateway(extra="[submit]\nmax_parts = 2\n")
    err(gw.send([GOOD], "y" * 307), "text_too_long")  # 3 parts of 153
    assert gw.send([GOOD], "y" * 306)["status"] == "queued"  # 2 parts


def test_queue_full(h):
    gw = h.gateway(extra="[submit]\nmax_queue = 3\n")
    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    for i in range(3):
        assert gw.send([GOOD], f"fill {i}")["status"] == "queued"
    err(gw.send([GOOD], "one too many"), "queue_full")


def test_storage_error_on_a_full_disk(h):
    if os.geteuid() != 0:
        from gwtest import Skip
        raise Skip("needs root to mount a small tmpfs")
    import subprocess
    mnt = os.path.join(h.dir, "small")
    os.makedirs(mnt)
    if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]) != 0:
        from gwtest import Skip
        raise Skip("cannot mount a tmpfs here")
    try:
        h.start_sim()
        text, _, port = h.config("a", extra="")
        text = text.replace(f"state_dir = {h.dir}/state-a", f"state_dir = {mnt}/state")
        from gwtest import Gateway
        gw = Gateway(h, "a", text, f"{mnt}/state", port).start(wait_modems=1)
        assert gw.send([GOOD], "fits")["status"] == "queued"
        # Unbuffered: a write the full disk refuses leaves nothing for close() to flush.
        with open(os.path.join(mnt, "filler"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        replies = [gw.send([GOOD], f"no room {i} " + "z" * 150) for i in range(20)]
        codes = {r.get("error") for r in replies if not r["ok"]}
        assert "storage_error" in codes, replies
        assert all(r["ok"] is False for r in replies[-5:]), replies[-5:]
        # Nothing answered queued is missing from the store, and the daemon still answers.
        os.unlink(os.path.join(mnt, "filler"))
        for r in replies:
            if r["ok"]:
                assert gw.get(r["id"])["ok"], r
        assert gw.status()["ok"]
        gw.stop()
    finally:
        subprocess.call(["umount", "-l", mnt])


def test_dedupe_by_key_and_by_content(h):
    gw = h.gateway()
    a = gw.send([GOOD], "db01 DOWN", key="db01/ping")
    b = gw.send([GOOD], "db01 still DOWN", key="db01/ping")
    assert a["status"] == "queued" and b["status"] == "duplicate", (a, b)
    assert b["id"] == a["id"]
    # Default key: the sorted recipients and the text.
    c = gw.send(["+32470000002", GOOD], "same text")
    d = gw.send([GOOD, "+32470000002"], "same text")
    e = gw.send([GOOD], "other text")
    assert (c["status"], d["status"], e["status"]) == ("queued", "duplicate", "queued")
    assert d["id"] == c["id"]
    sms = h.sim.wait_sms(4, timeout=60)
    time.sleep(1.5)
    texts = sorted(m["text"] for m in h.sim.sms())
    assert texts == ["db01 DOWN", "other text", "same text", "same text"], texts


def test_dedupe_window_is_fixed_from_the_first(h):
    gw = h.gateway(extra="[dedupe]\nwindow = 2\n")
    a = gw.send([GOOD], "flap", key="k")
    time.sleep(1.0)
    b = gw.send([GOOD], "flap", key="k")
    time.sleep(1.3)  # 2.3 s after the first, 1.3 s after the second
    c = gw.send([GOOD], "flap", key="k")
    assert (a["status"], b["status"], c["status"]) == ("queued", "duplicate", "queued")
    assert c["id"] != a["id"]


def test_status_get_queue_ack(h):
    gw = h.gateway()
    st = gw.status()
    assert st["ok"] and st["node"]["name"] == "a", st
    assert st["cluster"]["enabled"] is False
    assert [m["name"] for m in st["cluster"]["members"]] == ["a"], st
    m = st["modems"][0]
    assert (m["node"], m["name"], m["state"]) == ("a", "gsm0", "ok"), m
    assert m["signal"] == 20 and m["operator"], m
    for k in ("queued", "sending", "sent", "failed", "expired"):
        assert k in st["queue"], st["queue"]
    assert st["voice"] == {"calls": 0, "last_outcome": None}, st["voice"]

    r = gw.send([GOOD], "status check", priority="critical", key="sc", source="t")
    gw.wait_state(r["id"], "sent")
    a = gw.get(r["id"])
    for k in ("id", "state", "priority", "text", "key", "source", "accepted_at", "node",
              "deliveries", "calls", "ack"):
        assert k in a, (k, a)
    assert a["priority"] == "critical" and a["key"] == "sc" and a["ack"] is None, a
    assert a["accepted_at"].endswith("Z") and "T" in a["accepted_at"], a
    st = gw.status()
    assert st["queue"]["sent"] >= 1 and st["modems"][0]["sent"] >= 1, st

    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    q1 = gw.send([GOOD], "stays queued 1")
    q2 = gw.send([GOOD], "stays queued 2")
    q = wait_until(lambda: (lambda x: x if len(x["alerts"]) == 2 else None)(
        gw.request({"op": "queue"})), 10, "two queued alerts")
    assert [x["id"] for x in q["alerts"]] == [q2["id"], q1["id"]], q  # newest first
    assert all("attempts" not in d for x in q["alerts"] for d in x["deliveries"]), q

    ack = gw.request({"op": "ack", "id": q1["id"], "by": "alice"})
    assert ack["ok"], ack
    again = gw.request({"op": "ack", "id": q1["id"], "by": "bob"})
    assert again["ok"], again
    a = gw.get(q1["id"])
    assert a["ack"]["by"] == "alice" and a["ack"]["via"] == "api", a


def test_garbage_frames_do_not_disturb_others(h):
    gw = h.gateway()
    dealer = h.ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(gw.endpoint)
    h.sockets.append(dealer)
    for _ in range(50):
        dealer.send_multipart([b"no", b"delimiter", b"\x00\xff"])
        dealer.send(b"\xff" * 1000)
    # DEALER with the empty delimiter frame is a supported client.
    dealer.send_multipart([b"", json.dumps({"op": "status"}).encode()])
    # Each broken message is answered, in the envelope it came in (no delimiter), in order.
    for _ in range(100):
        assert dealer.poll(5000), "no reply to a message without a delimiter"
        frames = dealer.recv_multipart()
        assert len(frames) == 1, frames
        err(json.loads(frames[0]), "bad_request")
    assert dealer.poll(5000), "no reply to a DEALER with a delimiter"
    frames = dealer.recv_multipart()
    assert frames[0] == b"" and json.loads(frames[-1])["ok"], frames
    r = gw.send([GOOD], "still fine")
    assert r["status"] == "queued"
    h.sim.wait_sms(1, timeout=30)


def test_broken_framing_gets_an_error_reply(h):
    gw = h.gateway(wait_modems=False)
    dealer = h.ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(gw.endpoint)
    h.sockets.append(dealer)
    status = json.dumps({"op": "status"}).encode()

    def reply():
        assert dealer.poll(10000), "silence: no reply to a broken envelope"
        return dealer.recv_multipart()

    # A DEALER that forgets the empty delimiter frame: told so, without a delimiter back.
    dealer.send(status)
    frames = reply()
    assert len(frames) == 1, frames
    r = json.loads(frames[0])
    err(r, "bad_request")
    assert "delimiter" in r["detail"], r
    # A request in two body frames.
    dealer.send_multipart([b"", status, status])
    frames = reply()
    assert frames[0] == b"" and len(frames) == 2, frames
    r = json.loads(frames[1])
    err(r, "bad_request")
    assert "2 frames after the delimiter" in r["detail"], r
    # A delimiter and no body at all.
    dealer.send_multipart([b"", b"", b"", b""])
    frames = reply()
    err(json.loads(frames[-1]), "bad_request")
    # The same socket, framed right, is served.
    dealer.send_multipart([b"", status])
    frames = reply()
    assert frames[0] == b"" and json.loads(frames[1])["ok"], frames


def test_read_ops_are_rate_limited(h):
    # Not waiting for the modems: that wait asks for status in a loop too.
    gw = h.gateway(wait_modems=False, extra="[submit]\nread_rate = 2/s\nread_burst = 5\n")
    c = gw.client
    # One client asking in a loop: the burst is served, then "rate_limited" (the refill of
    # 2/s cannot keep up with 30 requests answered one after the other).
    replies = [c.request({"op": op}) for op in ("status", "queue", "inbox", "oncall") * 8]
    limited = [r for r in replies if not r.get("ok")]
    assert all(r.get("ok") for r in replies[:4]), replies[:4]  # the start-up took one
    assert limited, "no read was rate limited"
    for r in limited:
        err(r, "rate_limited")
    assert "reads per second" in limited[0]["detail"], limited[0]
    # get is a read too.
    r = c.request({"op": "get", "id": "0" * 32})
    assert r.get("error") in ("rate_limited", "unknown_id"), r
    # Sends have a bucket of their own: reads used up do not cost an alert its place.
    r = c.request({"to": [GOOD], "text": "an alert after many reads"})
    assert r["ok"] and r["status"] == "queued", r
    # The bucket refills.
    wait_until(lambda: c.request({"op": "status"}).get("ok"), 30,
               "a read served again", interval=0.6)


if __name__ == "__main__":
    main(globals())
