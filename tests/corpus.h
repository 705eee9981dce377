/* SPDX-License-Identifier: MIT */
/* Loading the project's page corpus in tests: zstd-compressed raw 4096-byte pages. */
#ifndef UZS_TEST_CORPUS_H
#define UZS_TEST_CORPUS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define CORPUS_PATH "corpus/python-heap-8k.pages.zst"

/* Returns the pages (page-aligned, free() them) and their number, or NULL. */
static unsigned char *corpus_load(size_t *nr_pages)
{
	FILE *f = fopen(CORPUS_PATH, "rb");
	unsigned char *zbuf = NULL, *pages = NULL;
	unsigned long long raw;
	long len;

	if (!f) {
		fprintf(stderr, "cannot open %s (run tests from the repository root)\n", CORPUS_PATH);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	zbuf = malloc((size_t)len);
	if (zbuf && fread(zbuf, 1, (size_t)len, f) == (size_t)len) {
		raw = ZSTD_getFrameContentSize(zbuf, (size_t)len);
		if (raw != ZSTD_CONTENTSIZE_ERROR && raw != ZSTD_CONTENTSIZE_UNKNOWN && raw % 4096 == 0)
			pages = aligned_alloc(4096, (size_t)raw);
		if (pages && ZSTD_decompress(pages, (size_t)raw, zbuf, (size_t)len) != raw) {
			free(pages);
			pages = NULL;
		}
		if (pages)
			*nr_pages = (size_t)raw / 4096;
	}
	free(zbuf);
	fclose(f);
	return pages;
}

#endif
