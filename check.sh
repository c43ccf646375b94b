#!/bin/sh
# Command 2 of the README: installs what is missing, builds, and runs the whole test suite as
# built for release; then the unit tests and the tests of suite 'sanitize' (hostile input, kill
# -9, a faulted store: tests/meson.build) again under AddressSanitizer + UndefinedBehaviorSanitizer;
# then the fuzz targets for a short while (a third build, with clang).
# Ends with one line "N passed, N failed". .ci/run calls exactly this.
set -u
cd "$(dirname "$0")"

./packaging/install-deps.sh || exit 1

status=0
# run_suite DIR "SETUP OPTIONS" [MESON TEST OPTIONS...]
run_suite() {
	dir=$1
	setup=$2
	shift 2
	if [ ! -d "$dir" ]; then
		# shellcheck disable=SC2086 # the setup options are words
		meson setup "$dir" -Dwerror=true $setup >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log"
			return 1
		}
	fi
	ninja -C "$dir" || return 1
	# Three at a time on two cores: the tests mostly wait, on the simulated modems' send delays,
	# on corosync and on escalation timers; the ones that need the machine run alone.
	meson test -C "$dir" --print-errorlogs --num-processes 3 "$@" || status=1
}

run_suite build "" --no-suite fuzz || status=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_suite build-sanitize "-Db_sanitize=address,undefined -Db_lundef=false" \
	--suite unit --suite sanitize || status=1
# The fuzz round (tests/fuzz/README.md): the libFuzzer targets, built with clang in a directory
# of their own, each for 20 s on its corpus, two at a time, and the integrations' fuzzer.
# Where clang is missing, the targets report themselves skipped.
fuzz_cc=clang
command -v clang >/dev/null 2>&1 || fuzz_cc=cc
CC=$fuzz_cc run_suite build-fuzz "-Dfuzz=true" --suite fuzz || status=1

/usr/bin/python3 - <<'PY'
import json, os
passed = failed = skipped = 0
for d in ("build", "build-sanitize", "build-fuzz"):
    path = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(path):
        failed += 1
        continue
    for line in open(path):
        r = json.loads(line)
        if r["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r["result"] == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
