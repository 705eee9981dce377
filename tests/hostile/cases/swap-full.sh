# SPDX-License-Identifier: MIT
# A swap file on a full file system: the output stays right, and uzswap says once, on
# stderr, that the swap file cannot be written and what that means (pages stay in the
# compressed pool; the budget cannot be held), instead of only counting swap_io_fail and
# budget_overruns. Needs root to mount a 20 MB tmpfs for it. (The swap file is named as
# a new file there, which --swapfile has always taken.)
if [ "$(id -u)" != 0 ]; then
	echo "  (not root: cannot mount a small tmpfs to fill; skipped)"
else
	mkdir -p "$work/small"
	(
		trap 'umount "$work/small"' EXIT
		trap 'exit 1' INT TERM HUP
		mount -t tmpfs -o size=20m tmpfs "$work/small" || exit 1
		# 96 MB of pages that do not compress on a 32M budget: about 64 MB for the file
		timeout -k 5 180 "$uz" run --memory-max 32M --swapfile "$work/small/swap" --stats "$work/stats" \
			-- "$progs/fill_random" 96 1 >"$work/out" 2>"$work/err" </dev/null
		echo $? >"$work/rc"
	)
	rc=$(cat "$work/rc")
	want=$("$progs/fill_random" 96 1)
	said=$(grep -c '^uzswap: writes to the swap file in .* fail (its file system is full): evicted pages stay in the compressed pool, so memory.max 32M cannot be held' "$work/err")
	fails=$(stat_of "$work/stats" swap_io_fail)
	if mountpoint -q "$work/small"; then
		case_fail swap-full-unmounted "$work/small is still mounted"
	elif [ "$rc" != 0 ] || [ "$(cat "$work/out")" != "$want" ]; then
		case_fail swap-full "exit $rc, output '$(head -c 100 "$work/out")'; $(head -c 300 "$work/err")"
	elif [ "${fails:-0}" = 0 ]; then
		case_fail swap-full "the swap file never failed (swap_io_fail ${fails:-missing}): the case tests nothing"
	elif [ "$said" != 1 ]; then
		case_fail swap-full "said $said times, want once (swap_io_fail $fails); $(head -c 300 "$work/err")"
	else
		case_ok swap-full "swap_io_fail $fails, budget_overruns $(stat_of "$work/stats" budget_overruns), said once"
	fi
fi
