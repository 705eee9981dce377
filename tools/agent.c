/*
 * The agent `uzswap run` preloads into every process it manages (LD_PRELOAD). It makes
 * the process's userfaultfd and hands it to the supervisor, then does on request the two
 * things only the process itself can: move pages out to its staging range (UFFDIO_MOVE)
 * and discard staging pages. Its thread lives on its own stack and never allocates, so it
 * never touches managed memory (which would wait on the supervisor).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent_proto.h"
#include "uffd.h"

/* In .data, which is mapped from the file: the eviction only takes anonymous memory, so
 * the agent thread can read its own state while pages around it are moved out. */
struct agent_state {
	int managed_uffd; /* to register the program's new mappings the moment they exist */
	int staging_uffd;
	uintptr_t staging;
	void *stack;
	int sock;
	pthread_mutex_t fork_lock; /* held across a fork, and while pages are moved */
	uint32_t forks;            /* forks this process has made (counted in the parent) */
	char name[108];
};
static struct agent_state agent __attribute__((section(".data"))) = {
	.managed_uffd = -1, .staging_uffd = -1, .sock = -1,
	.fork_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void fail(const char *what, int err)
{
	char msg[200];
	int n = snprintf(msg, sizeof(msg), "uzswap agent: %s: %s\n", what, strerror(err));

	if (write(2, msg, (size_t)n) < 0) {
		/* nothing left to tell it with */
	}
	_exit(127);
}

static int32_t drop_staging(const uint64_t *start, const uint64_t *len, unsigned n)
{
	const uint64_t staging_bytes = (uint64_t)AGENT_STAGING_SLOTS * AGENT_PAGE;
	int32_t r = 0;

	for (unsigned i = 0; i < n; i++) {
		/* only ever the staging range: nothing of the program's is dropped by mistake */
		if (start[i] < agent.staging || len[i] > staging_bytes ||
		    start[i] - agent.staging > staging_bytes - len[i])
			r = -EINVAL;
		else if (madvise((void *)start[i], len[i], MADV_DONTNEED) < 0)
			r = -errno;
	}
	return r;
}

/* Moves never overlap a fork, so each page is either copied into the child or moved out
 * first; and none is made once the process has forked since the supervisor chose the
 * pages (see agent_req). */
static void serve(const struct agent_req *req, struct agent_reply *rep)
{
	unsigned ndrop = req->ndrop < AGENT_BATCH ? req->ndrop : AGENT_BATCH;
	unsigned nmove = req->nmove < AGENT_BATCH ? req->nmove : AGENT_BATCH;

	rep->dropped = drop_staging(req->drop_start, req->drop_len, ndrop);
	if (!nmove)
		return; /* drops alone: nothing to keep apart from a fork */
	pthread_mutex_lock(&agent.fork_lock);
	rep->forks = agent.forks;
	if (agent.forks == req->forks_seen)
		uffd_move_pages(agent.staging_uffd, req->move_src, req->move_dst, nmove, rep->moved);
	else
		uffd_refuse_moves(rep->moved, nmove);
	pthread_mutex_unlock(&agent.fork_lock);
}

/* The supervisor gone means nobody can bring evicted pages back: end the process rather
 * than let it read zeros. */
static void *agent_main(void *arg)
{
	struct agent_req req;
	struct agent_reply rep;

	(void)arg;
	for (;;) {
		ssize_t n = recv(agent.sock, &req, sizeof(req), 0);

		if (n == 0 || (n < 0 && errno != EINTR))
			kill(getpid(), SIGKILL);
		if (n <= 0)
			continue;
		memset(&rep, 0, sizeof(rep));
		serve(&req, &rep);
		if (send(agent.sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0)
			kill(getpid(), SIGKILL);
	}
	return NULL;
}

static int connect_supervisor(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(agent.name);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	a.sun_path[0] = '\0'; /* abstract: nothing on disk to leave behind */
	memcpy(a.sun_path + 1, agent.name, len);
	if (s < 0 || connect(s, (struct sockaddr *)&a,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0)
		fail("cannot reach uzswap run", errno);
	return s;
}

/* Hello, with the managed-ranges descriptor when there is one; waits for the go-ahead
 * (the supervisor has registered the process's memory by then). */
static void hello(int uffd, pid_t fork_parent)
{
	struct agent_hello h = {
		.magic = AGENT_MAGIC, .pid = getpid(), .fork_parent = fork_parent,
		.staging_slots = AGENT_STAGING_SLOTS, .staging = agent.staging,
		.stack = (uintptr_t)agent.stack, .stack_len = AGENT_STACK_BYTES,
	};
	struct iovec io = { &h, sizeof(h) };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1 };
	int32_t answer = -1;

	if (uffd >= 0) {
		struct cmsghdr *c;

		m.msg_control = ctl;
		m.msg_controllen = sizeof(ctl);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	}
	if (sendmsg(agent.sock, &m, MSG_NOSIGNAL) < 0 ||
	    recv(agent.sock, &answer, sizeof(answer), 0) != sizeof(answer))
		fail("uzswap run did not answer", errno ? errno : EPROTO);
	if (answer < 0)
		fail("uzswap run refused this process", -answer);
}

static void setup_staging(void)
{
	size_t bytes = (size_t)AGENT_STAGING_SLOTS * AGENT_PAGE;
	int r;

	agent.staging_uffd = uffd_open_kernel_mode();
	if (agent.staging_uffd < 0)
		fail("userfaultfd", -agent.staging_uffd);
	if ((r = uffd_handshake(agent.staging_uffd, UFFD_STAGING_FEATURES)) < 0 ||
	    (r = uffd_register_missing(agent.staging_uffd, agent.staging, bytes)) < 0)
		fail("staging range", -r);
}

static void start_thread(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, agent.stack, AGENT_STACK_BYTES);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all); /* the program's signals are for its own threads */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t, &attr, agent_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r)
		fail("agent thread", r);
}

static void before_fork(void)
{
	pthread_mutex_lock(&agent.fork_lock);
}

static void after_fork_parent(void)
{
	agent.forks++;
	pthread_mutex_unlock(&agent.fork_lock);
}

/* The child has the parent's memory but not its agent thread, staging registration or
 * connection: make its own. Forks are serialised so the supervisor can tell which fork
 * event was this child's. */
static void after_fork_child(void)
{
	pid_t parent = getppid();

	pthread_mutex_init(&agent.fork_lock, NULL);
	agent.forks = 0; /* a new process to the supervisor */
	close(agent.managed_uffd); /* the parent's: the child's came with the fork event */
	agent.managed_uffd = -1;
	close(agent.staging_uffd);
	close(agent.sock);
	madvise((void *)agent.staging, (size_t)AGENT_STAGING_SLOTS * AGENT_PAGE, MADV_DONTNEED);
	setup_staging();
	agent.sock = connect_supervisor();
	hello(-1, parent);
	start_thread();
}

/* Anonymous private memory the program maps through mmap(2) is registered at once, so
 * none of it is touched outside the budget. (Mappings the C library makes internally,
 * and brk, are found by the supervisor's periodic look at /proc/PID/maps.) */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	int anon = MAP_ANONYMOUS | MAP_PRIVATE;

	if (p != MAP_FAILED && agent.managed_uffd >= 0 && (flags & anon) == anon &&
	    !(flags & (MAP_SHARED | MAP_GROWSDOWN | MAP_STACK)) &&
	    prot == (PROT_READ | PROT_WRITE))
		uffd_register_missing(agent.managed_uffd, (uintptr_t)p,
				      (len + AGENT_PAGE - 1) & ~(size_t)(AGENT_PAGE - 1));
	return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

__attribute__((constructor)) static void agent_init(void)
{
	const char *name = getenv(AGENT_ENV_SOCKET);
	size_t bytes = (size_t)AGENT_STAGING_SLOTS * AGENT_PAGE;
	void *staging;
	int uffd;

	if (!name || strlen(name) >= sizeof(agent.name) - 1)
		return;
	strcpy(agent.name, name);
	staging = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	agent.stack = mmap(NULL, AGENT_STACK_BYTES, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (staging == MAP_FAILED || agent.stack == MAP_FAILED)
		fail("mmap", errno);
	agent.staging = (uintptr_t)staging;
	setup_staging();
	uffd = uffd_open_kernel_mode();
	if (uffd < 0)
		fail("userfaultfd", -uffd);
	agent.sock = connect_supervisor();
	hello(uffd, 0);
	agent.managed_uffd = uffd; /* the supervisor has its own copy */
	start_thread();
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}
