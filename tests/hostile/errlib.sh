# SPDX-License-Identifier: MIT
# Shared by the cases that check what `uzswap run` says when it refuses something
# (sourced by those case files, after lib.sh). Each check runs under a timeout.

# err_lines FILE: stderr without uzswap's usage hint and its settings line.
err_lines() {
	grep -v -e "^Try 'uzswap --help'\.\$" -e '^uzswap run: memory\.max ' "$1"
}

# expect_error NAME RC PATTERN CMD [ARG...]: CMD exits RC within 60 s, and says why on
# stderr in exactly one line, which matches PATTERN (grep -E).
expect_error() {
	local name=$1 rc_want=$2 pattern=$3 rc lines
	shift 3
	timeout -k 5 60 "$@" >"$work/cli.out" 2>"$work/cli.err" </dev/null
	rc=$?
	lines=$(err_lines "$work/cli.err" | wc -l)
	if [ "$rc" != "$rc_want" ]; then
		case_fail "$name" "exit $rc, want $rc_want; $(head -c 300 "$work/cli.err")"
	elif [ "$lines" != 1 ]; then
		case_fail "$name" "$lines lines on stderr, want one: $(head -c 300 "$work/cli.err")"
	elif ! err_lines "$work/cli.err" | grep -qE -e "$pattern"; then
		case_fail "$name" "stderr does not match /$pattern/: $(head -c 300 "$work/cli.err")"
	else
		case_ok "$name" "exit $rc"
	fi
}
