#!/bin/sh
# The style checks, run by meson as the tests of suite 'style' (tests/meson.build):
#   check-style.sh format SRCDIR   every C file is formatted as .clang-format says
#   check-style.sh headers SRCDIR  every header compiles on its own, and twice (include guards)
# The files are found, not listed, so that a new or moved file is checked without being named.
# Exit 0 pass, 1 fail (naming each file), 77 skip (the tool is missing).
set -u
what=$1
src=$2
cd "$src" || exit 1

# The C sources of the product and of its tests; build directories are not sources.
sources() {
	find common cluster modem voicefallback gatewayd tests -name "$1" -type f \
		-not -path '*/build*' | LC_ALL=C sort
}

case $what in
format)
	fmt=$(command -v clang-format-14 || command -v clang-format) || {
		echo "SKIP: clang-format not found (apt-get install clang-format)"
		exit 77
	}
	bad=0
	n=0
	for f in $(sources '*.[ch]'); do
		n=$((n + 1))
		if ! "$fmt" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
			echo "drift: $f (fix: $fmt -i $f)"
			bad=$((bad + 1))
		fi
	done
	echo "$n files, $bad not formatted as .clang-format says"
	[ "$bad" -eq 0 ]
	;;
headers)
	cc=${CC:-cc}
	# The folders that hold headers are the include path, as the meson dependencies give it.
	incs=$(sources '*.h' | xargs -n1 dirname | LC_ALL=C sort -u | sed 's/^/-I/')
	pkgs="gammu libzmq libczmq sqlite3 jansson inih libcpg libquorum libcmap libqb libsystemd"
	# shellcheck disable=SC2086 # word lists
	deps=$(pkg-config --cflags $pkgs) || exit 1
	tmp=$(mktemp -d) || exit 1
	trap 'rm -rf "$tmp"' EXIT
	bad=0
	n=0
	for h in $(sources '*.h'); do
		n=$((n + 1))
		base=$(basename "$h")
		printf '#include "%s"\n#include "%s"\n' "$base" "$base" >"$tmp/check.c"
		# shellcheck disable=SC2086
		if ! out=$("$cc" -std=gnu11 -Wall -Werror -fsyntax-only -I"$(dirname "$h")" $incs \
			$deps "$tmp/check.c" 2>&1); then
			echo "does not compile on its own: $h"
			echo "$out" | head -5 | sed 's/^/    /'
			bad=$((bad + 1))
		fi
	done
	echo "$n headers, $bad do not compile on their own"
	[ "$bad" -eq 0 ]
	;;
*)
	echo "usage: $0 format|headers SRCDIR" >&2
	exit 2
	;;
esac
