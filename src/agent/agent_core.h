/* SPDX-License-Identifier: MIT */
/*
 * agent_core — the half of a managed space that must run inside the managed process:
 * UFFDIO_MOVE only moves pages of the calling process, and only the process can discard
 * its own pages. A thread of its own (it never allocates; under uzswap run it also has a
 * stack of its own, outside the managed memory) does those two things on the holder's
 * request (agent_proto.h). Two users:
 *  - `uzswap run`'s preloaded agent (tools/agent.c), in every process of the program;
 *  - the library (uzs_vm_start): a child this process forks gets such a thread too, so
 *    its pages can be evicted by the parent's engine, which holds its userfaultfd.
 * Either way each child forked later gets its own, set up before fork() returns in it.
 */
#ifndef UZS_AGENT_CORE_H
#define UZS_AGENT_CORE_H

#include <stdint.h>

/* uzswap run: a staging range, this process's managed-ranges descriptor handed to the
 * supervisor listening at the abstract name, and the thread. A failure ends the process
 * (exit 127, one line): run unmanaged, it would pass the budget unseen. */
void agent_start_process(const char *name);
/* The managed-ranges descriptor (uzswap run), to register new mappings; -1 if none. */
int agent_managed_uffd(void);
/* The library: children forked from now on become agents of the vm listening at name,
 * with the staging range they inherit at staging. Around each fork, before_fork_hook runs
 * in the parent (agent's fork lock held) and in_child_hook in the child first: the vm's
 * chance to have the child close the descriptors it inherits of the vm's. Only one vm of a process at a time can
 * own its children: while two are armed, none does (their children are then left without
 * agent: their pages stay resident, uncharged). A child whose holder cannot take it goes
 * on the same way. */
void agent_arm_children(const char *name, uintptr_t staging, void (*before_fork_hook)(void),
			void (*in_child_hook)(void));
/* The vm is stopping: children forked from now on get no agent. */
void agent_disarm_children(void);

#endif
