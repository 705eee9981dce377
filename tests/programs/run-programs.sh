#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real programs nobody here wrote, under `uzswap run` with a budget well below their
# working set: output byte-identical to a native run, the same exit status, zswpout > 0,
# no page lost (pages_lost 0: no page went missing behind uzswap's back, which output
# alone can miss), and the program's peak RSS within 10% of the budget plus a fixed
# overhead (its code and libraries, the agent's staging range: OVERHEAD_MB below).
# Prints "N passed, N failed".
#   run-programs.sh [BUILD]
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
uz=$build/uzswap
OVERHEAD_MB=24
work=$(mktemp -d /var/tmp/uzs-programs.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
# shellcheck source=../skip-unless-run-works.sh
. "$here/../skip-unless-run-works.sh"

check() { # name budget_MB cmd...: native run, then under uzswap run, compared
	local name=$1 budget=$2; shift 2
	local want got rc_want rc_got peak zout lost limit
	want=$("$@" 2>&1 | sha256sum); rc_want=${PIPESTATUS[0]}
	got=$("$uz" run --memory-max "${budget}M" --stats "$work/stats" -- "$@" 2>/dev/null | sha256sum)
	rc_got=${PIPESTATUS[0]}
	peak=$(awk '$1=="program_peak_rss_kB"{print $2}' "$work/stats")
	zout=$(awk '$1=="zswpout"{print $2; exit}' "$work/stats")
	lost=$(awk '$1=="pages_lost"{print $2}' "$work/stats")
	limit=$(( (budget * 1024 * 11 / 10) + OVERHEAD_MB * 1024 ))
	if [ "$want" = "$got" ] && [ "$rc_want" = "$rc_got" ] && [ "${zout:-0}" -gt 0 ] &&
	   [ "${lost:-1}" = 0 ] && [ "${peak:-999999999}" -le "$limit" ]; then
		echo "ok - $name (budget ${budget}M, peak ${peak} kB, zswpout $zout)"
		passed=$((passed + 1))
	else
		echo "FAIL - $name: same output $([ "$want" = "$got" ] && echo yes || echo no)," \
			"exit $rc_want/$rc_got, zswpout ${zout:-?}, pages_lost ${lost:-?}," \
			"peak ${peak:-?} kB (limit $limit)"
		failed=$((failed + 1))
	fi
}

seq 1 1500000 | awk '{ printf "%08d %s\n", ($1 * 7919) % 1000003, $1 }' > "$work/lines"

check cpython-dicts 48 python3 "$here/dicts.py"
check sqlite3-memory-db 24 sqlite3 :memory: ".read $here/big.sql"
check gnu-sort 24 sort -S 64M "$work/lines"
check gnu-sort-two-threads 24 sort --parallel=2 -S 64M -k2,2n "$work/lines"
check exit-status-kept 32 python3 -c 'import sys; x = bytearray(64 << 20); sys.exit(3)'
# The supervisor's own duties, each a pass or a fail.
verdict() { # name, then a command whose success is the pass
	local name=$1; shift
	if "$@"; then echo "ok - $name"; passed=$((passed + 1));
	else echo "FAIL - $name"; failed=$((failed + 1)); fi
}

# uzswap stat answers with live figures while the program runs.
stat_live() {
	local pid out
	"$uz" run --memory-max 16M -- python3 -c \
		'import time; x = bytearray(48 << 20); x[::4096] = b"\x01" * (48 << 8); time.sleep(3)' \
		2>/dev/null & pid=$!
	sleep 1.5
	out=$("$uz" stat "$pid")
	wait "$pid"
	grep -q '^zswpout [1-9]' <<<"$out" && grep -q '^faults [1-9]' <<<"$out"
}

# A signal sent to uzswap reaches the program, which dies of it; uzswap exits the same way.
signal_forwarded() {
	local pid rc
	"$uz" run -- sleep 30 2>/dev/null & pid=$!
	sleep 0.5
	kill -TERM "$pid"
	wait "$pid"; rc=$?
	[ "$rc" -eq 143 ]
}

# fork without exec: the child reads its parent's evicted memory as it was at fork time.
fork_child_reads_evicted() {
	local out
	out=$("$uz" run --memory-max 16M -- python3 -c '
import os, hashlib
x = bytearray(os.urandom(1 << 16) * 512)  # 32 MiB, twice the budget
want = hashlib.sha256(x).hexdigest()
pid = os.fork()
if pid == 0:
    os._exit(0 if hashlib.sha256(x).hexdigest() == want else 1)
x[:] = bytes(len(x))
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))' 2>/dev/null)
	[ "$out" = "child 0" ]
}

# fork without exec, children copying what they share: after a settling second, parent and
# children together hold no more than the budget (+10%, + the fixed overhead).
fork_children_share_budget() {
	local out pss limit=$(( 32 * 1024 * 11 / 10 + OVERHEAD_MB * 1024 ))
	out=$("$uz" run --memory-max 32M -- python3 "$here/fork_budget.py" "$work/pss" 2>/dev/null)
	pss=$(cat "$work/pss" 2>/dev/null)
	echo "  fork children: $out, Pss_Anon of the three ${pss:-?} kB (limit $limit)"
	[ "$out" = "children yy parent y" ] && [ "${pss:-999999999}" -le "$limit" ]
}

# Where userfaultfd cannot serve faults taken inside system calls, uzswap run says so in
# one line and exits 1 rather than run the program half-served. As root the test takes
# that away (it becomes nobody, for whom /dev/userfaultfd is closed and the system call
# without UFFD_USER_MODE_ONLY refused while vm.unprivileged_userfaultfd is 0); otherwise it
# checks whichever of the two answers this user gets.
kernel_mode_required() {
	local out rc as=()
	if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd)" = 0 ] &&
	   ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -w /dev/userfaultfd; then
		as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	fi
	out=$("${as[@]}" "$uz" run --memory-max 16M -- true 2>&1); rc=$?
	echo "  ${as[*]:+as nobody: }exit $rc: $(head -c 120 <<<"$out")"
	if [ ${#as[@]} -gt 0 ] || [ "$rc" -ne 0 ]; then
		[ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q '^uzswap: userfaultfd' <<<"$out"
	else
		[ "$rc" -eq 0 ]
	fi
}

# A bad hello on the agents' socket (not an agent of this build, no userfaultfd where one
# belongs, another process's name) gets a clear refusal, and uzswap keeps none of the
# descriptors it sent: from the program itself, which gets as far as the descriptor's
# check, and from a process outside the program, refused before its hello is looked at.
bad_hello_refused() {
	local pid inside outside i
	inside=$("$uz" run --memory-max 16M -- python3 "$here/bad_hello.py" inside 2>/dev/null)
	"$uz" run --memory-max 16M -- sleep 60 2>/dev/null & pid=$! # ended below
	for i in $(seq 150); do # until the program's own agent is in (slow on a loaded machine)
		"$uz" stat "$pid" 2>/dev/null | grep -q '^processes 1' && break
		sleep 0.1
	done
	outside=$(python3 "$here/bad_hello.py" "$pid")
	outside="$outside $("$uz" stat "$pid" 2>/dev/null | grep '^agents_refused')"
	kill "$pid"; wait "$pid"
	echo "  inside: $inside"
	echo "  outside: $outside"
	[ "$inside" = "wrong_magic -71 not_a_uffd -25 impostor -71 kept_fds 0 agents_refused 3" ] &&
		[ "$outside" = "wrong_magic -71 not_a_uffd -71 impostor -71 kept_fds 0 agents_refused 3" ]
}

# The fault thread is pinned alone to a CPU by default (when there are two or more; with
# two, the eviction thread has the other one to itself), and --no-pin leaves every thread
# of uzswap's free to run on all of them.
pinned_threads() { # [--no-pin]: how many of uzswap's threads may run on one CPU only
	local pid n=0 t
	"$uz" run "$@" -- sleep 2 2>/dev/null & pid=$!
	sleep 0.5
	for t in /proc/"$pid"/task/*; do
		grep -Eq '^Cpus_allowed_list:[[:space:]]+[0-9]+$' "$t/status" && n=$((n + 1))
	done
	wait "$pid"
	echo "$n"
}
pinning_flag() {
	local pinned unpinned
	pinned=$(pinned_threads) unpinned=$(pinned_threads --no-pin)
	echo "  single-CPU threads: $pinned pinned, $unpinned with --no-pin"
	if [ "$(nproc)" -lt 2 ]; then [ "$pinned" = "$unpinned" ]; else [ "$pinned" -ge 1 ] && [ "$unpinned" = 0 ]; fi
}

verdict uzswap-stat-live stat_live
verdict signal-forwarded signal_forwarded
verdict fork-child-reads-evicted fork_child_reads_evicted
verdict fork-children-share-budget fork_children_share_budget
verdict kernel-mode-userfaultfd-required kernel_mode_required
verdict bad-hello-refused bad_hello_refused
verdict pinning-flag pinning_flag
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
