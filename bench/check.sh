#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Measures the engine's targets as ratios within one invocation and prints them with the
# target each must meet: store and load cost against the raw library calls, scaling from
# 1 to 2 threads, pool efficiency, writeback with a 2 MiB pool for every compressor, the
# cost of groups, and multi-page runs against single pages. Not a test: timings are
# noisy, so run it on a quiet machine and record the figures in bench/README.md.
# Usage: bench/check.sh [ROUNDS] (default 3; the median round is reported).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -j"$(nproc)" build/uzswap
rounds=${1:-3}
uz=build/uzswap

field() { sed -E "s/.*\"$1\": \"?([^,\"}]*).*/\1/" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

store_ratio=() load_ratio=() scale_store=() scale_load=()
for ((r = 0; r < rounds; r++)); do
	one=$($uz bench --compressor lz4 --threads 1 --json)
	two=$($uz bench --compressor lz4 --threads 2 --json)
	store_ratio+=("$(awk -v a="$(field store_us "$one")" -v b="$(field raw_compress_us "$one")" 'BEGIN{printf "%.3f", a/b}')")
	load_ratio+=("$(awk -v a="$(field load_us "$one")" -v b="$(field raw_decompress_us "$one")" 'BEGIN{printf "%.3f", a/b}')")
	scale_store+=("$(awk -v a="$(field store_mbps "$two")" -v b="$(field store_mbps "$one")" 'BEGIN{printf "%.3f", a/b}')")
	scale_load+=("$(awk -v a="$(field load_mbps "$two")" -v b="$(field load_mbps "$one")" 'BEGIN{printf "%.3f", a/b}')")
done
echo "lz4, corpus, 1 thread: $one"
echo "lz4, corpus, 2 threads: $two"
printf 'store_us / raw_compress_us     %s (target <= 1.20)   rounds: %s\n' \
	"$(printf '%s\n' "${store_ratio[@]}" | median)" "${store_ratio[*]}"
printf 'load_us / raw_decompress_us    %s (target <= 1.30)   rounds: %s\n' \
	"$(printf '%s\n' "${load_ratio[@]}" | median)" "${load_ratio[*]}"
printf 'store_mbps 2 threads / 1       %s (target >= 1.70)   rounds: %s\n' \
	"$(printf '%s\n' "${scale_store[@]}" | median)" "${scale_store[*]}"
printf 'load_mbps 2 threads / 1        %s (target >= 1.70)   rounds: %s\n' \
	"$(printf '%s\n' "${scale_load[@]}" | median)" "${scale_load[*]}"
printf 'pool_efficiency (lz4)          %s (target >= 0.95)\n' "$(field pool_efficiency "$one")"
for c in lz4 zstd lzo deflate; do
	out=$($uz bench --compressor $c --pool-limit 2M --json)
	printf '%-8s 2M pool: ratio %s, written_back_pages %s, mismatches %s\n' "$c" \
		"$(field ratio "$out")" "$(field written_back_pages "$out")" "$(field mismatches "$out")"
done
# Groups: the cost of charging pages to groups below the root, the same run with the pages
# spread over 1000 groups against 1 group, also each normalized by its own raw library
# time so that machine noise cancels.
g_store=() g_load=() g_store_n=() g_load_n=()
for ((r = 0; r < rounds; r++)); do
	one=$($uz bench --compressor lz4 --groups 1 --json)
	many=$($uz bench --compressor lz4 --groups 1000 --json)
	norm() { awk -v a="$(field "$1" "$2")" -v b="$(field "$3" "$2")" 'BEGIN{printf "%.4f", a/b}'; }
	g_store+=("$(awk -v a="$(field store_us "$many")" -v b="$(field store_us "$one")" 'BEGIN{printf "%.3f", a/b}')")
	g_load+=("$(awk -v a="$(field load_us "$many")" -v b="$(field load_us "$one")" 'BEGIN{printf "%.3f", a/b}')")
	g_store_n+=("$(awk -v a="$(norm store_us "$many" raw_compress_us)" -v b="$(norm store_us "$one" raw_compress_us)" 'BEGIN{printf "%.3f", a/b}')")
	g_load_n+=("$(awk -v a="$(norm load_us "$many" raw_decompress_us)" -v b="$(norm load_us "$one" raw_decompress_us)" 'BEGIN{printf "%.3f", a/b}')")
done
echo "lz4, corpus, 1 group: $one"
echo "lz4, corpus, 1000 groups: $many"
printf 'store_us 1000 groups / 1 group %s (target <= 1.10)   rounds: %s\n' \
	"$(printf '%s\n' "${g_store[@]}" | median)" "${g_store[*]}"
printf 'load_us 1000 groups / 1 group  %s (target <= 1.10)   rounds: %s\n' \
	"$(printf '%s\n' "${g_load[@]}" | median)" "${g_load[*]}"
printf '  normalized by raw library time: store %s, load %s\n' \
	"$(printf '%s\n' "${g_store_n[@]}" | median)" "$(printf '%s\n' "${g_load_n[@]}" | median)"
# Multi-page runs: per-page cost of runs of 16 pages against single pages, alternated in
# one process (uzswap bench --run-pages reports the medians of its rounds).
r_store=() r_load=()
for ((r = 0; r < rounds; r++)); do
	run=$($uz bench --compressor lz4 --run-pages 16 --json)
	r_store+=("$(awk -v a="$(field store_us "$run")" -v b="$(field single_store_us "$run")" 'BEGIN{printf "%.3f", a/b}')")
	r_load+=("$(awk -v a="$(field load_us "$run")" -v b="$(field single_load_us "$run")" 'BEGIN{printf "%.3f", a/b}')")
done
echo "lz4, corpus, runs of 16: $run"
printf 'store_us runs of 16 / single   %s (target <= 0.85)   rounds: %s\n' \
	"$(printf '%s\n' "${r_store[@]}" | median)" "${r_store[*]}"
printf 'load_us runs of 16 / single    %s (target <= 0.85)   rounds: %s\n' \
	"$(printf '%s\n' "${r_load[@]}" | median)" "${r_load[*]}"
