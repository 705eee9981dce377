# SPDX-License-Identifier: MIT
# `kill -9` of uzswap run while a forked child of the program runs on memory mostly
# evicted: nobody can bring those pages back, so the child must be killed, never read
# zeros where its data was. fork_kill_verify fills 96 MB (budget 24M), forks, and the
# child checks the data in two threads for 30 s; the supervisor is killed while it
# checks (odd rounds) or right after the fork (even rounds: around the child's hello).
# Passes when no round prints a mismatch or lets the child finish, and no process of
# the program is left.

# Pids of the processes whose environment carries the tag.
tagged_pids() {
	grep -lzx "UZS_HOSTILE_TAG=$1" /proc/[0-9]*/environ 2>/dev/null |
		sed 's|^/proc/\([0-9]*\)/environ$|\1|'
}

# wait_line FILE TEXT SECONDS: 0 once TEXT is a line of FILE.
wait_line() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -qx "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# kill_round ROUND: "" when it went right, else why not.
kill_round() {
	local tag="fork-kill-$$-$RANDOM" out="$work/fork-kill.out" sup left i marker delay
	env UZS_HOSTILE_TAG="$tag" "$uz" run --memory-max 24M -- \
		"$progs/fork_kill_verify" 96 30 >"$out" 2>&1 &
	sup=$!
	if [ $(($1 % 2)) -eq 1 ]; then
		marker="child verifying" delay=0.$((RANDOM % 8 + 2))
	else
		marker="forking" delay=0.0$((RANDOM % 10))
	fi
	if ! wait_line "$out" "$marker" 90; then
		kill -9 "$sup" $(tagged_pids "$tag") 2>/dev/null
		wait "$sup" 2>/dev/null
		echo "no \"$marker\" within 90 s: $(head -c 200 "$out")"
		return
	fi
	sleep "$delay"
	kill -9 "$sup"
	wait "$sup" 2>/dev/null
	for ((i = 0; i < 200; i++)); do # 10 s for the agents to end their processes
		[ -z "$(tagged_pids "$tag")" ] && break
		sleep 0.05
	done
	left=$(tagged_pids "$tag" | tr '\n' ' ')
	[ -n "$left" ] && kill -9 $left 2>/dev/null
	if grep -q MISMATCH "$out"; then
		echo "the child read wrong data after the kill ($marker + ${delay}s): $(grep -m1 MISMATCH "$out")"
	elif grep -q "child done" "$out"; then
		echo "the child ran to its end after the kill ($marker + ${delay}s)"
	elif [ -n "$left" ]; then
		echo "processes left behind: $left"
	fi
}

fork_kill_rounds=${UZS_FORK_KILL_ROUNDS:-5}
fork_kill_why=""
for ((round = 1; round <= fork_kill_rounds; round++)); do
	fork_kill_why=$(kill_round "$round")
	[ -n "$fork_kill_why" ] && break
	echo "  round $round: the program's processes ended, no wrong data"
done
if [ -n "$fork_kill_why" ]; then
	case_fail fork-supervisor-kill "round $round of $fork_kill_rounds: $fork_kill_why"
else
	case_ok fork-supervisor-kill "$fork_kill_rounds rounds"
fi
