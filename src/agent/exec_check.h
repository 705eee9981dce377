/* SPDX-License-Identifier: MIT */
/*
 * exec_check — can a program about to be exec'd run under `uzswap run`? Its memory is
 * served only if the agent gets preloaded into it, which the dynamic loader does for a
 * dynamically linked program that gains no privileges. A statically linked one has no
 * loader; a setuid, setgid or file-capability one runs in secure mode, where the loader
 * ignores LD_PRELOAD. Either would run outside the budget without a word.
 *
 * Used by `uzswap run` for CMD and by the agent for the exec calls of managed programs,
 * so it allocates nothing and keeps to system calls (safe between fork and exec).
 */
#ifndef UZS_EXEC_CHECK_H
#define UZS_EXEC_CHECK_H

#include <stddef.h>

/* NULL when the program at path would run managed (or cannot be looked at: exec then
 * gives its own error); else why not, as a phrase ("it is statically linked ..."). A
 * script (#!) is judged by its interpreter. */
const char *exec_check_path(const char *path);
/* The same for an open file (fexecve). */
const char *exec_check_fd(int fd);

/* The file execvp(file) would run, searching path_env (NULL: the C library's default)
 * as execvp does: into out, or file itself when it names a directory or nothing fits
 * (execvp then fails on its own). */
void exec_resolve(const char *file, const char *path_env, char *out, size_t size);

/* Write "uzswap: cannot run PROG under uzswap: WHY; ..." to stderr in one write. */
void exec_say_refused(const char *prog, const char *why);

#endif
