/* SPDX-License-Identifier: MIT */
/*
 * ops — the input format of fuzz_ops, shared with make_corpus so the seeds it writes
 * stay in step with the target that reads them.
 *
 * An input is two header bytes, then operations: an opcode byte (taken modulo OP_NR) and
 * op_args[op] argument bytes. Header byte 0: bit 0 exclusive loads, bit 1 swap file
 * encryption; header byte 1: the compressor (fuzz_compressors, modulo their number).
 */
#ifndef UZS_FUZZ_OPS_H
#define UZS_FUZZ_OPS_H

#include <stdint.h>

enum fuzz_op {
	OP_OUT,		 /* group, kind, seed lo, seed hi */
	OP_OUT_RUN,	 /* group, order, kind (bit 7: mixed kinds), seed lo, seed hi */
	OP_IN,		 /* slot, flags (bit 0: UZS_SWAPIN_FREE) */
	OP_IN_RUN,	 /* slot, order, flags */
	OP_FREE,	 /* slot */
	OP_DUP,		 /* slot */
	OP_PRESENT,	 /* slot, order, shift (bit 7: start off the run's alignment) */
	OP_BAD_SLOT,	 /* slot, how (call: low bits; bit 6: past the file, 7: near 2^64) */
	OP_GROUP_CREATE, /* parent, mode (0-1 new, 2 same name, 3 bad name; bit 2: NULL root) */
	OP_GROUP_REMOVE, /* group */
	OP_ZSWAP_MAX,	 /* group, value (0: 0, 1: max, else (v >> 2) KiB) */
	OP_MEMORY_MAX,	 /* group, value */
	OP_WRITEBACK,	 /* group, on (bit 0) */
	OP_COMPRESSOR,	 /* entry of the compressor table */
	OP_SHRINK,	 /* pages */
	OP_GROUP_SHRINK, /* group, pages */
	OP_COMPACT,	 /* - */
	OP_HOLD,	 /* slot, order, mode (bit 0: release) */
	OP_RESIDENT,	 /* group, pages (signed, -16..15) */
	OP_PRINT,	 /* which (bit 0: the groups' figures) */
	OP_NR
};

static const uint8_t op_args[OP_NR] = {
	[OP_OUT] = 4,
	[OP_OUT_RUN] = 5,
	[OP_IN] = 2,
	[OP_IN_RUN] = 3,
	[OP_FREE] = 1,
	[OP_DUP] = 1,
	[OP_PRESENT] = 3,
	[OP_BAD_SLOT] = 2,
	[OP_GROUP_CREATE] = 2,
	[OP_GROUP_REMOVE] = 1,
	[OP_ZSWAP_MAX] = 2,
	[OP_MEMORY_MAX] = 2,
	[OP_WRITEBACK] = 2,
	[OP_COMPRESSOR] = 1,
	[OP_SHRINK] = 1,
	[OP_GROUP_SHRINK] = 2,
	[OP_COMPACT] = 0,
	[OP_HOLD] = 3,
	[OP_RESIDENT] = 2,
	[OP_PRINT] = 1,
};

static const char *const op_names[OP_NR] = {
	[OP_OUT] = "swap_out",
	[OP_OUT_RUN] = "swap_out_run",
	[OP_IN] = "swap_in",
	[OP_IN_RUN] = "swap_in_run",
	[OP_FREE] = "free",
	[OP_DUP] = "dup",
	[OP_PRESENT] = "present",
	[OP_BAD_SLOT] = "bad_slot",
	[OP_GROUP_CREATE] = "group_create",
	[OP_GROUP_REMOVE] = "group_remove",
	[OP_ZSWAP_MAX] = "zswap_max",
	[OP_MEMORY_MAX] = "memory_max",
	[OP_WRITEBACK] = "zswap_writeback",
	[OP_COMPRESSOR] = "set_compressor",
	[OP_SHRINK] = "shrink",
	[OP_GROUP_SHRINK] = "group_shrink",
	[OP_COMPACT] = "compact",
	[OP_HOLD] = "run_hold",
	[OP_RESIDENT] = "charge_resident",
	[OP_PRINT] = "print_stats",
};

/* Page contents a swap-out can carry: what the model can regenerate and must get back. */
enum page_kind {
	K_ZERO,	  /* all zeros: same-filled */
	K_FILL,	  /* one 8-byte word repeated: same-filled */
	K_TEXT,	  /* words of a small vocabulary: every compressor shrinks it */
	K_RANDOM, /* noise: no compressor shrinks it, stored raw */
	K_NEAR,	  /* a repeated word with one word changed: almost, but not, same-filled */
	NR_KINDS
};

static const char *const fuzz_compressors[] = { "lz4", "zstd", "lzo", "deflate" };
#define NR_FUZZ_COMPRESSORS 4u

#endif
