# SPDX-License-Identifier: MIT
# Memory uzswap cannot move out (read-only, locked, pinned by io_uring) is set aside and
# charged, and the rest is evicted in its place, so the program stays within its budget;
# so does one another process has read or written with process_vm_readv/writev (a
# program of its own, which uzswap does not manage).
compare_run unmovable-readonly 32 180 -- "$progs/unmovable" ro 8 160
compare_run unmovable-mlock 32 180 -- "$progs/unmovable" mlock 8 160
compare_run unmovable-io-uring 32 180 -- "$progs/unmovable" uring 8 160
compare_run unmovable-vm-readv 32 180 -- env UNMOVABLE_EXEC=1 "$progs/unmovable" readv 32 160
compare_run unmovable-vm-writev 32 180 -- env UNMOVABLE_EXEC=1 "$progs/unmovable" writev 16 160
