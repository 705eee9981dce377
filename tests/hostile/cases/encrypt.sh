# SPDX-License-Identifier: MIT
# --encrypt: pages written to the swap file are sealed (ChaCha20-Poly1305) and come back
# exactly. Incompressible data on a budget far below it, so most of it is written back;
# the swap file must then hold none of the program's plaintext (checked through the
# supervisor's descriptor of it while it runs).
compare_run encrypt-round-trip 32 300 --encrypt -- "$progs/fill_random" 96
wb=$(stat_of "$work/stats" written_back_pages)
if [ "${wb:-0}" -gt 0 ]; then
	case_ok encrypt-wrote-back "written_back_pages $wb"
else
	case_fail encrypt-wrote-back "nothing was written back (written_back_pages ${wb:-?}): the case tests nothing"
fi

# The swap file's contents while the program sleeps on its written-back memory: its pages
# (random bytes, each starting with a marker) must not be there in clear. Run with
# ENCRYPT_FLAG= (empty) the same check must find them, or it proves nothing.
no_plaintext_in_swap() { # the run's flag: --encrypt, or none
	local sup fd clear=0 seen=0 rc
	"$uz" run --memory-max 16M $1 -- python3 -c '
import os, sys, time
marker = b"UZS-PLAINTEXT-MARKER-0123456789ab"
x = bytearray(b"".join(marker + os.urandom(4096 - len(marker)) for _ in range(12288)))
time.sleep(5)
sys.exit(0 if x[:len(marker)] == marker else 1)' 2>/dev/null &
	sup=$!
	sleep 3.5
	for fd in /proc/"$sup"/fd/*; do
		case $(readlink "$fd") in *"(deleted)"*|*"/#"*) ;; *) continue ;; esac
		python3 -c '
import sys
with open(sys.argv[1], "rb") as f:
    data = f.read(96 << 20)
sys.exit(0 if len(data) > (4 << 20) else 1)' "$fd" 2>/dev/null || continue
		seen=1
		grep -qa "UZS-PLAINTEXT-MARKER" "$fd" 2>/dev/null && clear=1
	done
	wait "$sup"; rc=$?
	echo "$seen $clear $rc"
}
plain=$(no_plaintext_in_swap "")
sealed=$(no_plaintext_in_swap --encrypt)
if [ "$plain" = "1 1 0" ] && [ "$sealed" = "1 0 0" ]; then
	case_ok encrypt-no-plaintext-in-swap-file
else
	case_fail encrypt-no-plaintext-in-swap-file "swap file seen/in clear/exit: without --encrypt $plain (want 1 1 0), with $sealed (want 1 0 0)"
fi
