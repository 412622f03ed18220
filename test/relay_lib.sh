# relay_lib.sh - what test/relay_test.sh and test/relay_bench.sh share:
# relayd and relay-load started, stopped, checked.  Sourced, from the top
# directory; it makes $top, a directory that goes at the exit (but with
# KEEP set), and raises the limit of open files.
#
# Each relayd takes free ports (--port 0) and a database in a directory of
# its own, so runs in parallel do not collide, and timeout(1) bounds each
# process.  A relayd that is killed and started again keeps its port, one
# below the ephemeral range, so that the clients that connect again
# meanwhile never meet themselves.

top=$(mktemp -d "${TMPDIR:-/tmp}/relaytest.XXXXXX") || exit 1
mnt=			# a tmpfs the disk_full case mounted
trap '[ -n "$mnt" ] && umount "$mnt"; [ -n "$KEEP" ] || rm -rf "$top"' EXIT
passed=0
failed=0
life=120		# seconds any relayd may live
wrap=			# a command to run relayd under, such as valgrind
# 10,000 clients need as many descriptors in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# A port for a relayd that will be started again: free, and below the
# ephemeral range (/proc/sys/net/ipv4/ip_local_port_range).
fixed_port() {
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	low=${low:-32768}
	echo $(( (($$ * 7919 + $(date +%N | sed 's/^0*//') ) % (low - 20000)) \
	    + 16000 ))
}

# start NAME [RELAYD-OPTIONS...]: starts relayd in $top/NAME, and sets dir,
# log, pid, port and sub.  The database is $db if set, else $dir/relay.db;
# the port $fixed if set (then relayd may be started again: restart).
start() {
	dir=$top/$1
	log=$dir/relayd.log
	db=${db:-$dir/relay.db}
	shift
	mkdir "$dir" || return 1
	opts="$*"
	# A fixed port may be taken: the next one, then.
	for _ in 1 2 3 4 5; do
		run_relayd "${fixed:-0}" && break
		grep -q "Address already in use" "$log" && [ -n "$fixed" ] ||
		    return 1
		fixed=$((fixed + 1))
	done
	sub=$(sed -n 's/.*subscribers 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")
	[ -n "$sub" ] && return 0
	why="relayd did not start: $(tail -n 1 "$log")"
	return 1
}

# run_relayd PORT: relayd with the options of the last start, its log
# appended to; waits for its "ready:" line, and sets pid (of timeout(1),
# which passes on SIGTERM and SIGINT and returns relayd's status), rpid
# (relayd's own), and port.
run_relayd() {
	: >>"$log"
	starts=$(grep -c 'ready:' "$log")
	timeout -k 30 $life $wrap build/samples/relayd --port "$1" \
	    --sub-port 0 --db "$db" $opts 2>>"$log" &
	pid=$!
	for _ in $(seq 300); do
		[ "$(grep -c 'ready:' "$log")" -gt "${starts:-0}" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	port=$(sed -n 's/.*ready: clients 127\.0\.0\.1:\([0-9]*\),.*/\1/p' \
	    "$log" | tail -n 1)
	rpid=$(cat /proc/$pid/task/$pid/children 2>/dev/null)
	rpid=${rpid%% *}
	[ "$(grep -c 'ready:' "$log")" -gt "${starts:-0}" ] &&
	    [ -n "$rpid" ] && return 0
	why="relayd did not start: $(tail -n 1 "$log")"
	kill -TERM $pid 2>/dev/null
	wait $pid
	return 1
}

# restart: relayd again, on the same port and database.
restart() {
	run_relayd "$port"
}

# stop [SIGNAL]: SIGTERM (or SIGNAL); relayd must exit 0, having
# committed a row for every frame it read, as its last line says.
stop() {
	if [ -z "$rpid" ]; then
		why="no relayd to stop"
		return 1
	fi
	kill -"${1:-TERM}" $rpid
	wait $pid
	rc=$?
	if [ $rc -ne 0 ]; then
		why="relayd exited with status $rc: $(tail -n 1 "$log")"
		return 1
	fi
	set -- $(tail -n 1 "$log" | sed -n 's/.*stopped: \([0-9]*\) frames '\
'read .*, \([0-9]*\) rows committed.*/\1 \2/p')
	[ $# -eq 2 ] && [ "$1" = "$2" ] && return 0
	why="relayd read ${1:-?} frames and committed ${2:-?} rows"
	return 1
}

# load ARGS...: relay-load against the relayd started last; it checks the
# database at the end, and must find every frame once.
load() {
	build/samples/relay-load --port "$port" --db "$db" \
	    --record "$dir/record" "$@" >"$dir/load.out" 2>&1 && ok_load
}

# load_bg ARGS...: the same in the background (lpid); load_wait waits.
load_bg() {
	build/samples/relay-load --port "$port" --db "$db" \
	    --record "$dir/record" "$@" >"$dir/load.out" 2>&1 &
	lpid=$!
}

load_wait() {
	wait $lpid && ok_load
}

# ok_load: relay-load's last line says nothing lost, nothing doubled.
ok_load() {
	grep -q "lost: 0, duplicated: 0$" "$dir/load.out" && return 0
	why="relay-load: $(grep -v '^relay-load: [0-9]* \(clients\|conn\)' \
	    "$dir/load.out" | head -n 4 | tr '\n' ' ')"
	return 1
}

# load_failed: relay-load has failed; why says how.
load_failed() {
	why="relay-load failed: $(grep -v '^relay-load: [0-9]* \(clients\|conn\)' \
	    "$dir/load.out" | head -n 4 | tr '\n' ' ')"
	return 1
}

# verify [--partial]: the database against the record, once relayd is gone.
verify() {
	build/samples/relay-load --verify --db "$db" \
	    --record "$dir/record" "$@" >"$dir/verify.out" 2>&1 && return 0
	why="$(head -n 3 "$dir/verify.out" | tr '\n' ' ')"
	return 1
}

# logged COUNT TEXT: relayd's log has TEXT on exactly COUNT lines.
logged() {
	n=$(grep -c -- "$2" "$log")
	[ "$n" -eq "$1" ] && return 0
	why="\"$2\" logged $n times, not $1"
	return 1
}

# await_logged N TEXT: waits (up to 30 s) until relayd has logged TEXT N
# times, so a signal does not race with what the case is about.
await_logged() {
	i=0
	while [ "$(grep -c -- "$2" "$log")" -lt "$1" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# running: relayd is still there, after what the case did to it.
running() {
	kill -0 $rpid 2>/dev/null && return 0
	why="relayd has exited: $(tail -n 1 "$log")"
	return 1
}

# restarted: relayd's store failed and came back at least once.
restarted() {
	grep -q "the store has ended: .*; restart 1 in" "$log" &&
	    grep -q "the store is back" "$log" && return 0
	why="no restart of the store in the log"
	return 1
}

# rss: relayd's resident set, KiB.
rss() {
	awk '/^VmRSS/ { print $2 }' /proc/$rpid/status
}

# hostile NAME KIND N [ARGS...]: relay-load --hostile in the background
# (hpid), its report in $dir/NAME.out; waits until its connections are
# open.
hostile() {
	h=$dir/$1.out
	kind=$2
	n=$3
	shift 3
	build/samples/relay-load --port "$port" --hostile "$kind" --conns "$n" \
	    "$@" >"$h" 2>&1 &
	hpid=$!
	i=0
	while ! grep -q "connections open" "$h" 2>/dev/null &&
	    [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# idle_memory: relayd's RSS in KiB (r0), then with 1,000 connections each
# in the middle of a frame of 1 MiB, 1,000 bytes of it received (r1), then
# with 1,000 more saying their hello a byte a second (r2).  relayd must
# have room for them (--max-per-addr, long timeouts).
idle_memory() {
	sleep 0.5
	r0=$(rss)
	hostile p partial 1000 --partial-bytes 1000 --hold 60
	partial_pid=$hpid
	sleep 1
	r1=$(rss)
	hostile s slowloris 1000 --hold 60
	sleep 1
	r2=$(rss)
	reap $partial_pid $hpid
}

# hostile_says NAME PATTERN: what relayd did to them, once they are done.
hostile_says() {
	grep -q -- "$2" "$dir/$1.out" && return 0
	why="$1: $(tail -n 1 "$dir/$1.out")"
	return 1
}

# reap PID...: ends those processes of the case's, quietly.
reap() {
	kill "$@" 2>/dev/null
	for p in "$@"; do
		{ wait "$p"; } 2>/dev/null
	done
}

# run NAME: runs case_NAME and reports it.
run() {
	why=
	db=
	fixed=
	opts=
	unset RELAYD_FAIL_WRITES
	t0=$(date +%s)
	if "case_$1"; then
		passed=$((passed + 1))
		echo "ok - $1 ($(($(date +%s) - t0)) s)"
	else
		failed=$((failed + 1))
		echo "FAIL - $1: $why"
		[ -f "$log" ] && tail -n 5 "$log" | sed 's/^/	/'
	fi
	# What a failed case left running.
	[ -n "$rpid" ] && kill -KILL $rpid 2>/dev/null
	[ -n "$pid" ] && wait $pid 2>/dev/null
	pid=
	rpid=
}

