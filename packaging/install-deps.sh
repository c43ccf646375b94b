#!/bin/sh
# Installs every Debian package the project needs to build, test and run its demo.
# Idempotent and quiet when everything is present. Debian 12 (bookworm), as root.
set -eu

PACKAGES="
build-essential pkg-config meson ninja-build clang-format clang libclang-rt-14-dev
libgammu-dev libzmq3-dev libczmq-dev libsystemd-dev libsqlite3-dev libjansson-dev libinih-dev
libqb-dev libcpg-dev libquorum-dev libcmap-dev libvotequorum-dev libcorosync-common-dev
corosync sqlite3 strace iproute2
debhelper lintian debootstrap systemd-container
gammu gammu-smsd smstools python3 python3-zmq python3-gammu
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing; run as root (or with sudo)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Debian's smstools and gammu-smsd start their daemons on install where systemd runs them;
# the benchmarks run their own instances, so keep the packaged services from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
