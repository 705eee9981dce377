#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The kernel's zswap (or zram) against `uzswap run` on the same machine: the same workload
# (bench/workload.c, or bench/cpython_big.py), the same compressor, the same total memory,
# run in alternation ROUNDS times in one invocation so that both see the same machine.
# Prints every run, then the median wall times and their ratio (uzswap / kernel). A run
# whose output differs from the native one (the checksum), or that fails, is reported as
# such and left out of the medians.
#   bench/side_by_side.sh [seq|rand|cpython] [ROUNDS] [BUDGET] [MiB] [PASSES]
#   Needs root and kernel-zswap.sh, a script kept outside the repository (what it must
#   do: bench/README.md, "The kernel side: what kernel-zswap.sh must do"). KZSWAP=path
#   sets it; by default ../shared/bench/kernel-zswap.sh beside this checkout, or beside
#   the main checkout when this is a git worktree.
#   ZRAM=ALGO: the kernel swaps to zram compressing with ALGO (e.g. lz4), not to zswap,
#   and uzswap uses ALGO too. Without it both use lzo, the compressor this kernel's zswap
#   has.
#   SAME_TOTAL=1 (default): where the kernel's compressed pool is outside the cgroup's
#   limit (zram always; zswap under cgroup v1), uzswap gets BUDGET plus the pool's peak
#   in the same round (pool_bytes_peak), the same total memory; SAME_TOTAL=0 gives both
#   BUDGET alone.
#   PAGE_CLUSTER=N: vm.page-cluster for the kernel's runs (restored after each). With the
#   default 3 the kernel's zswap is OOM-killed on the random workload: on a rotational swap
#   device its readahead brings in the neighbouring slots, which come out of zswap dirty
#   and which reclaim will not write back, until they fill the cgroup (bench/README.md);
#   0 turns swap readahead off. uzswap's runs are not affected by it.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-seq} rounds=${2:-3} budget=${3:-128M} mib=${4:-512} passes=${5:-3}
case $mode in
seq | rand) cmd=(build/workload "$mode" "$mib" "$passes") ;;
cpython) cmd=(python3 bench/cpython_big.py) ;;
*) echo "usage: bench/side_by_side.sh [seq|rand|cpython] [ROUNDS] [BUDGET] [MiB] [PASSES]" >&2; exit 2 ;;
esac

if [ -n "${KZSWAP:-}" ]; then
	kz=$KZSWAP
else
	kz=../shared/bench/kernel-zswap.sh
	main=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null)
	[ -x "$kz" ] || [ -z "$main" ] || kz=$(dirname "$main")/../shared/bench/kernel-zswap.sh
fi
[ -x "$kz" ] || {
	echo "side_by_side: needs kernel-zswap.sh (runs a command under the kernel's zswap or zram in a memory cgroup, prints wall_s and pool_bytes_peak; see bench/README.md), not found at $kz: set KZSWAP=/path/to/an/equivalent" >&2
	exit 2
}

comp=${ZRAM:-lzo}
kernel_opts=(--limit "$budget" --compressor lzo)
[ -n "${ZRAM:-}" ] && kernel_opts+=(--zram "$ZRAM")
# Whether the kernel's pool is outside the limit: zram's memory is the block device's;
# zswap's is charged to the memory cgroup only under cgroup v2.
outside=0
{ [ -n "${ZRAM:-}" ] || [ ! -f /sys/fs/cgroup/cgroup.controllers ]; } && outside=1
[ "${SAME_TOTAL:-1}" = 1 ] || outside=0
budget_bytes=$(numfmt --from=iec "$budget") || exit 2

make -s build/uzswap build/workload build/libuzswap-agent.so || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
want=$("${cmd[@]}")
: > "$work/kernel"; : > "$work/uzswap"

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

kernel_run() {
	local old out
	old=$(sysctl -n vm.page-cluster)
	[ -n "${PAGE_CLUSTER:-}" ] && sysctl -q -w vm.page-cluster="$PAGE_CLUSTER"
	out=$("$kz" "${kernel_opts[@]}" -- "${cmd[@]}" 2>&1)
	sysctl -q -w vm.page-cluster="$old"
	printf '%s\n' "$out"
}

echo "kernel: $([ -n "${ZRAM:-}" ] && echo "zram $ZRAM" || echo "zswap lzo"), limit $budget; uzswap: $comp, budget $budget" \
	"$([ $outside = 1 ] && echo "plus the kernel's pool peak of the same round" || echo alone)"
[ -n "${PAGE_CLUSTER:-}" ] && echo "kernel runs with vm.page-cluster=$PAGE_CLUSTER (now $(sysctl -n vm.page-cluster))"
for r in $(seq 1 "$rounds"); do
	out=$(kernel_run)
	line=$(grep '^kernel_zswap' <<<"$out")
	if ! grep -q 'wall_s=' <<<"$line"; then
		echo "side_by_side: the kernel's run did not start: $(grep -m1 'unavailable' <<<"$out" || tail -1 <<<"$out")" >&2
		exit 2
	fi
	wall=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' <<<"$line")
	status=$(sed -n 's/.* exit=\([0-9]*\).*/\1/p' <<<"$line")
	pool=$(sed -n 's/.*pool_bytes_peak=\([0-9]*\).*/\1/p' <<<"$line")
	same=$(grep -qxF "$want" <<<"$out" && echo yes || echo no)
	echo "round $r kernel: wall_s $wall exit $status same_checksum $same pool_bytes_peak ${pool:-?}"
	[ "$status" = 0 ] && [ "$same" = yes ] && echo "$wall" >> "$work/kernel"
	ubudget=$budget_bytes
	[ $outside = 1 ] && ubudget=$((budget_bytes + ${pool:-0}))
	got=$(build/uzswap run --memory-max "$ubudget" --compressor "$comp" --stats "$work/stats" -- \
		"${cmd[@]}" 2>/dev/null); status=$?
	wall=$(awk '$1 == "wall_s" { print $2 }' "$work/stats")
	same=$([ "$got" = "$want" ] && echo yes || echo no)
	echo "round $r uzswap: wall_s $wall exit $status same_checksum $same memory_max $ubudget" \
		"faults $(awk '$1 == "faults" { print $2 }' "$work/stats")" \
		"waits $(awk '$1 == "waits" { print $2 }' "$work/stats")" \
		"pages_lost $(awk '$1 == "pages_lost" { print $2 }' "$work/stats")" \
		"peak_rss_kB $(awk '$1 == "program_peak_rss_kB" { print $2 }' "$work/stats")"
	[ "$status" = 0 ] && [ "$same" = yes ] && echo "$wall" >> "$work/uzswap"
done
k=$( [ -s "$work/kernel" ] && median < "$work/kernel" || echo none)
u=$( [ -s "$work/uzswap" ] && median < "$work/uzswap" || echo none)
echo "median wall_s: kernel $k ($(wc -l < "$work/kernel") of $rounds completed)," \
	"uzswap $u ($(wc -l < "$work/uzswap") of $rounds completed)"
if [ "$k" != none ] && [ "$u" != none ]; then
	echo "ratio uzswap / kernel: $(echo "scale=3; $u / $k" | bc)"
fi
