# SPDX-License-Identifier: MIT
# Shared by the hostile cases (tests/hostile/cases/*.sh): a program run natively and under
# `uzswap run` with a budget below its peak must give the same output and exit status,
# lose no page, leave no process behind and keep the summed anonymous RSS of its
# processes within 1.1 x the budget + 8 MB. Sourced by run-hostile.sh, which sets:
#   $uz      the uzswap binary        $progs  the built test programs
#   $work    a scratch directory      $here   tests/hostile
# Each case file calls `case_ok NAME` or `case_fail NAME WHY` once per case, through
# compare_run or on its own, and may print indented detail lines.

RSS_SLACK_KB=$((8 * 1024))

case_ok() { echo "ok - $1${2:+ ($2)}"; passed=$((passed + 1)); }
case_fail() { echo "FAIL - $1: $2"; failed=$((failed + 1)); }

# stat_of FILE NAME: a figure from a --stats file ("" when absent).
stat_of() { awk -v n="$2" '$1==n{print $2; exit}' "$1" 2>/dev/null; }

# Processes still alive from a list of pids, each checked to be one of ours (its
# environment carries the run's tag), so a recycled pid is not mistaken for one.
leftovers() { # pids-file tag
	local pid left=""
	while read -r pid; do
		[ -r "/proc/$pid/environ" ] || continue
		if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "UZS_HOSTILE_TAG=$2"; then
			left="$left $pid"
			kill -9 "$pid" 2>/dev/null
		fi
	done <"$1"
	echo "$left"
}

# compare_run NAME BUDGET_MB TIMEOUT_S [UZSWAP_RUN_FLAG...] -- CMD [ARG...]
# Runs CMD natively, then under uzswap run --memory-max BUDGET_MB; both under TIMEOUT_S.
compare_run() {
	local name=$1 budget=$2 limit_s=$3; shift 3
	local flags=() tag want got rc_want rc_got lost peak left cap
	while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
	shift
	tag="$name-$$-$RANDOM"
	want=$(timeout -k 5 "$limit_s" "$@" 2>&1 | sha256sum); rc_want=${PIPESTATUS[0]}
	rm -f "$work/stats" "$work/rss" "$work/rss.pids"
	env UZS_HOSTILE_TAG="$tag" timeout -k 5 "$limit_s" "$uz" run --memory-max "${budget}M" \
		--stats "$work/stats" "${flags[@]}" -- "$@" >"$work/out" 2>"$work/err" &
	local tpid=$!
	python3 "$here/sample_rss.py" "$tpid" "$work/rss" &
	local spid=$!
	wait "$tpid"; rc_got=$?
	wait "$spid"
	got=$(sha256sum <"$work/out")
	lost=$(stat_of "$work/stats" pages_lost)
	peak=$(cat "$work/rss" 2>/dev/null)
	left=$(leftovers "$work/rss.pids" "$tag")
	cap=$((budget * 1024 * 11 / 10 + RSS_SLACK_KB))
	if [ "$want" != "$got" ]; then
		case_fail "$name" "output differs (exit $rc_want native, $rc_got under uzswap); $(head -c 300 "$work/err")"
	elif [ "$rc_want" != "$rc_got" ]; then
		case_fail "$name" "exit $rc_want native, $rc_got under uzswap; $(head -c 300 "$work/err")"
	elif [ "${lost:-x}" != 0 ]; then
		case_fail "$name" "pages_lost ${lost:-missing}"
	elif [ -n "$left" ]; then
		case_fail "$name" "processes left behind:$left"
	elif [ "${peak:-999999999}" -gt "$cap" ]; then
		case_fail "$name" "summed anonymous RSS peaked at ${peak:-?} kB (cap $cap kB)"
	else
		case_ok "$name" "budget ${budget}M, anon peak ${peak} kB"
	fi
}
