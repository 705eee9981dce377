/* SPDX-License-Identifier: MIT */
/*
 * agent_core — see agent_core.h. Its state is in .data, which is mapped from the file:
 * eviction only takes anonymous memory, so the thread can read its own state while pages
 * around it are moved out.
 */
#define _GNU_SOURCE
#include "agent_core.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "uffd.h"

struct agent_state {
	int managed_uffd; /* uzswap run: to register the program's new mappings at once */
	int staging_uffd;
	uintptr_t staging;
	void *stack;
	int sock;
	pthread_mutex_t fork_lock; /* held across a fork, and while pages are moved */
	uint32_t forks;            /* forks this process has made (counted in the parent) */
	pid_t forker;              /* taken before each fork, for the child: its parent, */
	uint64_t fork_ns;          /* and when (a child's parent may be gone by then) */
	bool lenient;              /* library: a child its holder cannot take goes on alone */
	unsigned armed;            /* library: vms with children to take, now */
	void (*holder_before_fork)(void), (*holder_in_child)(void); /* the armed vm's */
	char name[108];            /* the holder's abstract socket; "" for none */
	/* The hello the agent thread makes for the thread that loaded the agent or forked:
	 * the descriptor it hands over, the parent of a forked child, and the answer
	 * (HELLO_PENDING until then; a futex). */
	int hello_uffd;
	pid_t hello_parent;
	int hello_result;
};
static struct agent_state agent __attribute__((section(".data"))) = {
	.managed_uffd = -1, .staging_uffd = -1, .sock = -1,
	.fork_lock = PTHREAD_MUTEX_INITIALIZER, .hello_uffd = -1,
};
#define HELLO_PENDING 1 /* answers are 0 or -errno */
static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

static void fail(const char *what, int err)
{
	char msg[200];
	int n = snprintf(msg, sizeof(msg), "uzswap agent: %s: %s\n", what, strerror(err));

	if (write(2, msg, (size_t)n) < 0) {
		/* nothing left to tell it with */
	}
	_exit(127);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int32_t drop_staging(const uint64_t *start, const uint64_t *len, unsigned n)
{
	const uint64_t staging_bytes = (uint64_t)AGENT_STAGING_SLOTS * UZS_PAGE_SIZE;
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
 * first; and none is made once the process has forked since the holder chose the pages
 * (see agent_req). */
static void serve(const struct agent_req *req, struct agent_reply *rep)
{
	unsigned ndrop = req->ndrop < AGENT_BATCH ? req->ndrop : AGENT_BATCH;
	unsigned nmove = req->nmove < AGENT_BATCH ? req->nmove : AGENT_BATCH;

	rep->dropped = drop_staging(req->drop_start, req->drop_len, ndrop);
	if (!nmove)
		return; /* drops alone: nothing to keep apart from a fork */
	/* never wait for a fork: it may be waiting for the holder's fault thread, which may be
	 * waiting for this round to end; refused, with the count the holder has (the fork's
	 * event will tell it) */
	if (pthread_mutex_trylock(&agent.fork_lock) != 0) {
		rep->forks = req->forks_seen;
		uffd_refuse_moves(rep->moved, nmove);
		return;
	}
	rep->forks = agent.forks;
	if (agent.forks == req->forks_seen)
		uffd_move_pages(agent.staging_uffd, req->move_src, req->move_dst, nmove, rep->moved);
	else
		uffd_refuse_moves(rep->moved, nmove);
	pthread_mutex_unlock(&agent.fork_lock);
}

/* The holder gone means nobody can bring evicted pages back: end the process rather than
 * let it read zeros. */
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

static void hello_done(int r)
{
	__atomic_store_n(&agent.hello_result, r, __ATOMIC_RELEASE);
	syscall(SYS_futex, &agent.hello_result, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int hello(int uffd, pid_t fork_parent, int *own_uffd);

/* The hello is the agent thread's, made before the process depends on the holder: from
 * the go-ahead on (a forked child then holds its own descriptor), a holder that dies
 * leaves faults waiting, and only this thread can then end the process; created after
 * the go-ahead, its creation (the C library allocates) could wait on such a fault
 * forever. */
static void *agent_first(void *arg)
{
	pid_t parent = agent.hello_parent;
	int own = -1, r = hello(agent.hello_uffd, parent, parent ? &own : NULL);

	if (r == 0 && parent)
		agent.managed_uffd = own;
	hello_done(r);
	return r == 0 ? agent_main(arg) : NULL;
}

/* The answer the agent thread got (the waiting thread touches only the agent's state). */
static int await_hello(void)
{
	int r;

	while ((r = __atomic_load_n(&agent.hello_result, __ATOMIC_ACQUIRE)) == HELLO_PENDING)
		syscall(SYS_futex, &agent.hello_result, FUTEX_WAIT_PRIVATE, HELLO_PENDING, NULL,
			NULL, 0);
	return r;
}

static int connect_holder(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(agent.name);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	a.sun_path[0] = '\0'; /* abstract: nothing on disk to leave behind */
	memcpy(a.sun_path + 1, agent.name, len);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0) {
		int err = -errno;

		close(s);
		return err;
	}
	agent.sock = s;
	return 0;
}

static void attach_fd(struct msghdr *m, char *ctl, size_t ctl_len, int fd)
{
	struct cmsghdr *c;

	m->msg_control = ctl;
	m->msg_controllen = ctl_len;
	c = CMSG_FIRSTHDR(m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
}

/* The holder's answer; a forked child's go-ahead carries its own userfaultfd (*own_uffd,
 * close-on-exec like the rest: an exec'd program starts afresh). 0 or -errno. */
static int await_answer(int *own_uffd)
{
	int32_t answer = -EPROTO;
	struct iovec io = { &answer, sizeof(answer) };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;
	int fd = -1;

	if (recvmsg(agent.sock, &m, MSG_CMSG_CLOEXEC) != sizeof(answer))
		return -EPROTO;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (!own_uffd) {
		if (fd >= 0)
			close(fd);
		return answer;
	}
	if (answer == 0 && fd < 0)
		answer = -EPROTO; /* a child without its descriptor could outlive the holder */
	if (answer < 0 && fd >= 0)
		close(fd);
	*own_uffd = answer == 0 ? fd : -1;
	return answer;
}

/* Hello, with the managed-ranges descriptor when there is one; waits for the go-ahead
 * (the holder has registered the process's memory by then). A forked child (own_uffd)
 * gets its descriptor back with it. 0 or -errno. */
static int hello(int uffd, pid_t fork_parent, int *own_uffd)
{
	struct agent_hello h = {
		.magic = AGENT_MAGIC, .pid = getpid(), .fork_parent = fork_parent,
		.staging_slots = AGENT_STAGING_SLOTS, .staging = agent.staging,
		.stack = (uintptr_t)agent.stack, .stack_len = agent.stack ? AGENT_STACK_BYTES : 0,
		.forked_after_ns = fork_parent ? agent.fork_ns : 0,
	};
	struct iovec io = { &h, sizeof(h) };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1 };

	if (uffd >= 0)
		attach_fd(&m, ctl, sizeof(ctl), uffd);
	if (sendmsg(agent.sock, &m, MSG_NOSIGNAL) < 0)
		return -errno;
	return await_answer(own_uffd);
}

static int setup_staging(void)
{
	size_t bytes = (size_t)AGENT_STAGING_SLOTS * UZS_PAGE_SIZE;
	int r;

	agent.staging_uffd = uffd_open_kernel_mode();
	if (agent.staging_uffd < 0)
		return agent.staging_uffd;
	if ((r = uffd_handshake(agent.staging_uffd, UFFD_STAGING_FEATURES)) < 0 ||
	    (r = uffd_register_missing(agent.staging_uffd, agent.staging, bytes)) < 0)
		return r;
	return 0;
}

/* The agent thread, which says hello (uffd: the descriptor to hand over, fork_parent:
 * a forked child's parent) and then serves the holder; 0 or -errno once answered. */
static int start_agent(int uffd, pid_t fork_parent)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int r;

	agent.hello_uffd = uffd;
	agent.hello_parent = fork_parent;
	agent.hello_result = HELLO_PENDING;
	pthread_attr_init(&attr);
	if (agent.stack) /* else the C library's: in library mode no stack is managed */
		pthread_attr_setstack(&attr, agent.stack, AGENT_STACK_BYTES);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all); /* the program's signals are for its own threads */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t, &attr, agent_first, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return r ? -r : await_hello();
}

static void *map_anon(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void before_fork(void)
{
	pthread_mutex_lock(&agent.fork_lock);
	agent.forker = getpid();
	agent.fork_ns = monotonic_ns();
	if (agent.name[0] && agent.holder_before_fork)
		agent.holder_before_fork();
}

static void after_fork_parent(void)
{
	agent.forks++;
	pthread_mutex_unlock(&agent.fork_lock);
}

/* A forked child: its holder has its managed-ranges descriptor from the fork event, and
 * hands it back with the go-ahead; it needs a staging range registered anew (the
 * parent's registration is not inherited), a connection and a thread. Until the
 * go-ahead only the holder holds that descriptor: if the holder dies meanwhile the
 * kernel lets go of the child's ranges, but no code of the program has run yet, and the
 * hello fails, which ends the process under uzswap run (library mode lets it go on
 * alone, as with a holder that refuses it). 0, or where it failed and -errno. */
static int become_child_agent(pid_t parent, const char **what)
{
	int r;

	madvise((void *)agent.staging, (size_t)AGENT_STAGING_SLOTS * UZS_PAGE_SIZE, MADV_DONTNEED);
	if (!agent.lenient && !agent.stack && !(agent.stack = map_anon(AGENT_STACK_BYTES)))
		return *what = "mmap", -ENOMEM;
	if ((r = setup_staging()) < 0)
		return *what = "staging range", r;
	if ((r = connect_holder()) < 0)
		return *what = "cannot reach the process holding its memory", r;
	/* once accepted its pages may be moved out, and only the agent thread can keep
	 * them coming back (going on alone, the holder would let go of its memory when the
	 * connection drops) */
	if ((r = start_agent(-1, parent)) < 0)
		return *what = "refused by the process holding its memory", r;
	return 0;
}

/* The child has the parent's memory but not its agent thread, staging registration or
 * connection. Forks are serialised so the holder can tell which fork event was whose. */
static void after_fork_child(void)
{
	const char *what = NULL;
	pid_t parent = agent.forker;
	int r;

	pthread_mutex_init(&agent.fork_lock, NULL);
	agent.forks = 0; /* a new process to the holder */
	close_fd(&agent.managed_uffd); /* the parent's: the child's comes with the go-ahead */
	close_fd(&agent.staging_uffd);
	close_fd(&agent.sock);
	if (!agent.name[0] || !agent.staging)
		return;
	if (agent.holder_in_child) {
		agent.holder_in_child();
		agent.holder_before_fork = agent.holder_in_child = NULL; /* the parent's */
	}
	if ((r = become_child_agent(parent, &what)) == 0)
		return;
	if (!agent.lenient)
		fail(what, -r);
	close_fd(&agent.managed_uffd);
	close_fd(&agent.staging_uffd);
	close_fd(&agent.sock);
	agent.name[0] = '\0'; /* and its own children go on alone too */
}

static void install_fork_handlers(void)
{
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

void agent_start_process(const char *name)
{
	int uffd, r;

	if (strlen(name) >= sizeof(agent.name))
		fail("socket name too long", ENAMETOOLONG);
	strcpy(agent.name, name);
	agent.staging = (uintptr_t)map_anon((size_t)AGENT_STAGING_SLOTS * UZS_PAGE_SIZE);
	agent.stack = map_anon(AGENT_STACK_BYTES);
	if (!agent.staging || !agent.stack)
		fail("mmap", ENOMEM);
	if ((r = setup_staging()) < 0)
		fail("staging range", -r);
	if ((uffd = uffd_open_kernel_mode()) < 0)
		fail("userfaultfd", -uffd);
	if ((r = connect_holder()) < 0)
		fail("cannot reach uzswap run", -r);
	if ((r = start_agent(uffd, 0)) < 0)
		fail("uzswap run refused this process", -r);
	agent.managed_uffd = uffd; /* the supervisor has its own copy */
	pthread_once(&fork_handlers_once, install_fork_handlers);
}

int agent_managed_uffd(void)
{
	return agent.managed_uffd;
}

void agent_arm_children(const char *name, uintptr_t staging, void (*before_fork_hook)(void),
			void (*in_child_hook)(void))
{
	pthread_once(&fork_handlers_once, install_fork_handlers);
	pthread_mutex_lock(&agent.fork_lock); /* not in the middle of a fork */
	agent.lenient = true;
	if (agent.armed++ == 0 && strlen(name) < sizeof(agent.name)) {
		strcpy(agent.name, name);
		agent.staging = staging;
		agent.holder_before_fork = before_fork_hook;
		agent.holder_in_child = in_child_hook;
	} else {
		/* two at once: whose fork event a child's would be is unknowable, so neither
		 * gets agents until both are stopped */
		agent.name[0] = '\0';
	}
	pthread_mutex_unlock(&agent.fork_lock);
}

void agent_disarm_children(void)
{
	pthread_mutex_lock(&agent.fork_lock);
	if (agent.armed)
		agent.armed--;
	agent.name[0] = '\0';
	agent.holder_before_fork = agent.holder_in_child = NULL;
	pthread_mutex_unlock(&agent.fork_lock);
}
