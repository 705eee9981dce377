# SPDX-License-Identifier: MIT
# Programs the agent cannot be preloaded into would run outside the budget without a
# word: refused before they run, as CMD (exit 126, one line) and when a managed program
# execs them (its exec call fails with EACCES, uzswap says why). Dynamic programs,
# scripts with a dynamic interpreter and programs exec'd with a cleared environment
# still run, managed.
. "$here/errlib.sh"

static_prog="$work/fill_static"
if ! timeout 120 cc -static -O2 "$here/progs/fill_verify.c" -o "$static_prog" 2>"$work/cc.err"; then
	echo "  (no static C library: the statically linked cases are skipped: $(head -c 200 "$work/cc.err"))"
	static_prog=""
fi

if [ -n "$static_prog" ]; then
	expect_error refuse-static-cmd 126 'cannot run .*fill_static: it is statically linked' \
		"$uz" run --memory-max 32M -- "$static_prog" 64 1
	# found through PATH, as execvp finds it
	expect_error refuse-static-cmd-in-path 126 'cannot run fill_static: it is statically linked' \
		env PATH="$work:$PATH" "$uz" run --memory-max 32M -- fill_static 64 1
	if timeout 120 cc -static-pie -O2 "$here/progs/fill_verify.c" -o "$work/fill_static_pie" 2>/dev/null; then
		expect_error refuse-static-pie-cmd 126 'cannot run .*fill_static_pie: it is statically linked' \
			"$uz" run --memory-max 32M -- "$work/fill_static_pie" 64 1
	fi
	printf '#!%s\n' "$static_prog" >"$work/static-interp.sh"
	chmod +x "$work/static-interp.sh"
	expect_error refuse-script-with-static-interpreter 126 'statically linked' \
		"$uz" run --memory-max 32M -- "$work/static-interp.sh"

	# exec'd from a managed program, every way the agent covers
	for how in execv execvp execl execlp execle execve-noenv fexecve posix_spawn posix_spawnp system; do
		name="refuse-static-exec-$how"
		timeout -k 5 60 "$uz" run --memory-max 32M --stats "$work/stats" -- \
			"$progs/exec_via" "$how" "$static_prog" 64 1 >"$work/cli.out" 2>"$work/cli.err" </dev/null
		rc=$?
		said=$(grep -c "uzswap: cannot run .*fill_static: it is statically linked" "$work/cli.err")
		if [ "$rc" != 126 ] || [ "$said" != 1 ] || [ -s "$work/cli.out" ]; then
			case_fail "$name" "exit $rc (want 126), said $said times (want 1), output '$(head -c 100 "$work/cli.out")'; $(head -c 300 "$work/cli.err")"
		else
			case_ok "$name" "exit 126, $(grep -v 'uzswap' "$work/cli.err" | head -1)"
		fi
	done
fi

if [ "$(id -u)" = 0 ]; then
	# setuid to another user: the loader runs it in secure mode, without the agent
	cp "$progs/fill_verify" "$work/fill_setuid"
	chown nobody "$work/fill_setuid" && chmod 4755 "$work/fill_setuid"
	expect_error refuse-setuid-cmd 126 'cannot run .*fill_setuid: it is setuid' \
		"$uz" run --memory-max 32M -- "$work/fill_setuid" 64 1
	timeout -k 5 60 "$uz" run --memory-max 32M --stats "$work/stats" -- \
		"$progs/exec_via" execv "$work/fill_setuid" 64 1 >"$work/cli.out" 2>"$work/cli.err" </dev/null
	rc=$?
	if [ "$rc" = 126 ] && grep -q "it is setuid" "$work/cli.err" && [ ! -s "$work/cli.out" ]; then
		case_ok refuse-setuid-exec "exit 126"
	else
		case_fail refuse-setuid-exec "exit $rc; $(head -c 300 "$work/cli.err")"
	fi
	# file capabilities, run by a user other than root (root gets no secure mode)
	if command -v setcap >/dev/null && command -v setpriv >/dev/null; then
		capdir=$(mktemp -d /var/tmp/uzs-caps.XXXXXX)
		chmod 755 "$capdir"
		cp "$progs/fill_verify" "$capdir/fill_caps"
		if setcap cap_net_bind_service=ep "$capdir/fill_caps" 2>/dev/null; then
			expect_error refuse-file-caps-cmd 126 'cannot run .*fill_caps: it has file capabilities' \
				setpriv --reuid=nobody --regid=nogroup --clear-groups \
				"$uz" run --memory-max 32M -- "$capdir/fill_caps" 64 1
		else
			echo "  (setcap refused here: the file-capability case is skipped)"
		fi
		rm -rf "$capdir"
	else
		echo "  (no setcap or setpriv: the file-capability case is skipped)"
	fi
else
	echo "  (not root: the setuid and file-capability cases are skipped)"
fi

# what must still run, managed
# the dynamic loader run as a program (as ldd does) is no static program: it preloads
loader=$(readelf -l "$progs/fill_verify" 2>/dev/null | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
if [ -n "$loader" ]; then
	compare_run dynamic-loader-as-program 32 120 -- "$loader" "$progs/fill_verify" 64 1
	timeout -k 5 60 "$uz" run --memory-max 32M --stats "$work/stats" -- ldd "$progs/fill_verify" \
		>"$work/cli.out" 2>"$work/cli.err" </dev/null
	rc=$?
	if [ "$rc" = 0 ] && grep -q 'libc\.so' "$work/cli.out"; then
		case_ok ldd-runs "exit 0"
	else
		case_fail ldd-runs "exit $rc: $(head -c 200 "$work/cli.out") $(head -c 300 "$work/cli.err")"
	fi
fi
printf '#!/bin/sh\nexec "%s" 64 1\n' "$progs/fill_verify" >"$work/dynamic-interp.sh"
chmod +x "$work/dynamic-interp.sh"
compare_run script-with-dynamic-interpreter 32 120 -- "$work/dynamic-interp.sh"
# an empty environment for the exec'd program: it keeps the agent, so its memory stays
# within the budget: 64 MB on a 32M budget has at least 16 MB evicted (unmanaged, none is;
# the RSS samples may miss a program this short)
compare_run exec-with-empty-environment 32 120 -- "$progs/exec_via" execve-noenv "$progs/fill_verify" 64 1
evicted=$(stat_of "$work/stats" evicted_pages)
if [ "${evicted:-0}" -ge 4096 ]; then
	case_ok exec-with-empty-environment-managed "evicted_pages $evicted"
else
	case_fail exec-with-empty-environment-managed "evicted_pages ${evicted:-missing}, want >= 4096: the exec'd program ran unmanaged"
fi
compare_run exec-via-posix-spawnp 32 120 -- env PATH="$progs:$PATH" "$progs/exec_via" posix_spawnp fill_verify 64 1
