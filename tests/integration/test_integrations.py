"""The monitoring integrations of packaging/integrations/ against a real gatewayd: the Nagios /
Icinga notification command, the Zabbix media-type script and the Alertmanager webhook
receiver. Each test asserts what reaches the phone (the simulated modem's decoded SMS) and the
alert as `{"op": "get"}` shows it (priority, dedupe key, source); a recovery resolves the alert
its problem paged (state "resolved", no alert of its own). The write-back of an acknowledgment
([hooks] on_ack) is tested here too."""
import hashlib
import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwtest import GATEWAYCTL, Skip, main, recv_events, wait_until  # noqa: E402

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
INTEGRATIONS = os.path.join(os.environ.get("GATEWAYD_INTEGRATIONS",
                                           os.path.join(SRC, "packaging", "integrations")))
NAGIOS = os.path.join(INTEGRATIONS, "nagios", "gatewayd-notify")
ACK_NAGIOS = os.path.join(INTEGRATIONS, "nagios", "gatewayd-ack-nagios")
ZABBIX = os.path.join(INTEGRATIONS, "zabbix", "gatewayd.sh")
ALERTMANAGER = os.path.join(INTEGRATIONS, "alertmanager", "gatewayd-alertmanager")

ONCALL = ("[contact alice]\nnumber = +32470100001\n\n"
          "[role primary]\ncontacts = alice\n\n")


def run(cmd, env=None):
    """Runs an integration script as the monitoring system would, with a clean environment
    (Nagios and Zabbix pass little) plus GATEWAYCTL and the given variables."""
    full = {"PATH": "/usr/bin:/bin", "GATEWAYCTL": GATEWAYCTL, **(env or {})}
    p = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=60,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def accepted(out: str) -> tuple[str, str]:
    words = out.split()
    assert len(words) == 2 and len(words[0]) == 32 and words[1] in ("queued", "duplicate"), out
    return words[0], words[1]


def with_ack(gw, alert_id: str, text: str) -> str:
    """The SMS of a critical alert ends with the line asking for the acknowledgment code."""
    return f"{text}\nReply ACK {gw.get(alert_id)['ack_code']} to acknowledge"


def alert_count(gw) -> int:
    """How many alerts the gateway holds (duplicates make none)."""
    return sum(gw.status()["queue"].values())


def sms_texts(h, to=None):
    return [m["text"] for m in h.sim.sms() if to is None or m["to"] == to]


def require_resolve(gw) -> None:
    """The tests of recoveries need the gateway's resolve (op and gatewayctl command)."""
    r = gw.request({"op": "resolve", "key": "gatewayd-test/nothing"})
    p = subprocess.run([GATEWAYCTL, "resolve", "--help"], capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    if r.get("error") == "unknown_op" or p.returncode != 0:
        raise Skip("this gateway does not resolve alerts yet (op resolve, gatewayctl resolve)")
    assert r.get("error") == "unknown_id", r


def no_alert_made(gw, action):
    """Runs action() and returns its result, asserting that no alert came of it (no "queued"
    event) but the gateway's own all-clear to those the problem paged (source "gatewayd",
    [escalation] notify_resolved): a recovery resolves, it is not an SMS of its own."""
    sub = gw.subscribe(["queued"])
    result = action()
    queued = [e for _, e in recv_events(sub, timeout=1.5) if e.get("source") != "gatewayd"]
    assert queued == [], queued
    return result


def assert_resolved(gw, alert_id: str, by: str) -> dict:
    """The alert as the user sees it once resolved by an integration."""
    a = gw.wait_state(alert_id, "resolved", timeout=10)
    assert a["resolved"]["by"] == by and a["resolved"]["at"], a
    return a


def test_nagios_problem_duplicate_and_what_does_not_page(h):
    gw = h.gateway()
    macros = ["--type", "PROBLEM", "--host", "db01", "--service", "ping",
              "--state", "CRITICAL", "--output", "PING CRITICAL - Packet loss = 100%",
              "--to", "+32 470 00 00 01"]
    rc, out, err = run([NAGIOS, "-c", gw.config_path, *macros])
    assert rc == 0, (rc, out, err)
    problem, status = accepted(out)
    assert status == "queued", out
    [sms] = h.sim.wait_sms(1, timeout=30)
    assert sms["to"] == "+32470000001", sms
    assert sms["text"] == with_ack(gw, problem, "PROBLEM db01/ping CRITICAL: PING CRITICAL - "
                                   "Packet loss = 100%"), sms
    a = gw.get(problem)
    assert (a["priority"], a["key"], a["source"]) == \
        ("critical", "nagios/db01/ping/PROBLEM/CRITICAL", "nagios"), a

    # The same notification again (a re-run, a second Nagios): folded into the first.
    rc, out, err = run([NAGIOS, "-c", gw.config_path, *macros])
    assert rc == 0 and accepted(out) == (problem, "duplicate"), (rc, out, err)

    # An acknowledgment made in Nagios, flapping and downtime page nobody: exit 0, a word on
    # stderr, no alert (Nagios's and Icinga 2's spellings, the latter through env).
    for kind in ("ACKNOWLEDGEMENT", "FLAPPINGSTART", "FLAPPINGSTOP", "DOWNTIMESTART",
                 "DOWNTIMEEND", "DOWNTIMECANCELLED"):
        rc, out, err = run([NAGIOS, "-c", gw.config_path, "--type", kind, "--host", "db01",
                            "--service", "ping", "--state", "CRITICAL", "--output", "x",
                            "--to", "+32470000001"])
        assert rc == 0 and out == "" and f"{kind} notification for db01/ping: not paged" in err, \
            (kind, rc, out, err)
    for kind in ("Acknowledgement", "FlappingEnd", "DowntimeRemoved"):
        rc, out, err = run([NAGIOS, "-c", gw.config_path], env={
            "NOTIFICATIONTYPE": kind, "HOSTNAME": "web01", "HOSTSTATE": "DOWN",
            "HOSTOUTPUT": "x", "CONTACTPAGER": "+32470000001"})
        assert rc == 0 and "not paged" in err, (kind, rc, out, err)
    assert alert_count(gw) == 1
    time.sleep(1)
    assert len(h.sim.sms()) == 1, h.sim.sms()


def test_nagios_recovery_resolves_the_problem(h):
    """Needs the gateway's resolve: skipped without it."""
    gw = h.gateway(extra=ONCALL)
    require_resolve(gw)
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "--type", "PROBLEM", "--host", "db01",
                        "--service", "ping", "--state", "CRITICAL",
                        "--output", "PING CRITICAL - Packet loss = 100%", "--to", "+32470000001"])
    assert rc == 0, (rc, out, err)
    problem, _ = accepted(out)
    h.sim.wait_sms(1, timeout=30)

    # The recovery, through the environment macros (enable_environment_macros=1): the problem's
    # alert is resolved by its key, and no alert of its own is made.
    recovery = {"NAGIOS_NOTIFICATIONTYPE": "RECOVERY", "NAGIOS_HOSTNAME": "db01",
                "NAGIOS_SERVICEDESC": "ping", "NAGIOS_SERVICESTATE": "OK",
                "NAGIOS_SERVICEOUTPUT": "PING OK - Packet loss = 0%, RTA = 0.50 ms",
                "NAGIOS_CONTACTPAGER": "+32470000001"}
    rc, out, err = no_alert_made(gw, lambda: run([NAGIOS, "-c", gw.config_path], env=recovery))
    assert rc == 0 and problem in out, (rc, out, err)
    assert_resolved(gw, problem, "nagios")
    assert not any("RECOVERY" in t for t in sms_texts(h)), sms_texts(h)

    # Again (a second Nagios, a retry): nothing open, which is no failure.
    rc, out, err = run([NAGIOS, "-c", gw.config_path], env=recovery)
    assert rc == 0 and "nothing open for nagios/db01/ping/PROBLEM/" in err, (rc, out, err)

    # A WARNING turning CRITICAL pages twice; the recovery resolves both. A host, from Icinga 2
    # (plain names), to the on-call role.
    ids = []
    for state in ("WARNING", "CRITICAL"):
        rc, out, err = run([NAGIOS, "-c", gw.config_path, "--type", "PROBLEM", "--host", "db02",
                            "--service", "Disk /var", "--state", state, "--output", "full",
                            "--role", "primary"])
        assert rc == 0, (rc, out, err)
        ids.append(accepted(out)[0])
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "--role", "primary"], env={
        "NOTIFICATIONTYPE": "PROBLEM", "HOSTNAME": "web01", "HOSTSTATE": "DOWN",
        "HOSTOUTPUT": "CRITICAL - Host Unreachable (10.0.0.7)"})
    assert rc == 0, (rc, out, err)
    down, _ = accepted(out)
    rc, out, err = no_alert_made(gw, lambda: run([
        NAGIOS, "-c", gw.config_path, "--type", "RECOVERY", "--host", "db02", "--service",
        "Disk /var", "--state", "OK", "--output", "ok", "--source", "icinga2"]))
    assert rc == 0, (rc, out, err)
    for alert in ids:
        assert_resolved(gw, alert, "icinga2")
    assert gw.get(down)["state"] != "resolved"
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "--source", "icinga2"], env={
        "NOTIFICATIONTYPE": "RECOVERY", "HOSTNAME": "web01", "HOSTSTATE": "UP",
        "HOSTOUTPUT": "PING OK"})
    assert rc == 0, (rc, out, err)
    assert_resolved(gw, down, "icinga2")


def test_nagios_host_role_long_output_and_errors(h):
    gw = h.gateway(extra=ONCALL)
    # A host notification from Icinga 2's env = { ... } (plain names), to the on-call role.
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "--role", "primary"], env={
        "NOTIFICATIONTYPE": "PROBLEM", "HOSTNAME": "web01", "HOSTSTATE": "DOWN",
        "HOSTOUTPUT": "CRITICAL - Host Unreachable (10.0.0.7)"})
    assert rc == 0, (rc, out, err)
    down, _ = accepted(out)
    a = gw.get(down)
    assert (a["priority"], a["key"]) == ("critical", "nagios/web01//PROBLEM/DOWN"), a
    assert [d["to"] for d in a["deliveries"]] == ["+32470100001"], a

    # A WARNING with a long, multi-line output: one SMS, cut at a word, normal priority.
    long_output = "DISK WARNING - free space: " + " ".join(
        f"/srv/volume{i} {i}%" for i in range(40)) + "\nsecond line"
    rc, out, err = run([NAGIOS, "-e", gw.endpoint, "--type", "PROBLEM", "--host", "db02",
                        "--service", "disk", "--state", "WARNING", "--output", long_output,
                        "--to", "+32470000002"])
    assert rc == 0, (rc, out, err)
    warning, _ = accepted(out)
    a = gw.get(warning)
    assert a["priority"] == "normal" and a["key"] == "nagios/db02/disk/PROBLEM/WARNING", a
    assert a["text"].startswith("PROBLEM db02/disk WARNING: DISK WARNING - free space: "), a
    assert a["text"].endswith("%...") and len(a["text"].encode()) <= 160, a["text"]
    assert "\n" not in a["text"], a["text"]

    h.sim.wait_sms(2, timeout=30)
    assert sorted(m["to"] for m in h.sim.sms()) == ["+32470000002", "+32470100001"]

    # Errors Nagios logs: a refused number (exit 1), no recipient, no gateway (exit 2).
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "--type", "PROBLEM", "--host", "x",
                        "--to", "0470"])
    assert rc == 1 and "invalid_number" in err and "not accepted" in err, (rc, out, err)
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "--type", "PROBLEM", "--host", "x",
                        "--to", ""])
    assert rc == 2 and "no recipient" in err, (rc, out, err)
    gw.stop()
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "-t", "1", "--type", "PROBLEM",
                        "--host", "x", "--to", "+32470000003"])
    assert rc == 2 and "no answer" in err, (rc, out, err)


ZABBIX_PROBLEM = ("Problem started at 10:15:02 on 2026.11.23\r\n"
                  "Host: db01\r\n"
                  "Severity: Disaster\r\n"
                  "Operational data: 99 %\r\n"
                  "Event ID: 4242\r\n"
                  "Status: PROBLEM\r\n")


def test_zabbix_media_script(h):
    gw = h.gateway(extra=ONCALL)
    cmd = [ZABBIX, "-c", gw.config_path, "+32470000002", "Problem: Disk full on db01",
           ZABBIX_PROBLEM]
    rc, out, err = run(cmd)
    assert rc == 0, (rc, out, err)
    problem, status = accepted(out)
    assert status == "queued", out
    [sms] = h.sim.wait_sms(1, timeout=30)
    assert sms["to"] == "+32470000002", sms
    assert sms["text"] == with_ack(gw, problem, "Problem: Disk full on db01\n"
                                   "Problem started at 10:15:02 on 2026.11.23\n"
                                   "Host: db01\nOperational data: 99 %"), sms
    a = gw.get(problem)
    assert (a["priority"], a["key"], a["source"]) == \
        ("critical", "zabbix/4242/PROBLEM", "zabbix"), a

    # Zabbix retrying the same alert: folded into the first.
    rc, out, err = run(cmd)
    assert rc == 0 and accepted(out) == (problem, "duplicate"), (rc, out, err)

    # Severity High: critical too; Warning: normal; no event id: the gateway's own key.
    rc, out, err = run([ZABBIX, "-e", gw.endpoint, "+32470000003", "Problem: High CPU",
                        "Severity: High\nEvent ID: 4243"])
    assert rc == 0, (rc, out, err)
    a = gw.get(accepted(out)[0])
    assert (a["priority"], a["key"], a["text"]) == \
        ("critical", "zabbix/4243/PROBLEM", "Problem: High CPU"), a
    rc, out, err = run([ZABBIX, "-e", gw.endpoint, "+32470000003", "Problem: High memory",
                        "Severity: Warning"])
    assert rc == 0, (rc, out, err)
    a = gw.get(accepted(out)[0])
    assert a["priority"] == "normal" and a["text"] == "Problem: High memory", a
    assert not a["key"].startswith("zabbix/"), a
    h.sim.wait_sms(3, timeout=30)
    assert alert_count(gw) == 3
    assert len(h.sim.sms()) == 3

    rc, out, err = run([ZABBIX, "-c", gw.config_path, "+32470000002", "only two"])
    assert rc == 2 and "SENDTO SUBJECT MESSAGE" in err, (rc, out, err)
    rc, out, err = run([ZABBIX, "-c", gw.config_path, "role:nobody", "Problem: x", ""])
    assert rc == 1 and "unknown_role" in err, (rc, out, err)


def test_zabbix_recovery_resolves_the_problem(h):
    """Needs the gateway's resolve: skipped without it."""
    gw = h.gateway(extra=ONCALL)
    require_resolve(gw)
    rc, out, err = run([ZABBIX, "-c", gw.config_path, "+32470000002",
                        "Problem: Disk full on db01", ZABBIX_PROBLEM])
    assert rc == 0, (rc, out, err)
    problem, _ = accepted(out)
    h.sim.wait_sms(1, timeout=30)

    # The recovery as Zabbix's own template sends it (the status from the subject): the
    # problem's alert is resolved, no SMS of its own.
    recovery = [ZABBIX, "-c", gw.config_path, "role:primary",
                "Resolved in 5m 3s: Disk full on db01", "Severity: Disaster\nEvent ID: 4242\n"]
    rc, out, err = no_alert_made(gw, lambda: run(recovery))
    assert rc == 0 and problem in out, (rc, out, err)
    assert_resolved(gw, problem, "zabbix")
    assert sms_texts(h, "+32470100001") == [], h.sim.sms()
    # Zabbix retrying it: nothing open, no failure.
    rc, out, err = run(recovery)
    assert rc == 0 and "nothing open for zabbix/4242/PROBLEM" in err, (rc, out, err)

    # Our template's recovery (Status: RESOLVED) of another event, to another number.
    rc, out, err = run([ZABBIX, "-e", gw.endpoint, "+32470000003", "PROBLEM db02: High CPU",
                        "Event ID: 4243\nStatus: PROBLEM\nSeverity: High\n"])
    assert rc == 0, (rc, out, err)
    cpu, _ = accepted(out)
    rc, out, err = no_alert_made(gw, lambda: run([
        ZABBIX, "-e", gw.endpoint, "--source", "zabbix-2", "+32470000003",
        "RESOLVED db02: High CPU",
        "Resolved at 10:30:00 after 15m\nEvent ID: 4243\nStatus: RESOLVED\nSeverity: High\n"]))
    assert rc == 0, (rc, out, err)
    assert_resolved(gw, cpu, "zabbix-2")


def test_zabbix_trailing_text_cannot_lower_the_priority_or_pick_the_key(h):
    gw = h.gateway(extra=ONCALL)

    def send(subject, message):
        rc, out, err = run([ZABBIX, "-e", gw.endpoint, "+32470000002", subject, message])
        assert rc == 0, (rc, out, err)
        return accepted(out)

    # Text after the severity (a custom template, an operational data macro) keeps it.
    alert, _ = send("PROBLEM db01: disk", "Severity: Disaster (was Warning)\nEvent ID: 4300\n"
                    "Status: PROBLEM\n")
    a = gw.get(alert)
    assert (a["priority"], a["key"]) == ("critical", "zabbix/4300/PROBLEM"), a
    # Text after the status or the id is not part of the key.
    alert, _ = send("PROBLEM db02: disk", "Event ID: 4301 x\nStatus: PROBLEM/../4300\n"
                    "Severity: High\n")
    a = gw.get(alert)
    assert a["priority"] == "critical" and not a["key"].startswith("zabbix/"), a
    # An update whose comment imitates the problem's lines: not folded into the problem as a
    # duplicate, not lowered either.
    alert, status = send("UPDATE db01: disk", "bob: on it\nStatus: PROBLEM\nSeverity: Warning\n"
                         "Event ID: 4300\nStatus: UPDATE 2026.11.23 10:20:00\n"
                         "Severity: Disaster\n")
    assert status == "queued", status
    a = gw.get(alert)
    assert a["key"] != "zabbix/4300/PROBLEM" and a["priority"] == "critical", a
    # The template's own update: its key carries its time.
    alert, _ = send("UPDATE db01: disk", "bob: on it\nEvent ID: 4300\n"
                    "Status: UPDATE 2026.11.23 10:25:00\nSeverity: Disaster\n")
    a = gw.get(alert)
    assert (a["priority"], a["key"]) == ("normal", "zabbix/4300/UPDATE-2026.11.23-10:25:00"), a


# Alertmanager's webhook, version 4, as it posts a group of two firing alerts.
def webhook(status="firing", alert_status=None, severity="critical", starts="2026-11-23T10:00:00Z"):
    alert_status = alert_status or status
    alerts = []
    for host, fp in (("db01", "3e1f0a7c9b2d4e51"), ("db02", "7b9c2d4e51a03e1f")):
        alerts.append({
            "status": alert_status,
            "labels": {"alertname": "HighLoad", "instance": f"{host}:9100", "job": "node",
                       "severity": severity, "team": "dba"},
            "annotations": {"summary": "load above 10",
                            "description": f"{host} has had a load above 10 for 5 minutes"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if alert_status == "firing"
            else "2026-11-23T10:20:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=node_load1+%3E+10",
            "fingerprint": fp})
    return {
        "version": "4",
        "groupKey": '{}/{team="dba"}:{alertname="HighLoad"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "sms",
        "groupLabels": {"alertname": "HighLoad"},
        "commonLabels": {"alertname": "HighLoad", "job": "node", "severity": severity,
                         "team": "dba"},
        "commonAnnotations": {"summary": "load above 10"},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts}


def am_key(n: dict) -> str:
    """The dedupe key as the README documents it."""
    members = sorted(f"{a['fingerprint']}|{a['status']}|{a['startsAt']}" for a in n["alerts"])
    digest = hashlib.sha256("\n".join(members).encode()).hexdigest()[:12]
    return f"alertmanager/{n['groupKey']}/{n['status']}/{digest}"


def start_receiver(h, *args):
    p = subprocess.Popen(["/usr/bin/python3", ALERTMANAGER, "--listen", "127.0.0.1:0", *args],
                         stdout=subprocess.PIPE, stderr=open(os.path.join(
                             h.dir, "alertmanager.log"), "ab"), stdin=subprocess.DEVNULL,
                         env={"PATH": "/usr/bin:/bin", "GATEWAYCTL": GATEWAYCTL}, text=True)
    h.procs.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 30)
    assert ready, "the receiver printed nothing within 30 s"
    line = p.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, line
    return line.split("listening on ")[1].strip()


def post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_alertmanager_receiver(h):
    gw = h.gateway(extra=ONCALL)
    url = start_receiver(h, "-c", gw.config_path, "-t", "2")

    firing = webhook()
    code, r = post(url, firing)
    assert code == 200 and r["status"] == "queued", (code, r)
    [sms] = h.sim.wait_sms(1, timeout=30)
    assert sms["to"] == "+32470100001", sms  # role:primary, the default recipient
    assert sms["text"] == with_ack(gw, r["id"], "[FIRING:2] HighLoad db01, db02: "
                                   "load above 10"), sms
    a = gw.get(r["id"])
    assert (a["priority"], a["key"], a["source"]) == \
        ("critical", am_key(firing), "alertmanager"), a
    assert a["key"].startswith('alertmanager/{}/{team="dba"}:{alertname="HighLoad"}/firing/')

    # Alertmanager retrying (or its HA peer sending the same): 200, the same alert.
    code, r2 = post(url, firing)
    assert code == 200 and (r2["id"], r2["status"]) == (r["id"], "duplicate"), (code, r2)

    for garbage in (b"{not json", b"[]", json.dumps({"status": "firing"}).encode(),
                    b"\xff\xfe"):
        code, r3 = post(url, garbage)
        assert code == 400 and r3["error"] == "bad_payload", (garbage, code, r3)

    assert alert_count(gw) == 1 and len(h.sim.sms()) == 1, h.sim.sms()

    # The gateway gone: 5xx, so that Alertmanager tries again.
    gw.stop()
    code, r5 = post(url, webhook(starts="2026-11-23T11:00:00Z"))
    assert 500 <= code <= 599 and r5["error"] == "no_answer", (code, r5)


def test_alertmanager_resolved_resolves_the_group(h):
    """Needs the gateway's resolve: skipped without it."""
    gw = h.gateway(extra=ONCALL)
    require_resolve(gw)
    url = start_receiver(h, "-c", gw.config_path, "-t", "2")

    firing = webhook()
    code, r = post(url, firing)
    assert code == 200 and r["status"] == "queued", (code, r)
    h.sim.wait_sms(1, timeout=30)

    # Resolved: the firing alert is resolved by its key, no alert of its own.
    code, r2 = no_alert_made(gw, lambda: post(url, webhook("resolved")))
    assert code == 200 and r2["status"] == "resolved" and r2["resolved"] == [r["id"]], \
        (code, r2)
    assert r2["key"] == am_key(firing), r2
    assert_resolved(gw, r["id"], "alertmanager")
    assert not any("[RESOLVED:" in t for t in sms_texts(h)), sms_texts(h)
    # Alertmanager retrying, or its HA peer: nothing open, 200 all the same.
    code, r3 = post(url, webhook("resolved"))
    assert code == 200 and r3["status"] == "nothing_open", (code, r3)

    # A group that grew while firing paged twice (db01, then db01 and db02); its resolved
    # notification resolves both.
    starts = "2026-11-23T12:00:00Z"
    one = webhook(starts=starts)
    one["alerts"] = one["alerts"][:1]
    code, first = post(url, one)
    assert code == 200 and first["status"] == "queued", (code, first)
    code, both = post(url, webhook(starts=starts))
    assert code == 200 and both["status"] == "queued" and both["id"] != first["id"], \
        (code, both)
    code, r4 = no_alert_made(gw, lambda: post(url, webhook("resolved", starts=starts)))
    assert code == 200 and sorted(r4["resolved"]) == sorted([first["id"], both["id"]]), \
        (code, r4)
    for alert in (first["id"], both["id"]):
        assert_resolved(gw, alert, "alertmanager")


def raw_post(url: str, head: str, body: bytes = b"") -> tuple[int, dict]:
    """A POST written by hand (what urllib would not send); the status and the JSON answer.
    A closed connection or no answer within 10 s is (0, {})."""
    import socket
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST / HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode() + body)
        data = b""

        def complete():
            head, sep, rest = data.partition(b"\r\n\r\n")
            lengths = [int(x.split(b":")[1]) for x in head.split(b"\r\n")
                       if x.lower().startswith(b"content-length:")]
            return sep and lengths and len(rest) >= lengths[0]
        try:
            while not complete():
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    if not data.startswith(b"HTTP/1."):
        return 0, {}
    status = int(data.split()[1])
    answer = data.split(b"\r\n\r\n", 1)[1]
    return status, json.loads(answer) if answer.strip() else {}


def test_alertmanager_bad_bodies_get_400(h):
    # No gateway is needed: none of these reaches it.
    url = start_receiver(h, "-e", "tcp://127.0.0.1:9", "-t", "1")
    ok = json.dumps(webhook()).encode()
    # A negative or malformed Content-Length: 400 at once, not a wait for the end of input.
    for length in ("-1", "-5", "+5", "1_0", "5x", "99999999999999999999"):
        code, r = raw_post(url, f"Content-Length: {length}\r\n", ok)
        assert code == 400 and r["error"] == "bad_length", (length, code, r)
    code, r = raw_post(url, f"Content-Length: {len(ok)}\r\nContent-Length: 3\r\n", ok)
    assert code == 400 and r["error"] == "bad_length", (code, r)
    # Over the cap: 413 without reading it.
    code, r = raw_post(url, f"Content-Length: {2 << 20}\r\n")
    assert code == 413 and r["error"] == "too_large", (code, r)
    # A NUL or a lone surrogate in a string: 400 with the reason, the connection answered.
    for bad in ("\\u0000", "\\ud800", "\\udfff", "db01\\u0000DOWN"):
        body = ok.replace(b'"load above 10"', f'"load {bad}"'.encode())
        assert body != ok
        code, r = raw_post(url, f"Content-Length: {len(body)}\r\n", body)
        assert code == 400 and r["error"] == "bad_payload", (bad, code, r)
        assert "NUL" in r["detail"] or "surrogate" in r["detail"], r
    key = json.loads(ok)
    key["groupKey"] = "g\u0000k"
    body = json.dumps(key).encode()
    code, r = raw_post(url, f"Content-Length: {len(body)}\r\n", body)
    assert code == 400 and "NUL" in r["detail"], (code, r)
    # The receiver still serves.
    code, r = raw_post(url, "Content-Length: 2\r\n", b"[]")
    assert code == 400 and r["error"] == "bad_payload", (code, r)


def test_alertmanager_recipient_label(h):
    gw = h.gateway(extra=ONCALL)
    url = start_receiver(h, "-e", gw.endpoint, "--to-label", "pager", "--to", "role:primary")
    n = webhook(severity="warning")
    for a in n["alerts"]:
        a["labels"]["pager"] = "+32470000005"
    code, r = post(url, n)
    assert code == 200 and r["status"] == "queued", (code, r)
    a = gw.wait_state(r["id"], "sent")
    assert a["priority"] == "normal" and [d["to"] for d in a["deliveries"]] == \
        ["+32470000005"], a
    # Without the label: the --to recipient.
    code, r = post(url, webhook(severity="warning", starts="2026-11-23T12:00:00Z"))
    assert code == 200, (code, r)
    assert [d["to"] for d in gw.get(r["id"])["deliveries"]] == ["+32470100001"]
    # A label naming an unknown role: the gateway refuses, 502 with its reason.
    n = webhook(starts="2026-11-23T13:00:00Z")
    n["commonLabels"]["pager"] = "role:nobody"
    code, r = post(url, n)
    assert code == 502 and r["error"] == "unknown_role", (code, r)
    h.sim.wait_sms(2, timeout=30)
    assert sorted(m["to"] for m in h.sim.sms()) == ["+32470000005", "+32470100001"]


# [hooks] on_ack: the write-back to the monitoring system, run by the node where the ack was made.
ENV_HOOK = """#!/usr/bin/python3
import json, os, sys
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"""


def write_script(h, name: str, text: str) -> str:
    path = os.path.join(h.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, stat.S_IRWXU)
    return path


def ctl(gw, *args):
    p = subprocess.run([GATEWAYCTL, "-c", gw.config_path, *args], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def log_has(gw, text: str) -> bool:
    with open(gw.log_path, errors="replace") as f:
        return text in f.read()


def hook_children(gw, argv: list[str]) -> list[int]:
    """The processes the daemon started that run argv (its hooks still running)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")[:-1]
        except (OSError, IndexError, ValueError):
            continue
        if ppid == gw.proc.pid and [c.decode() for c in cmdline] == argv:
            found.append(int(pid))
    return found


def test_on_ack_hook_gets_the_alert_in_its_environment(h):
    out = os.path.join(h.dir, "hook.json")
    hook = write_script(h, "hook", ENV_HOOK)
    gw = h.gateway(extra=f"[hooks]\non_ack = {hook}  {out}\n")
    # Text a shell would act on: the hook sees it as data, in its environment only.
    text = "db01 is DOWN; $(touch /tmp/pwned) `id` 'quoted' \"double\" \\ *"
    r = gw.send(["+32470000001"], text, key="nagios/db01/ping", source="nagios-1",
                priority="critical")
    assert r["status"] == "queued", r
    rc, stdout, err = ctl(gw, "ack", "--by", "alice", r["id"])
    assert rc == 0 and "acknowledged" in stdout, (rc, stdout, err)
    wait_until(lambda: os.path.exists(out), 10, "the hook to write its environment")
    with open(out) as f:
        seen = json.load(f)
    assert seen["argv"] == [out], seen
    env = seen["env"]
    mine = {k: v for k, v in env.items() if k.startswith("GATEWAYD_")}
    assert mine.pop("GATEWAYD_ACK_AT").endswith("Z"), env
    assert mine == {
        "GATEWAYD_HOOK": "on_ack", "GATEWAYD_NODE": "a", "GATEWAYD_ALERT_ID": r["id"],
        "GATEWAYD_ALERT_KEY": "nagios/db01/ping", "GATEWAYD_ALERT_SOURCE": "nagios-1",
        "GATEWAYD_ALERT_TEXT": text, "GATEWAYD_ALERT_PRIORITY": "critical",
        "GATEWAYD_ACK_BY": "alice", "GATEWAYD_ACK_VIA": "api"}, mine
    # A small environment of its own, not the daemon's.
    assert "PATH" in env and not set(env) & {"NOTIFY_SOCKET", "GATEWAYD", "GATEWAYCTL"}, env
    assert not os.path.exists("/tmp/pwned")
    wait_until(lambda: log_has(gw, "Hook on_ack ended"), 10, "the hook's outcome logged")
    # ... and in the alert's story, as a write-back.
    story = wait_until(lambda: [e for e in gw.get(r["id"])["history"]
                                if e["what"] == "write-back"], 10, "the write-back line")
    assert story[0]["node"] == "a" and story[0]["detail"].startswith(
        "on_ack ended after "), story

    # A repeated ack changes nothing and runs nothing.
    os.unlink(out)
    rc, stdout, err = ctl(gw, "ack", "--by", "bob", r["id"])
    assert rc == 0, (rc, stdout, err)
    time.sleep(1.5)
    assert not os.path.exists(out)

    # A hook that fails is logged with its exit status, one killed by a signal with the
    # signal; the gateway carries on. [hooks] changes with a reload (SIGHUP).
    for script, logged in (("#!/bin/sh\nexit 3\n", "exit status 3"),
                           ("#!/bin/sh\nkill -TERM $$\n", "killed by signal TERM")):
        hook_path = write_script(h, "failing", script)
        with open(gw.config_path) as f:
            conf = f.read()
        with open(gw.config_path, "w") as f:
            f.write(re.sub(r"on_ack = .*", f"on_ack = {hook_path}", conf))
        reloads = open(gw.log_path, errors="replace").read().count("Reloaded ")
        os.kill(gw.proc.pid, signal.SIGHUP)
        wait_until(lambda: open(gw.log_path, errors="replace").read().count("Reloaded ")
                   > reloads, 10, "the reload")
        r = gw.send(["+32470000001"], f"db02 is DOWN ({logged})")
        rc, stdout, err = ctl(gw, "ack", r["id"])
        assert rc == 0, (rc, stdout, err)
        wait_until(lambda: log_has(gw, "Hook on_ack failed after") and log_has(gw, logged),
                   10, f"the hook's {logged} logged")
    assert gw.status()["ok"] is True


def test_a_reload_that_needs_a_restart_is_refused_by_name(h):
    # The connection caps sized the sockets and the descriptor budget at start: a reload that
    # changes one is refused by name, the running configuration stays, and status says so
    # until a reload succeeds.
    gw = h.gateway()
    with open(gw.config_path) as f:
        conf = f.read()
    assert "[submit]\n" in conf, conf

    def reload(text):
        with open(gw.config_path, "w") as f:
            f.write(text)
        os.kill(gw.proc.pid, signal.SIGHUP)

    reload(conf.replace("[submit]\n", "[submit]\nmax_clients = 7\n", 1))
    st = wait_until(lambda: (lambda s: s if s["config"].get("reload_refused") else None)(
        gw.status()), 10, "the refused reload in status")
    assert st["config"]["reload_refused"] == (
        "[submit] max_clients changed: it needs a restart (systemctl restart gatewayd)"), st
    assert log_has(gw, "refused, the running configuration stays: [submit] max_clients")
    reload(conf)
    wait_until(lambda: "reload_refused" not in gw.status()["config"], 10,
               "the warning gone after a reload that succeeds")
    assert gw.send(["+32470000001"], "still serving")["status"] == "queued"


def test_on_ack_hook_timeout_kills_it_and_the_gateway_keeps_answering(h):
    gw = h.gateway(extra="[hooks]\non_ack = /bin/sleep 100\ntimeout = 2\n")
    ids = [gw.send(["+32470000001"], f"host{i} is DOWN")["id"] for i in range(6)]
    t0 = time.monotonic()
    for alert in ids:
        rc, stdout, err = ctl(gw, "ack", alert)
        assert rc == 0, (rc, stdout, err)
    # At most 4 at once; the others wait their turn. The loop is not blocked meanwhile.
    wait_until(lambda: len(hook_children(gw, ["/bin/sleep", "100"])) == 4, 10, "4 hooks")
    for _ in range(10):
        t = time.monotonic()
        assert gw.status()["ok"] is True
        assert time.monotonic() - t < 1.0
        assert len(hook_children(gw, ["/bin/sleep", "100"])) <= 4
        time.sleep(0.1)
    # Killed after the timeout; then the 2 that waited run, and are killed in turn.
    wait_until(lambda: open(gw.log_path, errors="replace").read().count(
        "Hook on_ack killed: still running after its timeout of 2 s") == 6, 20,
        "six hooks killed at their timeout")
    assert time.monotonic() - t0 < 15
    wait_until(lambda: not hook_children(gw, ["/bin/sleep", "100"]), 5, "no hook left")
    assert gw.get(ids[0])["ack"]["by"], gw.get(ids[0])
    assert gw.status()["ok"] is True


def test_ack_nagios_writes_the_acknowledgment(h):
    """gatewayd-ack-nagios as gatewayd runs it: the alert in its environment."""
    cmd_file = os.path.join(h.dir, "nagios.cmd")
    open(cmd_file, "w").close()

    def ack(key, *options, **env):
        full = {"GATEWAYD_ALERT_KEY": key, "GATEWAYD_ALERT_ID": "ab" * 16,
                "GATEWAYD_ACK_BY": "alice", "GATEWAYD_ACK_VIA": "sms", **env}
        return run([ACK_NAGIOS, "--command-file", cmd_file, *options], env=full)

    def lines():
        with open(cmd_file) as f:
            return f.read().splitlines()

    t0 = int(time.time())
    rc, out, err = ack("nagios/db01/Disk /var/PROBLEM/CRITICAL")
    assert rc == 0, (rc, out, err)
    rc, out, err = ack("nagios/web01//PROBLEM/DOWN", "--sticky=0", "--no-notify",
                       "--author", "ops")
    assert rc == 0, (rc, out, err)
    written = lines()
    assert len(written) == 2, written
    stamps = [int(w[1:w.index("]")]) for w in written]
    assert all(t0 <= t <= time.time() + 1 for t in stamps), written
    comment = f"Acknowledged on gatewayd by alice via sms (alert {'ab' * 16})"
    assert [w.split("] ", 1)[1] for w in written] == [
        f"ACKNOWLEDGE_SVC_PROBLEM;db01;Disk /var;2;1;1;alice;{comment}",
        f"ACKNOWLEDGE_HOST_PROBLEM;web01;0;0;1;ops;{comment}"], written

    # Another system's alert: nothing to do. A key that would smuggle a second command in,
    # or a hashed one: refused, nothing written. No command file (Nagios down): an error.
    rc, out, err = ack("zabbix/4242/PROBLEM")
    assert rc == 0 and "not a Nagios problem" in err, (rc, out, err)
    for bad in ("nagios/db01/ping\n[1] SHUTDOWN_PROGRAM/PROBLEM/CRITICAL",
                "nagios/db01;x/ping/PROBLEM/CRITICAL", "nagios/1234567/PROBLEM"):
        rc, out, err = ack(bad)
        assert rc == 1, (bad, rc, out, err)
    assert len(lines()) == 2, lines()
    rc, out, err = run([ACK_NAGIOS, "--command-file", os.path.join(h.dir, "none")],
                       env={"GATEWAYD_ALERT_KEY": "nagios/a/b/PROBLEM/CRITICAL"})
    assert rc == 1 and "no command file" in err, (rc, out, err)

    # Wired as [hooks] on_ack: a Nagios problem paged, acknowledged with gatewayctl, written
    # back to the command file by the node where the ack was made.
    os.unlink(cmd_file)
    open(cmd_file, "w").close()
    gw = h.gateway(extra=f"[hooks]\non_ack = {ACK_NAGIOS} --command-file {cmd_file}\n")
    rc, out, err = run([NAGIOS, "-c", gw.config_path, "--type", "PROBLEM", "--host", "db01",
                        "--service", "ping", "--state", "CRITICAL", "--output", "down",
                        "--to", "+32470000001"])
    assert rc == 0, (rc, out, err)
    problem, _ = accepted(out)
    rc, stdout, err = ctl(gw, "ack", "--by", "bob", problem)
    assert rc == 0, (rc, stdout, err)
    wait_until(lambda: lines(), 10, "the acknowledgment written back")
    assert [w.split("] ", 1)[1] for w in lines()] == [
        "ACKNOWLEDGE_SVC_PROBLEM;db01;ping;2;1;1;bob;Acknowledged on gatewayd by bob via api "
        f"(alert {problem})"], lines()


def test_scripts_are_shellcheck_clean(h):
    import shutil
    if not shutil.which("shellcheck"):
        raise Skip("shellcheck is not installed")
    p = subprocess.run(["shellcheck", NAGIOS, ACK_NAGIOS, ZABBIX], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


if __name__ == "__main__":
    main(globals())
