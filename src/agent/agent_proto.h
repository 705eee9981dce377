/* SPDX-License-Identifier: MIT */
/*
 * agent_proto — the messages between the holder of the engine (`uzswap run`, or a library
 * process whose forked children are managed) and the agent in each managed process
 * (src/agent_core.h). UFFDIO_MOVE only works from inside the
 * process whose pages it moves, and only that process can discard its own pages, so the
 * agent does those two things on request; everything else the supervisor does from
 * outside (userfaultfd calls on the process's descriptor, process_vm_readv).
 * SOCK_SEQPACKET: one message per request.
 */
#ifndef UZS_AGENT_PROTO_H
#define UZS_AGENT_PROTO_H

#include <stdint.h>

#include "uzswap.h" /* UZS_PAGE_SIZE: a staging slot's size */

#define AGENT_ENV_SOCKET "UZSWAP_AGENT_SOCKET"
/* "uzs" and the protocol's version, 4: a new layout of any message takes a new one, so an
 * agent and a holder of different builds refuse each other at hello */
#define AGENT_MAGIC 0x757a7304u
#define AGENT_BATCH 64u         /* pages per request */
#define AGENT_STAGING_SLOTS 1024u
#define AGENT_STACK_BYTES (256u << 10)

/* First message of a process, with its managed-ranges userfaultfd attached (none after a
 * fork: the supervisor already has the child's from the fork event). The answer is an
 * int32_t: 0 (go-ahead) or -errno. A forked child's go-ahead carries its userfaultfd
 * (SCM_RIGHTS), so that the child holds its own: the kernel lets go of a process's
 * ranges when the last descriptor is closed, and would fill its missing pages with
 * zeros if the holder's were the only one and the holder died. */
struct agent_hello {
	uint32_t magic;
	int32_t pid;
	int32_t fork_parent; /* 0, or the parent whose fork made this process */
	uint32_t staging_slots;
	uint64_t staging;     /* the staging range: never to be managed */
	uint64_t stack, stack_len; /* the agent thread's stack: never to be managed */
	/* A forked child: CLOCK_MONOTONIC in its parent just before the fork. Its fork event
	 * is the parent's first one handled after that, which tells its space from those of
	 * the parent's other children (siblings forked since, raw clones that never say
	 * hello). */
	uint64_t forked_after_ns;
};

/* One request: drop the staging ranges [drop_start[i], drop_start[i] + drop_len[i]),
 * then move each page move_src[i] -> move_dst[i] (a staging slot, possibly one just
 * dropped). The reply follows once both are done. */
struct agent_req {
	uint32_t ndrop, nmove;
	/* The process's forks the supervisor had taken in (their fork events) when it chose
	 * the pages to move. A fork the agent has seen since copied them into a child the
	 * supervisor has not taken in yet: then nothing is moved (-EAGAIN), since the child's
	 * pages are recorded from the parent's as the fork event finds them. */
	uint32_t forks_seen;
	uint64_t drop_start[AGENT_BATCH], drop_len[AGENT_BATCH];
	uint64_t move_src[AGENT_BATCH], move_dst[AGENT_BATCH];
};

struct agent_reply {
	uint32_t forks;            /* forks the process had made when the agent served it */
	int32_t dropped;           /* 0, or -errno of a drop that failed */
	int32_t moved[AGENT_BATCH]; /* 0 or -errno per page */
};

#endif
