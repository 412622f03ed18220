# libworker - see README.  Targets: all test tsan asan valgrind bench
# bench-deps demo relaytest lint install uninstall clean.
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX ?= /usr/local
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
SONAME := libworker.so.$(MAJOR)
SOFILE := libworker.so.$(VERSION)

# B is the build tree: empty for the normal build, build/tsan/ and
# build/asan/ for the sanitizer builds, so they never mix objects.
B :=
LIB_SRC := $(sort $(wildcard lib/*.c))
LIB_OBJ := $(addprefix $(B),$(LIB_SRC:.c=.o))
LIB_PIC := $(LIB_SRC:.c=.pic.o)
TEST_SRC := $(sort $(wildcard test/*.c))
TEST_OBJ := $(addprefix $(B),$(TEST_SRC:.c=.o))
SAMPLE_SRC := $(sort $(wildcard samples/*.c))
SAMPLES := $(SAMPLE_SRC:.c=)
MAN3 := $(sort $(wildcard man/man3/*.3))
MAN7 := $(sort $(wildcard man/man7/*.7))

all: lib/libworker.a lib/$(SOFILE) libworker.pc $(SAMPLES)

$(B)lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -MMD -MP -c -o $@ $<

lib/%.pic.o: lib/%.c
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -fPIC -MMD -MP -c -o $@ $<

$(B)lib/libworker.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

lib/$(SOFILE): $(LIB_PIC)
	$(CC) -shared -Wl,-soname,$(SONAME) $(ALL_LDFLAGS) -o $@ $^
	ln -sf $(SOFILE) lib/$(SONAME)
	ln -sf $(SONAME) lib/libworker.so

# The .pc file names the prefix, so install writes it anew for its PREFIX.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'

libworker.pc: libworker.pc.in include/worker.h
	$(PC_SED) $< > $@

samples/%: samples/%.c lib/libworker.a
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< lib/libworker.a $(ALL_LDFLAGS) $(LDLIBS)

# The relay sample and its load generator keep their frames in SQLite.
samples/relayd samples/relay-load: LDLIBS += -lsqlite3

$(B)test/%.o: test/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ilib -MMD -MP -c -o $@ $<

$(B)test/check_worker: $(TEST_OBJ) $(B)lib/libworker.a
	$(CC) -o $@ $(TEST_OBJ) $(B)lib/libworker.a $(ALL_LDFLAGS) -lcheck \
	    -lsubunit -lm -lrt

# The suite runs every test case in its own process (Check's fork mode).
test: test/check_worker
	./test/check_worker
	sh test/man_examples.sh

# Sanitizer builds live in their own trees (B) so they never mix objects.
tsan asan:
	$(MAKE) B=build/$@/ SAN="$(SAN_$@)" build/$@/test/check_worker
	CK_TIMEOUT_MULTIPLIER=10 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	    ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
	    build/$@/test/check_worker
SAN_tsan := -fsanitize=thread
SAN_asan := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# valgrind runs one thread at a time; without --fair-sched a thread that
# spins on the library's API can starve the others for minutes.
valgrind: test/check_worker
	CK_FORK=yes CK_TIMEOUT_MULTIPLIER=20 valgrind --quiet --fair-sched=yes \
	    --trace-children=yes \
	    --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=99 --child-silent-after-fork=no ./test/check_worker

bench:
	@if [ -n "$(wildcard bench/*.c)" ]; then $(MAKE) -C bench run; \
	else echo "no benchmarks yet"; fi

# What the benchmarks compare libworker with (needs root; Debian names).
bench-deps:
	apt-get update && apt-get install -y libuv1-dev libglib2.0-dev pkg-config

demo: all
	@sh samples/demo.sh

# End to end: samples/relayd on real sockets, checked by relay-load.
relaytest: all
	sh test/relay_test.sh

installcheck: all
	sh test/install_check.sh

lint:
	mandoc -Tlint -Wwarning $(MAN3) $(MAN7)
	sh test/lint.sh

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/worker.h $(DESTDIR)$(INCLUDEDIR)/worker.h
	install -m 644 lib/libworker.a $(DESTDIR)$(LIBDIR)/libworker.a
	install -m 755 lib/$(SOFILE) $(DESTDIR)$(LIBDIR)/$(SOFILE)
	ln -sf $(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libworker.so
	$(PC_SED) libworker.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libworker.pc
	install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	sh man/links.sh list $(MAN3) | while read page name; do \
	    echo ".so man3/$$page" > $(DESTDIR)$(MANDIR)/man3/$$name.3; done

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/worker.h $(DESTDIR)$(LIBDIR)/libworker.a \
	    $(DESTDIR)$(LIBDIR)/$(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libworker.so $(DESTDIR)$(PKGCONFIGDIR)/libworker.pc
	for f in $(notdir $(MAN3)); do rm -f $(DESTDIR)$(MANDIR)/man3/$$f; done
	for f in $(notdir $(MAN7)); do rm -f $(DESTDIR)$(MANDIR)/man7/$$f; done
	sh man/links.sh list $(MAN3) | while read page name; do \
	    rm -f $(DESTDIR)$(MANDIR)/man3/$$name.3; done

clean-objs:
	rm -f lib/*.o test/*.o test/check_worker lib/*.d test/*.d lib/libworker.a
	rm -rf build

clean: clean-objs
	rm -f lib/libworker.a lib/libworker.so* libworker.pc $(SAMPLES) samples/*.d
	rm -rf test/examples.out

.PHONY: all test tsan asan valgrind bench bench-deps demo relaytest lint \
	install uninstall installcheck clean clean-objs

-include $(wildcard $(B)lib/*.d $(B)test/*.d samples/*.d)
