# keyhog - one make for everything.  `make` builds build/keyhog and
# build/libkeyhog.a; `make test` installs what is missing, builds and runs
# every test; `make bench` measures on the Linux source corpus.
#
# Dependencies come from Debian's packages; scripts/setup.sh installs them
# (as root) or prints the exact apt-get command.

CC      ?= cc
BUILD   ?= build
PKGS    := libhs libpcre2-8 libgit2 libarchive libcurl libcrypto
SAN     ?=
OPT     ?= -O2

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror \
           -Wno-missing-field-initializers -Iinclude -Isrc $(PKG_CFLAGS) $(SAN)
LDLIBS  += $(PKG_LIBS) -lpthread -lm -ldl
LDFLAGS += $(SAN)

LIB_SRCS := $(sort $(wildcard src/spec/*.c src/engine/*.c src/decode/*.c \
              src/triage/*.c src/sources/*.c src/report/*.c src/verify/*.c))
CLI_SRCS := $(sort $(wildcard src/cli/*.c))
DETECTORS := $(sort $(wildcard detectors/*.toml))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/embedded.o
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)

TEST_SRCS := $(sort $(wildcard tests/*/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

DEPS_STAMP := $(BUILD)/.deps-ok

# The GPU backend, only where nvcc exists (the `gpu` section below).
NVCC      ?= $(shell command -v nvcc 2>/dev/null)
NVCCFLAGS ?= -O3 -std=c++17 -Xcompiler -fPIC,-Wall,-Wextra,-Werror -Werror all-warnings \
             -cudart static -gencode arch=compute_80,code=sm_80 \
             -gencode arch=compute_90,code=[sm_90,compute_90]
GPU_LIB   := $(if $(NVCC),$(BUILD)/libkeyhog_gpu.so)

.PHONY: all deps test unit cli-test scan bench eval clean asan fuzz fuzz-build format gpu bench-gpu

all: $(DEPS_STAMP) $(BUILD)/keyhog $(BUILD)/libkeyhog.a $(GPU_LIB)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/setup.sh
	@sh scripts/setup.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O1 -Wall -Wextra -Werror $< -o $@

$(BUILD)/gen/embedded.c: $(BUILD)/tools/embed $(DETECTORS)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ $(DETECTORS)

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libkeyhog.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/keyhog: $(CLI_OBJS) $(BUILD)/libkeyhog.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libkeyhog.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka) $< -o $@ \
	    $(LDFLAGS) $(BUILD)/libkeyhog.a $(LDLIBS) $(shell pkg-config --libs cmocka)

# Unit tests (cmocka, one binary per file), then the CLI end-to-end suite.
test: all $(TEST_BINS)
	@sh tests/run.sh $(BUILD)

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

# libFuzzer targets (fuzz/fuzz_*.c, see fuzz/README.md): the library is built
# with clang and fuzzer-no-link instrumentation into build-fuzz/, each target
# linked against it, then each runs FUZZ_SECONDS from fuzz/corpus/<name>.
# FUZZ_TARGETS="fuzz_scan fuzz_toml" picks some.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
FUZZ_BINS := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(sort $(wildcard fuzz/fuzz_*.c)))

fuzz:
	@command -v clang >/dev/null || { echo "make fuzz: needs clang and libclang-rt-14-dev" >&2; exit 2; }
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" fuzz-build
	@sh fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_BINS)

$(BUILD)/fuzz/%: fuzz/%.c $(BUILD)/libkeyhog.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< -o $@ $(LDFLAGS) $(BUILD)/libkeyhog.a $(LDLIBS)

# Exit status 1 means "findings", which is a result, not a failure of make.
scan: all
	$(BUILD)/keyhog scan . || [ $$? -eq 1 ]

# GPU backend (docs/gpu.md): a shared object of its own, built only where
# nvcc is on PATH (NVCC, GPU_LIB above), with the CUDA runtime linked in
# statically; the keyhog binary dlopens it and never links CUDA, so nothing
# here can fail without nvcc.  `make gpu` also builds the device benchmark
# and gpu_check.

$(BUILD)/libkeyhog_gpu.so: src/engine/gpu/keyhog_gpu.cu src/engine/gpu.h src/decode/trigger.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -shared -Iinclude -Isrc $< -o $@

$(BUILD)/keyhog_gpu_bench: src/engine/gpu/keyhog_gpu.cu src/engine/gpu.h src/decode/trigger.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -DKH_GPU_BENCH -Iinclude -Isrc $< -o $@

# The library alone against a plain CPU search, on a device (docs/gpu.md).
$(BUILD)/gpu_check: src/engine/gpu/gpu_check.c src/engine/gpu.h src/decode/trigger.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ -ldl

# Decode marks against decoding everything, on a tree (docs/gpu.md).
$(BUILD)/marks_check: bench/marks_check.c $(BUILD)/libkeyhog.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(BUILD)/libkeyhog.a $(LDLIBS)

$(BUILD)/gpu_bench: bench/gpu_bench.c $(BUILD)/libkeyhog.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(BUILD)/libkeyhog.a $(LDLIBS)

ifneq ($(NVCC),)
gpu: $(GPU_LIB) $(BUILD)/keyhog_gpu_bench $(BUILD)/gpu_check $(BUILD)/gpu_bench
else
gpu: $(BUILD)/gpu_bench
	@echo "nvcc not found: the GPU backend is not built (the CPU path needs nothing)"
endif

# `make bench-gpu` (docs/gpu.md): device numbers (kernel alone, copy,
# persistent against per-batch on 10,000 4 KiB chunks), then end to end
# from host memory, CPU against GPU with a parity check, on BENCH_GPU_CORPUS
# repeated BENCH_GPU_REPEAT times in RAM.
BENCH_GPU_CORPUS ?= bench/corpus/linux-source-6.1
BENCH_GPU_REPEAT ?= 4
bench-gpu: all gpu
	@sh bench/gpu_run.sh $(BUILD) $(BENCH_GPU_CORPUS) $(BENCH_GPU_REPEAT)

bench: all
	@sh bench/run.sh $(BUILD)

# Accuracy on the Linux source with planted secrets and decoys, three seeds:
# recall by service and encoding, decoys reported, background findings
# (docs/eval.md); the table is also written to eval/results/<commit>.json.
eval: all
	@sh eval/run.sh $(BUILD)

# History scanning (bench/README.md): builds a repository of 100k commits
# once under bench/corpus/, then times keyhog's git reader against git's own.
# BENCH_GIT_ARGS="--commits 5000" for a quick look.
.PHONY: bench-git
bench-git: all $(BUILD)/bench/git_history_enum
	python3 bench/git_history.py $(BUILD) $(BENCH_GIT_ARGS)

$(BUILD)/bench/git_history_enum: bench/git_history_enum.c $(BUILD)/libkeyhog.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(BUILD)/libkeyhog.a $(LDLIBS)

format:
	clang-format -i include/*.h src/*/*.[ch] tests/*/*.c tools/*.c

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d)
