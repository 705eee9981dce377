/* SPDX-License-Identifier: MIT */
#ifndef UZS_AGENT_EXEC_H
#define UZS_AGENT_EXEC_H

/* The process is managed through the supervisor's socket_name: from now on its exec
 * calls refuse programs that would run unmanaged and keep the agent in the environment
 * of those they run (tools/agent_exec.c). */
void agent_exec_init(const char *socket_name);

#endif
