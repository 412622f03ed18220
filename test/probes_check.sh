#!/bin/sh
#
# probes_check.sh - the USDT probes of worker(7), "Tracing", are in the
# shared library when the build machine has <sys/sdt.h>; without it the
# library has none, and this says so and passes.
#
# Usage: sh test/probes_check.sh [BUILD]   (BUILD: build/)

cd "$(dirname "$0")/.." || exit 1
build=${1:-build/}
lib=$(ls "$build"lib/libworker.so.*.*.* 2>/dev/null | head -n 1)
[ -n "$lib" ] || { echo "probes: no shared library in ${build}lib: run make"; exit 1; }

if ! printf '#include <sys/sdt.h>\n' | ${CC:-cc} -E -x c - >/dev/null 2>&1; then
	echo "probes: no <sys/sdt.h> here (Debian: systemtap-sdt-dev); none built"
	exit 0
fi

notes=$(readelf -n "$lib" | awk '/^ *Name:/ { print $2 }' | sort -u)
status=0
for probe in fire dispatch__begin dispatch__end start end restart stuck; do
	echo "$notes" | grep -qx "$probe" ||
	    { echo "probes: $lib lacks libworker:$probe"; status=1; }
done
readelf -n "$lib" | grep -q 'Provider: libworker' ||
    { echo "probes: no probe of provider libworker"; status=1; }
[ $status -eq 0 ] && echo "probes: $(echo "$notes" | wc -l) in $lib"
exit $status
