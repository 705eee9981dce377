#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every test binary in the build directory given ($1, default build), each under the
# runner command $2 if given (valgrind ...), and prints one closing "N passed, N failed"
# line over all of them (", N skipped" added when a binary skipped: exit 77, the kernel or
# user lacks what it needs). A binary that exits non-zero with no failed case is counted
# broken (a sanitizer's or valgrind's report). $UZS_TESTS_EXCLUDE: binaries to leave out.
set -u
build=${1:-build}
runner=${2:-}
passed=0 failed=0 skipped=0 broken=()
for t in "$build"/test_*; do
	[ -x "$t" ] || continue
	case " ${UZS_TESTS_EXCLUDE:-} " in *" $(basename "$t") "*) continue ;; esac
	echo "== $(basename "$t")"
	out=$($runner "$t" 2>&1); rc=$?
	printf '%s\n' "$out"
	if [ "$rc" -eq 77 ]; then skipped=$((skipped + 1)); continue; fi
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -z "$line" ]; then
		broken+=("$(basename "$t") (exit $rc, no summary)"); failed=$((failed + 1)); continue
	fi
	p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
	passed=$((passed + p)); failed=$((failed + f))
	[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || { broken+=("$(basename "$t") (exit $rc)"); failed=$((failed + 1)); }
done
for b in "${broken[@]+"${broken[@]}"}"; do echo "broken: $b"; done
echo "$passed passed, $failed failed$([ "$skipped" -eq 0 ] || echo ", $skipped skipped")"
[ "$failed" -eq 0 ]
