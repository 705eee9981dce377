/*
 * agent_proto — the messages between `uzswap run` (which holds the engine) and the agent
 * it preloads into each process it manages. UFFDIO_MOVE only works from inside the
 * process whose pages it moves, and only that process can discard its own pages, so the
 * agent does those two things on request; everything else the supervisor does from
 * outside (userfaultfd calls on the process's descriptor, process_vm_readv).
 * SOCK_SEQPACKET: one message per request.
 */
#ifndef UZS_AGENT_PROTO_H
#define UZS_AGENT_PROTO_H

#include <stdint.h>

#define AGENT_ENV_SOCKET "UZSWAP_AGENT_SOCKET"
#define AGENT_MAGIC 0x757a7377u /* "uzsw" */
#define AGENT_BATCH 64u         /* pages per request */
#define AGENT_PAGE 4096u
#define AGENT_STAGING_SLOTS 1024u
#define AGENT_STACK_BYTES (256u << 10)

/* First message of a process, with its managed-ranges userfaultfd attached (none after a
 * fork: the supervisor already has the child's from the fork event). */
struct agent_hello {
	uint32_t magic;
	int32_t pid;
	int32_t fork_parent; /* 0, or the parent whose fork made this process */
	uint32_t staging_slots;
	uint64_t staging;     /* the staging range: never to be managed */
	uint64_t stack, stack_len; /* the agent thread's stack: never to be managed */
};

enum agent_op {
	AGENT_MOVE_OUT = 1, /* pairs (src, dst): move each page src -> dst (staging) */
	AGENT_DISCARD = 2,  /* addresses: drop each staging page */
};

struct agent_req {
	uint32_t op;
	uint32_t n;
	uint64_t addr[2 * AGENT_BATCH];
};

/* Reply to AGENT_MOVE_OUT: 0 or -errno per pair; to AGENT_DISCARD: result[0]. */
struct agent_reply {
	int32_t result[AGENT_BATCH];
};

#endif
