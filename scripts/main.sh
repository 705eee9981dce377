#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: build, then swap the built-in corpus out and back in through the engine and
# report its figures. Arguments go to `uzswap bench` (see `build/uzswap bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
make -s -j"$(nproc)" build/uzswap
exec build/uzswap bench "$@"
