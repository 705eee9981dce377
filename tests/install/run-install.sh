#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What a distribution and a program linking uzswap rely on: `make install DESTDIR=...`
# lays out a tree that pkg-config describes, docs/example.c builds and runs against it
# (shared and static), the libraries export only uzs_* calls (a program may have its own
# pool_create), the installed command finds its agent, and the man pages are there.
# Prints "N passed, N failed".
#   run-install.sh [BUILD]
set -u
cd "$(dirname "$0")/../.."
build=${1:-build}
stage=$(mktemp -d /var/tmp/uzs-install.XXXXXX)
trap 'rm -rf "$stage"' EXIT
prefix=/usr/local
root=$stage$prefix
passed=0 failed=0
verdict() { # name, then a command whose success is the pass
	local name=$1; shift
	if "$@"; then echo "ok - $name"; passed=$((passed + 1));
	else echo "FAIL - $name"; failed=$((failed + 1)); fi
}
pc() { PKG_CONFIG_PATH=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage pkg-config "$@" uzswap; }

installed() { make -s install BUILD="$build" PREFIX=$prefix DESTDIR="$stage" >/dev/null; }
example_shared() {
	# shellcheck disable=SC2046
	cc -o "$stage/example" docs/example.c $(pc --cflags --libs) &&
	LD_LIBRARY_PATH=$root/lib "$stage/example" | grep -qx 'hello from a swapped-out page' &&
	LD_LIBRARY_PATH=$root/lib ldd "$stage/example" | grep -q "libuzswap.so.0 => $root/lib/"
}
example_static() {
	# shellcheck disable=SC2046
	cc -o "$stage/example-static" docs/example.c $(pc --cflags) "$root/lib/libuzswap.a" \
		$(pc --static --libs | sed 's/-luzswap//') &&
	"$stage/example-static" | grep -qx 'hello from a swapped-out page'
}
only_public_symbols() {
	local shared archive
	shared=$(nm -D --defined-only "$root/lib/libuzswap.so" | awk '$2 != "A" && $3 !~ /^uzs_/')
	archive=$(nm -g --defined-only "$root/lib/libuzswap.a" | awk 'NF == 3 && $3 !~ /^uzs_/')
	[ -n "$(nm -D --defined-only "$root/lib/libuzswap.so" | grep ' uzs_open')" ] &&
	[ -z "$shared$archive" ] || { echo "  exported beyond uzs_*: $shared $archive"; return 1; }
	! nm "$root/lib/libuzswap.a" | grep -q uzs_test_ # test hooks stay in the tests' copy
}
own_names_do_not_collide() {
	# shellcheck disable=SC2046
	cc -o "$stage/collide" tests/install/collide.c $(pc --cflags) "$root/lib/libuzswap.a" \
		$(pc --static --libs | sed 's/-luzswap//') &&
	[ "$("$stage/collide")" = "ours 42 43 44 45, library ok" ]
}
version_agrees() {
	local want
	want=$(sed -n 's/^#define UZS_VERSION_STRING "\(.*\)"/\1/p' include/uzswap.h)
	[ "$("$root/bin/uzswap" --version)" = "uzswap $want (library $want)" ] &&
	[ "$(pc --modversion)" = "$want" ]
}
installed_run_finds_agent() {
	local out
	out=$("$root/bin/uzswap" run --memory-max 16M -- sh -c 'echo $UZSWAP_AGENT_SOCKET' 2>&1)
	case $out in
	*"userfaultfd"*) echo "  (no userfaultfd here, not checked: $out)"; return 0 ;;
	esac
	grep -q '^uzswap-agent-' <<<"$out"
}
man_pages() {
	[ -s "$root/share/man/man1/uzswap.1" ] && [ -s "$root/share/man/man3/libuzswap.3" ] &&
	! man -l --warnings -E UTF-8 "$root/share/man/man1/uzswap.1" 2>&1 >/dev/null | grep . &&
	! man -l --warnings -E UTF-8 "$root/share/man/man3/libuzswap.3" 2>&1 >/dev/null | grep .
}

if verdict install installed; then
	verdict example-through-pkg-config-shared example_shared
	verdict example-through-pkg-config-static example_static
	verdict only-uzs-symbols-exported only_public_symbols
	verdict own-internal-names-do-not-collide own_names_do_not_collide
	verdict version-agrees version_agrees
	verdict installed-run-finds-agent installed_run_finds_agent
	verdict man-pages-install-and-render man_pages
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
