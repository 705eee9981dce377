# SPDX-License-Identifier: MIT
# Ranges the kernel does not copy into a forked child as they are: MADV_WIPEONFORK (the
# child gets them empty) and MADV_DONTFORK (the child does not have them, and may map new
# memory there). The child's record of its pages must follow the kernel's.
# Most of the range evicted at the fork: the child must read zeros, not its parent's data.
compare_run wipeonfork-evicted 32 300 -- "$progs/wipeonfork" 64
# All resident at the fork: the child's pages are missing, not lost (pages_lost 0).
compare_run wipeonfork-resident 64 300 -- "$progs/wipeonfork" 4
# The child's new mapping where the parent's DONTFORK range is: fresh (zeros), and
# managed (the budget holds over parent and child).
compare_run dontfork-remap 32 300 -- "$progs/dontfork" 64
