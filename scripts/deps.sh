#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Makes sure the build dependencies are installed: Debian packages through apt-get when
# run as root, otherwise a clear message naming what is missing. `deps.sh test` adds what
# the test suite needs beyond the build: clang with libFuzzer, valgrind, and the real
# programs run under `uzswap run` (CPython, sqlite3, GNU sort), and pkg-config, binutils and
# man for the installed tree's checks.
set -euo pipefail

packages=(gcc make libc6-dev liblz4-dev libzstd-dev liblzo2-dev zlib1g-dev libsodium-dev
	util-linux)
if [ "${1:-}" = test ]; then
	packages+=(clang libclang-rt-dev valgrind python3 sqlite3 coreutils gawk pkgconf binutils man-db zstd
		groff-base)
fi
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "uzswap: missing Debian packages: ${missing[*]}" >&2
	echo "uzswap: install them as root: apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "uzswap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
