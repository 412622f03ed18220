#!/bin/sh
#
# man_examples.sh - compile and run the EXAMPLES of every man page.
#
# For each page in man/man3 and man/man7 that has an EXAMPLES section, the
# code of the section's first literal display (.Bd -literal ... .Ed) is
# unescaped from mdoc, written to test/examples.out/PAGE.c, compiled against
# build/lib/libworker.a with the project's warning flags, and run under a
# timeout.  A page fails if its example does not compile or does not exit
# with status 0.  Run from anywhere; it works in the repository root.

cd "$(dirname "$0")/.." || exit 1

CC=${CC:-cc}
OUT=test/examples.out
LIB=build/lib/libworker.a
TIMEOUT=${EXAMPLES_TIMEOUT:-20}

if [ ! -f "$LIB" ]; then
	echo "man_examples.sh: $LIB is missing; run make first" >&2
	exit 1
fi
mkdir -p "$OUT" || exit 1

# Prints the unescaped code of the EXAMPLES section of the page $1: its
# first literal display.  Later displays, such as sample output, are not
# part of the program.
# The escapes are undone in one left-to-right pass, so that "\e&" (a
# backslash followed by "&" in the code) does not turn into nothing.
extract() {
	awk '
		/^\.Sh[ \t]/ {
			insec = ($2 == "EXAMPLES")
			inlit = 0
			next
		}
		!insec {
			next
		}
		/^\.Bd[ \t]/ && $2 == "-literal" && !done {
			inlit = 1
			next
		}
		/^\.Ed([ \t]|$)/ {
			if (inlit)
				done = 1
			inlit = 0
			next
		}
		!inlit {
			next
		}
		{
			out = ""
			s = $0
			while ((i = index(s, "\\")) > 0) {
				out = out substr(s, 1, i - 1)
				c = substr(s, i + 1, 1)
				if (c == "e")
					out = out "\\"
				else if (c == "-")
					out = out "-"
				else if (c != "&")
					out = out "\\" c
				s = substr(s, i + 2)
			}
			print out s
		}
	' "$1"
}

passed=0
failed=0
failed_pages=
for page in man/man3/*.3 man/man7/*.7; do
	[ -f "$page" ] || continue
	grep -q '^\.Sh EXAMPLES' "$page" || continue
	name=${page##*/}
	src=$OUT/$name.c
	bin=$OUT/$name.bin
	log=$OUT/$name.log

	extract "$page" > "$src"
	if [ ! -s "$src" ]; then
		echo "FAIL $name: EXAMPLES has no literal display"
		failed=$((failed + 1))
		failed_pages="$failed_pages $name"
		continue
	fi
	if ! "$CC" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude \
	    "$src" "$LIB" -pthread -o "$bin" > "$log" 2>&1; then
		echo "FAIL $name: does not compile ($src)"
		sed 's/^/	/' "$log"
		failed=$((failed + 1))
		failed_pages="$failed_pages $name"
		continue
	fi
	timeout "$TIMEOUT" "./$bin" < /dev/null > "$log" 2>&1
	rc=$?
	if [ "$rc" -ne 0 ]; then
		if [ "$rc" -eq 124 ]; then
			why="timed out after ${TIMEOUT}s"
		else
			why="exit status $rc"
		fi
		echo "FAIL $name: $why"
		sed 's/^/	/' "$log"
		failed=$((failed + 1))
		failed_pages="$failed_pages $name"
		continue
	fi
	echo "ok   $name"
	passed=$((passed + 1))
done

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
	echo "man_examples.sh: failed:$failed_pages" >&2
	exit 1
fi
exit 0
