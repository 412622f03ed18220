#!/bin/sh
#
# readme.sh - puts the final table of the last "make bench" into README.
#
# Usage: sh readme.sh SUMMARY README
#
# Replaces the lines between the two marks of README (".. make bench:
# begin" and ".. make bench: end", each alone on its line) with SUMMARY
# indented by four spaces; the rest of README is left as it is.  Without
# both marks README is not touched, and the script says so.

summary=$1
readme=$2
begin='.. make bench: begin'
end='.. make bench: end'

[ -r "$summary" ] && [ -r "$readme" ] || {
	echo "usage: sh readme.sh SUMMARY README" >&2
	exit 2
}
if ! grep -qx "$begin" "$readme" || ! grep -qx "$end" "$readme"; then
	echo "readme.sh: $readme has no marks; not updated" >&2
	exit 1
fi
tmp=$(mktemp) || exit 1
awk -v begin="$begin" -v end="$end" -v summary="$summary" '
	$0 == begin {
		print
		print ""
		while ((getline line < summary) > 0)
			print (line == "" ? "" : "    " line)
		print ""
		skip = 1
		next
	}
	$0 == end { skip = 0 }
	!skip { print }
' "$readme" > "$tmp" && cat "$tmp" > "$readme"
status=$?
rm -f "$tmp"
[ $status -eq 0 ] && echo "readme.sh: $readme updated"
exit $status
