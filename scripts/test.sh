#!/usr/bin/env bash
# Builds and runs every test three ways: plain, under AddressSanitizer+UBSan, and under
# ThreadSanitizer. Ends with one "N passed, N failed" line over all of them.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1

total_passed=0 total_failed=0
run_variant() { # name, make SAN value, runner prefix
	local name=$1 san=$2 prefix=$3 build=build${2:+-$2} log line
	echo "=== $name"
	if ! make -s -j"$(nproc)" SAN="$san" all; then
		echo "$name: build failed"; total_failed=$((total_failed + 1)); return
	fi
	log=$(mktemp)
	$prefix tests/run-tests.sh "$build" 2>&1 | tee "$log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	rm -f "$log"
	if [ -z "$line" ]; then
		echo "$name: no result"; total_failed=$((total_failed + 1)); return
	fi
	total_passed=$((total_passed + ${line%% passed*}))
	line=${line#*, }; total_failed=$((total_failed + ${line%% failed*}))
}

run_variant plain "" ""
run_variant "address+undefined sanitizers" address ""
# TSan cannot map its shadow under the kernel's full address-space randomisation.
run_variant "thread sanitizer" thread "setarch $(uname -m) -R"

echo "=== all variants"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
