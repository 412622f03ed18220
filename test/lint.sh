#!/bin/sh
# lint.sh - the style checks that can be made mechanically (make lint):
# 80 columns with 8-column tabs, no trailing white space, tabs for
# indentation, no placeholder comments, every public prototype exported,
# no source of lib/, samples/ or tools/ over 800 lines, no library file
# but log.c writing to stderr.
status=0
files=$(ls include/*.h lib/*.c lib/*.h test/*.c test/*.h samples/*.c samples/*.h \
    samples/relay/*.c samples/relay/*.h samples/relay/load/*.c \
    samples/relay/load/*.h bench/*.c tools/*.[ch] tools/*/*.[ch] 2>/dev/null)

complain() {
	echo "lint: $*"
	status=1
}

for f in $files; do
	expand "$f" | awk -v f="$f" 'length($0) > 80 {
		printf "lint: %s:%d: longer than 80 columns\n", f, NR; bad = 1 }
		END { exit bad }' || status=1
	grep -nE '[[:space:]]+$' "$f" | sed "s|^|lint: $f:|;s|$| (trailing white space)|" | grep . && status=1
	grep -nE '^ {8}' "$f" | sed "s|^|lint: $f:|;s|$| (spaces for a tab)|" | grep . && status=1
	grep -nE '\b(TODO|FIXME|XXX)\b' "$f" | sed "s|^|lint: $f:|" | grep . && status=1
done

# One concern per file: none of the library, the samples or the tools
# grows past 800 lines.
for f in $(ls lib/*.[ch] samples/*.c samples/relay/*.[ch] \
    samples/relay/load/*.[ch] tools/*.[ch] tools/*/*.[ch] 2>/dev/null); do
	n=$(wc -l < "$f")
	[ "$n" -le 800 ] || complain "$f: $n lines, over 800"
done

# Every message of the library goes through worker_set_log()'s hook:
# only lib/log.c may write to the standard streams.
for f in lib/*.[ch]; do
	[ "$f" = lib/log.c ] && continue
	grep -nE '\b(stderr|stdout)\b|(^|[^a-z_])(perror|printf|puts|putchar) *\(' \
	    "$f" |
	    sed "s|^|lint: $f:|;s|$| (write through worker__log)|" | grep . &&
	    status=1
done

# Every function declared in the public header carries WORKER_EXPORT.
awk '/^[a-z].*\(/ && !/^typedef/ && !/WORKER_EXPORT/ && !/^#/ {
	printf "lint: include/worker.h:%d: prototype without WORKER_EXPORT\n", NR
	bad = 1 } END { exit bad }' include/worker.h || status=1

[ $status -eq 0 ] && echo "lint: clean"
exit $status
