#!/bin/sh
# run-target.sh BINARY CORPUS SECONDS [LIBFUZZER OPTIONS...]: runs one libFuzzer target for a
# bounded time, on a fresh copy of its seed corpus (libFuzzer adds what it finds to the first
# corpus folder: that must never be the source tree). Everything it writes, the grown corpus,
# the log and any crash-*/leak-*/timeout-* file, goes next to the binary in NAME.run/.
# Exits 0 when the target survived, 1 on any crash, leak, timeout or sanitizer report.
#
# run-target.sh --skip NAME: what the test does where no clang with libFuzzer was found.
set -u

if [ "${1:-}" = "--skip" ]; then
	echo "${2:-fuzz}: skipped: this build has no libFuzzer (configure with CC=clang and -Dfuzz=true;" \
		"Debian: apt-get install clang libclang-rt-14-dev)"
	exit 77
fi
if [ $# -lt 3 ]; then
	echo "usage: $0 BINARY CORPUS SECONDS [LIBFUZZER OPTIONS...]" >&2
	exit 2
fi
bin=$1
corpus=$2
seconds=$3
shift 3
name=$(basename "$bin")
here=$(cd "$(dirname "$0")" && pwd)
work=$(dirname "$bin")/$name.run

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts" || exit 1
[ -d "$corpus" ] && cp -p "$corpus"/. "$work/corpus/" -R
dict=""
[ -f "$here/dict/$name.dict" ] && dict="-dict=$here/dict/$name.dict"

# UBSan halts (the objects are built with -fno-sanitize-recover=undefined too); ASan checks
# leaks at exit and libFuzzer after each input that leaked.
: "${ASAN_OPTIONS:=detect_leaks=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS UBSAN_OPTIONS
# A target's temporary files (fuzz-change's store) too, so that a crash leaves none elsewhere.
TMPDIR=$(cd "$work" && pwd)
export TMPDIR

# -error_exitcode: libFuzzer's default, 77, would read as "skipped" to meson. -timeout: one
# input running this long is a hang; generous, so that a loaded machine's stall is not one.
# shellcheck disable=SC2086 # $dict is one word or none
"$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
	-error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" $dict "$@" "$work/corpus" >"$work/fuzz.log" 2>&1
status=$?

# The start, the last status lines and the final figures; the whole log stays in $work.
head -n 12 "$work/fuzz.log"
echo "..."
tail -n 25 "$work/fuzz.log"
echo "corpus: $(find "$work/corpus" -type f | wc -l) files (seeds: $(find "$corpus" -type f 2>/dev/null | wc -l))"
if [ $status -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
	# The cause on one line, last, where a shortened log still shows it.
	cause=$(grep -m 3 -E '^(==[0-9]+== ?ERROR|SUMMARY|.*runtime error|.*ALARM|.*out-of-memory|.*deadly signal)' "$work/fuzz.log" | tr '\n' ' ')
	echo "$name: FAILED (exit $status): ${cause:-see $work/fuzz.log}; reproducer(s) in $work/artifacts:"
	ls -l "$work/artifacts"
	echo "replay: $bin $work/artifacts/<file>"
	exit 1
fi
exit 0
