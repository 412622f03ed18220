#!/bin/sh
#
# layers.sh - lib/ keeps the layers written at the top of lib/internal.h:
# no object of lib/ calls a function (or uses a variable) defined by a
# file of a higher layer, but for the calls into a worker's life that the
# same comment names.  The check reads the symbols of the objects, so it
# sees every call the compiler kept, not what the includes suggest.
#
# Usage: sh test/layers.sh [BUILD]   (BUILD: where lib/*.o are, build/)

cd "$(dirname "$0")/.." || exit 1
build=${1:-build/}

# The layers, lowest first; a line may hold several files (peers).
layers=$(sed -n '/^ \*   [a-z]* *[a-z]*\.[ch]/p' lib/internal.h |
    awk '{ line = ""; for (i = 3; i <= NF; i++)
	if ($i ~ /^[a-z]+\.[ch]$/) line = line " " $i
	else break; print line }' | sed -n '1!G;h;$p')
# The calls that may go up, as written in lib/internal.h.
allowed="worker_unref worker__unref_many worker__alloc worker__end"

status=0
level_of() {
	echo "$layers" | awk -v f="$1" '{ for (i = 1; i <= NF; i++)
	    if ($i == f) { print NR; exit } }'
}

for src in lib/*.c; do
	f=$(basename "$src")
	[ -n "$(level_of "$f")" ] ||
	    { echo "layers: $src is in no layer of lib/internal.h"; status=1; }
done
[ $status -eq 0 ] || exit $status

defs=$(mktemp) || exit 1
trap 'rm -f "$defs"' EXIT
for src in lib/*.c; do
	o="$build"lib/$(basename "$src" .c).o
	[ -f "$o" ] || { echo "layers: $o is missing: run make"; exit 1; }
	nm --defined-only -g "$o" | awk -v f="$(basename "$src")" \
	    '{ print $3, f }'
done > "$defs"

for src in lib/*.c; do
	f=$(basename "$src")
	o="$build"lib/$(basename "$src" .c).o
	mine=$(level_of "$f")
	for sym in $(nm -u "$o" | awk '{ print $2 }'); do
		owner=$(awk -v s="$sym" '$1 == s { print $2; exit }' "$defs")
		[ -n "$owner" ] && [ "$owner" != "$f" ] || continue
		case " $allowed " in *" $sym "*) continue ;; esac
		theirs=$(level_of "$owner")
		if [ "$theirs" -gt "$mine" ]; then
			echo "layers: lib/$f calls $sym of lib/$owner, a higher layer"
			status=1
		fi
	done
done
[ $status -eq 0 ] && echo "layers: lib/ keeps its layers"
exit $status
