/* SPDX-License-Identifier: MIT */
/* The swap file: nobody else can open it, every page is checked on read, and with
 * encryption no page of the corpus appears in it in plain text. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "corpus.h"
#include "helpers.h"
#include "test_hooks.h"

#define PAGE UZS_PAGE_SIZE

static unsigned char *corpus;
static size_t corpus_pages;

/* 64 MiB: small enough to scan whole for plain pages. */
static struct uzs *open_file(bool encrypt, uint64_t pool_limit)
{
	return open_engine(pool_limit, 64ull << 20, encrypt);
}

/* Swap the corpus out and write all of it back: every page is then in the file. */
static uzs_slot_t *corpus_to_file(struct uzs *uzs)
{
	uzs_slot_t *slots = calloc(corpus_pages, sizeof(*slots));
	struct uzs_stats st;

	for (size_t i = 0; i < corpus_pages; i++)
		CHECK_EQ(uzs_swap_out(uzs, NULL, corpus + i * PAGE, &slots[i]), 0);
	/* an entry the shrink worker was writing back when uzs_shrink looked is not ours to
	 * take: it is gone once that write is done (settled), or left for a second pass */
	for (int round = 0; round < 2; round++) {
		while (uzs_shrink(uzs, 1024) > 0)
			;
		st = settled(uzs);
	}
	CHECK_EQ(st.stored_pages, st.same_filled_pages);
	return slots;
}

static void corpus_back_exactly(struct uzs *uzs, uzs_slot_t *slots)
{
	unsigned char out[PAGE];

	for (size_t i = 0; i < corpus_pages; i++) {
		CHECK_EQ(uzs_swap_in(uzs, slots[i], out, UZS_SWAPIN_FREE), 0);
		CHECK(!memcmp(out, corpus + i * PAGE, PAGE));
	}
	free(slots);
}

static void flip_byte(struct uzs *uzs, uzs_slot_t slot, unsigned offset)
{
	int fd = uzs_test_swapfile_fd(uzs);
	off_t at = (off_t)(slot * PAGE + offset);
	unsigned char *blk = aligned_alloc(PAGE, PAGE); /* O_DIRECT: whole aligned pages */

	CHECK_EQ(pread(fd, blk, PAGE, at - offset), PAGE);
	blk[offset] ^= 0x40;
	CHECK_EQ(pwrite(fd, blk, PAGE, at - offset), PAGE);
	free(blk);
}

/* A page of the corpus that is not one word repeated (those never reach the file). */
static size_t text_page_index(void)
{
	for (size_t i = 0;; i++)
		if (memcmp(corpus + i * PAGE, corpus + i * PAGE + 8, PAGE - 8))
			return i;
}

static void corrupt_byte(bool encrypt)
{
	struct uzs *uzs = open_file(encrypt, 0);
	uzs_slot_t *slots = corpus_to_file(uzs);
	size_t victim = text_page_index();
	unsigned char out[PAGE];

	flip_byte(uzs, slots[victim], 1234);
	memset(out, 0x5a, PAGE);
	CHECK_EQ(uzs_swap_in(uzs, slots[victim], out, 0), -EIO);
	for (unsigned i = 0; i < PAGE; i++)
		if (out[i] != 0x5a) {
			CHECK(!"the caller's page was touched");
			break;
		}
	CHECK_EQ(estats(uzs).swap_corrupt, 1);
	/* put the byte back: the page reads again, so only the damage was refused */
	flip_byte(uzs, slots[victim], 1234);
	corpus_back_exactly(uzs, slots);
	CHECK_EQ(estats(uzs).swap_slots_used, 0);
	uzs_close(uzs);
}

static void corrupted_byte_is_eio(void)
{
	corrupt_byte(false);
}

static void corrupted_byte_is_eio_encrypted(void)
{
	corrupt_byte(true);
}

/* A run read from the file is checked page by page: one bad page fails the whole run. */
static void corrupted_run_is_eio_untouched(void)
{
	struct uzs *uzs = open_file(false, 0);
	unsigned char *pages = malloc(16 * PAGE), *out = malloc(16 * PAGE);
	uzs_slot_t first;

	memcpy(pages, corpus + text_page_index() * PAGE, 16 * PAGE);
	CHECK_EQ(uzs_swap_out_run(uzs, NULL, pages, 16, &first), 0);
	while (uzs_shrink(uzs, 64) > 0)
		;
	CHECK_EQ(uzs_present(uzs, first, 16), 0);
	flip_byte(uzs, first + 15, 4095);
	memset(out, 0x5a, 16 * PAGE);
	CHECK_EQ(uzs_swap_in_run(uzs, first, out, 16, 0), -EIO);
	CHECK_EQ(out[0], 0x5a);
	CHECK_EQ(out[16 * PAGE - 1], 0x5a);
	flip_byte(uzs, first + 15, 4095);
	CHECK_EQ(uzs_swap_in_run(uzs, first, out, 16, UZS_SWAPIN_FREE), 0);
	CHECK(!memcmp(out, pages, 16 * PAGE));
	free(pages);
	free(out);
	uzs_close(uzs);
}

/* With encryption a page is bound to its slot: cipher text moved to another slot fails. */
static void encrypted_page_moved_to_another_slot_is_eio(void)
{
	struct uzs *uzs = open_file(true, 0);
	uzs_slot_t *slots = corpus_to_file(uzs);
	int fd = uzs_test_swapfile_fd(uzs);
	size_t a = text_page_index(), b = a + 1;
	unsigned char *blk = aligned_alloc(PAGE, 2 * PAGE), out[PAGE];

	CHECK_EQ(pread(fd, blk, PAGE, (off_t)(slots[a] * PAGE)), PAGE);
	CHECK_EQ(pread(fd, blk + PAGE, PAGE, (off_t)(slots[b] * PAGE)), PAGE);
	CHECK_EQ(pwrite(fd, blk, PAGE, (off_t)(slots[b] * PAGE)), PAGE);
	CHECK_EQ(uzs_swap_in(uzs, slots[b], out, 0), -EIO);
	CHECK_EQ(pwrite(fd, blk + PAGE, PAGE, (off_t)(slots[b] * PAGE)), PAGE);
	free(blk);
	corpus_back_exactly(uzs, slots);
	uzs_close(uzs);
}

static uint64_t page_hash(const unsigned char *p)
{
	uint64_t h = 1469598103934665603ull;

	for (unsigned i = 0; i < PAGE; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* How many blocks of the swap file are, byte for byte, a page of the corpus that is not
 * one repeated word (those stay in RAM and never reach the file). */
static size_t plain_corpus_pages_in_file(struct uzs *uzs)
{
	uint64_t *hashes = malloc(corpus_pages * sizeof(*hashes));
	unsigned char *blk = aligned_alloc(PAGE, PAGE);
	int fd = uzs_test_swapfile_fd(uzs);
	size_t nr = 0, found = 0;
	off_t size = lseek(fd, 0, SEEK_END);

	for (size_t i = 0; i < corpus_pages; i++)
		if (memcmp(corpus + i * PAGE, corpus + i * PAGE + 8, PAGE - 8))
			hashes[nr++] = page_hash(corpus + i * PAGE);
	qsort(hashes, nr, sizeof(*hashes), cmp_u64);
	for (off_t at = 0; at < size; at += PAGE) {
		uint64_t h;

		if (pread(fd, blk, PAGE, at) != PAGE)
			break;
		h = page_hash(blk);
		found += bsearch(&h, hashes, nr, sizeof(h), cmp_u64) != NULL;
	}
	free(blk);
	free(hashes);
	return found;
}

static void encrypted_file_holds_no_plain_page(void)
{
	for (int encrypt = 0; encrypt <= 1; encrypt++) {
		/* a tiny pool as well: pages the cache refuses go to the file directly */
		struct uzs *uzs = open_file(encrypt, 64 << 10);
		uzs_slot_t *slots = corpus_to_file(uzs);
		size_t found = plain_corpus_pages_in_file(uzs);

		CHECK(estats(uzs).pswpout > 0);
		CHECK(estats(uzs).written_back_pages > 0);
		if (encrypt)
			CHECK_EQ(found, 0);
		else
			CHECK(found > corpus_pages / 2); /* the check can see plain pages */
		corpus_back_exactly(uzs, slots);
		uzs_close(uzs);
	}
}

/* The default file never has a name: O_TMPFILE, 0600, no link to open it by. */
static void default_file_is_nameless_and_private(void)
{
	struct uzs *uzs = open_file(false, 0);
	int fd = uzs_test_swapfile_fd(uzs);
	char link[64], target[4096];
	struct stat st;
	ssize_t n;

	CHECK_EQ(fstat(fd, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(st.st_nlink, 0);
	CHECK_EQ(st.st_uid, getuid());
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	CHECK(n > 0);
	target[n > 0 ? n : 0] = 0;
	CHECK(strstr(target, "(deleted)") != NULL);
	/* O_EXCL: not even this process can give it a name later */
	CHECK(linkat(AT_FDCWD, link, AT_FDCWD, "/var/tmp/uzswap-linked", AT_SYMLINK_FOLLOW) != 0);
	unlink("/var/tmp/uzswap-linked");
	uzs_close(uzs);
}

/* swapfile_path may name a directory, as --swapfile documents: the file goes there,
 * nameless; an existing file is refused rather than overwritten. */
static void path_may_be_a_directory(void)
{
	char dir[] = "/var/tmp/uzs-dir.XXXXXX", file[64];
	struct uzs_config c;
	struct uzs *uzs = NULL;
	struct stat st, dst;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	uzs_config_init(&c);
	c.swapfile_path = dir;
	c.swapfile_bytes = 16ull << 20;
	CHECK_EQ(uzs_open(&c, &uzs), 0);
	if (uzs) {
		CHECK_EQ(fstat(uzs_test_swapfile_fd(uzs), &st), 0);
		CHECK_EQ(stat(dir, &dst), 0);
		CHECK_EQ(st.st_dev, dst.st_dev); /* in that directory's file system */
		CHECK_EQ(st.st_nlink, 0);
		uzs_close(uzs);
	}
	CHECK_EQ(rmdir(dir), 0); /* nothing left in it */
	snprintf(file, sizeof(file), "%s.file", dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	close(fd);
	c.swapfile_path = file;
	uzs = NULL;
	CHECK_EQ(uzs_open(&c, &uzs), -EEXIST);
	CHECK_EQ(unlink(file), 0);
}

int main(void)
{
	corpus = corpus_load(&corpus_pages);
	if (!corpus)
		return 1;
	RUN(corrupted_byte_is_eio);
	RUN(corrupted_byte_is_eio_encrypted);
	RUN(corrupted_run_is_eio_untouched);
	RUN(encrypted_page_moved_to_another_slot_is_eio);
	RUN(encrypted_file_holds_no_plain_page);
	RUN(default_file_is_nameless_and_private);
	RUN(path_may_be_a_directory);
	free(corpus);
	return CHECK_DONE();
}
