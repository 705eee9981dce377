/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "swapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fault.h"
#include "uzswap.h"

#define PAGE UZS_PAGE_SIZE
#define NR_ALLOC_SHARDS 16u
#define NO_CLUSTER UINT64_MAX

struct cluster {
	_Atomic uint32_t nr_free;
	uint64_t next;	/* list_lock */
	bool on_list;	/* list_lock */
	bool current;	/* list_lock: some shard allocates from it */
};

/* One allocation front per thread shard: threads fill different clusters, so they neither
 * contend on a lock nor share cache lines of the slot map. */
struct alloc_shard {
	alignas(64) pthread_mutex_t lock;
	uint64_t cluster;
	uint32_t cursor;
};

#define NONCE_BYTES crypto_aead_chacha20poly1305_ietf_NPUBBYTES

/* What an encrypted page's check needs; the file holds only cipher text. */
struct slot_seal {
	uint64_t nonce;
	unsigned char tag[crypto_aead_chacha20poly1305_ietf_ABYTES];
};

struct swapfile {
	int fd;
	bool direct;
	/* Per slot, one of the two (see "page I/O"): reserved like the map, backed only
	 * where pages are written. */
	uint32_t *crc;
	struct slot_seal *seal;
	size_t seal_bytes;
	unsigned char *key; /* sodium_malloc: locked in RAM, left out of core dumps */
	_Atomic uint64_t nonces;
	uint64_t nr_slots, nr_clusters;
	_Atomic uint32_t *map;
	size_t map_bytes;
	struct cluster *clusters;
	pthread_mutex_t list_lock;
	uint64_t list_head; /* clusters with free slots that no shard is using */
	struct alloc_shard shards[NR_ALLOC_SHARDS];
};

__thread unsigned thread_shard_plus_one;

unsigned thread_shard_assign(void)
{
	static _Atomic unsigned next_shard;

	thread_shard_plus_one = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) + 1;
	return thread_shard_plus_one - 1;
}

/* ---- cluster lists ---- */

static void cluster_push(struct swapfile *sf, uint64_t c)
{
	sf->clusters[c].next = sf->list_head;
	sf->clusters[c].on_list = true;
	sf->list_head = c;
}

/* A slot went back to the allocator: its cluster may have to rejoin the free list. */
static void slot_released(struct swapfile *sf, uint64_t slot)
{
	uint64_t c = slot / SLOTS_PER_CLUSTER;
	struct cluster *cl = &sf->clusters[c];

	if (atomic_fetch_add_explicit(&cl->nr_free, 1, memory_order_acq_rel) != 0)
		return;
	pthread_mutex_lock(&sf->list_lock);
	if (!cl->on_list && !cl->current)
		cluster_push(sf, c);
	pthread_mutex_unlock(&sf->list_lock);
}

/* Trade the shard's cluster for one with free slots; false when there is none. The new
 * one is taken before the old one goes back on the list, so a run that did not fit in
 * the old one is not offered it again at once. */
static bool shard_next_cluster(struct swapfile *sf, struct alloc_shard *sh)
{
	uint64_t c, old = sh->cluster;

	pthread_mutex_lock(&sf->list_lock);
	c = sf->list_head;
	sh->cluster = NO_CLUSTER;
	if (c != NO_CLUSTER) {
		sf->list_head = sf->clusters[c].next;
		sf->clusters[c].on_list = false;
		sf->clusters[c].current = true;
		sh->cluster = c;
		sh->cursor = 0;
	}
	if (old != NO_CLUSTER) {
		struct cluster *cl = &sf->clusters[old];

		cl->current = false;
		if (atomic_load(&cl->nr_free) && !cl->on_list)
			cluster_push(sf, old);
	}
	pthread_mutex_unlock(&sf->list_lock);
	return c != NO_CLUSTER;
}

static uint64_t shard_scan(struct swapfile *sf, struct alloc_shard *sh)
{
	uint64_t base = sh->cluster * SLOTS_PER_CLUSTER;

	for (uint32_t i = 0; i < SLOTS_PER_CLUSTER; i++) {
		uint32_t idx = (sh->cursor + i) % SLOTS_PER_CLUSTER;
		uint64_t slot = base + idx;
		uint32_t expect = 0;

		if (slot >= sf->nr_slots || atomic_load_explicit(&sf->map[slot], memory_order_relaxed))
			continue;
		if (!atomic_compare_exchange_strong(&sf->map[slot], &expect,
						    SLOT_ALLOCATED | SLOT_HAS_DATA | 1u))
			continue;
		atomic_fetch_sub_explicit(&sf->clusters[sh->cluster].nr_free, 1,
					  memory_order_relaxed);
		sh->cursor = idx + 1;
		return slot;
	}
	return 0;
}

static uint64_t scan_every_cluster(struct swapfile *sf, unsigned nr);

uint64_t swapfile_alloc(struct swapfile *sf)
{
	struct alloc_shard *sh = &sf->shards[thread_shard() % NR_ALLOC_SHARDS];
	uint64_t slot = 0;

	pthread_mutex_lock(&sh->lock);
	/* A cluster taken from the list has a free slot, so two turns always suffice. */
	for (int turn = 0; turn < 3 && !slot; turn++) {
		if (sh->cluster != NO_CLUSTER)
			slot = shard_scan(sf, sh);
		if (!slot && !shard_next_cluster(sf, sh))
			break;
	}
	pthread_mutex_unlock(&sh->lock);
	return slot ? slot : scan_every_cluster(sf, 1);
}

/* Claim the aligned window of nr slots at base, all or none. */
static bool claim_window(struct swapfile *sf, uint64_t base, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++) {
		uint32_t expect = 0;

		if (base + i >= sf->nr_slots ||
		    !atomic_compare_exchange_strong(&sf->map[base + i], &expect,
						    SLOT_ALLOCATED | SLOT_HAS_DATA | 1u)) {
			/* a single-slot allocation raced in: give back what we took */
			while (i-- > 0)
				atomic_store_explicit(&sf->map[base + i], 0, memory_order_relaxed);
			return false;
		}
	}
	return true;
}

static bool window_free(struct swapfile *sf, uint64_t base, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		if (base + i >= sf->nr_slots ||
		    atomic_load_explicit(&sf->map[base + i], memory_order_relaxed))
			return false;
	return true;
}

/* An aligned window of nr free slots in cluster c, from slot offset start on; 0 if none.
 * Safe on any cluster: every slot is claimed by compare-and-swap. */
static uint64_t cluster_scan_run(struct swapfile *sf, uint64_t c, uint32_t start, unsigned nr)
{
	uint64_t base = c * SLOTS_PER_CLUSTER;

	if (atomic_load_explicit(&sf->clusters[c].nr_free, memory_order_relaxed) < nr)
		return 0;
	for (uint32_t off = 0; off < SLOTS_PER_CLUSTER; off += nr) {
		uint32_t idx = ((start + nr - 1) / nr * nr + off) % SLOTS_PER_CLUSTER;

		if (!window_free(sf, base + idx, nr) || !claim_window(sf, base + idx, nr))
			continue;
		atomic_fetch_sub_explicit(&sf->clusters[c].nr_free, nr, memory_order_relaxed);
		return base + idx;
	}
	return 0;
}

static uint64_t shard_scan_run(struct swapfile *sf, struct alloc_shard *sh, unsigned nr)
{
	uint64_t first = cluster_scan_run(sf, sh->cluster, sh->cursor, nr);

	if (first)
		sh->cursor = (uint32_t)(first % SLOTS_PER_CLUSTER) + nr;
	return first;
}

/* The free list ran dry: free slots may still sit in clusters other shards hold as their
 * current one (threads that stopped swapping keep theirs). Look through every cluster. */
static uint64_t scan_every_cluster(struct swapfile *sf, unsigned nr)
{
	for (uint64_t c = 0; c < sf->nr_clusters; c++) {
		uint64_t first = cluster_scan_run(sf, c, 0, nr);

		if (first)
			return first;
	}
	return 0;
}

/* Fragmented clusters are passed over after this many: the caller can split the run. */
#define RUN_CLUSTER_TRIES 64

uint64_t swapfile_alloc_run(struct swapfile *sf, unsigned nr)
{
	struct alloc_shard *sh = &sf->shards[thread_shard() % NR_ALLOC_SHARDS];
	uint64_t first = 0;

	if (nr == 1)
		return swapfile_alloc(sf);
	if (!nr || nr > SLOTS_PER_CLUSTER || (nr & (nr - 1)))
		return 0;
	pthread_mutex_lock(&sh->lock);
	for (int turn = 0; turn < RUN_CLUSTER_TRIES && !first; turn++) {
		if (sh->cluster != NO_CLUSTER)
			first = shard_scan_run(sf, sh, nr);
		if (!first && !shard_next_cluster(sf, sh))
			break;
	}
	pthread_mutex_unlock(&sh->lock);
	return first ? first : scan_every_cluster(sf, nr);
}

/* ---- slot state ---- */

static inline uint32_t count_of(uint32_t s)
{
	return s & SLOT_COUNT_MASK;
}

static inline bool live(uint32_t s)
{
	return (s & SLOT_ALLOCATED) && count_of(s) && !(s & SLOT_FREEING);
}

uint32_t swapfile_state(struct swapfile *sf, uint64_t slot)
{
	if (slot == 0 || slot >= sf->nr_slots)
		return 0;
	return atomic_load_explicit(&sf->map[slot], memory_order_acquire);
}

int slot_dup(struct swapfile *sf, uint64_t slot)
{
	uint32_t s = swapfile_state(sf, slot);

	do {
		if (!live(s))
			return -EINVAL;
		if (!(s & SLOT_HAS_DATA))
			return -ENODATA;
		if (count_of(s) >= SLOT_COUNT_MAX)
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak(&sf->map[slot], &s, s + 1));
	return 0;
}

int slot_put(struct swapfile *sf, uint64_t slot)
{
	uint32_t s = swapfile_state(sf, slot), n;

	do {
		if (!live(s))
			return -EINVAL;
		n = s - 1;
		if (!count_of(n))
			n |= SLOT_FREEING;
	} while (!atomic_compare_exchange_weak(&sf->map[slot], &s, n));
	return count_of(n) == 0;
}

void slot_finish_free(struct swapfile *sf, uint64_t slot)
{
	uint32_t s = atomic_load(&sf->map[slot]), n;

	do {
		/* A pinned slot is released by the writeback that pinned it. */
		n = (s & SLOT_WB_PIN) ? (s & ~SLOT_FREEING) : 0;
	} while (!atomic_compare_exchange_weak(&sf->map[slot], &s, n));
	if (!n)
		slot_released(sf, slot);
}

bool slot_pin(struct swapfile *sf, uint64_t slot)
{
	uint32_t s = swapfile_state(sf, slot);

	do {
		if (!live(s) || (s & (SLOT_WB_PIN | SLOT_HELD)) || !(s & SLOT_HAS_DATA))
			return false;
	} while (!atomic_compare_exchange_weak(&sf->map[slot], &s, s | SLOT_WB_PIN));
	return true;
}

void slot_unpin(struct swapfile *sf, uint64_t slot)
{
	uint32_t s = atomic_load(&sf->map[slot]), n;

	do {
		n = s & ~SLOT_WB_PIN;
		if (!count_of(n) && !(n & SLOT_FREEING))
			n = 0; /* freed while pinned: ours to release */
	} while (!atomic_compare_exchange_weak(&sf->map[slot], &s, n));
	if (!n)
		slot_released(sf, slot);
}

int slot_hold(struct swapfile *sf, uint64_t slot)
{
	uint32_t s = swapfile_state(sf, slot);

	do {
		if (!live(s))
			return -EINVAL;
		if (s & SLOT_HELD)
			return -EBUSY;
	} while (!atomic_compare_exchange_weak(&sf->map[slot], &s, s | SLOT_HELD));
	return 0;
}

void slot_unhold(struct swapfile *sf, uint64_t slot)
{
	uint32_t s = swapfile_state(sf, slot);

	/* only while held: a slot freed meanwhile is left as the free path left it */
	while ((s & SLOT_HELD) && !atomic_compare_exchange_weak(&sf->map[slot], &s, s & ~SLOT_HELD))
		;
}

void slot_set_flags(struct swapfile *sf, uint64_t slot, uint32_t flags)
{
	atomic_fetch_or_explicit(&sf->map[slot], flags, memory_order_release);
}

void slot_clear_flags(struct swapfile *sf, uint64_t slot, uint32_t flags)
{
	atomic_fetch_and_explicit(&sf->map[slot], ~flags, memory_order_release);
}

uint64_t swapfile_nr_slots(const struct swapfile *sf)
{
	return sf->nr_slots;
}

/* Summed from the clusters when asked, so that no counter is shared by every store. */
uint64_t swapfile_used(const struct swapfile *sf)
{
	uint64_t free_slots = 0;

	for (uint64_t c = 0; c < sf->nr_clusters; c++)
		free_slots += atomic_load_explicit(&sf->clusters[c].nr_free, memory_order_relaxed);
	return sf->nr_slots - 1 - free_slots; /* slot 0 is never handed out */
}

bool swapfile_direct_io(const struct swapfile *sf)
{
	return sf->direct;
}

int swapfile_fd(const struct swapfile *sf)
{
	return sf->fd;
}

/* ---- page I/O ----
 *
 * Every page written carries a seal kept in this process's memory, never in the file:
 * its CRC-32, or with encryption the nonce and the Poly1305 tag of its ChaCha20 cipher
 * text, made with the slot number as associated data so that a page copied to another
 * slot does not verify either. A read checks the seal before the caller's buffer is
 * touched: damaged or foreign data is -EBADMSG, never wrong data. */

struct stage {
	unsigned char *buf; /* page-aligned, for O_DIRECT */
	unsigned pages;
};

static __thread struct stage *thread_stage;
static pthread_key_t stage_key;
static pthread_once_t stage_once = PTHREAD_ONCE_INIT;

static void stage_free(void *p)
{
	struct stage *st = p;

	if (st)
		free(st->buf);
	free(st);
}

static void stage_key_init(void)
{
	pthread_key_create(&stage_key, stage_free);
}

/* The calling thread's staging buffer of at least nr pages: reads land there first so
 * that a page that fails its check never reaches the caller, and sealed or O_DIRECT
 * writes are built there. It grows to the longest run the thread moved. */
static unsigned char *stage(unsigned nr)
{
	struct stage *st = thread_stage;
	unsigned char *buf;

	if (st && st->pages >= nr)
		return st->buf;
	if (!st) {
		pthread_once(&stage_once, stage_key_init);
		st = calloc(1, sizeof(*st));
		if (!st)
			return NULL;
		thread_stage = st;
		pthread_setspecific(stage_key, st);
	}
	buf = aligned_alloc(PAGE, (size_t)nr * PAGE);
	if (!buf)
		return NULL;
	free(st->buf);
	st->buf = buf;
	st->pages = nr;
	return buf;
}

void swapfile_thread_cleanup(void)
{
	if (!thread_stage)
		return;
	pthread_setspecific(stage_key, NULL);
	stage_free(thread_stage);
	thread_stage = NULL;
}

static bool needs_bounce(const struct swapfile *sf, const void *buf)
{
	return sf->direct && ((uintptr_t)buf & (PAGE - 1));
}

static void nonce_bytes(uint64_t nonce, unsigned char out[NONCE_BYTES])
{
	memset(out, 0, NONCE_BYTES);
	memcpy(out, &nonce, sizeof(nonce));
}

/* Encrypt page into out for slot; its nonce and tag go to the slot's seal. */
static void seal_encrypted(struct swapfile *sf, uint64_t slot, const void *page, void *out)
{
	struct slot_seal *seal = &sf->seal[slot];
	unsigned char nonce[NONCE_BYTES];

	/* A fresh nonce for every write: never two pages under one (key, nonce). */
	seal->nonce = atomic_fetch_add_explicit(&sf->nonces, 1, memory_order_relaxed);
	nonce_bytes(seal->nonce, nonce);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, seal->tag, NULL, page, PAGE,
							    (const unsigned char *)&slot,
							    sizeof(slot), NULL, nonce, sf->key);
}

/* Check (and decrypt, in place) the page read into buf for slot. */
static int open_sealed(struct swapfile *sf, uint64_t slot, unsigned char *buf)
{
	unsigned char nonce[NONCE_BYTES];

	if (!sf->seal)
		return crc32(0, buf, PAGE) == sf->crc[slot] ? 0 : -EBADMSG;
	nonce_bytes(sf->seal[slot].nonce, nonce);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
		    buf, NULL, buf, PAGE, sf->seal[slot].tag, (const unsigned char *)&slot,
		    sizeof(slot), nonce, sf->key))
		return -EBADMSG;
	return 0;
}

static int transfer(struct swapfile *sf, uint64_t first, unsigned nr, void *buf, bool write)
{
	size_t len = (size_t)nr * PAGE;
	off_t off = (off_t)(first * PAGE);
	ssize_t n;

	if (fault_hit(write ? FAULT_SWAP_WRITE : FAULT_SWAP_READ))
		return -EIO;
	do
		n = write ? pwrite(sf->fd, buf, len, off) : pread(sf->fd, buf, len, off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int swapfile_write_run(struct swapfile *sf, uint64_t first, unsigned nr, const void *pages)
{
	const unsigned char *src = pages;
	unsigned char *buf = (unsigned char *)pages;

	if (sf->seal || needs_bounce(sf, pages)) {
		buf = stage(nr);
		if (!buf)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < nr; i++) {
		size_t at = (size_t)i * PAGE;

		if (sf->seal) {
			seal_encrypted(sf, first + i, src + at, buf + at);
			continue;
		}
		sf->crc[first + i] = (uint32_t)crc32(0, src + at, PAGE);
		if (buf != src)
			memcpy(buf + at, src + at, PAGE);
	}
	return transfer(sf, first, nr, buf, true);
}

int swapfile_read_run(struct swapfile *sf, uint64_t first, unsigned nr, void *pages)
{
	unsigned char *buf = stage(nr);
	int err;

	if (!buf)
		return -ENOMEM;
	err = transfer(sf, first, nr, buf, false);
	for (unsigned i = 0; !err && i < nr; i++)
		err = open_sealed(sf, first + i, buf + (size_t)i * PAGE);
	if (!err)
		memcpy(pages, buf, (size_t)nr * PAGE);
	return err;
}

int swapfile_write(struct swapfile *sf, uint64_t slot, const void *page)
{
	return swapfile_write_run(sf, slot, 1, page);
}

int swapfile_read(struct swapfile *sf, uint64_t slot, void *page)
{
	return swapfile_read_run(sf, slot, 1, page);
}

/* ---- open / close ---- */

/* A file that never has a name, in dir: nobody can open it, nothing is left behind even
 * on SIGKILL, and O_EXCL keeps it from being linked in later. */
static int create_in_dir(const char *dir)
{
	char name[4096];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	/* The file system has no O_TMPFILE: a private name, unlinked at once. */
	if (snprintf(name, sizeof(name), "%s/uzswap.XXXXXX", dir) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	fd = mkostemp(name, O_CLOEXEC); /* mode 0600 */
	if (fd < 0)
		return -errno;
	unlink(name);
	return fd;
}

/* path: a directory to put the file in, or the name of a new file. An existing file is
 * refused (EEXIST) rather than overwritten and unlinked. */
static int create_file(const char *path)
{
	const char *dir;
	struct stat st;
	int fd;

	if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return create_in_dir(path);
	if (path) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		unlink(path);
		return fd;
	}
	dir = getenv("UZSWAP_DIR");
	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/var/tmp";
	return create_in_dir(dir);
}

/* Bypass the page cache when the file system allows it: a swap file cached in RAM would
 * keep the very memory we are trying to give back. Probed on slot 0, which no page uses. */
static bool try_direct_io(int fd)
{
	void *probe = aligned_alloc(PAGE, PAGE);
	int flags = fcntl(fd, F_GETFL);
	bool ok = false;

	if (probe && flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0) {
		memset(probe, 0, PAGE);
		ok = pwrite(fd, probe, PAGE, 0) == PAGE && pread(fd, probe, PAGE, 0) == PAGE;
		if (!ok)
			fcntl(fd, F_SETFL, flags);
	}
	free(probe);
	return ok;
}

static int setup_clusters(struct swapfile *sf)
{
	sf->nr_clusters = (sf->nr_slots + SLOTS_PER_CLUSTER - 1) / SLOTS_PER_CLUSTER;
	sf->clusters = calloc(sf->nr_clusters, sizeof(*sf->clusters));
	if (!sf->clusters)
		return -ENOMEM;
	sf->list_head = NO_CLUSTER;
	for (uint64_t c = sf->nr_clusters; c-- > 0;) {
		uint64_t end = (c + 1) * SLOTS_PER_CLUSTER;

		if (end > sf->nr_slots)
			end = sf->nr_slots;
		atomic_init(&sf->clusters[c].nr_free, (uint32_t)(end - c * SLOTS_PER_CLUSTER));
		cluster_push(sf, c);
	}
	/* Slot 0 is never handed out, so that 0 can mean "no slot". */
	atomic_store(&sf->map[0], SLOT_ALLOCATED);
	atomic_fetch_sub(&sf->clusters[0].nr_free, 1);
	return 0;
}

/* Reserved, not committed: the kernel backs only the parts in use. NULL if it failed. */
static void *reserve(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* The slot map and, per slot, the seals of written pages. */
static int setup_map(struct swapfile *sf, bool encrypt)
{
	sf->map_bytes = sf->nr_slots * sizeof(*sf->map);
	sf->map = reserve(sf->map_bytes);
	if (encrypt) {
		sf->seal_bytes = sf->nr_slots * sizeof(*sf->seal);
		sf->seal = reserve(sf->seal_bytes);
	} else {
		sf->seal_bytes = sf->nr_slots * sizeof(*sf->crc);
		sf->crc = reserve(sf->seal_bytes);
	}
	return sf->map && (sf->seal || sf->crc) ? 0 : -ENOMEM;
}

/* A random key for this instance only: it lives in locked memory and dies with it. */
static int setup_key(struct swapfile *sf)
{
	if (sodium_init() < 0)
		return -EIO;
	sf->key = sodium_malloc(crypto_aead_chacha20poly1305_ietf_KEYBYTES);
	if (!sf->key)
		return -ENOMEM;
	crypto_aead_chacha20poly1305_ietf_keygen(sf->key);
	atomic_init(&sf->nonces, 1);
	return 0;
}

int swapfile_open(const char *path, uint64_t bytes, bool encrypt, struct swapfile **out)
{
	struct swapfile *sf;
	int err;

	if (bytes / PAGE < 2 || bytes / PAGE > (1ull << 40))
		return -EINVAL;
	/* aligned: it holds cache-line-aligned locks */
	sf = aligned_alloc(64, (sizeof(*sf) + 63) & ~(size_t)63);
	if (!sf)
		return -ENOMEM;
	memset(sf, 0, sizeof(*sf));
	sf->nr_slots = bytes / PAGE;
	pthread_mutex_init(&sf->list_lock, NULL);
	for (unsigned i = 0; i < NR_ALLOC_SHARDS; i++) {
		pthread_mutex_init(&sf->shards[i].lock, NULL);
		sf->shards[i].cluster = NO_CLUSTER;
	}
	sf->fd = create_file(path);
	if (sf->fd < 0) {
		err = sf->fd;
		sf->fd = -1;
		goto fail;
	}
	if (ftruncate(sf->fd, (off_t)(sf->nr_slots * PAGE)) < 0) {
		err = -errno;
		goto fail;
	}
	sf->direct = try_direct_io(sf->fd);
	err = setup_map(sf, encrypt);
	if (!err && encrypt)
		err = setup_key(sf);
	if (!err)
		err = setup_clusters(sf);
	if (err)
		goto fail;
	*out = sf;
	return 0;
fail:
	swapfile_close(sf);
	return err;
}

void swapfile_close(struct swapfile *sf)
{
	if (!sf)
		return;
	if (sf->fd >= 0)
		close(sf->fd);
	if (sf->map)
		munmap((void *)sf->map, sf->map_bytes);
	if (sf->crc)
		munmap(sf->crc, sf->seal_bytes);
	if (sf->seal)
		munmap(sf->seal, sf->seal_bytes);
	sodium_free(sf->key);
	free(sf->clusters);
	for (unsigned i = 0; i < NR_ALLOC_SHARDS; i++)
		pthread_mutex_destroy(&sf->shards[i].lock);
	pthread_mutex_destroy(&sf->list_lock);
	free(sf);
}
