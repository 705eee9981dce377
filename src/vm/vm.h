/* SPDX-License-Identifier: MIT */
/*
 * vm — the transparent mode: address spaces whose anonymous memory uzswap serves through
 * userfaultfd. One uzs_vm holds any number of spaces: this process's own regions, and in
 * `uzswap run` every process of the program (each with an agent, see agent_proto.h).
 */
#ifndef UZS_VM_H
#define UZS_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "uzswap.h"

struct vm_space;

/* A process that connected with hello: its managed-ranges descriptor uffd (-1 after a
 * fork: the fork event brought it), the agent's socket, the staging range and what must
 * never be managed. Takes over uffd and sock. */
struct vm_remote {
	pid_t pid;
	pid_t fork_parent;
	int uffd;
	int sock;
	uintptr_t staging;
	unsigned staging_slots;
	uintptr_t stack, stack_len;
	uint64_t forked_after_ns; /* a forked child: see agent_hello */
};
/* Answers the agent (0: the go-ahead, or -errno) and returns the same, except -EAGAIN:
 * a forked child whose fork event is not in yet, nothing done (try again). */
int vm_attach_remote(struct uzs_vm *vm, const struct vm_remote *r);
/* Listen at an abstract unix socket name (nothing on disk); the socket or -errno. */
int vm_listen_abstract(const char *name);
/* An agent connected on sock: take its hello, attach its process, answer it (0 or
 * -errno); sock is kept for the agent or closed. */
void vm_welcome_agent(struct uzs_vm *vm, int sock);
/* Is pid a process this vm manages or managed (its space, or one its fork event made for
 * a child, is still listed)? A forked child's hello must name such a parent. */
bool vm_manages_pid(struct uzs_vm *vm, pid_t pid);
/* A hello turned away (counted in agents_refused). */
void vm_count_refused_agent(struct uzs_vm *vm);

/* Register the process's anonymous private writable mappings not registered yet (reads
 * /proc/PID/maps); done at attach and then periodically by the eviction thread. */
int vm_scan_maps(struct uzs_vm *vm, struct vm_space *s);

/* Send sig to every process with an agent whose space is alive, except the pid except
 * (0: none). */
void vm_signal_processes(struct uzs_vm *vm, int sig, pid_t except);

/* How many spaces are alive (processes not yet exited). */
unsigned vm_live_spaces(struct uzs_vm *vm);

#endif
