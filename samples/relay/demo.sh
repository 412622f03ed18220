#!/bin/sh
# relay/demo.sh - relayd under load, killed and started again;
# samples/demo.sh runs it ("make demo").
#
# Starts build/samples/relayd with a database in a temporary directory,
# runs build/samples/relay-load with 50 clients for about ten seconds,
# kills relayd with SIGKILL in the middle of the load, starts it again on
# the same port and database, and stops it with SIGTERM once relay-load is
# done.  relay-load keeps every frame until relayd acknowledges it, and
# sends again, on a new connection, what the killed relayd had not: its
# last line, read from the database itself, says how many frames were
# sent, acked and stored, and that none was lost or stored twice.  Prints
# relayd's log (its last line has the peak RSS), then relay-load's report,
# which ends the demo.  Exits nonzero if anything failed.  RELAY_CLIENTS
# and RELAY_SECONDS change the load.

cd "$(dirname "$0")/../.." || exit 1

clients=${RELAY_CLIENTS:-50}
secs=${RELAY_SECONDS:-10}
dir=$(mktemp -d "${TMPDIR:-/tmp}/relay-demo.XXXXXX") || exit 1
log=$dir/relayd.log
pid=
lpid=
trap 'kill -KILL $pid $lpid 2>/dev/null; rm -rf "$dir"' EXIT
status=0

# relayd [PORT]: starts relayd (bounded by timeout(1), which passes
# SIGTERM on) and waits for its "ready:" line; sets pid, rpid (relayd's
# own) and port.  A port under the ephemeral range: relay-load connects
# to it again while relayd is away, and must not meet itself.
relayd() {
	n=$(grep -c 'ready:' "$log" 2>/dev/null)
	timeout -k 5 $((secs + 60)) build/samples/relayd --port "$1" \
	    --sub-port 0 --db "$dir/relay.db" 2>>"$log" &
	pid=$!
	for _ in $(seq 100); do
		[ "$(grep -c 'ready:' "$log")" -gt "$n" ] && break
		kill -0 $pid 2>/dev/null || return 1
		sleep 0.1
	done
	rpid=$(cat /proc/$pid/task/$pid/children 2>/dev/null)
	rpid=${rpid%% *}
	port=$(sed -n 's/.*ready: clients 127\.0\.0\.1:\([0-9]*\),.*/\1/p' \
	    "$log" | tail -n 1)
	[ -n "$rpid" ] && [ "$(grep -c 'ready:' "$log")" -gt "$n" ]
}

: >"$log"
for try in 1 2 3 4 5; do
	relayd $((17400 + ($$ + try * 7919) % 10000)) && break
	grep -q "Address already in use" "$log" || break
done
if [ -z "$port" ]; then
	echo "relay-demo: relayd did not start"
	cat "$log"
	exit 1
fi
echo "relay-demo: relayd on 127.0.0.1:$port; $clients clients for $secs s"

build/samples/relay-load --port "$port" --clients "$clients" \
    --duration "$secs" --max-size 512 --db "$dir/relay.db" \
    >"$dir/load.out" 2>&1 &
lpid=$!

sleep $((secs * 2 / 5))
echo "relay-demo: kill -9 relayd in the middle of the load"
kill -KILL $rpid
echo "relay-demo: (kill -9)" >>"$log"
wait $pid 2>/dev/null
sleep 0.5
if ! relayd "$port"; then
	echo "relay-demo: relayd did not start again"
	status=1
else
	echo "relay-demo: relayd started again on the same port and database"
fi

wait $lpid || status=1
lpid=
if [ -n "$pid" ] && kill -TERM $rpid 2>/dev/null; then
	wait $pid || { echo "relay-demo: relayd exited with status $?"
	    status=1; }
fi
pid=
cat "$log"
cat "$dir/load.out"
exit $status
