/* SPDX-License-Identifier: MIT */
/*
 * swapfile — the swap file: a slot allocator over clusters of 512 slots, each slot's
 * swap count and state, and page I/O.
 *
 * A slot's state is one atomic word, so the swap count and the flags below change
 * together without a lock. A slot stays allocated until its count is zero, no free is in
 * progress and no writeback holds it: writeback pins the slot so the slot cannot be handed
 * to a new page while old data is being written to it.
 */
#ifndef UZS_SWAPFILE_H
#define UZS_SWAPFILE_H

#include <stdbool.h>
#include <stdint.h>

#define SLOT_COUNT_MASK 0xffffu
#define SLOT_COUNT_MAX 0x7fffu
#define SLOT_ALLOCATED (1u << 16) /* handed out, not yet back in the allocator */
#define SLOT_HAS_DATA (1u << 17)  /* holds a page (cache or file) that may be read */
#define SLOT_ON_FILE (1u << 18)   /* the page is in the swap file */
#define SLOT_WB_PIN (1u << 19)    /* writeback in flight: do not reuse */
#define SLOT_FREEING (1u << 20)   /* count reached zero, the cache copy is being dropped */
#define SLOT_HELD (1u << 21)      /* a caller holds writeback off the slot (uzs_run_hold) */

#define SLOTS_PER_CLUSTER 512u

struct swapfile;

/* Create the swap file of the given size: a nameless O_TMPFILE file (or, where the file
 * system has none, a fresh 0600 name unlinked at once) in path when it is a directory, or
 * in $UZSWAP_DIR, $TMPDIR or /var/tmp when path is NULL; else path names a new file
 * (created 0600, unlinked at once; -EEXIST if it exists). encrypt: pages are written
 * ChaCha20-Poly1305-encrypted under a key made for this instance. */
int swapfile_open(const char *path, uint64_t bytes, bool encrypt, struct swapfile **out);
void swapfile_close(struct swapfile *sf);

/* A free slot with count 1 and SLOT_HAS_DATA, or 0 when the file is full. */
uint64_t swapfile_alloc(struct swapfile *sf);

/* nr (a power of two up to SLOTS_PER_CLUSTER) free slots in a row, aligned to nr, each
 * as swapfile_alloc leaves it; the first, or 0 when no such run is free. */
uint64_t swapfile_alloc_run(struct swapfile *sf, unsigned nr);

uint32_t swapfile_state(struct swapfile *sf, uint64_t slot);
uint64_t swapfile_nr_slots(const struct swapfile *sf);
uint64_t swapfile_used(const struct swapfile *sf);
bool swapfile_direct_io(const struct swapfile *sf);

/* Add a reference. 0, -EINVAL (not allocated), -ENODATA, -EOVERFLOW. */
int slot_dup(struct swapfile *sf, uint64_t slot);

/* Drop a reference. 1 when it was the last (the slot is then FREEING: the caller drops the
 * cached copy and calls slot_finish_free), 0 otherwise, -EINVAL when not allocated. */
int slot_put(struct swapfile *sf, uint64_t slot);
void slot_finish_free(struct swapfile *sf, uint64_t slot);

/* Pin a live slot for writeback; false when it is being freed, already pinned or held. */
bool slot_pin(struct swapfile *sf, uint64_t slot);
void slot_unpin(struct swapfile *sf, uint64_t slot);

/* Set SLOT_HELD on a live slot: 0, -EINVAL (not live), -EBUSY (already held). */
int slot_hold(struct swapfile *sf, uint64_t slot);
void slot_unhold(struct swapfile *sf, uint64_t slot);

void slot_set_flags(struct swapfile *sf, uint64_t slot, uint32_t flags);
void slot_clear_flags(struct swapfile *sf, uint64_t slot, uint32_t flags);

/* Page I/O at a slot. 0 or a negative errno (a short transfer is -EIO). A page whose
 * checksum or tag does not match what was written is -EBADMSG, and the caller's buffer is
 * then left as it was. */
int swapfile_write(struct swapfile *sf, uint64_t slot, const void *page);
int swapfile_read(struct swapfile *sf, uint64_t slot, void *page);
/* nr pages at consecutive slots in one transfer (built in, or read into, a per-thread
 * staging buffer, so that a page that fails its check is never handed out). */
int swapfile_write_run(struct swapfile *sf, uint64_t first, unsigned nr, const void *pages);
int swapfile_read_run(struct swapfile *sf, uint64_t first, unsigned nr, void *pages);

/* Tests only: the file descriptor, to damage the file on purpose. */
int swapfile_fd(const struct swapfile *sf);

void swapfile_thread_cleanup(void);

/* A small per-thread index, so per-thread shards (allocation, counters) need no lock. */
unsigned thread_shard_assign(void);
extern __thread unsigned thread_shard_plus_one;

static inline unsigned thread_shard(void)
{
	return thread_shard_plus_one ? thread_shard_plus_one - 1 : thread_shard_assign();
}

#endif
