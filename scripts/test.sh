#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds and runs every test: plain, under AddressSanitizer+UBSan, under ThreadSanitizer,
# the fault-injection build (failures and forced races, under ASan+UBSan), the unit tests
# under valgrind memcheck, and the libFuzzer targets for a bounded time. Any sanitizer or
# valgrind report fails its job. Ends with one "N passed, N failed" line over all jobs.
#   UZS_FUZZ_SECONDS   seconds per fuzz target (default 60)
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1

total_passed=0 total_failed=0 total_skipped=0
count_result() { # log file, job name: adds its "N passed, N failed[, N skipped]" line
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "$2: no result"; total_failed=$((total_failed + 1)); return
	fi
	total_passed=$((total_passed + ${line%% passed*}))
	line=${line#*, }; total_failed=$((total_failed + ${line%% failed*}))
	case $line in *skipped) line=${line#*, }; total_skipped=$((total_skipped + ${line%% skipped})) ;; esac
}

run_variant() { # name, build dir, make arguments, runner prefix
	local name=$1 build=$2 make_args=$3 prefix=$4 log
	echo "=== $name"
	# shellcheck disable=SC2086
	if ! make -s -j"$(nproc)" $make_args all; then
		echo "$name: build failed"; total_failed=$((total_failed + 1)); return
	fi
	log=$(mktemp)
	$prefix tests/run-tests.sh "$build" 2>&1 | tee "$log"
	count_result "$log" "$name"
	rm -f "$log"
}

# valgrind's memcheck over the plain build's unit tests. Not the stress test: valgrind runs
# one thread at a time, so its races (and the pool pressure it asserts) do not happen
# there; ASan and TSan run it. Not the regions test: valgrind does not know the
# userfaultfd ioctls, and pages the kernel installs behind its back look undefined to it.
run_valgrind() {
	local log
	echo "=== valgrind memcheck"
	log=$(mktemp)
	UZS_TESTS_EXCLUDE="test_stress test_regions" tests/run-tests.sh build "valgrind -q --error-exitcode=99 \
--leak-check=full --errors-for-leak-kinds=definite,indirect" 2>&1 | tee "$log"
	count_result "$log" "valgrind memcheck"
	rm -f "$log"
}

# A test script that ends with its own "N passed, N failed" line: title, name, command.
run_script() {
	local title=$1 name=$2 log
	shift 2
	echo "=== $title"
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	count_result "$log" "$name"
	rm -f "$log"
}

# Real programs under `uzswap run` (tests/programs/run-programs.sh): output, exit status,
# budget. Uses the plain build.
run_programs() { run_script "real programs under uzswap run" "real programs" tests/programs/run-programs.sh build; }

# Unusual and hostile programs under `uzswap run` (tests/hostile/run-hostile.sh): same
# output, no page lost, no process left, the budget kept. Uses the plain build.
run_hostile() { run_script "hostile programs under uzswap run" "hostile programs" tests/hostile/run-hostile.sh build; }

# The source folders' dependencies go one way (scripts/check-layout.sh): one check.
run_layout() {
	echo "=== layout"
	if scripts/check-layout.sh; then
		echo "1 passed, 0 failed"; total_passed=$((total_passed + 1))
	else
		echo "0 passed, 1 failed"; total_failed=$((total_failed + 1))
	fi
}

# Every uzswap bench option, alone and combined: each run verifies every page.
run_bench_options() { run_script "uzswap bench options" "bench options" tests/cli/run-bench-options.sh build; }

# The installed tree: pkg-config, shared and static linking, exported symbols, man pages.
run_install() { run_script "make install" "make install" tests/install/run-install.sh build; }

# Each target counts as one test: passed when its summary line says "0 findings".
run_fuzz() {
	local log rc ok bad
	echo "=== fuzzing"
	log=$(mktemp)
	fuzz/run-fuzz.sh "${UZS_FUZZ_SECONDS:-60}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	ok=$(grep -cE '^fuzz_[a-z]+: .* 0 findings' "$log")
	bad=$(grep -cE '^fuzz_[a-z]+: .* [1-9][0-9]* findings' "$log")
	[ "$rc" -eq 0 ] || [ "$bad" -gt 0 ] || bad=1
	echo "$ok passed, $bad failed"
	total_passed=$((total_passed + ok)); total_failed=$((total_failed + bad))
	rm -f "$log"
}

run_layout
run_variant plain build "" ""
run_variant "address+undefined sanitizers" build-address "SAN=address" ""
# TSan cannot map its shadow under the kernel's full address-space randomisation; and it
# ends a child that starts a thread after a multi-threaded fork unless told not to (the
# library starts one in each forked child of a process with regions: src/agent/agent_core.h).
run_variant "thread sanitizer" build-thread "SAN=thread" \
	"env TSAN_OPTIONS=die_after_fork=0 setarch $(uname -m) -R"
run_variant "fault injection" build-fault "FAULT=1" ""
run_valgrind
run_programs
run_hostile
run_bench_options
run_install
run_fuzz

echo "=== all jobs"
echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
[ "$total_failed" -eq 0 ]
