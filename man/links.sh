#!/bin/sh
#
# links.sh - list the link pages a man page needs.
#
# Usage: sh man/links.sh list PAGE...
#
# For each PAGE, prints one line "PAGEFILE NAME" for every name that the
# page's NAME section gives with .Nm, other than the page's own name (the
# file name without its section suffix).  PAGEFILE is the file name without
# its directory, e.g. "worker_create.3 worker_new".  The install target
# turns each line into a link page NAME.3 holding ".so man3/PAGEFILE",
# because man-db indexes pages by file name, not by their .Nm lines.

usage() {
	echo "usage: sh man/links.sh list PAGE..." >&2
	exit 2
}

[ "$#" -ge 1 ] && [ "$1" = list ] || usage
shift

status=0
for page in "$@"; do
	if [ ! -r "$page" ]; then
		echo "links.sh: $page: cannot read" >&2
		status=1
		continue
	fi
	file=${page##*/}
	self=${file%.*}
	# Only the NAME section counts: from ".Sh NAME" to the next ".Sh".
	# A line is ".Nm name" or ".Nm name ," (the comma separates names).
	awk -v file="$file" -v self="$self" '
		/^\.Sh[ \t]/ {
			insec = ($2 == "NAME")
			next
		}
		insec && $1 == ".Nm" && NF >= 2 {
			name = $2
			sub(/,$/, "", name)
			if (name != "" && name != self && !(name in seen)) {
				seen[name] = 1
				print file, name
			}
		}
	' "$page" || status=1
done
exit "$status"
