#!/bin/sh
# gatewayd.sh: a Zabbix media-type (alert) script that pages through gatewayd.
# Zabbix calls it with {ALERT.SENDTO} {ALERT.SUBJECT} {ALERT.MESSAGE}; see README.md beside
# this file for the media type and the message templates. POSIX sh; needs gatewayctl(8).
set -eu

prog=gatewayd.sh

usage() {
	cat <<'EOF'
Usage: gatewayd.sh [OPTIONS] SENDTO SUBJECT MESSAGE
Send a Zabbix alert as an SMS through gatewayd (with gatewayctl). A problem pages; its
recovery (Status: RESOLVED or OK) resolves what the problem paged (gatewayctl resolve).

  SENDTO   {ALERT.SENDTO}: an E.164 number (+32470123456) or role:NAME
  SUBJECT  {ALERT.SUBJECT}: the first line of the SMS
  MESSAGE  {ALERT.MESSAGE}: the rest; these lines are read and left out of the SMS:
             Event ID: {EVENT.ID}          -> dedupe key zabbix/ID/STATUS; a
                                              recovery resolves zabbix/ID/PROBLEM
             Status: {EVENT.STATUS}        -> PROBLEM, RESOLVED, UPDATE, ...
             Severity: {EVENT.SEVERITY}    -> High or Disaster: priority critical
Options (before SENDTO; in Zabbix, extra script parameters):
  -c, --config FILE  -e, --endpoint ENDPOINT  -t, --timeout SECONDS   (for gatewayctl)
  --ttl S          seconds to live (default: the gateway's, 3600)
  --source S       shown in gatewayctl show, and who resolved (default: zabbix)
  --max-length N   longest text in bytes (default: 160, 130 for critical alerts)
  GATEWAYCTL in the environment names the gatewayctl binary (default: gatewayctl).
Exit status: 0 queued or duplicate, resolved or nothing open to resolve; 1 the gateway
refused; 2 usage error or no answer from the gateway.
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 2
}

need() {
	[ "$2" -ge 2 ] || die "option $1 needs a value (see --help)"
}

# stdin -> at most $1 bytes; when cut, cut at a space near the end if there is one, never
# inside a UTF-8 character, and end in "...".
shorten() {
	_max=$1
	_s=$(cat)
	_n=$(printf '%s' "$_s" | LC_ALL=C wc -c)
	if [ "$_n" -le "$_max" ]; then
		printf '%s' "$_s"
		return
	fi
	_lead=$(printf '[\300-\377]')
	_cont=$(printf '[\200-\277]')
	printf '%s' "$_s" | head -c "$((_max - 3))" |
		LC_ALL=C sed "\$s/${_lead}${_cont}*\$//; \$s/ [^ ]\\{0,24\\}\$//; \$s/[ .,;:-]*\$/.../"
}

# The values of every "Name: value" line of $2 (name case-insensitive), trimmed, one a line.
fields() {
	printf '%s\n' "$2" | tr -d '\r' |
		sed -n "s/^[[:space:]]*$1[[:space:]]*:[[:space:]]*//Ip" |
		sed 's/[[:space:]]*$//'
}

# stdin -> the distinct lines, or nothing when there are several: text that imitates a field
# line (a trigger name, an item value, an update comment) cannot pick the value then.
only_one() {
	_v=$(sort -u)
	if [ "$(printf '%s\n' "$_v" | grep -c .)" -le 1 ]; then
		printf '%s' "$_v"
	else
		echo "$prog: lines that disagree: $(printf '%s' "$_v" | tr '\n' ' ')(ignored)" >&2
	fi
}

ttl='' source=zabbix max_length='' config='' endpoint='' timeout=''
while [ $# -gt 0 ]; do
	case $1 in
	--*=*)
		_o=${1%%=*}
		_a=${1#*=}
		shift
		set -- "$_o" "$_a" "$@"
		continue
		;;
	-h | --help)
		usage
		exit 0
		;;
	--ttl) need "$1" $#; ttl=$2 ;;
	--source) need "$1" $#; source=$2 ;;
	--max-length) need "$1" $#; max_length=$2 ;;
	-c | --config) need "$1" $#; config=$2 ;;
	-e | --endpoint) need "$1" $#; endpoint=$2 ;;
	-t | --timeout) need "$1" $#; timeout=$2 ;;
	--)
		shift
		break
		;;
	-?*) die "unknown option '$1' (see --help)" ;;
	*) break ;;
	esac
	shift 2
done
[ $# -eq 3 ] || die "expected SENDTO SUBJECT MESSAGE, got $# argument(s) (see --help)"
sendto=$(printf '%s' "$1" | tr -d ' \t\r\n')
subject=$(printf '%s' "$2" | tr '\r\n\t' '   ' | tr -s ' ' | sed 's/^ //; s/ $//')
message=$3
[ -n "$sendto" ] || die "empty SENDTO: give the user's media a number or role:NAME"
case $max_length in
'') ;;
*[!0-9]*) die "--max-length must be a number of bytes" ;;
*) [ "$max_length" -ge 20 ] || die "--max-length must be at least 20" ;;
esac

# Strictly: a field's value is read from its start, and what follows is never part of it
# ("Event ID: 4242 x" is 4242; "Status: PROBLEM/x" is no status). Lines that disagree give no
# event id and no status (so no key of ours, and never a recovery); of several severities the
# highest counts, so extra text can never lower the priority.
event_id=$(fields 'event[[:space:]]*id' "$message" | sed -n 's/^\([0-9]\{1,20\}\)\( .*\)\{0,1\}$/\1/p' |
	only_one)
statuses=$(fields 'status' "$message")
if [ -n "$statuses" ]; then
	# UPDATE keeps its date and time (each update is an alert of its own), when they are there
	# as the template writes them.
	status=$(printf '%s\n' "$statuses" | tr '[:lower:]' '[:upper:]' |
		sed -n -e 's/^\(UPDATE [0-9]\{4\}\.[0-9][0-9]\.[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\)\( .*\)\{0,1\}$/\1/p; t' \
			-e 's/^\(PROBLEM\|RESOLVED\|OK\|UPDATE\)\( .*\)\{0,1\}$/\1/p' | only_one)
else
	# Without "Status:" the first word of the subject tells a problem from its recovery and
	# updates ("Problem:", "Resolved", "Updated", as in Zabbix's own templates).
	status=$(printf '%s' "$subject" | sed 's/[[:space:]:].*//' | tr '[:lower:]' '[:upper:]' |
		grep -x 'PROBLEM\|RESOLVED\|OK\|UPDATE\|UPDATED' || true)
fi
severities=$(fields 'severity' "$message" | tr '[:upper:]' '[:lower:]' |
	sed -n 's/^\(not classified\|information\|warning\|average\|high\|disaster\)\( .*\)\{0,1\}$/\1/p')
# The text: the subject, then the message without those lines, blank lines and spaces
# squeezed.
body=$(printf '%s\n' "$message" | tr -d '\r' | tr '\t' ' ' |
	sed '/^[[:space:]]*\(event[[:space:]]*id\|status\|severity\)[[:space:]]*:/Id' |
	sed 's/^ *//; s/ *$//; /^$/d' | tr -s ' ')

priority=normal
if printf '%s\n' "$severities" | grep -qx 'high\|disaster'; then
	case $status in
	RESOLVED | OK | UPDATE*) ;;
	*) priority=critical ;;
	esac
fi
if [ -z "$max_length" ]; then
	max_length=160
	[ "$priority" = critical ] && max_length=130
fi
text=$(printf '%s%s%s' "$subject" "${subject:+${body:+
}}" "$body" | shorten "$max_length")
[ -n "$text" ] || die "empty SUBJECT and MESSAGE"

# Dedupe: the same event in the same status once (a Zabbix retry, a second Zabbix server);
# its updates are alerts of their own, and its recovery resolves zabbix/ID/PROBLEM.
key=''
case $status in
'' | UPDATE | UPDATED) ;; # no status, or an update without its time: no key of ours
*) [ -z "$event_id" ] || key="zabbix/$event_id/$(printf '%s' "$status" | tr ' ' '-')" ;;
esac

gatewayctl=${GATEWAYCTL:-gatewayctl}

# A recovery of a known event resolves the problem's alert (its key, zabbix/ID/PROBLEM), again
# while that resolves something (one alert a call, should the problem have paged twice): no
# SMS of its own, the gateway sends its all-clear to those it paged. Nothing open (the
# gateway's unknown_id) is no failure: the problem may never have paged, or been resolved.
case $status in
RESOLVED | OK)
	if [ -n "$event_id" ]; then
		problem_key="zabbix/$event_id/PROBLEM"
		resolved='' n=0
		while [ "$n" -lt 10 ]; do
			n=$((n + 1))
			rc=0
			out=$("$gatewayctl" ${config:+"--config=$config"} \
				${endpoint:+"--endpoint=$endpoint"} ${timeout:+"--timeout=$timeout"} \
				resolve --key "$problem_key" --by "$source" 2>&1) || rc=$?
			if [ "$rc" -eq 0 ]; then
				[ -z "$out" ] || echo "$out"
				resolved=1
				continue
			fi
			case $rc:$out in
			1:"gatewayctl: unknown_id"*) break ;;
			esac
			echo "$out" >&2
			echo "$prog: recovery of '$problem_key' not recorded (gatewayctl exit status $rc)" >&2
			[ "$rc" -eq 1 ] && exit 1
			exit 2
		done
		[ -n "$resolved" ] || echo "$prog: nothing open for $problem_key" >&2
		exit 0
	fi
	# Without an event id there is nothing to resolve by: sent as a message, as it came.
	echo "$prog: a recovery without an 'Event ID:' line resolves nothing; sent as an SMS" >&2
	;;
esac

rc=0
out=$("$gatewayctl" ${config:+"--config=$config"} \
	${endpoint:+"--endpoint=$endpoint"} ${timeout:+"--timeout=$timeout"} send \
	${key:+"--key=$key"} "--priority=$priority" "--source=$source" ${ttl:+"--ttl=$ttl"} \
	"--message=$text" -- "$sendto") || rc=$?
if [ "$rc" -ne 0 ]; then
	[ -z "$out" ] || echo "$out" >&2
	echo "$prog: alert to $sendto not accepted (gatewayctl exit status $rc)" >&2
	[ "$rc" -eq 1 ] && exit 1
	exit 2
fi
echo "$out"
