/* SPDX-License-Identifier: MIT */
/*
 * fuzz_swapfile — arbitrary bytes as swap file contents. Pages are written back to the
 * swap file of two instances (plain: checked by CRC-32; encrypted: ChaCha20-Poly1305);
 * each input overwrites one of those pages in the file, whole or in part, and the page is
 * swapped in. The only acceptable answers: -EIO with the caller's buffer untouched, or,
 * when the file holds exactly what was written, the original page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uzswap.h"
#include "test_hooks.h"

#define PAGE UZS_PAGE_SIZE
#define NR_PAGES 8u

struct target {
	struct uzs *uzs;
	uzs_slot_t slot[NR_PAGES];
	unsigned char page[NR_PAGES][PAGE];
	unsigned char written[NR_PAGES][PAGE]; /* the file's blocks as uzswap wrote them */
};

static struct target targets[2];
static unsigned long nr_inputs;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_swapfile: %s\n", what);
	abort();
}

/* Same-filled pages never reach the file: text with a little variety. */
static void make_page(unsigned char *p, unsigned i)
{
	for (unsigned k = 0; k < PAGE; k++)
		p[k] = (unsigned char)("swap file fuzz "[k % 15] + (k >> 9) + 3 * i);
}

/* Non-exclusive loads: a page read from the file stays there for the next input. */
static void open_target(struct target *t, bool encrypt)
{
	struct uzs_config c;

	uzs_config_init(&c);
	c.compressor = "lz4";
	c.exclusive_loads = false;
	c.swapfile_bytes = 1 << 20;
	c.encrypt_swapfile = encrypt;
	if (uzs_open(&c, &t->uzs))
		fail("open");
	for (unsigned i = 0; i < NR_PAGES; i++) {
		make_page(t->page[i], i);
		if (uzs_swap_out(t->uzs, NULL, t->page[i], &t->slot[i]))
			fail("swap out");
	}
	if (uzs_shrink(t->uzs, NR_PAGES) != NR_PAGES)
		fail("writeback");
	for (unsigned i = 0; i < NR_PAGES; i++)
		if (pread(uzs_test_swapfile_fd(t->uzs), t->written[i], PAGE,
			  (off_t)(t->slot[i] * PAGE)) != PAGE)
			fail("read the file");
}

static void close_targets(void)
{
	for (unsigned i = 0; i < 2; i++)
		if (targets[i].uzs)
			uzs_close(targets[i].uzs);
	fprintf(stderr, "fuzz_swapfile: %lu inputs\n", nr_inputs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!getenv("UZSWAP_DIR"))
		setenv("UZSWAP_DIR", "/dev/shm", 1);
	open_target(&targets[0], false);
	open_target(&targets[1], true);
	atexit(close_targets);
	return 0;
}

/* Input: [target and page][offset lo][offset hi][bytes to write at offset...]. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char block[PAGE], out[PAGE];
	struct target *t;
	unsigned idx, offset;
	size_t len;
	int fd, err;

	if (size < 4)
		return 0;
	nr_inputs++;
	t = &targets[data[0] & 1];
	idx = (data[0] >> 1) % NR_PAGES;
	offset = (data[1] | (unsigned)data[2] << 8) % PAGE;
	len = size - 3 < PAGE - offset ? size - 3 : PAGE - offset;
	fd = uzs_test_swapfile_fd(t->uzs);
	/* each input damages one good page: the page as written, with the input over it */
	memcpy(block, t->written[idx], PAGE);
	memcpy(block + offset, data + 3, len);
	if (pwrite(fd, block, PAGE, (off_t)(t->slot[idx] * PAGE)) != PAGE)
		fail("write the file");
	memset(out, 0xee, PAGE);
	err = uzs_swap_in(t->uzs, t->slot[idx], out, 0);
	if (err == 0 && memcmp(out, t->page[idx], PAGE))
		fail("wrong data returned for damaged file contents");
	if (err && err != -EIO)
		fail("an error other than -EIO");
	if (err && (out[0] != 0xee || out[PAGE - 1] != 0xee))
		fail("a failed swap-in touched the page");
	if (err == 0 && memcmp(block, t->written[idx], PAGE))
		fail("damaged file contents were accepted");
	if (err && !memcmp(block, t->written[idx], PAGE))
		fail("intact file contents were refused");
	if (pwrite(fd, t->written[idx], PAGE, (off_t)(t->slot[idx] * PAGE)) != PAGE)
		fail("restore the file");
	return 0;
}
