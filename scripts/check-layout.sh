#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks that dependencies between the source folders go one way:
#   tools -> include (the public header) only
#   vm -> engine, agent, common;  engine -> common;  agent -> common;  common -> nothing
# Every #include "x.h" of a file is resolved to the folder holding x.h; an include of a
# folder not in the file's own list is reported. Prints what it checked; exit 1 on any.
set -u
cd "$(dirname "$0")/.."
declare -A allowed=(
	[common]="common"
	[engine]="engine common"
	[agent]="agent common"
	[vm]="vm engine agent common"
	[tools]="tools include"
)
declare -A home # header name -> folder
for h in include/*.h; do home[$(basename "$h")]=include; done
for h in src/*/*.h; do home[$(basename "$h")]=$(basename "$(dirname "$h")"); done
for h in tools/*.h; do home[$(basename "$h")]=tools; done

bad=0 files=0
for f in src/*/*.[ch] tools/*.[ch]; do
	case $f in src/*) folder=$(basename "$(dirname "$f")") ;; *) folder=tools ;; esac
	files=$((files + 1))
	while read -r inc; do
		to=${home[$inc]:-}
		if [ -z "$to" ]; then
			echo "$f: includes \"$inc\", which no source folder has"; bad=$((bad + 1))
		elif [[ " ${allowed[$folder]} include " != *" $to "* ]]; then
			echo "$f: $folder must not include $to/$inc"; bad=$((bad + 1))
		fi
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done
echo "layout: $files files, $bad wrong-way includes"
[ "$bad" -eq 0 ]
