/* SPDX-License-Identifier: MIT */
/*
 * exec_check — see exec_check.h.
 */
#define _GNU_SOURCE
#include "exec_check.h"

#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define HEAD_BYTES 256     /* what the kernel reads of a file to choose its loader */
#define MAX_INTERP_DEPTH 5 /* the kernel follows #! four deep */

static const char WHY_STATIC[] = "it is statically linked (no dynamic loader to preload "
				 "uzswap's agent into it)";
static const char WHY_SETUID[] = "it is setuid (the dynamic loader ignores LD_PRELOAD for it)";
static const char WHY_SETGID[] = "it is setgid (the dynamic loader ignores LD_PRELOAD for it)";
static const char WHY_CAPS[] = "it has file capabilities (the dynamic loader ignores "
			       "LD_PRELOAD for it)";

static const char *check_path_depth(const char *path, int depth);

/* Would exec give the process other credentials? The loader then runs in secure mode.
 * Not under no_new_privs or from a nosuid mount, where the kernel grants nothing; not
 * for a set-id to what we already are; and root gains no secure mode from capabilities. */
static const char *privileged(int fd, const struct stat *st)
{
	struct statvfs v;

	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ||
	    (fstatvfs(fd, &v) == 0 && (v.f_flag & ST_NOSUID)))
		return NULL;
	if ((st->st_mode & S_ISUID) && st->st_uid != getuid())
		return WHY_SETUID;
	/* setgid without group execute is the mandatory-locking mark, not a set-id */
	if ((st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && st->st_gid != getgid())
		return WHY_SETGID;
	if (getuid() != 0 && fgetxattr(fd, "security.capability", NULL, 0) > 0)
		return WHY_CAPS;
	return NULL;
}

struct phdrs {
	uint64_t off;
	unsigned num, entsize;
	bool is64;
};

/* A program header's p_type, p_offset and p_filesz, whichever the class. */
static void phdr_fields(const unsigned char *p, bool is64, uint32_t *type, uint64_t *off,
			uint64_t *size)
{
	if (is64) {
		Elf64_Phdr h;

		memcpy(&h, p, sizeof(h));
		*type = h.p_type, *off = h.p_offset, *size = h.p_filesz;
	} else {
		Elf32_Phdr h;

		memcpy(&h, p, sizeof(h));
		*type = h.p_type, *off = h.p_offset, *size = h.p_filesz;
	}
}

/* Whether the dynamic section at off names the object (DT_SONAME). */
static bool has_soname(int fd, uint64_t off, uint64_t size, bool is64)
{
	unsigned char buf[4096];
	size_t ent = is64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
	ssize_t got = pread(fd, buf, size < sizeof(buf) ? size : sizeof(buf), (off_t)off);

	for (size_t i = 0; got > 0 && (i + 1) * ent <= (size_t)got; i++) {
		int64_t tag;

		if (is64) {
			Elf64_Dyn d;

			memcpy(&d, buf + i * ent, sizeof(d));
			tag = d.d_tag;
		} else {
			Elf32_Dyn d;

			memcpy(&d, buf + i * ent, sizeof(d));
			tag = d.d_tag;
		}
		if (tag == DT_SONAME)
			return true;
		if (tag == DT_NULL)
			break;
	}
	return false;
}

/* Dynamically linked: the program headers name an interpreter, or it is a shared object
 * run as a program, which only the dynamic loader itself can be (ld.so, as ldd runs it;
 * it preloads like any). A static-pie has a dynamic section too, but no name. */
static bool is_dynamic(int fd, const struct phdrs *ph)
{
	unsigned char buf[4096];
	size_t want = ph->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	unsigned per = ph->entsize >= want ? (unsigned)sizeof(buf) / ph->entsize : 0;
	uint64_t dyn_off = 0, dyn_size = 0;

	for (unsigned i = 0; per && i < ph->num; i += per) {
		unsigned n = ph->num - i < per ? ph->num - i : per;
		ssize_t got = pread(fd, buf, (size_t)n * ph->entsize,
				    (off_t)(ph->off + (uint64_t)i * ph->entsize));

		if (got <= 0)
			break;
		for (unsigned j = 0; j < n && (size_t)j * ph->entsize + want <= (size_t)got; j++) {
			uint32_t type;
			uint64_t off, size;

			phdr_fields(buf + (size_t)j * ph->entsize, ph->is64, &type, &off, &size);
			if (type == PT_INTERP)
				return true;
			if (type == PT_DYNAMIC)
				dyn_off = off, dyn_size = size;
		}
	}
	return dyn_size && has_soname(fd, dyn_off, dyn_size, ph->is64);
}

/* An executable ELF that is not dynamic is static (static-pie too). Anything the kernel
 * would not run is let through: exec gives its own error. */
static const char *check_elf(int fd, const unsigned char *head, size_t len)
{
	struct phdrs ph;
	unsigned type;

	if (head[EI_CLASS] == ELFCLASS64 && len >= sizeof(Elf64_Ehdr)) {
		Elf64_Ehdr e;

		memcpy(&e, head, sizeof(e));
		ph = (struct phdrs){ e.e_phoff, e.e_phnum, e.e_phentsize, true };
		type = e.e_type;
	} else if (head[EI_CLASS] == ELFCLASS32 && len >= sizeof(Elf32_Ehdr)) {
		Elf32_Ehdr e;

		memcpy(&e, head, sizeof(e));
		ph = (struct phdrs){ e.e_phoff, e.e_phnum, e.e_phentsize, false };
		type = e.e_type;
	} else {
		return NULL;
	}
	if (type != ET_EXEC && type != ET_DYN)
		return NULL;
	return is_dynamic(fd, &ph) ? NULL : WHY_STATIC;
}

/* A script runs its interpreter, with the interpreter's privileges (the kernel ignores
 * set-id bits on scripts): the interpreter is what is judged. */
static const char *check_script(const unsigned char *head, size_t len, int depth)
{
	char interp[HEAD_BYTES];
	size_t i = 2, n = 0;

	while (i < len && (head[i] == ' ' || head[i] == '\t'))
		i++;
	while (i < len && head[i] && head[i] != ' ' && head[i] != '\t' && head[i] != '\n')
		interp[n++] = (char)head[i++];
	interp[n] = '\0';
	return n ? check_path_depth(interp, depth + 1) : NULL;
}

static const char *check_fd_depth(int fd, int depth)
{
	unsigned char head[HEAD_BYTES];
	struct stat st;
	const char *why;
	ssize_t len;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (len = pread(fd, head, sizeof(head), 0)) < 4)
		return NULL;
	if (head[0] == '#' && head[1] == '!')
		return check_script(head, (size_t)len, depth);
	if (memcmp(head, ELFMAG, SELFMAG) != 0)
		return NULL; /* the shell's to run (execvp) or exec's to refuse */
	if ((why = privileged(fd, &st)))
		return why;
	return check_elf(fd, head, (size_t)len);
}

static const char *check_path_depth(const char *path, int depth)
{
	const char *why;
	int fd;

	if (depth > MAX_INTERP_DEPTH)
		return NULL;
	/* O_NONBLOCK: a FIFO must not hang the check (exec refuses it anyway) */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return NULL; /* execute-only or missing: exec decides */
	why = check_fd_depth(fd, depth);
	close(fd);
	return why;
}

const char *exec_check_path(const char *path)
{
	return path ? check_path_depth(path, 0) : NULL;
}

const char *exec_check_fd(int fd)
{
	return check_fd_depth(fd, 0);
}

static bool copy(char *out, size_t size, const char *dir, size_t dirlen, const char *file)
{
	int n = dirlen ? snprintf(out, size, "%.*s/%s", (int)dirlen, dir, file)
		       : snprintf(out, size, "%s", file); /* an empty element: the current directory */

	return n >= 0 && (size_t)n < size;
}

void exec_resolve(const char *file, const char *path_env, char *out, size_t size)
{
	const char *p = path_env ? path_env : "/bin:/usr/bin"; /* glibc's default */
	struct stat st;

	if (*file && !strchr(file, '/')) {
		for (;;) {
			const char *end = strchrnul(p, ':');

			if (copy(out, size, p, (size_t)(end - p), file) && access(out, X_OK) == 0 &&
			    stat(out, &st) == 0 && S_ISREG(st.st_mode))
				return;
			if (!*end)
				break;
			p = end + 1;
		}
	}
	snprintf(out, size, "%s", file);
}

void exec_say_refused(const char *prog, const char *why)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "uzswap: cannot run %s: %s, so its memory would "
			 "escape the budget\n", prog, why);

	if (n > (int)sizeof(msg) - 1) { /* cut short, still one line */
		n = (int)sizeof(msg) - 1;
		msg[n - 1] = '\n';
	}
	if (n > 0 && write(2, msg, (size_t)n) < 0) {
		/* nowhere else to say it */
	}
}
