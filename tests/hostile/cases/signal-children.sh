# SPDX-License-Identifier: MIT
# SIGTERM to uzswap run reaches every process of the program: with the top process
# waiting for its forked children, and with the top process gone and only the children
# left. Each time the program's processes are gone within 3 s, uzswap exits within 20 s
# (its own shutdown takes from under a second to 8 s on a loaded machine; before, it
# did not end at all) as the top process did
# (143: killed by SIGTERM; 0: it had exited), and no process of the program is left.

# The pids in a file still running with the tag in their environment (not zombies).
tagged_alive() { # pids-file tag
	local pid
	while read -r pid; do
		grep -qzx "UZS_HOSTILE_TAG=$2" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
	done <"$1"
}

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# signal_case NAME WANT_RC PROG-ARGS...
signal_case() {
	local name=$1 want=$2 tag="$1-$$-$RANDOM" pid rc i n need t0 gone_ms="" end_ms left
	shift 2
	need=$(($1 + ($# == 1))) # the children, and the top process unless it leaves
	env UZS_HOSTILE_TAG="$tag" "$uz" run --memory-max 32M -- "$progs/fork_sleepers" "$@" \
		>"$work/out" 2>"$work/err" &
	pid=$!
	for i in $(seq 100); do # until every process has its agent
		n=$("$uz" stat "$pid" 2>/dev/null | awk '$1=="processes"{print $2}')
		[ "${n:-0}" -ge "$need" ] && grep -q forked "$work/out" && break
		sleep 0.1
	done
	grep -l "UZS_HOSTILE_TAG=$tag" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 |
		grep -vx "$pid" >"$work/pids"
	t0=$(date +%s%N)
	kill -TERM "$pid"
	while [ "$(ms_since "$t0")" -lt 30000 ]; do
		[ -z "$gone_ms" ] && [ -z "$(tagged_alive "$work/pids" "$tag")" ] && gone_ms=$(ms_since "$t0")
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"; wait "$pid" 2>/dev/null
		rc=timeout
	else
		wait "$pid"; rc=$?
	fi
	end_ms=$(ms_since "$t0")
	sleep 0.2
	left=$(leftovers "$work/pids" "$tag" 2>/dev/null) # (gone while read: not left)
	echo "  $(wc -l <"$work/pids") program processes, $n with agents; gone ${gone_ms:-never} ms," \
		"uzswap exit $rc $end_ms ms after SIGTERM"
	if [ "$rc" != "$want" ]; then
		case_fail "$name" "exit $rc, not $want; $(head -c 200 "$work/err")"
	elif [ -n "$left" ]; then
		case_fail "$name" "processes left behind:$left"
	elif [ -z "$gone_ms" ] || [ "$gone_ms" -gt 3000 ] || [ "$end_ms" -gt 20000 ]; then
		case_fail "$name" "processes gone ${gone_ms:-never} ms, uzswap $end_ms ms after SIGTERM"
	else
		case_ok "$name" "gone in $gone_ms ms, uzswap in $end_ms ms"
	fi
}
signal_case sigterm-forked-children 143 4
signal_case sigterm-after-top-exit 0 4 top-exits
