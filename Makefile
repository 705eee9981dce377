# SPDX-License-Identifier: MIT
# uzswap build. `make` builds the library and the CLI; `make check` builds and runs the
# tests; SAN=address|thread builds everything with that sanitizer into build-SAN/.
CC ?= cc
SAN ?=
FAULT ?=
BUILD := build$(if $(FAULT),-fault,$(if $(SAN),-$(SAN)))
CFLAGS ?= -O2 -g
# The library's subsystems, each in its own folder; dependencies go one way:
# tools -> vm -> engine -> common, vm -> agent -> common (scripts/check-layout.sh).
SUBSYSTEMS := common engine agent vm
SRC_INCLUDES := $(SUBSYSTEMS:%=-Isrc/%)
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -Iinclude $(SRC_INCLUDES)
ifeq ($(SAN),address)
CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SAN),thread)
CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif
# The fault-injection build: failures and race hooks on demand (src/fault.h), under
# ASan+UBSan so that every error path is also checked for leaks and bad accesses.
ifneq ($(FAULT),)
CFLAGS += -DUZS_FAULT_INJECTION -D_GNU_SOURCE= -fsanitize=address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
LIB_CFLAGS := -include src/common/fault.h
endif
LDLIBS := -llz4 -lzstd -llzo2 -lz -lsodium -pthread

# src/agent/preload.c and agent_exec.c are the preloaded agent's entry points (mmap and the
# exec family): in the agent .so only. src/engine/test_hooks.c reaches inside the engine
# for the tests: in their copy only.
AGENT_ONLY_SRC := src/agent/preload.c src/agent/agent_exec.c
TEST_HOOKS_SRC := src/engine/test_hooks.c
LIB_SRC := $(filter-out $(AGENT_ONLY_SRC) $(TEST_HOOKS_SRC),$(wildcard $(SUBSYSTEMS:%=src/%/*.c)))
LIB_HDR := $(wildcard $(SUBSYSTEMS:%=src/%/*.h)) $(wildcard include/*.h)
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_OBJ := $(TOOL_SRC:tools/%.c=$(BUILD)/obj/tools/%.o)
# Tests that need the fault-injection build run only there; the rest everywhere else.
FAULT_TEST_SRC := tests/test_faults.c tests/test_races.c tests/test_vm_races.c
TEST_SRC := $(if $(FAULT),$(FAULT_TEST_SRC),$(filter-out $(FAULT_TEST_SRC),$(wildcard tests/test_*.c)))
TESTS := $(TEST_SRC:tests/%.c=$(BUILD)/%)

# Programs the hostile cases run under `uzswap run` (tests/hostile/): plain, like any
# program a user brings.
HOSTILE_SRC := $(wildcard tests/hostile/progs/*.c)
HOSTILE := $(HOSTILE_SRC:tests/hostile/progs/%.c=$(BUILD)/hostile/%)

# The shared library's version: its soname changes with the major one only.
VERSION := $(shell sed -n 's/^\#define UZS_VERSION_STRING "\(.*\)"/\1/p' include/uzswap.h)
SONAME := libuzswap.so.$(firstword $(subst ., ,$(VERSION)))

all: $(BUILD)/libuzswap.a $(BUILD)/$(SONAME) $(BUILD)/libuzswap-internal.a $(BUILD)/uzswap $(BUILD)/libuzswap-agent.so $(TESTS) $(BUILD)/example \
	$(BUILD)/workload $(HOSTILE)

# Position-independent, so the same objects make the shared library.
$(BUILD)/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC $(LIB_CFLAGS) -c $< -o $@

$(BUILD)/obj/tools/%.o: tools/%.c $(wildcard tools/*.h) $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools -c $< -o $@

# The installed archive: its objects linked into one, in which only the uzs_* calls stay
# global, so the library's own functions (pool_create, tree_create, ...) never collide
# with a program's.
$(BUILD)/libuzswap.a: $(LIB_OBJ)
	ld -r $^ -o $(BUILD)/obj/libuzswap-all.o
	nm --defined-only -g $(BUILD)/obj/libuzswap-all.o | awk '$$3 ~ /^uzs_/ {print $$3}' \
		> $(BUILD)/obj/public.syms
	objcopy --keep-global-symbols=$(BUILD)/obj/public.syms $(BUILD)/obj/libuzswap-all.o \
		$(BUILD)/obj/libuzswap.o
	rm -f $@
	ar rcs $@ $(BUILD)/obj/libuzswap.o

# The shared library: the same calls, versioned by src/libuzswap.map.
$(BUILD)/$(SONAME): $(LIB_OBJ) src/libuzswap.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/libuzswap.map \
		-Wl,-z,now $(LIB_OBJ) -o $@.$(VERSION:$(firstword $(subst ., ,$(VERSION))).%=%) $(LDLIBS)
	ln -sf $(SONAME).$(VERSION:$(firstword $(subst ., ,$(VERSION))).%=%) $@
	ln -sf $(SONAME) $(BUILD)/libuzswap.so

# Every object with its internals global, plus the test hooks: what the tests link (they
# call the layers directly), and the command until it speaks only the public API.
$(BUILD)/libuzswap-internal.a: $(LIB_OBJ) $(TEST_HOOKS_SRC:src/%.c=$(BUILD)/obj/%.o)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/uzswap: $(TOOL_OBJ) $(BUILD)/libuzswap-internal.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The agent `uzswap run` preloads into programs: plain (no sanitizer runtime to impose
# on them) and free of the engine. Bound at load (-z now): lazy binding would make its
# thread read the dynamic linker's data, which may be evicted while it works.
# Only mmap and the exec family are exported (-fvisibility=hidden), so the agent keeps its
# own state even in a program linking libuzswap.a, which has the same agent_core.
AGENT_SRC := $(AGENT_ONLY_SRC) src/agent/agent_core.c src/agent/uffd.c src/agent/exec_check.c
$(BUILD)/libuzswap-agent.so: $(AGENT_SRC) $(wildcard src/agent/*.h src/common/*.h) include/uzswap.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -fPIC -shared -pthread -Wl,-z,now \
		-fvisibility=hidden -Iinclude -Isrc/agent -Isrc/common $(AGENT_SRC) -o $@

$(BUILD)/test_%: tests/test_%.c $(wildcard tests/*.h) $(BUILD)/libuzswap-internal.a
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libuzswap-internal.a -o $@ $(LDLIBS)

# The side-by-side workload (bench/README.md): a plain program, no uzswap inside.
$(BUILD)/workload: bench/workload.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror $< -o $@

$(BUILD)/hostile/%: tests/hostile/progs/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -pthread $< -o $@

# The README's example must keep compiling.
$(BUILD)/example: docs/example.c $(BUILD)/libuzswap.a
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libuzswap.a -o $@ $(LDLIBS)

# make install [PREFIX=/usr/local] [DESTDIR=staging]: the command, the agent it preloads,
# both libraries, the header, uzswap.pc and the man pages.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANPAGES := $(wildcard docs/man/*.[0-9])

$(BUILD)/uzswap.pc: uzswap.pc.in include/uzswap.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

install: $(BUILD)/uzswap $(BUILD)/libuzswap-agent.so $(BUILD)/libuzswap.a $(BUILD)/$(SONAME) \
		$(BUILD)/uzswap.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/uzswap $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 755 $(BUILD)/uzswap $(DESTDIR)$(BINDIR)/
	install -m 644 $(BUILD)/libuzswap-agent.so $(DESTDIR)$(LIBDIR)/uzswap/
	install -m 644 $(BUILD)/libuzswap.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/$(SONAME).* $(DESTDIR)$(LIBDIR)/
	cp -P $(BUILD)/$(SONAME) $(BUILD)/libuzswap.so $(DESTDIR)$(LIBDIR)/
	install -m 644 include/uzswap.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(BUILD)/uzswap.pc $(DESTDIR)$(PKGCONFIGDIR)/
	for m in $(MANPAGES); do install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/; done

check: all
	tests/run-tests.sh $(BUILD)

clean:
	rm -rf build build-*

# libFuzzer targets (clang): `make fuzz` builds them into build-fuzz/.
-include fuzz/fuzz.mk

.PHONY: all check clean install
