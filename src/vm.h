/*
 * vm — the transparent mode: address spaces whose anonymous memory uzswap serves through
 * userfaultfd. One uzs_vm holds any number of spaces: this process's own regions, and in
 * `uzswap run` every process of the program (each with an agent, see agent_proto.h).
 */
#ifndef UZS_VM_H
#define UZS_VM_H

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
};
int vm_attach_remote(struct uzs_vm *vm, const struct vm_remote *r);
/* A hello turned away (counted in agents_refused). */
void vm_count_refused_agent(struct uzs_vm *vm);

/* Register the process's anonymous private writable mappings not registered yet (reads
 * /proc/PID/maps); done at attach and then periodically by the eviction thread. */
int vm_scan_maps(struct uzs_vm *vm, struct vm_space *s);

/* How many spaces are alive (processes not yet exited). */
unsigned vm_live_spaces(struct uzs_vm *vm);

#endif
