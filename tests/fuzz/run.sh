#!/bin/sh
# run.sh [SECONDS] [TARGET...]: runs the fuzz targets for longer than the test suite does (60 s
# each by default), one after the other (JOBS=2: two at a time), in the build directory
# build-fuzz (BUILD_FUZZ=DIR: another), configured with clang and -Dfuzz=true if it is not
# there yet. Prints, per target, the executions, executions per second, coverage (cov: and ft:
# of libFuzzer's last status line) and the size of the corpus it ended with. Without TARGET,
# every libFuzzer target, then fuzz-integrations (the scripts' mutation fuzzer).
# Each target's log, grown corpus and any crash file stay in BUILD/tests/fuzz/NAME.run/.
set -u
cd "$(dirname "$0")/../.." || exit 1
root=$(pwd)
seconds=${1:-60}
[ $# -gt 0 ] && shift
build=${BUILD_FUZZ:-build-fuzz}
jobs=${JOBS:-1}

if [ ! -d "$build" ]; then
	CC=${CC:-clang} meson setup "$build" -Dfuzz=true >"$build.setup.log" 2>&1 || {
		cat "$build.setup.log"
		exit 1
	}
fi
ninja -C "$build" >/dev/null || exit 1

if [ $# -gt 0 ]; then
	targets="$*"
else
	targets=$(find "$build/tests/fuzz" -maxdepth 1 -type f -name 'fuzz-*' -perm -u+x \
		-exec basename {} \; | sort)
	if [ -z "$targets" ]; then
		echo "run.sh: no libFuzzer targets in $build (no clang with libFuzzer?)" >&2
	fi
	targets="$targets fuzz-integrations"
fi

run_one() {
	t=$1
	if [ "$t" = fuzz-integrations ]; then
		mkdir -p "$build/tests/fuzz/$t.run"
		(cd "$build/tests/fuzz/$t.run" &&
			/usr/bin/python3 "$root/tests/fuzz/fuzz_integrations.py" --seconds "$seconds" \
				>fuzz.log 2>&1)
	else
		tests/fuzz/run-target.sh "$build/tests/fuzz/$t" "tests/fuzz/corpus/$t" "$seconds" \
			>/dev/null 2>&1
	fi
	echo $? >"$build/tests/fuzz/$t.run/status"
}

echo "fuzzing $(echo "$targets" | wc -w) target(s) for ${seconds}s each, $jobs at a time"
n=0
for t in $targets; do
	run_one "$t" &
	n=$((n + 1))
	[ $((n % jobs)) -eq 0 ] && wait
done
wait

failed=0
printf '%-20s %12s %9s %7s %7s %8s  %s\n' TARGET EXECS EXECS/S COV FT CORPUS RESULT
for t in $targets; do
	dir=$build/tests/fuzz/$t.run
	log=$dir/fuzz.log
	status=$(cat "$dir/status" 2>/dev/null || echo 1)
	result=ok
	[ "$status" -eq 0 ] || {
		result="FAILED (see $log)"
		failed=1
	}
	if [ "$t" = fuzz-integrations ]; then
		cases=$(sed -n 's/^\([0-9]*\) cases.*/\1/p' "$log")
		printf '%-20s %12s %9s %7s %7s %8s  %s\n' "$t" "${cases:-?}" \
			"$(awk -v n="${cases:-0}" -v s="$seconds" 'BEGIN { printf "%d", n / s }')" \
			- - - "$result (cases; known bugs: $(grep -c '^expected failure' "$log"))"
		continue
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corpus=$(find "$dir/corpus" -type f | wc -l)
	printf '%-20s %12s %9s %7s %7s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
		"${ft:-?}" "$corpus" "$result"
done
exit $failed
