# SPDX-License-Identifier: MIT
# libFuzzer targets, included by the Makefile. `make fuzz` builds, with clang into
# build-fuzz/: fuzz_ops (operations against a reference model), fuzz_decode (arbitrary
# bytes into every decompressor), fuzz_swapfile (arbitrary bytes as swap file contents) and make_corpus (writes the seed corpora; `make
# fuzz-corpus` runs it). fuzz/run-fuzz.sh runs the targets for a bounded time.

FUZZ_CC := clang
FUZZ_BUILD := build-fuzz
FUZZ_COMMON := -O1 -g -fno-sanitize-recover=all -std=gnu11 -Wall -Wextra -Werror -pthread \
	-Iinclude -Isrc/common -Isrc/engine -Isrc/agent -Isrc/vm
# The library is instrumented for coverage but not linked with libFuzzer's main.
FUZZ_LIB_CFLAGS := $(FUZZ_COMMON) -fsanitize=fuzzer-no-link,address,undefined
FUZZ_CFLAGS := $(FUZZ_COMMON) -fsanitize=fuzzer,address,undefined
FUZZ_LDLIBS := -llz4 -lzstd -llzo2 -lz -lsodium -pthread
# The library and its test hooks (fuzz_ops checks where each page is through them).
FUZZ_LIB_SRC := $(LIB_SRC) $(TEST_HOOKS_SRC)
FUZZ_OBJ := $(FUZZ_LIB_SRC:src/%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_DEPS := $(wildcard src/*/*.h include/*.h) fuzz/ops.h

fuzz: $(FUZZ_BUILD)/fuzz_ops $(FUZZ_BUILD)/fuzz_decode $(FUZZ_BUILD)/fuzz_swapfile \
	$(FUZZ_BUILD)/make_corpus

$(FUZZ_BUILD)/obj/%.o: src/%.c $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_OBJ) $(FUZZ_DEPS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $< $(FUZZ_OBJ) -o $@ $(FUZZ_LDLIBS)

# A plain program (no libFuzzer main) over the same objects, so it needs their sanitizers.
$(FUZZ_BUILD)/make_corpus: fuzz/make_corpus.c $(FUZZ_OBJ) $(FUZZ_DEPS)
	$(FUZZ_CC) $(FUZZ_COMMON) -fsanitize=address,undefined $< $(FUZZ_OBJ) -o $@ $(FUZZ_LDLIBS)

# Rewrite the seed corpora (run from the repository root: it reads corpus/).
fuzz-corpus: $(FUZZ_BUILD)/make_corpus
	rm -rf fuzz/corpus/ops fuzz/corpus/decode
	$(FUZZ_BUILD)/make_corpus fuzz/corpus

.PHONY: fuzz fuzz-corpus
