# SPDX-License-Identifier: MIT
# The harness itself: a plain fill and read-back twice the budget, which passes today.
compare_run baseline-fill 32 120 -- "$progs/fill_verify" 64 2
