#!/bin/sh
# demo.sh - runs the sample programs; "make demo" runs it from the top
# directory after the build.  Exits nonzero if a sample fails.
#
# Each sample ends by itself within seconds.  Where timeout(1) exists it
# also bounds each one, so that a hang fails the demo instead of stalling
# the build.

cd "$(dirname "$0")/.." || exit 1

limit=
if command -v timeout >/dev/null 2>&1; then
	limit="timeout 20"
fi

status=0

echo "== samples/tree: events up and down a tree of workers"
$limit build/samples/tree || status=1

echo
echo "== samples/increaser 0.1 < samples/increaser.txt: a counter worker"
$limit build/samples/increaser 0.1 < samples/increaser.txt || status=1

echo
echo "== samples/hello: a task that reschedules itself, stopped by its master"
$limit build/samples/hello || status=1

echo
echo "== samples/channel: one event published to every subscriber"
$limit build/samples/channel || status=1

echo
echo "== samples/supervise: crashed workers come back; a shutdown reports the stuck"
$limit build/samples/supervise || status=1

echo
echo "== samples/relayd under samples/relay-load: 50 clients for ten seconds;"
echo "   relayd killed with SIGKILL in the middle, and started again"
sh samples/relay/demo.sh || status=1

exit $status
