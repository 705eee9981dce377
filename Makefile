# uzswap build. `make` builds the library and the CLI; `make check` builds and runs the
# tests; SAN=address|thread builds everything with that sanitizer into build-SAN/.
CC ?= cc
SAN ?=
FAULT ?=
BUILD := build$(if $(FAULT),-fault,$(if $(SAN),-$(SAN)))
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -Iinclude -Isrc
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
LIB_CFLAGS := -include src/fault.h
endif
LDLIBS := -llz4 -lzstd -llzo2 -lz -lsodium -pthread

LIB_SRC := $(wildcard src/*.c)
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TOOL_SRC := $(filter-out tools/agent.c tools/agent_exec.c,$(wildcard tools/*.c))
TOOL_OBJ := $(TOOL_SRC:tools/%.c=$(BUILD)/obj/tools/%.o)
# Tests that need the fault-injection build run only there; the rest everywhere else.
FAULT_TEST_SRC := tests/test_faults.c tests/test_races.c tests/test_vm_races.c
TEST_SRC := $(if $(FAULT),$(FAULT_TEST_SRC),$(filter-out $(FAULT_TEST_SRC),$(wildcard tests/test_*.c)))
TESTS := $(TEST_SRC:tests/%.c=$(BUILD)/%)

# Programs the hostile cases run under `uzswap run` (tests/hostile/): plain, like any
# program a user brings.
HOSTILE_SRC := $(wildcard tests/hostile/progs/*.c)
HOSTILE := $(HOSTILE_SRC:tests/hostile/progs/%.c=$(BUILD)/hostile/%)

all: $(BUILD)/libuzswap.a $(BUILD)/uzswap $(BUILD)/libuzswap-agent.so $(TESTS) $(BUILD)/example \
	$(BUILD)/workload $(HOSTILE)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIB_CFLAGS) -c $< -o $@

$(BUILD)/obj/tools/%.o: tools/%.c $(wildcard tools/*.h src/*.h include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools -c $< -o $@

$(BUILD)/libuzswap.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/uzswap: $(TOOL_OBJ) $(BUILD)/libuzswap.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The agent `uzswap run` preloads into programs: plain (no sanitizer runtime to impose
# on them) and free of the engine. Bound at load (-z now): lazy binding would make its
# thread read the dynamic linker's data, which may be evicted while it works.
# Only mmap and the exec family are exported (-fvisibility=hidden), so the agent keeps its
# own state even in a program linking libuzswap.a, which has the same agent_core.
AGENT_SRC := tools/agent.c tools/agent_exec.c src/agent_core.c src/uffd.c src/exec_check.c
$(BUILD)/libuzswap-agent.so: $(AGENT_SRC) src/agent_core.h src/uffd.h src/agent_proto.h \
		src/exec_check.h tools/agent_exec.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -fPIC -shared -pthread -Wl,-z,now \
		-fvisibility=hidden -Isrc -Itools $(AGENT_SRC) -o $@

$(BUILD)/test_%: tests/test_%.c $(wildcard tests/*.h) $(BUILD)/libuzswap.a
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libuzswap.a -o $@ $(LDLIBS)

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

check: all
	tests/run-tests.sh $(BUILD)

clean:
	rm -rf build build-*

# libFuzzer targets (clang): `make fuzz` builds them into build-fuzz/.
-include fuzz/fuzz.mk

.PHONY: all check clean
