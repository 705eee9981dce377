# SPDX-License-Identifier: MIT
# Another user on a root run's sockets: its hello (its own pid, its own userfaultfd) is
# refused with an error and counted in agents_refused, its stat request is closed
# unanswered and counted in stat_refused, and the run ends when its program does, not
# when the stranger lets go. Needs root (to be root's run and become nobody).
stranger_case() {
	local name=stranger-refused tag="stranger-$$-$RANDOM" pid out figs i t0 t1 rc spid
	local as=(setpriv --reuid=nobody --regid=nogroup --clear-groups) py=/usr/bin/python3
	if [ "$(id -u)" != 0 ] || ! "${as[@]}" "$py" -c '' 2>/dev/null; then
		echo "skip - $name: needs root, and $py and setpriv to act as another user"
		return
	fi
	env UZS_HOSTILE_TAG="$tag" "$uz" run --memory-max 16M -- sleep 6 >/dev/null 2>"$work/err" &
	pid=$!
	for i in $(seq 50); do # until the program's own agent is in
		"$uz" stat "$pid" 2>/dev/null | grep -q '^processes 1' && break
		sleep 0.1
	done
	t0=$(date +%s.%N)
	# the stranger holds its end open for 30 s: an accepted one would keep the run going
	timeout -k 2 35 "${as[@]}" "$py" "$here/stranger.py" "$pid" 30 >"$work/stranger" 2>&1 &
	spid=$!
	for i in $(seq 100); do [ -s "$work/stranger" ] && break; sleep 0.1; done
	figs=$("$uz" stat "$pid" 2>/dev/null | grep -E '^(processes|agents_refused|stat_refused) ' | tr '\n' ' ')
	# the program ends 6 s after it started: the run must not wait for the stranger
	while kill -0 "$pid" 2>/dev/null && [ "$(echo "$(date +%s.%N) - $t0 < 20" | bc)" = 1 ]; do
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		rc=timeout
	else
		wait "$pid"; rc=$?
	fi
	t1=$(date +%s.%N)
	kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
	out="$(head -1 "$work/stranger") | $figs| exit $rc after $(printf '%.1f' "$(echo "$t1 - $t0" | bc)") s"
	echo "  $out"
	case $out in
	*"answer -71 stat_bytes 0 | processes 1 agents_refused 1 stat_refused 1 | exit 0 after "*)
		case_ok "$name" "$(sed -n 's/^hello_with \([a-z]*\).*/stranger sent a \1/p' "$work/stranger")" ;;
	*) case_fail "$name" "$out" ;;
	esac
}
stranger_case
