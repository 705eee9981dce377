/* SPDX-License-Identifier: MIT */
/*
 * The agent `uzswap run` preloads into every process it manages (LD_PRELOAD): at load it
 * becomes an agent of the supervisor (src/agent_core.h), which then holds the process's
 * userfaultfd; and it registers the program's anonymous mmaps the moment they exist.
 * Only mmap, mmap64 and the exec family (tools/agent_exec.c) are exported: the rest stays
 * the agent's own even in a program that links uzswap's library itself.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent_core.h"
#include "agent_exec.h"
#include "agent_proto.h"
#include "uffd.h"

#define EXPORTED __attribute__((visibility("default")))

/* Anonymous private memory the program maps through mmap(2) is registered at once, so
 * none of it is touched outside the budget. (Mappings the C library makes internally,
 * and brk, are found by the supervisor's periodic look at /proc/PID/maps.) */
EXPORTED void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	int anon = MAP_ANONYMOUS | MAP_PRIVATE;
	int uffd = agent_managed_uffd();

	if (p != MAP_FAILED && uffd >= 0 && (flags & anon) == anon &&
	    !(flags & (MAP_SHARED | MAP_GROWSDOWN | MAP_STACK)) &&
	    prot == (PROT_READ | PROT_WRITE))
		uffd_register_missing(uffd, (uintptr_t)p,
				      (len + UZS_PAGE_SIZE - 1) & ~(size_t)(UZS_PAGE_SIZE - 1));
	return p;
}

EXPORTED void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

__attribute__((constructor)) static void agent_init(void)
{
	const char *name = getenv(AGENT_ENV_SOCKET);

	if (name) {
		agent_start_process(name);
		agent_exec_init(name);
	}
}
