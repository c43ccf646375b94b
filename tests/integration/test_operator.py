"""What an operator sees: gatewayctl against the real daemon, and the daemon under systemd's
notification protocol (READY, STATUS, WATCHDOG) with a notify socket of the test's own."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYCTL, main, wait_until  # noqa: E402


def ctl(gw, *args, timeout=30):
    p = subprocess.run([GATEWAYCTL, "-c", gw.config_path, "-t", "10", *args],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_gatewayctl_against_the_daemon(h):
    gw = h.gateway()
    rc, out, err = ctl(gw, "send", "--priority", "critical", "--key", "db01/ping",
                       "+32470000001", "-m", "db01 DOWN")
    assert rc == 0, (rc, out, err)
    alert_id, status = out.split()
    assert status == "queued" and len(alert_id) == 32, out
    rc, out, _ = ctl(gw, "send", "--key", "db01/ping", "+32470000001", "-m", "again")
    assert rc == 0 and out.split() == [alert_id, "duplicate"], out
    rc, out, err = ctl(gw, "send", "0470", "-m", "bad number")
    assert rc == 1 and "invalid_number" in err, (rc, out, err)

    h.sim.wait_sms(1, timeout=30)
    gw.wait_state(alert_id, "sent")
    rc, out, _ = ctl(gw, "show", alert_id)
    assert rc == 0, out
    for word in (alert_id, "sent", "critical", "db01/ping", "db01 DOWN", "+32470000001",
                 "gsm0"):
        assert word in out, (word, out)
    rc, out, _ = ctl(gw, "status")
    assert rc == 0, out
    imei = h.sim.stats("gsm0")["imei"]
    for word in ("gsm0", "ok", "Sim Net", "1 sent", f"IMEI {imei}", "registration home",
                 h.sim.device("gsm0")):
        assert word in out, (word, out)

    h.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
    rc, out, _ = ctl(gw, "send", "+32470000002", "-m", "waits in the queue")
    waiting = out.split()[0]
    wait_until(lambda: waiting in ctl(gw, "queue")[1], 10, "the alert in `queue`")
    rc, out, _ = ctl(gw, "ack", "--by", "alice", waiting)
    assert rc == 0 and "acknowledged" in out, out
    rc, out, _ = ctl(gw, "show", waiting)
    assert "alice" in out, out
    rc, out, err = ctl(gw, "show", "0" * 32)
    assert rc == 1 and "unknown_id" in err, (rc, out, err)

    gw.stop()
    p = subprocess.run([GATEWAYCTL, "-c", gw.config_path, "-t", "1", "status"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "no answer" in p.stderr, (p.returncode, p.stderr)


def test_systemd_notify_ready_status_watchdog(h):
    sock_path = os.path.join(h.dir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    h.sockets.append(sock)
    gw = h.gateway(start=False)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="400000")
    log = open(gw.log_path, "ab")
    gw.proc = subprocess.Popen([*h.wrapper, os.environ.get("GATEWAYD", ""), "-c",
                                gw.config_path], env=env, stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log)
    log.close()
    h.procs.append(gw.proc)
    env_pid = gw.proc.pid
    messages = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        text = "\n".join(messages)
        if "READY=1" in text and text.count("WATCHDOG=1") >= 3:
            break
    text = "\n".join(messages)
    assert "READY=1" in text, messages
    assert "STATUS=" in text, messages
    assert text.count("WATCHDOG=1") >= 3, messages  # fed from the loop, every ~200 ms
    os.kill(env_pid, 15)
    gw.proc.wait(20)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert "STOPPING=1" in "\n".join(messages), messages


if __name__ == "__main__":
    main(globals())
