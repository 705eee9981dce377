#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run the libFuzzer targets for a bounded time: fuzz/run-fuzz.sh SECONDS (per target).
#
# Builds them (make -s fuzz), runs each over a copy of its seed corpus in a temporary
# directory (the repository's corpus never changes), prints one summary line per target
# and exits non-zero if any target crashed or left a finding. Findings are kept in
# build-fuzz/findings/ with the target's log.
set -euo pipefail

if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -eq 0 ]; then
	echo "usage: $0 SECONDS" >&2
	exit 2
fi
seconds=$1
cd "$(dirname "$0")/.."
make -s fuzz
# each fuzz_ops input creates a swap file: tmpfs costs no disk I/O
export UZSWAP_DIR=${UZSWAP_DIR:-/dev/shm}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# fuzz_ops: long inputs carry many operations per instance (opening one costs a few
# milliseconds), so inputs are neither shrunk nor grown slowly from short ones.
declare -A extra=(
	[ops]="-max_len=4096 -len_control=0 -reduce_inputs=0"
	[decode]="-max_len=8192"
	[swapfile]="-max_len=4100"
)
declare -A unit=([ops]=operations [decode]=inputs [swapfile]=inputs)

run_target() {
	local t=$1 dir=$tmp/$1 rc=0 start end count findings cov
	mkdir -p "$dir/artifacts"
	cp -r "fuzz/corpus/$t" "$dir/corpus"
	start=$(date +%s)
	# shellcheck disable=SC2086 # extra holds several options
	"build-fuzz/fuzz_$t" "$dir/corpus" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
		${extra[$t]} >"$dir/log" 2>&1 || rc=$?
	end=$(date +%s)
	count=$(sed -n "s/^fuzz_$t: \([0-9]*\) ${unit[$t]}\$/\1/p" "$dir/log" | tail -1)
	findings=$(find "$dir/artifacts" -type f | wc -l)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$dir/log" | tail -1 || true)
	if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then
		findings=1 # died without leaving an input: the log says why
	fi
	echo "fuzz_$t: ${count:-?} ${unit[$t]} in $((end - start)) s, $findings findings" \
		"(${cov:-no coverage line})"
	if [ "$findings" -ne 0 ]; then
		mkdir -p build-fuzz/findings
		cp "$dir/log" "build-fuzz/findings/fuzz_$t.log"
		cp "$dir"/artifacts/* build-fuzz/findings/ 2>/dev/null || true
		grep -m5 -E 'check failed|ERROR|SUMMARY|runtime error' "$dir/log" >&2 || true
		echo "fuzz_$t: log and inputs in build-fuzz/findings/" >&2
		status=1
	fi
}

for t in ops decode swapfile; do
	run_target "$t"
done
exit $status
