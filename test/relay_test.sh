#!/bin/sh
# relay_test.sh - end-to-end tests of build/samples/relayd with
# build/samples/relay-load ("make relaytest"): real sockets on 127.0.0.1, a
# real SQLite file.
#
# Run from anywhere after "make samples"; it builds nothing.  Runs the
# cases named as arguments, or all.  Prints one line per case and then "N
# passed, M failed"; exits nonzero if a case failed.
# Each relayd takes free ports (--port 0) and a database in a directory of
# its own, so runs in parallel do not collide, and timeout(1) bounds each
# process.  The "cycles" case runs relayd under valgrind, if installed.
# The cases of the store's failures need python3 (db_locked) and, for a
# real full disk, the right to mount a tmpfs (disk_full, as root; else it
# injects the failures with RELAYD_FAIL_WRITES).
#
# What "nothing lost" means here: relay-load's subscriber seeing a frame is
# relayd's receipt of it; once the subscriber has seen every frame, every
# frame must be in the database after SIGTERM, byte for byte (relay-load
# --verify).  When SIGTERM lands in the middle of the stream, each client's
# rows must be intact and a prefix of what it sent (--verify --partial).

cd "$(dirname "$0")/.." || exit 1

top=$(mktemp -d "${TMPDIR:-/tmp}/relaytest.XXXXXX") || exit 1
mnt=			# a tmpfs the disk_full case mounted
trap '[ -n "$mnt" ] && umount "$mnt"; rm -rf "$top"' EXIT
passed=0
failed=0
life=120		# seconds any relayd may live
wrap=			# a command to run relayd under, such as valgrind

# start NAME [RELAYD-OPTIONS...]: starts relayd in $top/NAME, and sets dir,
# log, pid, port and sub.  The database is $db if set, else $dir/relay.db.
start() {
	dir=$top/$1
	log=$dir/relayd.log
	db=${db:-$dir/relay.db}
	shift
	mkdir "$dir" || return 1
	timeout -k 30 $life $wrap build/samples/relayd --port 0 --sub-port 0 \
	    --db "$db" "$@" 2>"$log" &
	pid=$!
	port=
	for _ in $(seq 300); do
		port=$(sed -n 's/.*ready: clients 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")
		[ -n "$port" ] && break
		sleep 0.1
	done
	sub=$(sed -n 's/.*subscribers 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")
	[ -n "$port" ] && [ -n "$sub" ] && return 0
	why="relayd did not start"
	kill -TERM $pid 2>/dev/null
	wait $pid
	return 1
}

# stop: SIGTERM; relayd must exit 0, having committed a row for every
# frame it read, as its last line says.
stop() {
	kill -TERM $pid
	wait $pid
	rc=$?
	if [ $rc -ne 0 ]; then
		why="relayd exited with status $rc"
		return 1
	fi
	set -- $(sed -n 's/.*stopped: \([0-9]*\) frames read .*, \([0-9]*\) rows committed.*/\1 \2/p' "$log")
	[ $# -eq 2 ] && [ "$1" = "$2" ] && return 0
	why="relayd read ${1:-?} frames and committed ${2:-?} rows"
	return 1
}

# load ARGS...: relay-load against the relayd started last.
load() {
	build/samples/relay-load --port "$port" --record "$dir/record" "$@" \
	    >"$dir/load.out" 2>&1 && return 0
	why="relay-load failed: $(grep -v '^relay-load: [0-9]* clients sent' \
	    "$dir/load.out" | head -n 3 | tr '\n' ' ')"
	return 1
}

# verify [--partial]: the database against the record.
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
# times, so a SIGTERM does not race with what the case is about.
await_logged() {
	i=0
	while [ "$(grep -c -- "$2" "$log")" -lt "$1" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# running: relayd is still there, after what the case did to it.
running() {
	kill -0 $pid 2>/dev/null && return 0
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

# load_bg ARGS...: relay-load in the background (lpid); load_wait waits.
load_bg() {
	build/samples/relay-load --port "$port" --record "$dir/record" "$@" \
	    >"$dir/load.out" 2>&1 &
	lpid=$!
}

load_wait() {
	wait $lpid && return 0
	why="relay-load failed: $(grep -v '^relay-load: [0-9]* clients sent' \
	    "$dir/load.out" | head -n 3 | tr '\n' ' ')"
	return 1
}

# run NAME: runs case_NAME and reports it.
run() {
	why=
	db=
	t0=$(date +%s)
	if "case_$1"; then
		passed=$((passed + 1))
		echo "ok - $1 ($(($(date +%s) - t0)) s)"
	else
		failed=$((failed + 1))
		echo "FAIL - $1: $why"
		[ -f "$log" ] && tail -n 5 "$log" | sed 's/^/	/'
	fi
}

# Ten clients, a subscriber; every frame in the database and nothing else.
case_normal() {
	start normal && load --sub-port "$sub" --clients 10 --frames 500 &&
	    stop && verify && grep -q "lost: 0" "$dir/verify.out"
}

# Frames of exactly the maximum length, 1 MiB, pass.
case_largest() {
	start largest &&
	    load --sub-port "$sub" --clients 2 --frames 5 \
	    --min-size 1048576 --max-size 1048576 && stop && verify
}

# Two clients send a frame over the limit after their good frames: relayd
# closes those two (relay-load checks that), logs each, and keeps every
# good frame, theirs and the others'.
case_oversized() {
	start oversized &&
	    load --sub-port "$sub" --clients 5 --frames 200 --oversize 2 &&
	    stop && logged 2 "is over the limit" && verify
}

# Three clients leave in the middle of a frame.
case_midframe() {
	start midframe &&
	    load --sub-port "$sub" --clients 5 --frames 200 --cut 3 &&
	    await_logged 3 "the client left in the middle of a frame" &&
	    stop && logged 3 "the client left in the middle of a frame" &&
	    verify
}

# Heavy load; SIGTERM once the subscriber has seen every frame: all of
# them are in the database.
case_sigterm_acked() {
	start sigterm_acked &&
	    load --sub-port "$sub" --clients 40 --frames 2500 \
	    --max-size 2048 && stop && verify
}

# SIGTERM while forty clients are sending: relayd stops in order and
# exits 0, with a row for every frame it read, and every row is a whole,
# correct frame, each client's rows a prefix of what it sent.  Short queues
# keep frames in the master's backlog while it drains.
case_sigterm_midstream() {
	start sigterm_midstream --queue 16 || return 1
	build/samples/relay-load --port "$port" --sub-port "$sub" \
	    --clients 40 --duration 8 --max-size 2048 --tolerate \
	    --record "$dir/record" >"$dir/load.out" 2>&1 &
	lpid=$!
	sleep 2
	stop || { wait $lpid; return 1; }
	if ! wait $lpid; then
		why="relay-load failed: $(head -n 3 "$dir/load.out" |
		    tr '\n' ' ')"
		return 1
	fi
	logged 1 "stopping after the frames received so far" &&
	    verify --partial &&
	    rows=$(sed -n 's/.*: \([0-9]*\) rows for.*/\1/p' \
	    "$dir/verify.out") || return 1
	[ "${rows:-0}" -gt 0 ] && return 0
	why="no rows in the database"
	return 1
}

# A subscriber that never reads is dropped; the store and the other
# subscriber get every frame.  The other is at most the window plus a
# piece (16 KiB) per client behind, well within relayd's --sub-buffer.
case_slow_subscriber() {
	start slow_subscriber --sub-buffer 262144 &&
	    load --sub-port "$sub" --slow-sub --window 65536 --clients 10 \
	    --frames 1000 --max-size 4096 &&
	    stop && logged 1 "is too slow" && verify
}

# 1,000 connections open and close, a tenth of them in the middle of a
# frame, with relayd under valgrind: no leak, no error, every frame kept.
# The subscriber is the receipt here too: the kernel accepts connections
# long before a relayd under valgrind gets to them, and the ones still
# waiting when it stops are refused.
case_cycles() {
	if ! command -v valgrind >/dev/null 2>&1; then
		why="valgrind is not installed"
		return 1
	fi
	wrap="valgrind --quiet --fair-sched=yes --leak-check=full"
	wrap="$wrap --errors-for-leak-kinds=definite,indirect"
	wrap="$wrap --error-exitcode=99"
	life=150
	start cycles &&
	    load --sub-port "$sub" --clients 900 --cut 100 --frames 1 \
	    --parallel 8 --timeout 100 &&
	    stop && logged 100 "the client left in the middle of a frame" &&
	    verify
	rc=$?
	wrap=
	life=120
	return $rc
}

# Another process holds the database's write lock for 10 s while clients
# send: each attempt of the store fails after its busy timeout, the master
# restarts it with a growing delay, relayd keeps running and reading until
# the conns run out of credit, and once the lock is gone every frame it
# read is in the database.
case_db_locked() {
	start db_locked || return 1
	python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(10)
c.execute("COMMIT")
' "$db" >"$dir/lock.out" 2>&1 &
	kpid=$!
	i=0
	while ! grep -q locked "$dir/lock.out" && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	load_bg --sub-port "$sub" --clients 10 --frames 1000 --max-size 2048
	wait $kpid
	load_wait && running && restarted && stop && verify &&
	    grep -q "lost: 0" "$dir/verify.out"
}

# The disk is full: the database on a 16 MiB tmpfs with 1 MiB left, which
# the frames overflow (SQLITE_FULL); a second after the first restart the
# space comes back, and every frame read is in the database.  Without the
# right to mount a tmpfs, the same with RELAYD_FAIL_WRITES.
case_disk_full() {
	mkdir "$top/disk_full.fs" || return 1
	if ! mount -t tmpfs -o size=16m tmpfs "$top/disk_full.fs" \
	    2>/dev/null; then
		echo "# disk_full: cannot mount a tmpfs; RELAYD_FAIL_WRITES"
		RELAYD_FAIL_WRITES=500,4 start disk_full || return 1
		load --sub-port "$sub" --clients 10 --frames 400 \
		    --max-size 2048 &&
		    running && restarted && stop && verify
		return
	fi
	mnt=$top/disk_full.fs
	db=$mnt/relay.db
	start disk_full &&
	    { dd if=/dev/zero of="$mnt/fill" bs=64k 2>/dev/null; :; } &&
	    truncate -s -1M "$mnt/fill" || return 1
	load_bg --sub-port "$sub" --clients 10 --frames 400 --max-size 2048
	await_logged 1 "the store is back"
	sleep 1
	rm -f "$mnt/fill"
	load_wait && running && restarted &&
	    grep -q "full" "$log" && stop && verify
	rc=$?
	umount "$mnt" && mnt=
	return $rc
}

# Injected failures of three inserts in a row (the test hook): three
# restarts, nothing lost.
case_fail_writes() {
	RELAYD_FAIL_WRITES=3000,3 start fail_writes &&
	    load --sub-port "$sub" --clients 10 --frames 1000 \
	    --max-size 1024 && running && restarted &&
	    logged 3 "failed by RELAYD_FAIL_WRITES" && stop && verify &&
	    grep -q "lost: 0" "$dir/verify.out"
}

# SIGTERM while the store waits for its restart: the master starts it at
# once, and its stop commits every frame read.
case_sigterm_store_down() {
	RELAYD_FAIL_WRITES=500,5 start sigterm_store_down &&
	    load --sub-port "$sub" --clients 4 --frames 500 --max-size 512 &&
	    await_logged 1 "restart 5 in" && running && stop &&
	    logged 1 "the store restarts at once for the stop" && verify &&
	    grep -q "lost: 0" "$dir/verify.out"
}

# Every insert fails: after STORE_RESTART_MAX restarts in the period
# (about 18 s of backoff) the master gives up, and relayd exits 1 saying
# how many frames it read are lost; what it committed before is intact.
case_escalate() {
	RELAYD_FAIL_WRITES=1000,1000000000 start escalate || return 1
	build/samples/relay-load --port "$port" --sub-port "$sub" \
	    --clients 4 --frames 1000 --max-size 512 --tolerate \
	    --record "$dir/record" >"$dir/load.out" 2>&1 &
	lpid=$!
	wait $pid
	rc=$?
	wait $lpid
	if [ $rc -ne 1 ]; then
		why="relayd exited with status $rc, not 1"
		return 1
	fi
	logged 1 "the store has failed 10 times" &&
	    logged 1 "frames read were not committed" &&
	    logged 10 "the store is back" && verify --partial
}

# The cases named on the command line, or all of them.
[ $# -gt 0 ] || set -- normal largest oversized midframe sigterm_acked \
    sigterm_midstream slow_subscriber db_locked disk_full fail_writes \
    sigterm_store_down escalate cycles
for c in "$@"; do
	run "$c"
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
