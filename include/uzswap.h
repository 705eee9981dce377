/* SPDX-License-Identifier: MIT */
/*
 * uzswap — zswap in user space: a compressed RAM cache in front of a swap file.
 *
 * Every function returns 0 (or a non-negative count) on success and a negative errno on
 * failure; none aborts or prints. An instance is thread-safe: any number of threads may
 * swap out, swap in, free and duplicate slots at once.
 */
#ifndef UZSWAP_H
#define UZSWAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* This header's version; uzs_version() says which library a program runs with. */
#define UZS_VERSION_MAJOR 0
#define UZS_VERSION_MINOR 9
#define UZS_VERSION_PATCH 0
#define UZS_VERSION_STRING "0.9.0"
/* UZS_VERSION_NUMBER: MAJOR * 10000 + MINOR * 100 + PATCH, for comparisons */
#define UZS_VERSION_NUMBER (UZS_VERSION_MAJOR * 10000 + UZS_VERSION_MINOR * 100 + UZS_VERSION_PATCH)

#define UZS_PAGE_SIZE 4096u
/* A limit that is no limit ("max" in the kernel's files). */
#define UZS_MAX UINT64_MAX
/* Multi-page runs: 2^n pages, n < UZS_RUN_ORDERS, so at most UZS_RUN_MAX. */
#define UZS_RUN_MAX 512u
#define UZS_RUN_ORDERS 10
/* Longest group name: one path component, printable, no '/'. */
#define UZS_GROUP_NAME_MAX 63

/* A swap slot: the page offset in the instance's swap file. 0 is never a valid slot. */
typedef uint64_t uzs_slot_t;

struct uzs;       /* an instance: one swap file, one compressed pool */
struct uzs_group; /* a memory-cgroup-style group; NULL means the root group */

/* The library's version as UZS_VERSION_NUMBER computes it (of the library linked, which may
 * be newer than the header a program was built with). */
unsigned uzs_version(void);

struct uzs_config {
	/* "lz4", "zstd", "lzo" (lzo1x), "deflate" (zlib); kernel default: "lzo" */
	const char *compressor;
	/* compressor level, 0 = the library's default (zstd 3, deflate 6; lz4 acceleration) */
	int compressor_level;
	/* pool limit as a percentage of RAM (kernel default 20), used when max_pool_bytes is 0 */
	unsigned max_pool_percent;
	/* absolute pool limit in bytes; 0 = use max_pool_percent */
	uint64_t max_pool_bytes;
	/* once full, the pool takes stores again only below this percentage of its limit (90) */
	unsigned accept_threshold_percent;
	/* swap-in frees the compressed copy when the caller is its only holder (default on) */
	bool exclusive_loads;
	/* write back proactively when the system runs low on memory (kernel default off):
	 * the colder part of the cache each time a PSI memory pressure trigger fires (the
	 * process's cgroup v2 memory.pressure or /proc/pressure/memory: 150 ms of stall in
	 * 1 s, or 300 ms in 2 s where the kernel refuses a caller a 1 s window), or where
	 * there is none, when MemAvailable, polled once a second, is below
	 * 1/16 of MemTotal (uzs_stats.shrinker_psi says which) */
	bool shrinker_enabled;
	/* where the swap file lives: a directory (the file gets no name there) or the path
	 * of a new file (created 0600 and unlinked at once; an existing one is refused), so
	 * nothing is left behind. NULL: a nameless file in $UZSWAP_DIR, $TMPDIR or /var/tmp. */
	const char *swapfile_path;
	/* swap file size in bytes (sparse); 0 = 4 GiB. Bounds the number of swapped pages. */
	uint64_t swapfile_bytes;
	/* encrypt pages written to the swap file (ChaCha20-Poly1305, libsodium) with a key
	 * made at open that exists only in this process's locked memory (default off). Either
	 * way every page written is checked on read: damage is -EIO, never wrong data. */
	bool encrypt_swapfile;
};

/* Engine statistics: the kernel's zswap debugfs names, plus swap-file and error counters. */
struct uzs_stats {
	uint64_t stored_pages;                /* pages held in the cache (incl. same-filled) */
	uint64_t stored_incompressible_pages; /* pages held raw because they did not compress */
	uint64_t same_filled_pages;           /* pages held as one repeated word, no pool memory */
	uint64_t pool_total_size;             /* bytes of memory the pool holds */
	uint64_t pool_limit_hit;              /* stores refused because the pool was full */
	uint64_t written_back_pages;          /* pages written back from the cache to the file */
	uint64_t reject_reclaim_fail;         /* stores refused because reclaim made no room */
	uint64_t reject_compress_fail;        /* stores refused because the compressor failed */
	uint64_t reject_compress_poor;        /* stores refused because the page did not compress */
	uint64_t reject_alloc_fail;           /* stores refused because the pool had no memory */
	uint64_t reject_kmemcache_fail;       /* stores refused because no entry could be allocated */
	uint64_t decompress_fail;             /* loads whose compressed data was corrupt (-EIO) */
	uint64_t zswpin;                      /* pages swapped in from the cache */
	uint64_t zswpout;                     /* pages stored in the cache */
	uint64_t zswpwb;                      /* pages written back (same as written_back_pages) */
	/* beyond the kernel's set */
	uint64_t pswpin;                      /* pages read from the swap file */
	uint64_t pswpout;                     /* pages written to the swap file directly (cache refused) */
	uint64_t swap_slots_used;             /* slots allocated in the swap file */
	uint64_t swap_slots_total;            /* slots the swap file has */
	uint64_t compressed_bytes;            /* compressed bytes of the objects in the pool */
	uint64_t writeback_fail;              /* writebacks whose write failed (entry kept in RAM) */
	uint64_t swap_io_fail;                /* swap file reads or writes that failed */
	uint64_t swap_corrupt;                /* pages read back whose checksum or tag failed */
	uint64_t invalid_slot;                /* calls naming a slot that is not allocated */
	uint64_t nodata_slot;                 /* swap-ins of a slot whose page was handed over */
	uint64_t pool_compacted_bytes;        /* bytes given back by compaction */
	uint64_t groups;                      /* live groups, the root included */
	uint64_t groups_dying;                /* removed groups whose entries are still held */
	uint64_t run_partial;                 /* run swap-ins refused: only part was cached */
	/* per run size, like the kernel's per-size mTHP zswpout / zswpin: index n counts
	 * runs of 2^n pages (index 0: single pages) stored in / loaded from the cache */
	uint64_t zswpout_runs[UZS_RUN_ORDERS];
	uint64_t zswpin_runs[UZS_RUN_ORDERS];
	/* the shrinker (shrinker_enabled): times it found the system under memory pressure
	 * and wrote back; whether a PSI trigger tells it so (1) or it polls MemAvailable once
	 * a second (0); and how many of its runs the trigger started */
	uint64_t shrinker_runs;
	uint64_t shrinker_psi;
	uint64_t shrinker_psi_runs;
};

/* A group's figures. The first six are the kernel's memory.stat names and, like them,
 * cover the group's whole subtree; uzs_group_get_local_stats gives the group's own share. */
struct uzs_group_stats {
	uint64_t zswap;          /* compressed bytes charged (memory.zswap.current) */
	uint64_t zswapped;       /* original bytes of the pages in the cache */
	uint64_t zswap_incomp;   /* pages in the cache stored raw (did not compress) */
	uint64_t zswpin;         /* pages swapped in from the cache */
	uint64_t zswpout;        /* pages stored in the cache */
	uint64_t zswpwb;         /* pages written back from the cache to the swap file */
	uint64_t memory_current; /* resident bytes charged plus zswap */
	uint64_t memory_max;     /* UZS_MAX: no limit */
	uint64_t zswap_max;      /* UZS_MAX: no limit */
	uint64_t zswap_writeback; /* this group's own setting: 1 on, 0 off */
};

/* Fill in the kernel's defaults. */
void uzs_config_init(struct uzs_config *config);

/* Open an instance. -EINVAL for a bad config (unknown compressor, percentages out of
 * range), or the errno of creating the swap file. */
int uzs_open(const struct uzs_config *config, struct uzs **out);

/* Close an instance: stops its worker, frees every page and the swap file. */
void uzs_close(struct uzs *uzs);

/* Swap one page out, charged to group (NULL: the root). On success *slot names it; its
 * swap count is 1. -ENOSPC: neither the cache nor the swap file took the page (the file is
 * full, or the group's writeback is off and the cache refused it); the caller keeps it.
 * -ENOENT: the group was removed. */
int uzs_swap_out(struct uzs *uzs, struct uzs_group *group, const void *page, uzs_slot_t *slot);

/* Release the caller's reference in the same call (the fault path: page back, slot gone). */
#define UZS_SWAPIN_FREE 1u

/* Swap a page in. The slot keeps its reference unless UZS_SWAPIN_FREE is given.
 * With exclusive loads, a caller that is the slot's only holder takes the page over: the
 * cached copy is freed and a second swap-in of the slot returns -ENODATA.
 * -EINVAL: the slot is not allocated. -EIO: the stored data is corrupt or the swap file
 * failed; the page is left untouched. -ENOMEM: no memory to decompress it just now (a
 * shortage, not damage); the page is left untouched and the slot keeps its page: try
 * again later. */
int uzs_swap_in(struct uzs *uzs, uzs_slot_t slot, void *page, unsigned flags);

/* ---- multi-page runs, as the kernel swaps large folios ---- */

/* Swap out nr contiguous pages (a power of two up to UZS_RUN_MAX) as one unit, into nr
 * consecutive slots aligned to nr; *first names the first. All or nothing: if any page
 * cannot be cached (limits, pool memory, compression), none is, and the whole run goes
 * to the swap file in one write (or, with the group's writeback off, the call fails with
 * -ENOSPC). -ENOSPC also when no aligned run of free slots is left: swap the pages out one
 * by one instead. Each slot is then an ordinary slot: it can be swapped in, freed or
 * duplicated alone, which splits the run. */
int uzs_swap_out_run(struct uzs *uzs, struct uzs_group *group, const void *pages, unsigned nr,
		     uzs_slot_t *first);

/* Swap in the nr consecutive slots from first (nr ≤ UZS_RUN_MAX, all in one run) into
 * pages, as uzs_swap_in does for one. If every page is in the cache, all are decompressed;
 * if none is, the run is read from the swap file in one read; if only some are (a
 * writeback or a free took part of it), -EIO and pages is not touched: never mixed data.
 * The decision is made on one consistent snapshot of the run. When a cached page of the
 * run is corrupt (-EIO) or cannot be decompressed for want of memory (-ENOMEM), the pages
 * decompressed in parallel with it may already hold their own data; none holds anything
 * else (no partial or garbage page), and every slot keeps its page. */
int uzs_swap_in_run(struct uzs *uzs, uzs_slot_t first, void *pages, unsigned nr, unsigned flags);

/* How many of the nr slots from first have their page in the cache (nr: all, 0: none,
 * between: a partial run). -EINVAL when a slot is not allocated or the range is not one
 * run. The answer stays true until the caller acts on it provided that (1) the caller
 * holds a reference on every slot (then no other holder's free or swap-in can drop a
 * page: an exclusive load takes a page only from its sole holder), (2) none of its own
 * threads swaps in or frees those slots meanwhile, and (3) writeback is held off the run
 * with uzs_run_hold; without the hold, the shrink worker may move pages to the file at
 * any moment. */
int uzs_present(struct uzs *uzs, uzs_slot_t first, unsigned nr);

/* Keep writeback off the nr slots from first until uzs_run_release; waits for a
 * writeback already in flight on one of them. -EBUSY: a slot is already held. */
int uzs_run_hold(struct uzs *uzs, uzs_slot_t first, unsigned nr);
int uzs_run_release(struct uzs *uzs, uzs_slot_t first, unsigned nr);

/* Drop one reference to a slot; at zero its page is freed. -EINVAL: not allocated
 * (double free). */
int uzs_free(struct uzs *uzs, uzs_slot_t slot);

/* Add a reference to a slot (sharing after fork). -EINVAL: not allocated; -ENODATA: its
 * page was handed over by an exclusive load; -EOVERFLOW: too many references. */
int uzs_dup(struct uzs *uzs, uzs_slot_t slot);

/* Switch the compressor for new stores. Entries already stored keep decompressing with the
 * compressor that stored them. */
int uzs_set_compressor(struct uzs *uzs, const char *name, int level);

/* Write back up to nr_pages from the cold end of the LRU; returns how many were written. */
long uzs_shrink(struct uzs *uzs, long nr_pages);

/* Move objects out of sparse pool pages; returns the bytes of memory given back. */
long uzs_compact(struct uzs *uzs);

/* Read the statistics (a consistent-enough snapshot: each field is read atomically). */
void uzs_get_stats(struct uzs *uzs, struct uzs_stats *stats);

/* Print the statistics as "name value" lines. */
int uzs_print_stats(struct uzs *uzs, FILE *out);

/* ---- groups: what a memory cgroup is to the kernel ---- */

/* The root group: always there, unlimited, cannot be removed. */
struct uzs_group *uzs_root_group(struct uzs *uzs);

/* Create a group named name under parent (NULL: the root). Limits start at UZS_MAX and
 * writeback on. -EINVAL: bad name; -EEXIST: the parent has a child of that name;
 * -ENOENT: the parent was removed. */
int uzs_group_create(struct uzs *uzs, struct uzs_group *parent, const char *name,
		     struct uzs_group **out);

/* Remove a group: its entries, charges and statistics move to its parent and its pages
 * stay swappable-in. The handle must not be used afterwards. -EBUSY: it has children;
 * -EINVAL: the root. */
int uzs_group_remove(struct uzs_group *group);

const char *uzs_group_name(const struct uzs_group *group);
struct uzs_group *uzs_group_parent(const struct uzs_group *group);

/* Limit the compressed bytes charged to the group and its subtree. A store that would
 * pass it first writes back the group's oldest entries, and goes to the swap file if that
 * made no room. 0 refuses every store; UZS_MAX removes the limit. -EINVAL on the root. */
int uzs_group_set_zswap_max(struct uzs_group *group, uint64_t bytes);

/* With writeback off here or in any ancestor, nothing of the group reaches the swap file:
 * a swap-out the cache refuses fails with -ENOSPC. -EINVAL on the root. */
int uzs_group_set_zswap_writeback(struct uzs_group *group, bool enabled);

/* The group's budget for resident pages plus its zswap charge. -EINVAL on the root. */
int uzs_group_set_memory_max(struct uzs_group *group, uint64_t bytes);

/* Tell the group its resident pages changed by nr_pages (the caller's own memory, or the
 * transparent mode's). */
int uzs_group_charge_resident(struct uzs_group *group, long nr_pages);

/* Bytes by which the group, or the tightest ancestor, is over its memory_max: what the
 * caller should swap out. 0 when within budget. */
uint64_t uzs_group_memory_excess(struct uzs_group *group);

/* Bytes the group may still take before it, or the tightest ancestor, passes its
 * memory_max (negative: over by that much; INT64_MAX: no limit anywhere). */
int64_t uzs_group_memory_room(struct uzs_group *group);

/* Write back up to nr_pages of the group's subtree, oldest first; returns how many were
 * written. -EPERM: writeback is off for the group. */
long uzs_group_shrink(struct uzs_group *group, long nr_pages);

/* Figures of the group's subtree, as memory.stat. */
int uzs_group_get_stats(struct uzs_group *group, struct uzs_group_stats *stats);

/* The group's own share: its subtree minus its live children's (entries of removed
 * children count here). Summed over all groups, these equal the engine's totals. */
int uzs_group_get_local_stats(struct uzs_group *group, struct uzs_group_stats *stats);

/* Print every live group: a "group /path" line, then "  name value" lines. */
int uzs_print_group_stats(struct uzs *uzs, FILE *out);

/* ---- transparent mode: memory served through userfaultfd ---- */

struct uzs_vm; /* a fault handler: two threads serving the regions of one group */

/* Its figures, besides the engine's and the group's. */
struct uzs_vm_stats {
	uint64_t faults;          /* missing-page faults served */
	uint64_t zero_fills;      /* pages handed out as zeros (first touch) */
	uint64_t swapins;         /* pages brought back from the engine (pswpin-like) */
	uint64_t staged_refaults; /* pages brought back from staging: touched again before
				   * they were compressed (the second chance) */
	uint64_t readahead_pages; /* pages brought in ahead of a sequential fault */
	uint64_t evicted;         /* pages moved out of the program (pswpout-like) */
	uint64_t evict_shared;    /* moves the kernel refused as busy: a page pinned, or shared
				   * after fork and gone before it could be made the mover's own */
	uint64_t waits;           /* faults that waited for eviction to make room */
	uint64_t budget_overruns; /* faults served over budget after waiting a second */
	uint64_t swapin_errors;   /* pages that could not be brought back (SIGBUS) */
	uint64_t pages_lost;      /* pages uzswap held as mapped that a fault found missing:
				   * handed out as zeros. 0 unless the kernel or uzswap lost
				   * track of a page (a bug), or a page the program had freed
				   * with MADV_FREE before its mapping was taken on (adopted)
				   * was then reclaimed by the kernel */
	uint64_t adopted;         /* pages found already present when a mapping was taken on */
	uint64_t resident_pages;  /* pages mapped in the programs, staging included */
	uint64_t staged_pages;    /* pages in staging */
	uint64_t spaces;          /* processes (address spaces) served */
	uint64_t agents_refused;  /* hellos turned away: not an agent of this build, one naming
				   * another process, or a descriptor that is no userfaultfd */
	/* Resident pages the kernel refuses to move out, set aside (still charged: the rest
	 * is evicted in their place) and tried again after a wait (0.1 s doubling to 2 s):
	 * now and the most at once, in all and by reason: in a read-only mapping, a locked
	 * one (mlock), pinned (io_uring registered buffers, a transfer in flight), other. */
	uint64_t unmovable_pages, unmovable_peak_pages;
	uint64_t unmovable_readonly, unmovable_locked, unmovable_pinned, unmovable_other;
	uint64_t unmovable_readonly_peak, unmovable_locked_peak, unmovable_pinned_peak,
		unmovable_other_peak;
	/* Processes a debugger or profiler is attached to (TracerPid): their evicted pages
	 * are brought back and none evicted while it stays, since the kernel serves its
	 * reads (PTRACE_PEEKDATA, /proc/PID/mem) without waiting for a fault: now, the
	 * attaches seen, and the pages brought back for them. */
	uint64_t traced, traced_attaches, traced_pages_in;
	/* the balance between resident and compressed memory (src/vm/vm_balance.c) */
	uint64_t pool_target;     /* bytes of the budget the compressed pages may hold now;
				   * past it the oldest go to the swap file */
	uint64_t pool_refaults;   /* faults served from the pool */
	uint64_t file_refaults;   /* faults served from the swap file */
	uint64_t staged_cost_ns;  /* service time of a fault, moving averages (the round trip */
	uint64_t pool_cost_ns;    /* to the fault thread not included); 0: none timed yet */
	uint64_t file_cost_ns;
	uint64_t balance_shrinks; /* decisions that lowered the pool target */
	uint64_t balance_grows;   /* decisions that raised it */
};

/* Start serving regions charged to group (NULL: the root, which has no budget): a fault
 * thread and an eviction thread that keeps the group under its memory_max (set with
 * uzs_group_set_memory_max). -ENOSYS/-EPERM: this kernel or this process cannot have
 * userfaultfd serve faults taken inside system calls (see README). */
int uzs_vm_start(struct uzs *uzs, struct uzs_group *group, struct uzs_vm **out);

/* Pin the vm's threads (pin true, what uzs_vm_start does): the fault thread to the last
 * CPU the calling thread may use, the eviction thread to the others, so that eviction
 * never takes the fault thread's CPU and a faulting thread tends to be woken on it. The
 * program's threads are not touched. With pin false, or a single CPU, both may run on
 * any CPU the calling thread may use. -EINVAL: no vm, or a forked child's copy of one;
 * else 0 or -errno. */
int uzs_vm_pin_threads(struct uzs_vm *vm, bool pin);

/* Stop the threads and free every page still held. Regions must be destroyed first. A
 * forked child with an agent (see README) still running on memory of the regions is ended
 * (SIGKILL): nobody could bring its evicted pages back. Called in a forked child on its
 * parent's vm (an atexit handler, say), it does nothing. */
void uzs_vm_stop(struct uzs_vm *vm);

/* An anonymous region of bytes (rounded up to pages): reads as zeros until written, its
 * pages swapped out under the group's budget and back on access, from any thread and
 * from inside system calls. munmap, madvise(MADV_DONTNEED/MADV_REMOVE), mremap and fork
 * work on it as on ordinary memory; a forked child's pages are charged to the group and
 * evicted too (a thread of the library's runs in the child for that, see README). */
int uzs_region_create(struct uzs_vm *vm, size_t bytes, void **out);

/* Unmap a region (or part of it): its pages and slots are freed. */
int uzs_region_destroy(struct uzs_vm *vm, void *addr, size_t bytes);

/* Wait until the memory calls that returned before this one (munmap, madvise, mremap,
 * fork) have been fully handled: their slots freed or moved. The kernel only makes the
 * caller wait until the event is read. */
void uzs_vm_sync(struct uzs_vm *vm);

void uzs_vm_get_stats(struct uzs_vm *vm, struct uzs_vm_stats *stats);
/* Print them as "name value" lines. */
int uzs_vm_print_stats(struct uzs_vm *vm, FILE *out);

/* ---- a program under a budget: what `uzswap run` does, as one call ---- */

struct uzs_run_options {
	uint64_t memory_max;       /* resident plus compressed memory (memory.max) */
	uint64_t zswap_max;        /* the compressed pool's limit; UZS_MAX: none */
	const char *compressor;    /* as uzs_config.compressor */
	const char *swapfile;      /* a directory, or the path of a new file; NULL: default */
	const char *stats_file;    /* the figures at exit go there; NULL: stderr */
	const char *agent;         /* libuzswap-agent.so; NULL: next to the running binary,
				    * or in ../lib/uzswap/ from it (an installed tree) */
	const char *settings_line; /* printed on stderr once the program is about to start */
	bool no_pin;               /* leave the vm's threads to the scheduler */
	bool encrypt;              /* as uzs_config.encrypt_swapfile */
};
/* Defaults: memory_max half of RAM, zswap_max UZS_MAX, compressor "lz4", the rest 0. */
void uzs_run_options_init(struct uzs_run_options *options);
/* Runs argv (argv[0] found through PATH as execvp finds it) with the agent preloaded, its
 * anonymous memory and that of every process it forks served under the budget, signals
 * sent to the calling process passed to every process of the program, and its figures
 * answered to `uzswap stat`; returns once every process of the program has ended, with
 * the top process's wait status in *status, the figures written, and 0. The caller is
 * made the program's child subreaper and has its signal handlers for SIGINT, SIGTERM,
 * SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT and SIGALRM replaced. A program
 * that cannot be run managed or a kernel that cannot serve it: one line on stderr says
 * why, and the return value is the exit status `uzswap run` gives (127: not found; 126: not
 * executable, or a static, setuid or capability-raising program; 1: anything else). It is
 * the one call that prints: it stands for the command. */
int uzs_run_program(const struct uzs_run_options *options, char *const argv[], int *status);

/* The compressor names uzswap knows, NULL-terminated. */
const char *const *uzs_compressor_names(void);
/* What a compressor spec names ("lz4", "zstd:19", "zlib", as uzs_config.compressor takes):
 * 0 with *name one of uzs_compressor_names() and *level the level the engine would use
 * (resolved: zstd 3, deflate 6, lz4 acceleration 1 by default); -EINVAL for an unknown
 * name or a level out of the compressor's range. name or level may be NULL. */
int uzs_compressor_resolve(const char *spec, const char **name, int *level);

#ifdef __cplusplus
}
#endif
#endif
