#!/bin/sh
# install_check.sh - "make installcheck": installs into a scratch prefix,
# builds the README's example outside the tree with pkg-config, runs it
# against the shared library, reads a man page, then uninstalls and checks
# that nothing is left behind.
set -eu
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

make -s install PREFIX="$prefix"
awk '/^    #include <stdio.h>/, /^Building against it/' README |
    sed -n 's/^    //p' > "$prefix/prog.c"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
${CC:-cc} -o "$prefix/prog" "$prefix/prog.c" \
    $(pkg-config --cflags --libs libworker)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/prog"
readelf -d "$prefix/lib/libworker.so" | grep -q "SONAME.*libworker.so.0"
MANPATH="$prefix/share/man" man -w worker_fire_ex >/dev/null 2>&1 ||
    test -f "$prefix/share/man/man3/worker_fire_ex.3"
make -s uninstall PREFIX="$prefix"
rm -f "$prefix/prog.c" "$prefix/prog"
left=$(find "$prefix" -type f -o -type l)
if [ -n "$left" ]; then
	echo "installcheck: uninstall left: $left"
	exit 1
fi
echo "installcheck: ok"
