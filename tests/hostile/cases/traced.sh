# SPDX-License-Identifier: MIT
# A debugger attached to a program under uzswap reads its evicted memory: the pages are
# brought back once the tracer is seen (TracerPid), and eviction resumes after it
# detaches. peek attaches a tracer of its own (PTRACE_PEEKDATA and /proc/PID/mem).
compare_run traced-peekdata 32 120 -- "$progs/peek" 36

# gdb -p, from outside, on the oldest (first evicted) page of a program holding 48 MiB on
# a 16 MiB budget.
traced_gdb() {
	local fifo="$work/hold.in" line addr want pid out rc
	if ! command -v gdb >/dev/null; then
		case_ok traced-gdb "gdb not installed: skipped"
		return
	fi
	rm -f "$fifo" "$work/stats"
	mkfifo "$fifo"
	timeout -k 5 120 "$uz" run --memory-max 16M --stats "$work/stats" -- "$progs/peek" hold 48 \
		<"$fifo" >"$work/hold.out" 2>"$work/err" &
	local upid=$!
	exec 9>"$fifo"
	for _ in $(seq 100); do [ -s "$work/hold.out" ] && break; sleep 0.1; done
	read -r pid addr want <"$work/hold.out"
	sleep 0.5 # eviction settles: the first page is long out
	out=$(timeout 60 gdb -nx -batch -p "$pid" -ex "x/2xg 0x$addr" 2>&1 | grep "^0x$addr")
	exec 9>&-
	wait "$upid"; rc=$?
	if [ -z "$pid" ] || [ -z "$addr" ]; then
		case_fail traced-gdb "the program did not start: $(head -c 300 "$work/err")"
	elif ! grep -q "0x$want" <<<"$out"; then
		case_fail traced-gdb "gdb read '${out:-nothing}' at 0x$addr, want 0x$want"
	elif [ "$rc" != 0 ] || [ "$(stat_of "$work/stats" pages_lost)" != 0 ]; then
		case_fail traced-gdb "exit $rc, pages_lost $(stat_of "$work/stats" pages_lost)"
	else
		case_ok traced-gdb "x/2xg read the evicted page; traced_pages_in $(stat_of "$work/stats" traced_pages_in)"
	fi
}
traced_gdb
