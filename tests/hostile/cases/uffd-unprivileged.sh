# SPDX-License-Identifier: MIT
# An unprivileged user who may open /dev/userfaultfd still gets no fork events from the
# kernel without CAP_SYS_PTRACE: `uzswap run` must say that, in one line, not blame the
# kernel's version. Needs root (to open the device to others for a moment and to run as
# nobody); the device's mode is put back however the case ends.
. "$here/errlib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "  (not root: cannot open /dev/userfaultfd to another user; skipped)"
elif [ ! -c /dev/userfaultfd ] || ! command -v setpriv >/dev/null; then
	echo "  (no /dev/userfaultfd or no setpriv; skipped)"
elif ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$uz"; then
	echo "  (nobody cannot run $uz from here; skipped)"
else
	mode=$(stat -c %a /dev/userfaultfd)
	(
		trap 'chmod "$mode" /dev/userfaultfd' EXIT
		trap 'exit 1' INT TERM HUP
		chmod 0666 /dev/userfaultfd
		timeout -k 5 60 setpriv --reuid=nobody --regid=nogroup --clear-groups \
			"$uz" run --memory-max 32M -- /bin/true >"$work/cli.out" 2>"$work/cli.err" </dev/null
		echo $? >"$work/cli.rc"
	)
	rc=$(cat "$work/cli.rc")
	if [ "$(stat -c %a /dev/userfaultfd)" != "$mode" ]; then
		case_fail uffd-unprivileged-mode-restored "/dev/userfaultfd is $(stat -c %a /dev/userfaultfd), was $mode"
	fi
	if [ "$rc" = 0 ]; then
		case_ok uffd-unprivileged "this kernel gives fork events to nobody: nothing to explain"
	else
		lines=$(err_lines "$work/cli.err" | wc -l)
		if [ "$rc" = 1 ] && [ "$lines" = 1 ] && grep -q 'fork events.*CAP_SYS_PTRACE' "$work/cli.err"; then
			case_ok uffd-unprivileged "exit 1: $(head -c 120 "$work/cli.err")..."
		else
			case_fail uffd-unprivileged "exit $rc, $lines lines: $(head -c 300 "$work/cli.err")"
		fi
	fi
fi
