# SPDX-License-Identifier: MIT
# Sourced by the scripts that run programs under `uzswap run` ($uz set): where this kernel
# or user cannot give uzswap run what it needs (userfaultfd with kernel-mode faults and
# UFFDIO_MOVE), nothing there can run: one line, counted as skipped, exit 77.
if ! why=$("$uz" run --memory-max 16M -- true 2>&1 >/dev/null); then
	echo "SKIP - uzswap run cannot work here: $why"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi
