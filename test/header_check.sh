#!/bin/sh
#
# header_check.sh - include/worker.h stands alone: it compiles with no
# feature-test macro under -pedantic in C99, C11 and C17, and as C++.
# Each compile builds a small program that uses the header's types and
# macros, so a declaration that only parses under GNU C fails here.

cd "$(dirname "$0")/.." || exit 1

CC=${CC:-cc}
CXX=${CXX:-c++}
out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
status=0

cat > "$out/use.c" <<'PROG'
#include <string.h>
#include <worker.h>

static int
on_error(const worker_event_t *ev, void *ctx)
{
	const worker_listener_error_t *e = (const worker_listener_error_t *)
	    ev->data;

	(void)ctx;
	return e->rc != 0 && e->event != 0 ? 0 : 1;
}

int
main(void)
{
	worker_attr_t attr;

	memset(&attr, 0, sizeof(attr));
	attr.daemon = WORKER_DAEMON_NO;
	(void)attr;
	(void)on_error;
	return WORKER_VERSION_MAJOR + WORKER_DAEMON_INHERIT;
}
PROG

for std in c99 c11 c17; do
	$CC -std=$std -pedantic -Wall -Wextra -Werror -Iinclude \
	    -fsyntax-only "$out/use.c" ||
	    { echo "header_check: worker.h fails under -std=$std -pedantic"; status=1; }
done
if command -v "$CXX" >/dev/null 2>&1; then
	cp "$out/use.c" "$out/use.cc"
	$CXX -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude \
	    -fsyntax-only "$out/use.cc" ||
	    { echo "header_check: worker.h fails as C++"; status=1; }
else
	echo "header_check: no C++ compiler ($CXX): C++ check skipped"
fi
[ $status -eq 0 ] && echo "header_check: worker.h compiles as C99, C11, C17 and C++"
exit $status
