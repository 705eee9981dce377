#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Programs that use memory the way a hostile or unusual program would, under
# `uzswap run`: every case file in tests/hostile/cases/ (see lib.sh for what each checks).
# Prints "N passed, N failed".
#   run-hostile.sh [BUILD] [CASE...]     CASE: a file name in cases/ without .sh
set -u
build=${1:-build}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
uz=$(cd "$build" && pwd)/uzswap
progs=$(cd "$build" && pwd)/hostile
work=$(mktemp -d /var/tmp/uzs-hostile.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
# shellcheck source=../skip-unless-run-works.sh
. "$here/../skip-unless-run-works.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
	for f in "$here"/cases/*.sh; do cases+=("$(basename "$f" .sh)"); done
fi
for c in "${cases[@]}"; do
	echo "== $c"
	# shellcheck disable=SC1090
	. "$here/cases/$c.sh"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
