#!/bin/sh
# Command 1 of the README: installs what is missing, builds, and runs the demo.
#   ./demo.sh           two gateway nodes, a and b, each on its own real corosync in its own
#                       network namespace, one simulated modem each (tests/lib/demo_cluster.py):
#                       alerts to both nodes, a raced dedupe key, kill -9 of node a with alerts
#                       pending, b taking over, a rejoining on its disk; all seen via gatewayctl.
#   ./demo.sh --solo    the single-node demo: a live gateway on simulated GSM modems; a few
#                       alerts and where they went, then the voice fallback.
#   --serve             (with either) keeps the gateway(s) running after the show until Ctrl-C.
# The cluster needs root and network namespaces; without them the single-node demo runs.
set -eu
cd "$(dirname "$0")"
top=$(pwd)

solo=no
serve=no
for arg in "$@"; do
	case $arg in
	--solo) solo=yes ;;
	--serve) serve=yes ;;
	*) echo "usage: $0 [--solo] [--serve]" >&2; exit 2 ;;
	esac
done

./packaging/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

if [ $solo = no ]; then
	if reason=$(/usr/bin/python3 tests/lib/demo_cluster.py --check 2>&1); then
		# exec: a SIGINT or SIGTERM to this script's pid reaches the driver, which cleans up.
		[ $serve = yes ] && exec /usr/bin/python3 tests/lib/demo_cluster.py --serve
		exec /usr/bin/python3 tests/lib/demo_cluster.py
	fi
	echo "== The two-node cluster demo cannot run here: $reason"
	echo "== Running the single-node demo instead (./demo.sh --solo)"
	echo
fi

# The single-node demo.

run="$top/run/demo"
rm -rf "$run"
mkdir -p "$run"
sim_pid=""
gw_pid=""
cleanup() {
	[ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	true
}
trap cleanup EXIT INT TERM

echo "== Starting two simulated GSM modems (pseudo-terminals) in $run/sim"
/usr/bin/python3 tests/modemsim/modemsim.py --dir "$run/sim" --modem gsm0 --modem gsm1 \
	--modem voice0 --send-delay 0.5 >"$run/modemsim.log" 2>&1 &
sim_pid=$!
i=0
until [ -e "$run/sim/ready" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "the simulator did not start; see $run/modemsim.log"; exit 1; }
	sleep 0.1
done

cat >"$run/gatewayd.conf" <<CONF
[node]
name = demo
state_dir = $run/state

[submit]
bind = tcp://127.0.0.1:5570

[events]
bind = tcp://127.0.0.1:5571

[modem gsm0]
device = $run/sim/gsm0
connection = at

[modem gsm1]
device = $run/sim/gsm1
connection = at

# a third simulated modem kept for voice calls
[voice]
device = $run/sim/voice0
contact_center = +3222000000
ring_timeout = 10
hold = 2

[contact alice]
number = +32470100001

[role primary]
contacts = alice
CONF

echo "== Starting gatewayd -c $run/gatewayd.conf (log: $run/gatewayd.log)"
build/gatewayd/gatewayd -c "$run/gatewayd.conf" >"$run/gatewayd.log" 2>&1 &
gw_pid=$!
ctl() { build/gatewayd/gatewayctl/gatewayctl -c "$run/gatewayd.conf" "$@"; }
i=0
until ctl status --json 2>/dev/null | grep -c '"state": "ok"' | grep -q 2; do
	i=$((i + 1))
	[ $i -gt 60 ] && { echo "modems not ready; see $run/gatewayd.log"; exit 1; }
	sleep 0.5
done
ctl status
echo
echo "== Sending alerts with gatewayctl"
run() {
	printf '$ gatewayctl'
	printf ' %s' "$@" | cut -c1-100
	ctl "$@"
}
run send +32470000001 -m "db01 is DOWN (ping timeout)"
run send --priority critical --key web/http role:primary +32470000002 -m "web01 HTTP 503"
run send --key web/http +32470000003 -m "web01 HTTP 503 (again: deduplicated)"
run send +32470000004 -m "Ωμέγα ✓ Unicode arrives as UCS-2"
run send +32470000005 -m "$(printf 'A long alert that needs several SMS parts. %.0s' 1 2 3 4 5 6 7 8)"
i=0
until [ "$(ctl queue --json | grep -c '"id"')" = 0 ]; do
	i=$((i + 1))
	[ $i -gt 60 ] && break
	sleep 0.5
done
echo
echo "== Where they went (gatewayctl status)"
ctl status
echo
echo "== What the simulated modems decoded from the PDUs they received"
/usr/bin/python3 - "$run/sim/sent.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("event") == "sms":
        print(f"  {m['modem']}  {m['to']:>14}  {m['parts']} part(s)  {m['text']}")
PY
echo
id=$(ctl send +32470000009 -m "one more, to show its story" | cut -d' ' -f1)
sleep 3
ctl show "$id"

echo
echo "== Voice fallback: the network refuses every SMS to +32470000666 on both modems"
sim() {
	/usr/bin/python3 -c 'import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1] + "/control.sock")
s.sendall(sys.argv[2].encode() + b"\n"); s.recv(65536)' "$run/sim" "$1"
}
for m in gsm0 gsm1; do
	sim "{\"cmd\": \"fail_number\", \"modem\": \"$m\", \"number\": \"+32470000666\", \"cms\": 38}"
done
sim '{"cmd": "call_outcome", "modem": "voice0", "outcome": "answer", "after": 1, "persist": true}'
id=$(run send --priority critical +32470000666 -m "core router DOWN" | tail -1 | cut -d' ' -f1)
echo "$id"
i=0
until ctl show --json "$id" | grep -q '"number": "+3222000000"'; do
	i=$((i + 1))
	[ $i -gt 60 ] && break
	sleep 0.5
done
ctl show "$id"

if [ $serve = yes ]; then
	echo
	echo "== Serving on tcp://127.0.0.1:5570 until Ctrl-C. Try:"
	echo "   build/gatewayd/gatewayctl/gatewayctl -c $run/gatewayd.conf send +32470000042 -m 'hello'"
	wait "$gw_pid"
fi
