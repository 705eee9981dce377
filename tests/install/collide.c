/* SPDX-License-Identifier: MIT */
/* A program with functions of its own named as the library's internal ones: linked with the
 * installed libuzswap.a it must build (no duplicate symbols) and both must work. */
#include <stdio.h>
#include <string.h>
#include <uzswap.h>

int pool_create(void) { return 42; }
int tree_create(void) { return 43; }
int group_create(void) { return 44; }
int fifo_push(void) { return 45; }

int main(void)
{
	struct uzs_config c;
	struct uzs *uzs;
	static char page[UZS_PAGE_SIZE], back[UZS_PAGE_SIZE];
	uzs_slot_t slot;
	int err;

	uzs_config_init(&c);
	if ((err = uzs_open(&c, &uzs)))
		return printf("uzs_open %d\n", err), 1;
	memset(page, 'u', sizeof(page));
	err = uzs_swap_out(uzs, NULL, page, &slot);
	if (!err)
		err = uzs_swap_in(uzs, slot, back, UZS_SWAPIN_FREE);
	uzs_close(uzs);
	printf("ours %d %d %d %d, library %s\n", pool_create(), tree_create(), group_create(),
	       fifo_push(), !err && !memcmp(page, back, sizeof(page)) ? "ok" : "broken");
	return 0;
}
