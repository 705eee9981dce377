/* SPDX-License-Identifier: MIT */
/* Swap a page out in a group, read the statistics, swap it back in. Built by `make` as
 * build/example. */
#include <stdio.h>
#include <string.h>
#include <uzswap.h>

int main(void)
{
	struct uzs_config config;
	struct uzs *uzs;
	struct uzs_group *app;
	static char page[UZS_PAGE_SIZE], back[UZS_PAGE_SIZE];
	uzs_slot_t slot;
	int err;

	uzs_config_init(&config);          /* the kernel's defaults */
	config.compressor = "zstd";
	config.max_pool_bytes = 64 << 20;  /* 64 MiB of compressed pages, then writeback */
	err = uzs_open(&config, &uzs);
	if (err) {
		fprintf(stderr, "uzs_open: %s\n", strerror(-err));
		return 1;
	}
	/* a group under the root, allowed 8 MiB of the pool */
	err = uzs_group_create(uzs, NULL, "app", &app);
	if (!err)
		err = uzs_group_set_zswap_max(app, 8 << 20);
	snprintf(page, sizeof(page), "hello from a swapped-out page");
	if (!err)
		err = uzs_swap_out(uzs, app, page, &slot);
	if (!err)
		err = uzs_swap_in(uzs, slot, back, UZS_SWAPIN_FREE);
	if (!err)
		printf("%s\n", back);
	uzs_print_stats(uzs, stdout);
	uzs_print_group_stats(uzs, stdout);
	uzs_close(uzs);
	if (err)
		fprintf(stderr, "example: %s\n", strerror(-err));
	return err ? 1 : 0;
}
