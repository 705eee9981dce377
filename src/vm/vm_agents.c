/* SPDX-License-Identifier: MIT */
/*
 * vm_agents — the holder's side of the agents (agent_core.h): the abstract socket they
 * connect to, their hello, and in library mode the thread that takes the hellos of this
 * process's forked children.
 */
#define _GNU_SOURCE
#include "vm_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_core.h"

int vm_listen_abstract(const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int s, err;

	if (len >= sizeof(a.sun_path) - 1)
		return -ENAMETOOLONG;
	memcpy(a.sun_path + 1, name, len); /* abstract: nothing on disk to leave behind */
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (bind(s, (struct sockaddr *)&a,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0 ||
	    listen(s, 64) < 0) {
		err = -errno;
		close(s);
		return err;
	}
	return s;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

/* The parent of pid as /proc shows it; -1 if it is gone. */
static pid_t parent_of(pid_t pid)
{
	char path[64], line[128];
	pid_t ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "PPid: %d", &ppid) == 1)
			break;
	fclose(f);
	return ppid;
}

/* Does pid descend from this process (the holder)? uzswap run is a child subreaper, so
 * the program's processes whose parent has exited are still its descendants. */
static bool descends_from_us(pid_t pid)
{
	pid_t me = getpid();

	for (int depth = 0; depth < 4096 && pid > 1; depth++)
		if ((pid = parent_of(pid)) == me)
			return true;
	return false;
}

/* The peer, as the kernel saw it connect, if it may say hello at all: a process of our
 * own user descending from us (the holder of the engine forked it, or forked what forked
 * it). Anyone can connect to an abstract socket; a stranger accepted would hand us its own
 * userfaultfd (and keep the run going until it exits) or have us read and fill memory we
 * have no business with. Checked before its hello is read, so a stranger costs nothing.
 * The peer's pidfd tells whether the process /proc described is still the peer (a pid
 * cannot be reused while it is alive). */
static int trusted_peer(int sock, struct ucred *peer)
{
	socklen_t len = sizeof(*peer), fd_len = sizeof(int);
	int pidfd = -1;
	bool ok;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, peer, &len) < 0 || peer->uid != geteuid())
		return -EPERM;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &fd_len) < 0)
		pidfd = -1; /* older kernel: the pid alone */
	ok = descends_from_us(peer->pid) &&
	     (pidfd < 0 || syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0);
	if (pidfd >= 0)
		close(pidfd);
	return ok ? 0 : -EPERM;
}

/* The hello of an agent of this build, from a trusted peer (above) that is the process
 * the hello names: one naming another process would have us read and fill that one's
 * memory. A forked child's names a parent this vm manages (whose fork event made the
 * child's space); children_only (library mode): only forked children say hello. Its
 * descriptor, if any, in *fd. */
static int recv_hello(struct uzs_vm *vm, int sock, struct agent_hello *h, int *fd)
{
	struct iovec io = { h, sizeof(*h) };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct ucred peer;
	struct cmsghdr *c;
	struct pollfd p = { sock, POLLIN, 0 };
	ssize_t n;

	*fd = -1;
	if (trusted_peer(sock, &peer) < 0 || poll(&p, 1, 5000) != 1 ||
	    (n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0)
		return -EPROTO;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	if (n != sizeof(*h) || h->magic != AGENT_MAGIC || peer.pid != h->pid ||
	    (vm->agent_listen >= 0 && !h->fork_parent) ||
	    (h->fork_parent && !vm_manages_pid(vm, h->fork_parent))) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EPROTO;
	}
	return 0;
}

/* Answers -EPROTO and closes. A peer refused before its hello was read may have sent it
 * meanwhile: closing with it unread would reset the connection (ECONNRESET), which the
 * peer's read then reports instead of the answer. So reading is shut first (a later send
 * of the peer's fails: EPIPE), and what came before is thrown away (descriptors in it too:
 * the kernel closes those not taken). Never waits. */
static void refuse(int sock)
{
	int32_t answer = -EPROTO;
	char junk[sizeof(struct agent_hello)];

	if (send(sock, &answer, sizeof(answer), MSG_NOSIGNAL) < 0) {
		/* it is gone already */
	}
	shutdown(sock, SHUT_RD);
	while (recv(sock, junk, sizeof(junk), MSG_DONTWAIT) > 0) {
	}
	close(sock);
}

void vm_welcome_agent(struct uzs_vm *vm, int sock)
{
	struct agent_hello h;
	struct vm_remote r;
	int32_t answer;
	int fd;

	if (recv_hello(vm, sock, &h, &fd) < 0) {
		vm_count_refused_agent(vm);
		refuse(sock); /* not an agent of this build, or not ours: it says so and ends */
		return;
	}
	r = (struct vm_remote){ .pid = h.pid, .fork_parent = h.fork_parent, .uffd = fd,
				.sock = sock, .staging = h.staging,
				.staging_slots = h.staging_slots, .stack = h.stack,
				.stack_len = h.stack_len, .forked_after_ns = h.forked_after_ns };
	/* a forked child may say hello before its fork event is read: give it a second */
	for (int i = 0; i < 1000; i++) {
		answer = vm_attach_remote(vm, &r);
		if (answer != -EAGAIN)
			break;
		usleep(1000);
	}
	if (answer < 0)
		vm_count_refused_agent(vm);
	if (answer != -EAGAIN)
		return; /* answered, and the socket kept or closed */
	if (fd >= 0)
		close(fd);
	if (send(sock, &answer, sizeof(answer), MSG_NOSIGNAL) < 0) {
		/* it is gone already */
	}
	close(sock);
}

/* The vm whose children get agents, and its descriptors as a fork found them: a child
 * has no use for them, and a sibling holding the socket of another child's agent would
 * keep that child from seeing its holder go away. Few enough for a fixed array; past
 * that, the rest stay open in the child. */
static struct uzs_vm *armed_vm;
static struct {
	int fd[512];
	unsigned n;
} inherited;

static void note_fd(int fd)
{
	if (fd >= 0 && inherited.n < sizeof(inherited.fd) / sizeof(inherited.fd[0]))
		inherited.fd[inherited.n++] = fd;
}

/* A forked child whose agent has not said hello yet (a child forked through the raw
 * system call never does: it is given up on after HELLO_WAIT_MS). */
#define HELLO_WAIT_MS 1000

static bool hello_pending(struct uzs_vm *vm)
{
	struct timespec ts;
	uint64_t now;
	bool pending = false;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	pthread_mutex_lock(&vm->lock);
	for (struct vm_space *s = vm->spaces; s && !pending; s = s->next)
		pending = s->regions_only && !s->pid && !s->dead && s->forked_at_ns &&
			  now < s->forked_at_ns + HELLO_WAIT_MS * 1000000ull;
	pthread_mutex_unlock(&vm->lock);
	return pending;
}

/* Before a fork of this process: the children it forked before have their spaces (their
 * fork events are handled) and their agents in (their hellos answered), so that this
 * child can be told every descriptor it inherits. */
static void settle_children(struct uzs_vm *vm)
{
	vm_sync_events(vm);
	for (int i = 0; i < HELLO_WAIT_MS && hello_pending(vm); i++)
		usleep(1000);
}

static void note_holder_fds(void)
{
	struct uzs_vm *vm = armed_vm;

	inherited.n = 0;
	if (!vm)
		return;
	settle_children(vm);
	pthread_mutex_lock(&vm->lock);
	note_fd(vm->epfd);
	note_fd(vm->kick_fd);
	note_fd(vm->agent_listen);
	note_fd(vm->listen_stop);
	for (struct vm_space *s = vm->spaces; s; s = s->next) {
		note_fd(s->uffd);
		note_fd(s->staging_uffd);
		note_fd(s->sock);
	}
	pthread_mutex_unlock(&vm->lock);
}

static void close_holder_fds(void)
{
	for (unsigned i = 0; i < inherited.n; i++)
		close(inherited.fd[i]);
	inherited.n = 0;
	armed_vm = NULL;
}

static void *children_listener(void *arg)
{
	struct uzs_vm *vm = arg;

	for (;;) {
		struct pollfd p[2] = { { vm->agent_listen, POLLIN, 0 }, { vm->listen_stop, POLLIN, 0 } };
		int c;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			return NULL;
		if ((p[0].revents & POLLIN) &&
		    (c = accept4(vm->agent_listen, NULL, NULL, SOCK_CLOEXEC)) >= 0)
			vm_welcome_agent(vm, c);
	}
}

/* Called by the first region: a process without any has no fork events to match (uzswap
 * run's supervisor, which forks the program, is one). */
int vm_children_listen(struct uzs_vm *vm)
{
	static _Atomic unsigned serial;
	char name[64];
	int r;

	if (vm->agent_listen >= 0)
		return 0;
	snprintf(name, sizeof(name), "uzswap-vm-%ld-%u", (long)getpid(),
		 atomic_fetch_add(&serial, 1));
	if ((vm->agent_listen = vm_listen_abstract(name)) < 0 ||
	    (vm->listen_stop = eventfd(0, EFD_CLOEXEC)) < 0) {
		r = vm->agent_listen < 0 ? vm->agent_listen : -errno;
		vm_children_stop(vm);
		return r;
	}
	if ((r = vm_thread_start(&vm->listen_thread, children_listener, vm)) < 0) {
		vm_children_stop(vm);
		return r;
	}
	vm->listening = true;
	armed_vm = vm;
	agent_arm_children(name, vm->self->staging, note_holder_fds, close_holder_fds);
	return 0;
}

/* The children still running on the vm's memory: nobody could bring their evicted pages
 * back once it stops. (One whose agent socket hung up has exec'd or exited: its pid may
 * be another program's by now.) */
static void end_children(struct uzs_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	for (struct vm_space *s = vm->spaces; s; s = s->next) {
		struct pollfd p = { s->sock, POLLIN | POLLRDHUP, 0 };

		if (!s->regions_only || s->pid <= 0 || s->sock < 0 || s->dead)
			continue;
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
			continue;
		kill(s->pid, SIGKILL);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vm_children_stop(struct uzs_vm *vm)
{
	if (vm->listening) {
		uint64_t one = 1;

		agent_disarm_children(); /* waits for a fork in progress */
		if (armed_vm == vm)
			armed_vm = NULL;
		end_children(vm);
		if (write(vm->listen_stop, &one, sizeof(one)) < 0) {
			/* an eventfd write cannot fail here */
		}
		pthread_join(vm->listen_thread, NULL);
		vm->listening = false;
	}
	if (vm->agent_listen >= 0)
		close(vm->agent_listen);
	if (vm->listen_stop >= 0)
		close(vm->listen_stop);
	vm->agent_listen = vm->listen_stop = -1;
}
