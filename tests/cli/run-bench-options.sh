#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every `uzswap bench` option, alone and in the combinations the README and uzswap(1)
# show: each run completes, verifies every page (mismatches 0, exit 0), and its --json
# output parses (with Python's json module, not by pattern). Bad values are usage errors
# (exit 2). Prints "N passed, N failed".
#   run-bench-options.sh [BUILD]
set -u
cd "$(dirname "$0")/../.."
uz=${1:-build}/uzswap
work=$(mktemp -d /var/tmp/uzs-bench-options.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
verdict() { # name, then a command whose success is the pass
	local name=$1; shift
	if "$@"; then echo "ok - $name"; passed=$((passed + 1));
	else echo "FAIL - $name"; failed=$((failed + 1)); fi
}
# bench_ok ARGS...: exit 0, mismatches 0, and the JSON form parses with the same result.
bench_ok() {
	local out
	out=$(timeout 300 "$uz" bench "$@" --json 2>"$work/err") || { head -c 300 "$work/err"; return 1; }
	python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["mismatches"] == 0 and r["pages"] > 0 else 1)' "$out"
}
# A written-back part of a run is loaded page by page: split_runs > 0, nothing lost.
split_runs_counted() {
	local out
	out=$(timeout 300 "$uz" bench --run-pages 16 --pool-limit 8M --json 2>"$work/err") || return 1
	python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["mismatches"] == 0 and r["split_runs"] > 0 and r["written_back_pages"] > 0 else 1)' "$out"
}
usage_error() { timeout 60 "$uz" bench "$@" >/dev/null 2>&1; [ $? -eq 2 ]; }
raw_pages() { # a raw page file of the corpus's first 512 pages
	zstd -dc corpus/python-heap-8k.pages.zst 2>/dev/null | head -c $((512 * 4096)) >"$work/raw.pages" &&
	bench_ok --pages "$work/raw.pages"
}

verdict default bench_ok
for c in lz4 zstd lzo deflate zstd:9 deflate:1; do verdict "compressor-$c" bench_ok --compressor "$c"; done
verdict threads-2 bench_ok --threads 2
verdict pool-limit-writeback bench_ok --pool-limit 4M
verdict swapfile-directory bench_ok --pool-limit 4M --swapfile "$work"
verdict encrypt bench_ok --pool-limit 2M --encrypt
verdict groups bench_ok --groups 8 --group-stats
verdict run-pages-16 bench_ok --run-pages 16
verdict run-pages-16-pool-limit-8M split_runs_counted
verdict run-pages-64-threads-2 bench_ok --run-pages 64 --threads 2
verdict pages-file raw_pages
verdict bad-run-pages usage_error --run-pages 3
verdict bad-threads usage_error --threads 0
verdict bad-compressor usage_error --compressor nope
verdict bad-pool-limit usage_error --pool-limit lots
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
