/* SPDX-License-Identifier: MIT */
/* uffd — thin wrappers over the userfaultfd calls, returning -errno. */
#define _GNU_SOURCE
#include "uffd.h"
#include "uzswap.h"
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

int uffd_open_kernel_mode(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int fd, dev_err = 0;

	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		dev_err = errno;
		close(dev);
		if (fd >= 0)
			return fd;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	return -(dev_err ? dev_err : errno);
}

int uffd_handshake(int fd, uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	return (api.features & features) == features ? 0 : -ENOTSUP;
}

int uffd_register_missing(int fd, uintptr_t start, uintptr_t len)
{
	struct uffdio_register r = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
}

long uffd_copy(int fd, uintptr_t dst, const void *src, uintptr_t len)
{
	struct uffdio_copy c = { .dst = dst, .src = (uintptr_t)src, .len = len };

	if (ioctl(fd, UFFDIO_COPY, &c) < 0)
		return c.copy > 0 ? c.copy : -errno;
	return c.copy;
}

long uffd_move(int fd, uintptr_t dst, uintptr_t src, uintptr_t len, int wake)
{
	struct uffdio_move m = {
		.dst = dst, .src = src, .len = len,
		.mode = wake ? 0 : UFFDIO_MOVE_MODE_DONTWAKE,
	};

	if (ioctl(fd, UFFDIO_MOVE, &m) < 0)
		return m.move > 0 ? m.move : -errno;
	return m.move;
}

/* Pages from i on whose source and destination both follow on from page i's. */
static unsigned stretch_at(const uint64_t *src, const uint64_t *dst, unsigned i, unsigned n)
{
	unsigned k = 1;

	while (i + k < n && src[i + k] == src[i] + (uint64_t)k * UZS_PAGE_SIZE &&
	       dst[i + k] == dst[i] + (uint64_t)k * UZS_PAGE_SIZE)
		k++;
	return k;
}

/* Make the page at addr this process's own, as a write would (copy-on-write after a
 * fork), without changing a byte: the kernel adds 0 to its last word atomically, so a
 * write of the program's at the same moment is never lost. A page that went away
 * meanwhile is EFAULT, not a signal, and not a wait for the fault handler either: the
 * futex fault-in does not let userfaultfd hold it (no retry allowed), and the handler
 * could not serve it while the page is marked as moving.
 * FUTEX_WAKE_OP also wakes a waiter (one, even when asked for none) on each futex when
 * its condition holds: the first futex is ours (nobody waits on it), and the condition
 * on the page's word (equal to -2048) makes a waiter of the program's there, were there
 * one, see a wake-up only in that case, which futex callers must expect anyway. */
static int unshare_page(uint64_t addr)
{
	int ours = 0;
	uint64_t word = addr + UZS_PAGE_SIZE - sizeof(int);

	if (syscall(SYS_futex, &ours, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 0, NULL,
		    (void *)(uintptr_t)word, FUTEX_OP(FUTEX_OP_ADD, 0, FUTEX_OP_CMP_EQ, -2048)) < 0)
		return -errno;
	return 0;
}

/* Moves the kernel misreported and that were counted right from the page tables. In .data,
 * as the agent's state is (src/agent_core.c): the agent must never fault on its own. */
static _Atomic uint64_t moves_corrected __attribute__((section(".data"))) = 0;

uint64_t uffd_moves_corrected(void)
{
	return moves_corrected;
}

#define CHECK_CHUNK 64u

/* Whether each of k consecutive pages from addr is in the page tables (mincore: a page
 * being migrated counts as there). A direct system call: no descriptor, nothing a
 * preloaded library could take over. false if unknown. */
static bool pages_mapped(uint64_t addr, unsigned k, unsigned char *vec)
{
	return syscall(SYS_mincore, (void *)(uintptr_t)addr, (size_t)k * UZS_PAGE_SIZE, vec) == 0;
}

/* Of k pages from src/dst the kernel said it did not move, how many from the first on it
 * did move: gone from their source and at their destination. A destination is a slot
 * given out empty (one a move found occupied is dropped before its next use), so nothing
 * else can have filled it. */
static unsigned moved_unreported(uint64_t src, uint64_t dst, unsigned k)
{
	unsigned char at_src[CHECK_CHUNK], at_dst[CHECK_CHUNK];
	unsigned done = 0;

	while (done < k) {
		unsigned n = k - done < CHECK_CHUNK ? k - done : CHECK_CHUNK, j = 0;
		uint64_t off = (uint64_t)done * UZS_PAGE_SIZE;

		if (!pages_mapped(src + off, n, at_src) || !pages_mapped(dst + off, n, at_dst))
			return done;
		while (j < n && (at_dst[j] & 1) && !(at_src[j] & 1))
			j++;
		done += j;
		if (j < n)
			break;
	}
	return done;
}

/* UFFDIO_MOVE of k consecutive pages: how many it moved from the first on, or -errno if
 * none. Linux 6.18's move can say -EEXIST for pages it did move: when a step of its loop
 * is retried (-EAGAIN inside: the page's entry changed under it, as when the program
 * touches the page at that moment), the error is kept, the step that then succeeds goes
 * uncounted, and the next try finds the page at its destination. The answer is -EEXIST,
 * or the count before that step. Taken at its word, the page would be lost (neither where
 * we think nor ever read back) and its slot poisoned. So such an answer is checked
 * against the page tables (only then: it is rare). */
static long move_counted(int fd, uint64_t src, uint64_t dst, unsigned k)
{
	long m = uffd_move(fd, dst, src, (uintptr_t)k * UZS_PAGE_SIZE, 0);
	unsigned done = m > 0 ? (unsigned)(m / UZS_PAGE_SIZE) : 0, more = 0;

	if (done < k && (m == -EEXIST || done > 0))
		more = moved_unreported(src + (uint64_t)done * UZS_PAGE_SIZE,
					dst + (uint64_t)done * UZS_PAGE_SIZE, k - done);
	if (more)
		atomic_fetch_add(&moves_corrected, 1);
	done += more;
	if (done)
		return done;
	return m < 0 ? m : -EAGAIN; /* no progress and no error: let the caller retry later */
}

/* One page; one shared with a forked process (EBUSY) is made ours and tried again. */
static long move_one(int fd, uint64_t dst, uint64_t src)
{
	long m = move_counted(fd, src, dst, 1);

	if (m == -EBUSY)
		fault_hook(HOOK_MOVE_UNSHARE, src);
	if (m == -EBUSY && unshare_page(src) == 0)
		m = move_counted(fd, src, dst, 1);
	return m;
}

void uffd_move_pages(int fd, const uint64_t *src, const uint64_t *dst, unsigned n, int *res)
{
	unsigned i = 0;

	while (i < n) {
		unsigned k = stretch_at(src, dst, i, n);
		long m = move_counted(fd, src[i], dst[i], k);

		if (m < 0) /* which page refused, and why: the first alone */
			m = move_one(fd, dst[i], src[i]);
		if (m < 0) {
			res[i++] = (int)m;
			continue;
		}
		/* the kernel moves in order: what it moved is the first pages' */
		while (m--)
			res[i++] = 0;
	}
}

void uffd_refuse_moves(int *res, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		res[i] = -EAGAIN;
}

int uffd_wake(int fd, uintptr_t start, uintptr_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

int uffd_poison(int fd, uintptr_t start, uintptr_t len)
{
	struct uffdio_poison p = { .range = { .start = start, .len = len } };

	return ioctl(fd, UFFDIO_POISON, &p) < 0 ? -errno : 0;
}
