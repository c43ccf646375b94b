"""Nothing accepted is lost: restart resume, kill -9 in the middle of a burst, and proof that
the commit is fsync'd before the client hears "queued"."""
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import Skip, main, wait_until  # noqa: E402


def test_restart_resumes_queued_and_interrupted_sends(h):
    gw = h.gateway(send_delay=2.0)
    ids = [gw.send([f"+3247000000{i}"], f"resume {i}")["id"] for i in range(6)]
    h.sim.wait_sms(1, timeout=30)
    assert gw.stop() == 0, gw.log_tail()
    before = {m["text"] for m in h.sim.sms()}
    assert len(before) < 6, "everything went out before the stop; the test proves nothing"
    h.sim.control({"cmd": "set", "modem": "gsm0", "send_delay": 0})
    gw.start(wait_modems=1)
    want = {f"resume {i}" for i in range(6)}
    wait_until(lambda: want <= {m["text"] for m in h.sim.sms()}, 90, "all six delivered")
    for i in ids:
        gw.wait_state(i, "sent")
    # A graceful stop lets the send in progress finish and records it: nothing repeats.
    time.sleep(1)
    texts = [m["text"] for m in h.sim.sms()]
    assert sorted(texts) == sorted(want), texts


def test_stop_waits_for_a_slow_send_and_records_it(h):
    """A send longer than the old 5 s stop grace (8 s here, within send_timeout): the stop waits
    for it, records it as sent, and the restart does not send it again."""
    gw = h.gateway(send_delay=8.0)
    alert = gw.send(["+32470000009"], "slow send")["id"]
    wait_until(lambda: [d.get("state") for d in gw.get(alert).get("deliveries", [])]
               == ["sending"], 20, "the send to start", interval=0.1)
    time.sleep(1)
    t0 = time.monotonic()
    assert gw.stop(timeout=40) == 0, gw.log_tail()
    took = time.monotonic() - t0
    assert [m["text"] for m in h.sim.sms()] == ["slow send"], gw.log_tail()
    assert "aborting" not in gw.log_tail(), gw.log_tail()
    h.sim.control({"cmd": "set", "modem": "gsm0", "send_delay": 0})
    gw.start(wait_modems=1)
    gw.wait_state(alert, "sent")
    time.sleep(2)
    assert [m["text"] for m in h.sim.sms()] == ["slow send"], "sent twice after the restart"
    print(f"    stop during an 8 s send took {took:.1f} s; sent once", flush=True)


def burst_with_kill(h, kill_after: int, total: int = 200, clients: int = 4):
    """Submits `total` alerts from `clients` threads; kill -9 the daemon once `kill_after` of
    them were accepted; restart; every accepted alert must reach the modems."""
    modems = ["gsm0", "gsm1", "gsm2", "gsm3"]
    gw = h.gateway(modems=modems)
    accepted = {}
    lock = threading.Lock()
    killed = threading.Event()

    def client(c):
        rnd = random.Random(c)
        for i in range(c, total, clients):
            if killed.is_set():
                return
            # Paced so that the modems are busy sending while alerts still arrive.
            time.sleep(rnd.uniform(0, 0.4))
            text = f"burst {i:03d}"
            try:
                r = gw.client.request({"to": [f"+324700{i:05d}"], "text": text}, timeout=3)
            except AssertionError:
                continue  # no answer: the daemon died with this request in flight
            if r.get("ok") and r.get("status") == "queued":
                with lock:
                    accepted[r["id"]] = text
                    if len(accepted) >= kill_after and not killed.is_set():
                        killed.set()
                        os.kill(gw.proc.pid, signal.SIGKILL)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert killed.is_set(), f"only {len(accepted)} accepted; the kill never happened"
    gw.proc.wait(10)
    time.sleep(0.5)
    sent_before = len(h.sim.sms())
    gw.start(wait_modems=len(modems))
    want = set(accepted.values())

    def all_delivered():
        got = {m["text"] for m in h.sim.sms()}
        return want <= got
    wait_until(all_delivered, 180, f"{len(want)} accepted alerts to reach the modems",
               interval=0.5)
    # The store agrees: every accepted alert is sent.
    for alert_id in list(accepted)[:: max(1, len(accepted) // 20)]:
        gw.wait_state(alert_id, "sent", timeout=30)
    print(f"    kill after {kill_after}: {len(accepted)} accepted, {sent_before} sent before "
          f"the kill, all {len(want)} delivered after the restart", flush=True)


def test_kill9_early_in_the_burst(h):
    burst_with_kill(h, random.randint(5, 40))


def test_kill9_mid_burst(h):
    burst_with_kill(h, random.randint(80, 120))


def test_kill9_late_in_the_burst(h):
    burst_with_kill(h, random.randint(160, 195))


def test_commit_is_fsynced_before_queued(h):
    """kill -9 cannot reveal a missing fsync (the page cache survives it), so trace the
    syscalls: between the request and the "queued" reply the daemon must fdatasync the WAL."""
    if not shutil.which("strace"):
        raise Skip("strace is not installed")
    gw = h.gateway()
    trace = os.path.join(h.dir, "strace.log")
    st = subprocess.Popen(["strace", "-f", "-ttt", "-y", "-e", "trace=fsync,fdatasync",
                           "-o", trace, "-p", str(gw.proc.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.procs.append(st)
    try:
        wait_until(lambda: os.path.exists(trace) and gw.status(), 10, "strace to attach")
        time.sleep(0.5)
        t_send = time.time()
        r = gw.send(["+32470000001"], "fsync me")
        t_reply = time.time()
        assert r["status"] == "queued", r
        time.sleep(0.3)
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(10)
    syncs = []
    for line in open(trace):
        parts = line.split()
        if len(parts) > 2 and ("fdatasync(" in line or "fsync(" in line) and "-wal>" in line:
            syncs.append(float(parts[1]))
    inside = [t for t in syncs if t_send <= t <= t_reply]
    assert inside, (f"no fsync of the WAL between the request ({t_send:.6f}) and the reply "
                    f"({t_reply:.6f}); syncs seen: {syncs}")


if __name__ == "__main__":
    main(globals())
