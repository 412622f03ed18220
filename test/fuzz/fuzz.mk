# fuzz.mk - the fuzzer's targets, included by the top Makefile (see
# test/fuzz/README).  One source, test/fuzz/fuzz.c, built three ways:
#
#   fuzz-run   inputs from seeds or files: plain (build/), ASan+UBSan
#              (build/asan/) and TSan (build/tsan/), each linked with the
#              library of its own tree;
#   fuzz-fail  the malloc-failure sweep (build/ and build/asan/);
#   fuzz-libfuzzer  clang's libFuzzer with ASan+UBSan, in build/fuzz/,
#              whose library clang builds with libFuzzer's coverage.
#
# make fuzz     a few minutes for developers: the seed ranges, the corpus,
#               libFuzzer for FUZZ_LIBFUZZER_S seconds, the failure sweep.
# make fuzz-ci  the bounded CI step: seed ranges under the three builds,
#               the corpus and the failure sweep; ends with the line
#               "fuzz: N passed, M failed" and fails if M is not 0.
#
# FUZZ_AVOID, FUZZ_TIMEOUT and the other variables of the README pass
# through the environment.

FUZZ_DIR := test/fuzz
FUZZ_CORPUS := $(FUZZ_DIR)/corpus
FUZZ_LOGS := build/fuzz-logs
FUZZ_OBJ = $(B)$(FUZZ_DIR)/fuzz.o

# Seeds per build, for make fuzz-ci (about four minutes in all on two
# cores, where two runners do some 35 plain, 28 ASan or 30 TSan inputs a
# second) and for make fuzz; FUZZ_FIRST moves the ranges.  Here the
# watchdog calls an input that runs for 10 s a hang (inputs take well
# under a second), so that a hang costs little.
FUZZ_FIRST ?= 1
FUZZ_CI_PLAIN ?= 3000
FUZZ_CI_ASAN ?= 1200
FUZZ_CI_TSAN ?= 800
FUZZ_PLAIN ?= 5000
FUZZ_ASAN ?= 2000
FUZZ_TSAN ?= 1200
FUZZ_LIBFUZZER_S ?= 60
FUZZ_JOBS ?= 2
FUZZ_HANG_S ?= 10
fuzz_last = $(shell echo $$(($(FUZZ_FIRST) + $(1) - 1)))

FUZZ_RUN := build/$(FUZZ_DIR)/fuzz-run
FUZZ_RUN_ASAN := build/asan/$(FUZZ_DIR)/fuzz-run
FUZZ_RUN_TSAN := build/tsan/$(FUZZ_DIR)/fuzz-run
FUZZ_FAIL := build/$(FUZZ_DIR)/fuzz-fail
FUZZ_FAIL_ASAN := build/asan/$(FUZZ_DIR)/fuzz-fail
FUZZ_LIBFUZZER := build/fuzz/$(FUZZ_DIR)/fuzz-libfuzzer

FUZZ_ENV := FUZZ_JOBS=$(FUZZ_JOBS)
FUZZ_ASAN_ENV := $(FUZZ_ENV) ASAN_OPTIONS="detect_leaks=1 abort_on_error=1" \
    UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
FUZZ_TSAN_ENV := $(FUZZ_ENV) \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
FUZZ_LIBFUZZER_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=all
FUZZ_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
    -Wl,--wrap=aligned_alloc,--wrap=strdup

$(B)$(FUZZ_DIR)/fuzz-run: $(B)$(FUZZ_DIR)/run.o $(FUZZ_OBJ) $(LIB_A)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) -lm

# --wrap redirects only the references of the objects linked here, the
# library's and fuzz.c's, not those inside libc.
$(B)$(FUZZ_DIR)/fuzz-fail: $(B)$(FUZZ_DIR)/fail.o $(B)test/failmalloc.o \
    $(FUZZ_OBJ) $(LIB_A)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(FUZZ_WRAP) -lm

# Built in build/fuzz/ by clang; SAN holds -fsanitize=fuzzer-no-link, so
# the library and fuzz.c carry libFuzzer's coverage, and this link adds
# libFuzzer's main.
$(B)$(FUZZ_DIR)/fuzz-libfuzzer: $(B)$(FUZZ_DIR)/libfuzzer.o $(FUZZ_OBJ) \
    $(LIB_A)
	$(CC) -fsanitize=fuzzer -o $@ $^ $(ALL_LDFLAGS) -lm

fuzz-build: $(FUZZ_RUN) $(FUZZ_FAIL)
	$(MAKE) B=build/asan/ SAN="$(SAN_asan)" $(FUZZ_RUN_ASAN) \
	    $(FUZZ_FAIL_ASAN)
	$(MAKE) B=build/tsan/ SAN="$(SAN_tsan)" $(FUZZ_RUN_TSAN)

fuzz-libfuzzer-build:
	@printf 'int LLVMFuzzerTestOneInput(void){return 0;}\n' | \
	    clang -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null || { \
	    echo "fuzz: clang cannot link libFuzzer (Debian:" \
	        "apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
	$(MAKE) B=build/fuzz/ CC=clang \
	    SAN="-fsanitize=fuzzer-no-link $(FUZZ_LIBFUZZER_SAN)" \
	    $(FUZZ_LIBFUZZER)

# A step of ci.sh: a program with its environment, in single quotes.
fuzz_range = $(FUZZ_FIRST) $(call fuzz_last,$(1))
FUZZ_PLAIN_RUN = $(FUZZ_ENV) $(FUZZ_RUN)
FUZZ_ASAN_RUN = $(FUZZ_ASAN_ENV) $(FUZZ_RUN_ASAN)
FUZZ_TSAN_RUN = $(FUZZ_TSAN_ENV) $(FUZZ_RUN_TSAN)
# The sweep's workload takes some 50 ms: a 5 s watchdog is plenty.
FUZZ_FAIL_RUN = $(FUZZ_ENV) FUZZ_TIMEOUT=5 $(FUZZ_FAIL)
FUZZ_FAIL_ASAN_RUN = $(FUZZ_ENV) FUZZ_TIMEOUT=5 \
    ASAN_OPTIONS="detect_leaks=1 abort_on_error=1" $(FUZZ_FAIL_ASAN)
FUZZ_LIBFUZZER_RUN = $(FUZZ_LIBFUZZER) -max_total_time=$(FUZZ_LIBFUZZER_S) \
    -timeout=60 -max_len=1024 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix=$(FUZZ_LOGS)/dev/ build/fuzz-corpus $(FUZZ_CORPUS)

fuzz-ci: fuzz-build
	FUZZ_TIMEOUT=$${FUZZ_TIMEOUT:-$(FUZZ_HANG_S)} \
	    sh $(FUZZ_DIR)/ci.sh $(FUZZ_LOGS)/ci \
	    '$(FUZZ_PLAIN_RUN) $(call fuzz_range,$(FUZZ_CI_PLAIN))' \
	    '$(FUZZ_ASAN_RUN) $(call fuzz_range,$(FUZZ_CI_ASAN))' \
	    '$(FUZZ_TSAN_RUN) $(call fuzz_range,$(FUZZ_CI_TSAN))' \
	    '$(FUZZ_ASAN_RUN) $(FUZZ_CORPUS)' \
	    '$(FUZZ_TSAN_RUN) $(FUZZ_CORPUS)' \
	    '$(FUZZ_FAIL_RUN)'

# libFuzzer adds what it finds to build/fuzz-corpus/, reads the committed
# corpus as seeds, and writes a crash as $(FUZZ_LOGS)/dev/crash-*.
fuzz: fuzz-build fuzz-libfuzzer-build
	@mkdir -p build/fuzz-corpus $(FUZZ_LOGS)/dev
	FUZZ_TIMEOUT=$${FUZZ_TIMEOUT:-$(FUZZ_HANG_S)} \
	    sh $(FUZZ_DIR)/ci.sh $(FUZZ_LOGS)/dev \
	    '$(FUZZ_PLAIN_RUN) $(call fuzz_range,$(FUZZ_PLAIN))' \
	    '$(FUZZ_ASAN_RUN) $(call fuzz_range,$(FUZZ_ASAN))' \
	    '$(FUZZ_TSAN_RUN) $(call fuzz_range,$(FUZZ_TSAN))' \
	    '$(FUZZ_PLAIN_RUN) $(FUZZ_CORPUS)' \
	    '$(FUZZ_ASAN_RUN) $(FUZZ_CORPUS)' \
	    '$(FUZZ_TSAN_RUN) $(FUZZ_CORPUS)' \
	    '$(FUZZ_LIBFUZZER_RUN)' \
	    '$(FUZZ_FAIL_RUN)' \
	    '$(FUZZ_ENV) ASAN_OPTIONS="detect_leaks=1 abort_on_error=1" \
	        $(FUZZ_FAIL_ASAN)'

-include $(wildcard $(B)$(FUZZ_DIR)/*.d)

.PHONY: fuzz fuzz-ci fuzz-build fuzz-libfuzzer-build
