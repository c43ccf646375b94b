"""The gateway pages about itself ([health]): a condition that holds its threshold opens one
alert with a stable key, sent through what still works, and one gone for [health] clear resolves
it; end to end through the daemon and the simulated modems."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import main, wait_until  # noqa: E402

OPS = "+32470555222"  # the operator's phone
FAST = {m: "health_interval = 2\n" for m in ("gsm0", "gsm1")}


def health(**keys) -> str:
    return ("\n[submit]\nread_rate = 0\n[health]\n"
            f"to = {OPS}\npriority = normal\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))


def texts_to(h, number):
    return [m["text"] for m in h.sim.sms() if m["to"] == number]


def alerts_with_key(gw, key):
    return [a for a in gw.request({"op": "queue"})["alerts"] if a["key"] == key]


def test_a_modem_gone_pages_once_through_the_other_and_resolves_when_back(h):
    gw = h.gateway(modems=("gsm0", "gsm1"), extra=health(modem_down=5, clear=4),
                   modem_extra=FAST)
    # Health looks every 5 s from the daemon's start; a look that caught gsm1 still starting
    # (absent) is remembered until a look finds it gone for [health] clear, and would count
    # toward modem_down. Two looks with both modems up forget it.
    time.sleep(max(0.0, gw.started + 11 - time.monotonic()))
    # Timed from before the unplug: the daemon may see the port go before the simulator's
    # answer to the unplug reaches us, and the page leaves as soon as modem_down has passed.
    t0 = time.monotonic()
    h.sim.control({"cmd": "unplug", "modem": "gsm1"})
    got = wait_until(lambda: texts_to(h, OPS), 60, "the page about gsm1")
    assert time.monotonic() - t0 >= 5, "paged before modem_down"
    assert got[0].startswith("gateway a: modem gsm1 is absent: "), got
    # Still absent: no second page.
    time.sleep(8)
    assert len(texts_to(h, OPS)) == 1, texts_to(h, OPS)
    # Back: once it has been fine for [health] clear, the alert resolves.
    h.sim.control({"cmd": "replug", "modem": "gsm1"})
    clear = wait_until(lambda: [t for t in texts_to(h, OPS) if t.startswith("RESOLVED: ")], 60,
                       "the all-clear")
    assert clear[0].startswith("RESOLVED: gateway a: modem gsm1 is absent"), clear
    assert len(texts_to(h, OPS)) == 2, texts_to(h, OPS)


def test_a_delivery_that_does_not_leave_pages_and_resolves(h):
    stuck = "+32470555333"
    gw = h.gateway(modems=("gsm0", "gsm1"), extra=health(queue_age=8, clear=4),
                   modem_extra=FAST)
    # The network refuses this number for now (a temporary error): retried, never sent.
    for m in ("gsm0", "gsm1"):
        h.sim.control({"cmd": "fail_number", "modem": m, "number": stuck, "cms": 500})
    r = gw.send([stuck], "db01 DOWN")
    got = wait_until(lambda: texts_to(h, OPS), 60, "the page about the queue")
    assert got[0].startswith("gateway a: a delivery has waited "), got
    assert gw.get(r["id"])["state"] in ("queued", "sending")  # between tries, or in one
    for m in ("gsm0", "gsm1"):
        h.sim.control({"cmd": "fail_number", "modem": m, "number": stuck, "cms": None})
    gw.wait_state(r["id"], "sent", timeout=60)
    wait_until(lambda: [t for t in texts_to(h, OPS) if t.startswith("RESOLVED: gateway a: a "
                                                                     "delivery has waited")],
               60, "the all-clear")
    assert len(texts_to(h, OPS)) == 2, texts_to(h, OPS)


def test_a_modem_whose_reports_stop_is_degraded_routed_around_and_paged(h):
    reports = {m: "health_interval = 2\ndelivery_reports = yes\n" for m in ("gsm0", "gsm1")}
    gw = h.gateway(modems=("gsm0", "gsm1"), extra=health(report_wait=2, modem_down=1, clear=4),
                   modem_extra=reports)
    # gsm1 still sends, but no report comes back for what it sends (a SIM out of credit).
    h.sim.control({"cmd": "status_reports", "modem": "gsm1", "enabled": False})
    # All at once: both modems take their share.
    for alert in [gw.send([f"+3247066{i:04d}"], f"load {i}")["id"] for i in range(14)]:
        gw.wait_state(alert, "sent", timeout=30)
    by_modem = [m["modem"] for m in h.sim.sms() if m["to"].startswith("+3247066")]
    assert by_modem.count("gsm1") >= 5, by_modem
    st = wait_until(lambda: (lambda s: s if s["modems"][1]["state"] == "degraded" else None)(
        gw.status()), 30, "gsm1 degraded")
    gsm1 = st["modems"][1]
    assert gsm1["reason"].startswith("no delivery report for its last "), gsm1
    assert gsm1["delivery_report_ratio"] == 0.0, gsm1
    # gsm0's reports all come: its ratio reaches 1. (Not necessarily in the same status: the
    # ratio is counted at the health check, and a report the worker reads after its send's
    # report_wait ran out counts once the next check has seen it.)
    wait_until(lambda: gw.status()["modems"][0]["delivery_report_ratio"] == 1.0, 10,
               "every report of gsm0 counted")
    page = wait_until(lambda: [t for t in texts_to(h, OPS) if "gsm1" in t], 40, "the page")
    assert page[0].startswith("gateway a: modem gsm1: no delivery report"), page
    # Routed around: what comes now goes out through the healthy modem.
    before = len(h.sim.sms())
    for i in range(6):
        gw.wait_state(gw.send([f"+3247077{i:04d}"], f"after {i}")["id"], "sent", timeout=30)
    after = [m["modem"] for m in h.sim.sms()[before:] if m["to"].startswith("+3247077")]
    # (A degraded modem still takes a send while the healthy one is busy: nothing waits.)
    assert len(after) == 6 and after.count("gsm0") >= 5, after


def test_a_frozen_modem_with_sends_queued_is_paged_about(h):
    frozen = {"gsm0": "health_interval = 2\n",
              "gsm1": "health_interval = 2\nsend_timeout = 5\ncommand_timeout = 3\n"}
    gw = h.gateway(modems=("gsm0", "gsm1"), extra=health(modem_down=3, clear=4),
                   modem_extra=frozen)
    # gsm1 stops answering in the middle of a send, with more queued behind it.
    h.sim.control({"cmd": "hang", "modem": "gsm1", "on": True, "after": "CMGS"})
    ids = [gw.send([f"+3247088{i:04d}"], f"frozen {i}")["id"] for i in range(6)]
    page = wait_until(lambda: [t for t in texts_to(h, OPS) if "gsm1" in t], 90,
                      "the page about gsm1")
    assert page[0].startswith("gateway a: modem gsm1 is "), page
    # Nothing accepted is lost: what gsm1 held goes out through gsm0.
    for alert in ids:
        gw.wait_state(alert, "sent", timeout=60)
    h.sim.control({"cmd": "hang", "modem": "gsm1", "on": False})
    wait_until(lambda: [t for t in texts_to(h, OPS) if t.startswith("RESOLVED: ")], 90,
               "the all-clear once gsm1 answers again")


if __name__ == "__main__":
    main(globals())
