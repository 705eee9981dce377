#!/usr/bin/env bash
# The kernel's zswap against `uzswap run` on the same machine: the same workload
# (bench/workload.c), the same budget, the same compressor (lzo, the one the kernel has),
# run in alternation ROUNDS times in one invocation so that both see the same machine.
# Prints every run, then the median wall times and their ratio (uzswap / kernel). A run
# whose checksum differs from the native one, or that fails, is reported as such.
#   bench/side_by_side.sh [seq|rand] [ROUNDS] [BUDGET] [MiB] [PASSES]
#   KZSWAP=path/to/kernel-zswap.sh (default ../shared/bench/kernel-zswap.sh); needs root.
#   PAGE_CLUSTER=N: vm.page-cluster for the kernel's runs (restored after each). With the
#   default 3 the kernel is OOM-killed on the random workload: on a rotational swap device
#   its readahead brings in the neighbouring slots, which come out of zswap dirty and which
#   reclaim will not write back, until they fill the cgroup (bench/README.md); 0 turns
#   swap readahead off. uzswap's runs are not affected by it.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-seq} rounds=${2:-3} budget=${3:-128M} mib=${4:-512} passes=${5:-3}
kz=${KZSWAP:-../shared/bench/kernel-zswap.sh}
[ -x "$kz" ] || { echo "side_by_side: no $kz (set KZSWAP)" >&2; exit 2; }
make -s build/uzswap build/workload build/libuzswap-agent.so || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
want=$(build/workload "$mode" "$mib" "$passes")
: > "$work/kernel"; : > "$work/uzswap"

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

kernel_run() {
	local old out
	old=$(sysctl -n vm.page-cluster)
	[ -n "${PAGE_CLUSTER:-}" ] && sysctl -q -w vm.page-cluster="$PAGE_CLUSTER"
	out=$("$kz" --limit "$budget" --compressor lzo -- build/workload "$mode" "$mib" "$passes" 2>&1)
	sysctl -q -w vm.page-cluster="$old"
	printf '%s\n' "$out"
}

[ -n "${PAGE_CLUSTER:-}" ] && echo "kernel runs with vm.page-cluster=$PAGE_CLUSTER (now $(sysctl -n vm.page-cluster))"
for r in $(seq 1 "$rounds"); do
	out=$(kernel_run)
	line=$(grep '^kernel_zswap' <<<"$out")
	wall=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' <<<"$line")
	status=$(sed -n 's/.* exit=\([0-9]*\).*/\1/p' <<<"$line")
	same=$(grep -qxF "$want" <<<"$out" && echo yes || echo no)
	echo "round $r kernel: wall_s $wall exit $status same_checksum $same"
	[ "$status" = 0 ] && [ "$same" = yes ] && echo "$wall" >> "$work/kernel"
	got=$(build/uzswap run --memory-max "$budget" --compressor lzo --stats "$work/stats" -- \
		build/workload "$mode" "$mib" "$passes" 2>/dev/null); status=$?
	wall=$(awk '$1 == "wall_s" { print $2 }' "$work/stats")
	same=$([ "$got" = "$want" ] && echo yes || echo no)
	echo "round $r uzswap: wall_s $wall exit $status same_checksum $same" \
		"faults $(awk '$1 == "faults" { print $2 }' "$work/stats")" \
		"waits $(awk '$1 == "waits" { print $2 }' "$work/stats")" \
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
