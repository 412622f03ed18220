# libworker - see README.  Targets: all tools samples test tsan asan
# valgrind bench bench-deps demo relaytest relaywstest relaybench toptest
# lint install
# uninstall installcheck clean.  Everything built lands under build/.
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC ?= cc
CFLAGS ?= -O2 -g
WFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread
ALL_CFLAGS = $(WFLAGS) $(CFLAGS) $(SAN) -Iinclude $(CPPFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(SAN) -pthread

version_part = $(shell sed -n 's/^\#define WORKER_VERSION_$(1)[[:space:]]*\([0-9]*\).*/\1/p' include/worker.h)
MAJOR := $(call version_part,MAJOR)
MINOR := $(call version_part,MINOR)
PATCH := $(call version_part,PATCH)
VERSION := $(MAJOR).$(MINOR).$(PATCH)
# Before 1.0 every minor version may break the ABI, so it is in the soname.
ABI := $(if $(filter 0,$(MAJOR)),$(MAJOR).$(MINOR),$(MAJOR))
SONAME := libworker.so.$(ABI)
SOFILE := libworker.so.$(VERSION)

# B is the build tree: build/ for the normal build, build/tsan/ and
# build/asan/ for the sanitizer builds, so they never mix objects.
B := build/
LIB_SRC := $(sort $(wildcard lib/*.c))
LIB_OBJ := $(addprefix $(B),$(LIB_SRC:.c=.o))
LIB_PIC := $(addprefix $(B)pic/,$(LIB_SRC:.c=.o))
LIB_A := $(B)lib/libworker.a
LIB_SO := $(B)lib/$(SOFILE)
PC := $(B)libworker.pc
TEST_SRC := $(sort $(wildcard test/*.c))
TEST_OBJ := $(addprefix $(B),$(TEST_SRC:.c=.o))
CHECK := $(B)test/check_worker
MAN3 := $(sort $(wildcard man/man3/*.3))
MAN7 := $(sort $(wildcard man/man7/*.7))
MAN1 := $(sort $(wildcard man/man1/*.1))
# The samples' pages live with them: samples are not installed.
SAMPLE_MAN := $(sort $(wildcard samples/*/*.[1-9]))

# Samples: one program per samples/*.c, and the relay daemon and its load
# client, one folder each (samples/relay/ and samples/relay/load/).
SAMPLE_SRC := $(sort $(wildcard samples/*.c))
RELAYD_SRC := $(sort $(wildcard samples/relay/*.c))
LOAD_SRC := $(sort $(wildcard samples/relay/load/*.c))
SAMPLES := $(addprefix $(B),$(SAMPLE_SRC:.c=)) \
    $(if $(RELAYD_SRC),$(B)samples/relayd) \
    $(if $(LOAD_SRC),$(B)samples/relay-load)
SAMPLE_OBJ := $(addprefix $(B),$(RELAYD_SRC:.c=.o) $(LOAD_SRC:.c=.o))

# Tools: the installed programs, one per tools/*.c, and worker-top, whose
# files are in tools/worker-top/.  Each has its page man/man1/NAME.1.
TOOL_SRC := $(sort $(wildcard tools/*.c))
WTOP_SRC := $(sort $(wildcard tools/worker-top/*.c))
WTOP_OBJ := $(addprefix $(B)obj/,$(WTOP_SRC:.c=.o))
TOOLS := $(addprefix $(B),$(TOOL_SRC:.c=)) \
    $(if $(WTOP_SRC),$(B)tools/worker-top)
# What the tools link with beyond the library: ncurses and Jansson
# (Debian: libncurses-dev libjansson-dev).  Evaluated only by the recipes
# that use it.
TOOL_LIBS = $(shell pkg-config --libs ncurses 2>/dev/null || \
    echo -lncurses) -ljansson
TOOL_DEPS_CHECK = printf '\#include <curses.h>\n\#include <jansson.h>\nint \
    main(void){return !initscr() || !json_object();}\n' | \
    $(CC) -x c - -o /dev/null $(TOOL_LIBS) 2>/dev/null

all: $(LIB_A) $(LIB_SO) $(PC)

$(B)lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -MMD -MP -c -o $@ $<

$(B)pic/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -fPIC -MMD -MP -c -o $@ $<

$(LIB_A): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_PIC)
	$(CC) -shared -Wl,-soname,$(SONAME) $(ALL_LDFLAGS) -o $@ $^
	ln -sf $(SOFILE) $(B)lib/$(SONAME)
	ln -sf $(SONAME) $(B)lib/libworker.so

# The .pc file names the prefix, so install writes it anew for its PREFIX.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'

$(PC): libworker.pc.in include/worker.h
	@mkdir -p $(@D)
	$(PC_SED) $< > $@

# ---- Tools and samples ------------------------------------------------

# Without ncurses or Jansson the tools are skipped, with a line that says
# so, and the rest of the build (make install too) goes on without them.
tools:
	@if $(TOOL_DEPS_CHECK); then \
	    $(MAKE) --no-print-directory tools-build; \
	else echo "make tools: worker-top skipped: it needs ncurses and" \
	    "Jansson (Debian: apt-get install libncurses-dev" \
	    "libjansson-dev)"; fi

tools-build: $(TOOLS)
	@:

$(B)tools/%: tools/%.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(LIB_A) $(ALL_LDFLAGS) \
	    $(TOOL_LIBS)

$(B)obj/tools/worker-top/%.o: tools/worker-top/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# worker-top only reads the socket: it does not need the library.
$(B)tools/worker-top: $(WTOP_OBJ)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(TOOL_LIBS)

# The relay sample and its load client keep their frames in SQLite, and
# serve and read them over WebSocket with wslay and Nettle: the packages
# the samples need beyond the library's.
RELAY_LIBS := -lsqlite3 -lwslay -lnettle

samples: sample-deps $(SAMPLES)

sample-deps:
	@printf '#include <sqlite3.h>\nint main(void){return 0;}\n' | \
	    $(CC) -x c - -o /dev/null -lsqlite3 2>/dev/null || { \
	    echo "make samples: SQLite is missing (Debian: apt-get install" \
	        "libsqlite3-dev)" >&2; exit 1; }
	@printf '#include <wslay/wslay.h>\n#include <nettle/sha1.h>\nint \
	    main(void){return wslay_event_want_read(0) + !nettle_sha1_init;}\n' | \
	    $(CC) -x c - -o /dev/null -lwslay -lnettle 2>/dev/null || { \
	    echo "make samples: wslay or Nettle is missing (Debian:" \
	        "apt-get install libwslay-dev nettle-dev)" >&2; exit 1; }

$(B)samples/%: samples/%.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(LIB_A) $(ALL_LDFLAGS)

$(B)samples/relay/%.o: samples/relay/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)samples/relayd: $(addprefix $(B),$(RELAYD_SRC:.c=.o)) $(LIB_A)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(RELAY_LIBS)

$(B)samples/relay-load: $(addprefix $(B),$(LOAD_SRC:.c=.o)) $(LIB_A)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(RELAY_LIBS) -lm

# ---- Tests ------------------------------------------------------------

$(B)test/%.o: test/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ilib -MMD -MP -c -o $@ $<

# The suite's allocations, the library's included, go through
# test/failmalloc.c, which can make them fail on a schedule.
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
    -Wl,--wrap=aligned_alloc,--wrap=strdup

$(CHECK): $(TEST_OBJ) $(LIB_A)
	$(CC) -o $@ $(TEST_OBJ) $(LIB_A) $(ALL_LDFLAGS) $(WRAP_ALLOC) \
	    -lcheck -lsubunit -ljansson -lm -lrt

# The suite runs every test case in its own process (Check's fork mode).
test: $(CHECK) $(LIB_SO)
	./$(CHECK)
	sh test/header_check.sh
	sh test/man_examples.sh
	sh test/probes_check.sh $(B)

# Sanitizer builds live in their own trees (B) so they never mix objects.
tsan asan:
	$(MAKE) B=build/$@/ SAN="$(SAN_$@)" build/$@/test/check_worker
	CK_TIMEOUT_MULTIPLIER=10 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0" \
	    ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
	    build/$@/test/check_worker
SAN_tsan := -fsanitize=thread
SAN_asan := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
    -fno-sanitize-recover=all

# valgrind runs one thread at a time; without --fair-sched a thread that
# spins on the library's API can starve the others for minutes.
valgrind: $(CHECK)
	CK_FORK=yes CK_TIMEOUT_MULTIPLIER=20 valgrind --quiet --fair-sched=yes \
	    --trace-children=yes \
	    --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --suppressions=test/valgrind.supp \
	    --error-exitcode=99 --child-silent-after-fork=no ./$(CHECK)

bench:
	$(MAKE) -C bench run

# What the benchmarks compare libworker with (needs root; Debian names).
bench-deps:
	apt-get update && apt-get install -y libuv1-dev libglib2.0-dev pkg-config

demo: all samples
	@sh samples/demo.sh

# End to end: the relay sample on real sockets, checked by relay-load.
relaytest: all samples
	sh test/relay_test.sh

# The relay's WebSocket side, with Python's websockets and headless
# Chromium (Debian: python3-websockets chromium).
relaywstest: all samples
	sh test/relay_ws_test.sh

# The relay's numbers: rates, 10,000 clients, ten kills (about ten
# minutes; test/relay_bench.sh says which).
relaybench: all samples
	sh test/relay_bench.sh

# worker-top in a real terminal (tmux) against relayd under load.
toptest: samples tools
	sh test/top_test.sh

installcheck: all
	sh test/install_check.sh

# mandoc's STYLE level, but for the cross-references to pages that are
# only found once installed (ours, and libc's on a machine without them)
# and the complaints about this machine's own man page index.
lint: $(LIB_OBJ)
	@mkdir -p $(B)
	-mandoc -Tlint -Wstyle $(MAN1) $(MAN3) $(MAN7) $(SAMPLE_MAN) \
	    >$(B)mandoc.out 2>$(B)mandoc.err
	@cat $(B)mandoc.out $(B)mandoc.err | \
	    grep -v -e 'referenced manual not found' -e 'mandoc\.db' | \
	    { if grep .; then exit 1; else echo "mandoc: clean"; fi; }
	sh test/lint.sh
	sh test/layers.sh $(B)

# ---- Install ----------------------------------------------------------

install: all tools
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/worker.h $(DESTDIR)$(INCLUDEDIR)/worker.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libworker.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/$(SOFILE)
	ln -sf $(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libworker.so
	$(PC_SED) libworker.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libworker.pc
	install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	sh man/links.sh list $(MAN3) | while read page name; do \
	    echo ".so man3/$$page" > $(DESTDIR)$(MANDIR)/man3/$$name.3; done
	for t in $(TOOLS); do [ -f "$$t" ] || continue; \
	    install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 && \
	    install -m 755 "$$t" $(DESTDIR)$(BINDIR) && \
	    if [ -f "man/man1/$${t##*/}.1" ]; then install -m 644 \
	    "man/man1/$${t##*/}.1" $(DESTDIR)$(MANDIR)/man1; fi || exit 1; \
	    done

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/worker.h $(DESTDIR)$(LIBDIR)/libworker.a \
	    $(DESTDIR)$(LIBDIR)/$(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libworker.so $(DESTDIR)$(PKGCONFIGDIR)/libworker.pc
	for f in $(notdir $(MAN1)); do rm -f $(DESTDIR)$(MANDIR)/man1/$$f; done
	for f in $(notdir $(MAN3)); do rm -f $(DESTDIR)$(MANDIR)/man3/$$f; done
	for f in $(notdir $(MAN7)); do rm -f $(DESTDIR)$(MANDIR)/man7/$$f; done
	for f in $(notdir $(TOOLS)); do rm -f $(DESTDIR)$(BINDIR)/$$f; done
	sh man/links.sh list $(MAN3) | while read page name; do \
	    rm -f $(DESTDIR)$(MANDIR)/man3/$$name.3; done

clean:
	rm -rf build test/examples.out
	$(MAKE) -C bench clean

.PHONY: all tools tools-build samples sample-deps test tsan asan valgrind \
	bench bench-deps demo relaytest relaywstest relaybench toptest lint \
	install uninstall installcheck clean

-include $(wildcard $(B)lib/*.d $(B)pic/lib/*.d $(B)test/*.d \
    $(B)samples/*.d $(B)samples/relay/*.d $(B)samples/relay/load/*.d \
    $(B)tools/*.d $(B)obj/tools/*/*.d)

# ---- Fuzzing: test/fuzz/ (see its README) -------------------------------
-include test/fuzz/fuzz.mk
