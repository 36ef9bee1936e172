#!/usr/bin/env bash
# run_fuzzers.sh BUILD_DIR [SECONDS]: runs each libFuzzer harness of BUILD_DIR (configured with -Dfuzz=true)
# for SECONDS (default 20) on a copy of its seed corpus in a temp directory, so the committed corpus never
# grows. Prints "PASS fuzz_x (N runs)" or "FAIL fuzz_x" per target; exits 1 if any failed.
# A failing target's log and reproducer (crash-*, leak-*, timeout-*, oom-*) are kept and their paths printed.
# FUZZERS="fuzz_state fuzz_proc" runs a subset; extra libFuzzer flags go in FUZZ_ARGS.
set -uo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 BUILD_DIR [SECONDS]" >&2
	exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=${2:-20}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
	echo "$0: SECONDS must be a positive integer" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
targets=${FUZZERS:-fuzz_state fuzz_config fuzz_bundle fuzz_proc fuzz_record fuzz_qmp}

work=$(mktemp -d "${TMPDIR:-/tmp}/vmmcg-fuzz-run.XXXXXX") || exit 2
keep=0
cleanup() { ((keep)) || rm -rf "$work"; }
trap cleanup EXIT

# Sanitizer findings end the run with a report (UBSan otherwise prints and carries on).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

failed=0
for target in $targets; do
	bin=$build/tests/fuzz/$target
	if [[ ! -x $bin ]]; then
		echo "FAIL $target (not built: $bin; configure with -Dfuzz=true)"
		failed=1
		continue
	fi
	corpus=$work/$target/corpus
	artifacts=$work/$target/artifacts
	mkdir -p "$corpus" "$artifacts"
	if [[ -d $here/corpus/$target ]]; then
		cp -R "$here/corpus/$target/." "$corpus/"
	fi
	dict=()
	[[ -f $here/$target.dict ]] && dict=(-dict="$here/$target.dict")
	log=$work/$target/log
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	"$bin" "$corpus" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=5 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if ((rc == 0)) && [[ -z $(ls -A "$artifacts") ]]; then
		echo "PASS $target (${runs:-?} runs)"
	else
		failed=1
		keep=1
		echo "FAIL $target (exit $rc${runs:+, $runs runs})"
		echo "  log: $log"
		for artifact in "$artifacts"/*; do
			[[ -e $artifact ]] && echo "  reproducer: $artifact (replay: $bin $artifact)"
		done
		grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:|vmmcg-fuzz: invariant|terminate called)' "$log" |
			sed 's/^/  /'
	fi
done
exit "$failed"
