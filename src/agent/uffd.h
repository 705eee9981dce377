/* SPDX-License-Identifier: MIT */
/*
 * uffd — the userfaultfd calls the transparent mode makes, and the parts of the kernel's
 * interface newer than the headers this machine's distribution ships (UFFDIO_MOVE and
 * UFFDIO_POISON came in Linux 6.8 and 6.6; Debian 12's headers are from 6.1).
 */
#ifndef UZS_UFFD_H
#define UZS_UFFD_H

#include <linux/userfaultfd.h>
#include <stdint.h>
#include <sys/ioctl.h>

#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef UFFDIO_MOVE
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif

/* The events the managed ranges' descriptor reports: the program's own memory calls. */
#define UFFD_MANAGED_FEATURES                                                          \
	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | \
	 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_MOVE | UFFD_FEATURE_THREAD_ID)
/* The staging range's descriptor reports nothing: its only use is as UFFDIO_MOVE's
 * destination, and our own discards of it must not wait for anyone to read an event. */
#define UFFD_STAGING_FEATURES UFFD_FEATURE_MOVE

/* A userfaultfd that also sees faults taken inside system calls: through /dev/userfaultfd
 * where it can be opened, else the system call. -errno when neither allows kernel-mode
 * faults (then only UFFD_USER_MODE_ONLY would work, which is not enough). */
int uffd_open_kernel_mode(void);
/* The API handshake asking for features; -errno, -ENOTSUP when the kernel lacks one. */
int uffd_handshake(int fd, uint64_t features);
/* Register [start, start+len) for missing-page faults. */
int uffd_register_missing(int fd, uintptr_t start, uintptr_t len);
/* Install len bytes from src (this process) at dst (the descriptor's process); wakes the
 * faulting threads. Returns the bytes installed (> 0) or -errno (-EEXIST: already there). */
long uffd_copy(int fd, uintptr_t dst, const void *src, uintptr_t len);
/* Move len bytes of pages from src to dst within the descriptor's process; dst must be
 * registered with fd. Returns the bytes moved or -errno (-EBUSY: a page is shared). */
long uffd_move(int fd, uintptr_t dst, uintptr_t src, uintptr_t len, int wake);
/* Move n pages, src[i] -> dst[i] (dst registered with fd, nobody woken there), with one
 * call per stretch where both sides are consecutive: the kernel then flushes the TLB once
 * for the stretch instead of once a page, which is what moving costs while the
 * process's other threads run. A page still shared copy-on-write with a forked process
 * (which the kernel will not move) is first made this process's own, as a write of the
 * program's would, by an atomic add of 0 to it (a page gone missing meanwhile stays
 * refused). A move the kernel says failed or fell short is checked against the page
 * tables, since Linux 6.18 can report an error for pages it did move (src/uffd.c).
 * res[i] = 0 or -errno, page by page. */
void uffd_move_pages(int fd, const uint64_t *src, const uint64_t *dst, unsigned n, int *res);
/* How many moves the kernel misreported (see uffd_move_pages) were counted right from the
 * page tables, in this process. */
uint64_t uffd_moves_corrected(void);
/* The answer for n pages not moved now, to be tried again later: -EAGAIN each. */
void uffd_refuse_moves(int *res, unsigned n);
int uffd_wake(int fd, uintptr_t start, uintptr_t len);
/* Make accesses to [start, start+len) raise SIGBUS: a page that cannot be brought back. */
int uffd_poison(int fd, uintptr_t start, uintptr_t len);

#endif
