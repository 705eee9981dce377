/* uffd — thin wrappers over the userfaultfd calls, returning -errno. */
#define _GNU_SOURCE
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
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
