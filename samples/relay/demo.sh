#!/bin/sh
# relay/demo.sh - relayd under load; samples/demo.sh runs it ("make
# demo").
#
# Starts build/samples/relayd on free ports with a database in a
# temporary directory, runs build/samples/relay-load with 50 clients and a
# subscriber for about ten seconds, stops relayd with SIGTERM, and checks
# the database against what was sent.  Prints the rates, relayd's log (its
# last line has the peak RSS) and the verdicts, each ending in "lost: N".
# Exits nonzero if anything failed.  RELAY_CLIENTS and RELAY_SECONDS
# change the load.

cd "$(dirname "$0")/../.." || exit 1

clients=${RELAY_CLIENTS:-50}
secs=${RELAY_SECONDS:-10}
dir=$(mktemp -d "${TMPDIR:-/tmp}/relay-demo.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
log=$dir/relayd.log
status=0

# timeout(1) bounds relayd's life, should it ever not stop; it passes
# SIGTERM on to relayd and exits with relayd's status.
timeout -k 5 $((secs + 60)) build/samples/relayd --port 0 --sub-port 0 \
    --db "$dir/relay.db" 2>"$log" &
pid=$!

# relayd names its ports on its "ready:" line.
ports=
for _ in $(seq 100); do
	ports=$(sed -n 's/.*ready: clients 127\.0\.0\.1:\([0-9]*\), subscribers 127\.0\.0\.1:\([0-9]*\),.*/\1 \2/p' "$log")
	[ -n "$ports" ] && break
	sleep 0.1
done
if [ -z "$ports" ]; then
	echo "relay-demo: relayd did not start"
	kill -TERM $pid 2>/dev/null
	wait $pid
	cat "$log"
	exit 1
fi
set -- $ports

build/samples/relay-load --port "$1" --sub-port "$2" \
    --clients "$clients" --duration "$secs" --max-size 512 \
    --record "$dir/record" || status=1
kill -TERM $pid
wait $pid || { echo "relay-demo: relayd exited with status $?"; status=1; }
cat "$log"
build/samples/relay-load --verify --db "$dir/relay.db" \
    --record "$dir/record" || status=1
exit $status
