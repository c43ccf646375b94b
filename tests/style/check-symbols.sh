#!/bin/sh
# The exported-symbol check, run by meson as the test style-symbols of suite 'style'
# (tests/meson.build):
#   check-symbols.sh ROOM LIBRARY [ROOM LIBRARY...]
# Every room is a static library, and every name it exports (global and defined: what another
# room can link against) starts with one of the room's prefixes, so that a name says which room
# it lives in and two rooms never define the same one. meson hands over each room's library, so
# no path is guessed here. Exit 0 pass, 1 fail (a line per symbol), 77 skip (nm is missing).
#
# The rule, one line per room: the room, then the prefixes its exports may start with.
#   common         chat.c chat_, log.c log_, validate.c validate_; util.c one family per concern (utf8_,
#                  now_, id_, parse_, format_, hash128_) and two single functions, named whole
#   store          store_, in every file of the room
#   protocol       each file's exports start with the file's name (request_, change_, ackcode_)
#   modem          each file's exports start with the file's name; pdu-check.c's with pdu_
#   cluster        each file's exports start with the file's name; replication-cluster.c's with
#                  replication_, and replication.c also exports its payload queue, payload_queue_
#   voicefallback  each file's exports start with the file's name
#   gatewayd-core  the rest of gatewayd/: each file's exports start with the file's name, a
#                  gateway-X.c's with X_ (gateway-alerts.c's are apply_, the handlers of the
#                  change kinds; gateway-apply.c's apply_ and stall_; gateway-dispatch.c's also
#                  job_; gateway-escalation.c's also ack_, ackable_, contact_ and reply_ for
#                  the codes, who is who and the gateway's own SMS), the gateway's own
#                  gateway_; jstr() and ju64(), which read a change's fields, named whole
# The check holds each library to its room's line; which file of a room uses which prefix is
# written above, not checked. No room uses another's prefix.
set -u

rules='
common         chat_ log_ validate_ utf8_ now_ id_ parse_ format_ hash128_ tz_ days_from_civil errno_fd_prefix
store          store_
protocol       request_ change_ ackcode_
modem          decodemark_ devwatch_ inbox_ modem_ pdu_ ports_ probe_ sha256_ simstore_ sms_ watchdog_ worker_
cluster        frame_ group_ membership_ replication_ payload_queue_
voicefallback  call_ dialer_
gatewayd-core  gateway_ hooks_ silences_ limits_ heartbeats_ health_ admission_ auth_ config_ connlimit_ fdbudget_ handlers_ members_ metrics_ ratelimit_ server_ apply_ stall_ check_ cluster_ dispatch_ job_ escalation_ ack_ ackable_ contact_ reply_ oncall_ modems_ publish_ quarantine_ reload_ requests_ selftest_ voice_ jstr ju64
'

nm=$(command -v nm) || {
	echo "SKIP: nm not found (apt-get install binutils)"
	exit 77
}
if [ $# -eq 0 ] || [ $(($# % 2)) -ne 0 ]; then
	echo "usage: $0 ROOM LIBRARY [ROOM LIBRARY...]" >&2
	exit 2
fi

bad=0
libs=0
given=' '
while [ $# -gt 0 ]; do
	room=$1
	lib=$2
	shift 2
	given="$given$room "
	prefixes=$(printf '%s\n' "$rules" | awk -v room="$room" '$1 == room { $1 = ""; print }')
	if [ -z "$prefixes" ]; then
		echo "room '$room' ($lib) has no line in the table of $0: add its prefixes"
		bad=$((bad + 1))
		continue
	fi
	if [ ! -f "$lib" ]; then
		echo "room '$room': no library at $lib"
		bad=$((bad + 1))
		continue
	fi
	libs=$((libs + 1))
	# "LIBRARY:MEMBER:VALUE TYPE NAME", or "LIBRARY:MEMBER: TYPE NAME" without a value.
	out=$("$nm" -A --defined-only --extern-only "$lib") || {
		echo "nm failed on $lib"
		bad=$((bad + 1))
		continue
	}
	n=$(printf '%s\n' "$out" | awk -v room="$room" -v lib="$(basename "$lib")" \
		-v prefixes="$prefixes" '
		BEGIN { np = split(prefixes, p, " ") }
		NF >= 2 {
			name = $NF
			# Names starting with "__" belong to the compiler (the sanitizers, for one): C
			# reserves them, so no room defines one of its own.
			if (substr(name, 1, 2) == "__")
				next
			ok = 0
			for (i = 1; i <= np; i++)
				if (index(name, p[i]) == 1) {
					ok = 1
					break
				}
			if (!ok) {
				m = split($1, f, ":")
				sub(/.*\//, "", f[m - 1])
				printf "%s: exported by %s (%s), outside the prefixes of room %s:%s\n",
					name, lib, f[m - 1], room, prefixes
			}
		}')
	if [ -n "$n" ]; then
		printf '%s\n' "$n"
		bad=$((bad + $(printf '%s\n' "$n" | wc -l)))
	fi
done

# A room of the table that meson did not hand over would go unchecked without a word.
for room in $(printf '%s\n' "$rules" | awk 'NF { print $1 }'); do
	case $given in
	*" $room "*) ;;
	*)
		echo "room '$room' is in the table of $0 but its library was not given (tests/meson.build)"
		bad=$((bad + 1))
		;;
	esac
done

echo "$libs libraries, $bad problems"
[ "$bad" -eq 0 ]
