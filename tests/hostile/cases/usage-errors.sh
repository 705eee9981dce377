# SPDX-License-Identifier: MIT
# Mistakes on `uzswap run`'s command line are usage errors (exit 2) that say in one line
# what is wrong and what would be right; what --help promises is what the code does.
. "$here/errlib.sh"

expect_error usage-unknown-compressor 2 "--compressor wants lz4, lzo, zstd or deflate.*'nope'" \
	"$uz" run --compressor nope -- true
expect_error usage-compressor-bad-level 2 "--compressor wants .*'zstd:99'" \
	"$uz" run --compressor zstd:99 -- true
expect_error usage-memory-max-overflow 2 "--memory-max '99999999T' is too large" \
	"$uz" run --memory-max 99999999T -- true
expect_error usage-memory-max-too-small 2 "--memory-max '100k' is too small.*at least 1M" \
	"$uz" run --memory-max 100k -- true
expect_error usage-memory-max-not-a-size 2 "--memory-max wants a size .*'lots'" \
	"$uz" run --memory-max lots -- true
expect_error usage-zswap-max-overflow 2 "--zswap-max '99999999T' is too large" \
	"$uz" run --zswap-max 99999999T -- true

# a level the compressor has is taken
timeout -k 5 60 "$uz" run --compressor zstd:3 --stats "$work/stats" -- true 2>"$work/cli.err"
rc=$?
if [ "$rc" = 0 ] && head -1 "$work/cli.err" | grep -q 'compressor zstd:3'; then
	case_ok compressor-with-level "exit 0"
else
	case_fail compressor-with-level "exit $rc; $(head -c 300 "$work/cli.err")"
fi

# --memory-max max: all of RAM, and the first line says so
timeout -k 5 60 "$uz" run --memory-max max --stats "$work/stats" -- true 2>"$work/cli.err"
rc=$?
ram_m=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
first=$(head -1 "$work/cli.err")
got_m=$(echo "$first" | sed -n 's/^uzswap run: memory\.max \([0-9]*\)M (max: all of RAM).*/\1/p')
if [ "$rc" = 0 ] && [ -n "$got_m" ] && [ "$got_m" -le "$ram_m" ] && [ "$got_m" -ge $((ram_m * 9 / 10)) ]; then
	case_ok memory-max-max "$first"
else
	case_fail memory-max-max "exit $rc, first line '$first' (MemTotal ${ram_m}M)"
fi

# writeback starts past 3/4 of the budget (src/vm_evict.c): --help says the same
"$uz" run --help >"$work/help" 2>&1
if grep -q 'passes its target' "$work/help" && grep -q '3/4 of the budget at first' "$work/help" &&
   ! grep -q 'half the' "$work/help"; then
	case_ok help-writeback-threshold
else
	case_fail help-writeback-threshold "--help does not say writeback starts past the pool target (3/4 of the budget at first)"
fi
