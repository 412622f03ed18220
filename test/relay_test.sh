#!/bin/sh
# relay_test.sh - end-to-end tests of build/samples/relayd with
# build/samples/relay-load ("make relaytest"): real sockets on 127.0.0.1, a
# real SQLite file.
#
# Run from anywhere after "make samples"; it builds nothing.  Runs the
# cases named as arguments, or all.  Prints one line per case and then "N
# passed, M failed"; exits nonzero if a case failed.
# The harness is test/relay_lib.sh.  The "cycles" case runs relayd under
# valgrind, if installed.  The cases of the store's failures and
# "protocol" need python3; disk_full mounts a tmpfs if it may (as root;
# else it injects the failures with RELAYD_FAIL_WRITES); nofile needs
# prlimit(1).  RELAY_KILLS (3) is how many times the kill9 and sigterm
# cases stop relayd under load, and RELAY_MANY (2000) how many clients
# "many" runs at a frame a second; test/relay_bench.sh ("make relaybench")
# runs the long versions and prints the numbers.
#
# What "nothing lost" means here: every frame relay-load sent is in the
# database exactly once, byte for byte, which relay-load checks in the
# database itself at the end of its run ("lost: 0, duplicated: 0"); it
# keeps every frame until relayd acknowledges it, and sends it again on a
# new connection if need be.  After an orderly stop, relayd has committed
# a row for every frame it read (its last line).

cd "$(dirname "$0")/.." || exit 1
. test/relay_lib.sh
kills=${RELAY_KILLS:-3}
many=${RELAY_MANY:-2000}

# ---- The wire and the frames ------------------------------------------

# Ten clients in pieces of random length, a subscriber: every frame in the
# database once, and the subscriber sees them all.
case_normal() {
	start normal && load --sub-port "$sub" --clients 10 --frames 500 \
	    --split && stop && verify
}

# Frames of exactly the maximum length, 1 MiB, pass.
case_largest() {
	start largest &&
	    load --sub-port "$sub" --clients 2 --frames 5 \
	    --min-size 1048576 --max-size 1048576 && stop && verify
}

# Two clients send a frame over the limit after their good frames: relayd
# closes those two with an error (relay-load checks that), logs each, and
# keeps every good frame, theirs and the others'.
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

# The protocol byte by byte, by another client than relay-load: a bad
# hello, a version to come, frames of 0 bytes and split anywhere, a frame
# sent again on a second connection (stored once), a sequence that does
# not grow, a length of 0xFFFFFFFF, and the end of a client that says it
# is done (acks, then the end).
case_protocol() {
	start protocol || return 1
	python3 - "$port" "$db" >"$dir/protocol.out" 2>&1 <<'EOF' && return 0
import socket, sqlite3, struct, sys, time
port, db = int(sys.argv[1]), sys.argv[2]
cid = b"protocol-test-01"

def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def msg(s):
    b = b""
    while len(b) < 12:
        r = s.recv(12 - len(b))
        if not r:
            return None
        b += r
    return chr(b[0]), b[1], struct.unpack(">Q", b[4:])[0]

def hello(version=2, magic=b"RLYC"):
    return magic + struct.pack(">I", version) + cid

def frame(seq, payload):
    return struct.pack(">IQ", len(payload), seq) + payload

def expect(got, want, what):
    if got != want:
        print(what, "got", got, "want", want)
        sys.exit(1)

s = conn(); s.sendall(b"XXXX" + bytes(20))
expect(msg(s), ("E", 1, 0), "bad hello"); expect(msg(s), None, "then")
s = conn(); s.sendall(hello(3))
expect(msg(s), ("E", 2, 2), "version 3"); expect(msg(s), None, "then")
s = conn()
for b in hello() + frame(5, b"") + frame(6, b"abc"):
    s.send(bytes([b]))          # a byte at a time
expect(msg(s), ("W", 0, 2), "welcome")
expect(msg(s), ("A", 0, 6), "ack of 5 and 6")
s.sendall(frame(6, b"again"))
expect(msg(s), ("E", 4, 6), "sequence 6 again"); expect(msg(s), None, "then")
s = conn()
data = hello() + frame(5, b"") + frame(6, b"abc") + frame(7, b"x" * 70000)
s.sendall(data[:30]); time.sleep(0.2); s.sendall(data[30:])
expect(msg(s), ("W", 0, 2), "welcome")
a = msg(s)
while a[2] < 7:
    a = msg(s)
expect(a, ("A", 0, 7), "ack of 7")
s.shutdown(socket.SHUT_WR)
expect(msg(s), None, "the end after the acks")
s = conn(); s.sendall(hello() + struct.pack(">IQ", 0xFFFFFFFF, 8))
expect(msg(s), ("W", 0, 2), "welcome")
expect(msg(s), ("E", 3, 1 << 20), "too long"); expect(msg(s), None, "then")
rows = sqlite3.connect(db).execute("SELECT sequence, length(payload) "
    "FROM frames WHERE client = ? ORDER BY sequence", (cid,)).fetchall()
expect(rows, [(5, 0), (6, 3), (7, 70000)], "the rows")
EOF
	why="$(tail -n 2 "$dir/protocol.out" | tr '\n' ' ')"
	return 1
}

# Heavy load, every frame acked; then SIGTERM: all of them are there.
case_sigterm_acked() {
	start sigterm_acked &&
	    load --sub-port "$sub" --clients 40 --frames 2500 \
	    --max-size 2048 && stop && verify
}

# A subscriber that never reads is dropped; the store and the other
# subscriber get every frame.  The other is at most the window plus a
# batch (64 KiB) per client behind, well within relayd's --sub-buffer.
case_slow_subscriber() {
	start slow_subscriber --sub-buffer 2097152 &&
	    load --sub-port "$sub" --slow-sub --window 65536 --clients 10 \
	    --frames 1000 --max-size 4096 &&
	    stop && logged 1 "is too slow" && verify
}

# ---- Stopped under load ------------------------------------------------

# stopped_under_load NAME SIGNAL COUNT: fifty clients send for as long as
# it takes to stop relayd COUNT times with SIGNAL, each time in the middle
# of the load, and start it again on the same port and database; at the
# end every frame is in the database once.  After SIGTERM and SIGINT
# relayd must exit 0 with a row for every frame it read.
stopped_under_load() {
	fixed=$(fixed_port)
	start "$1" --queue 16 || return 1
	load_bg --clients 50 --duration $(($3 * 2 + 2)) --max-size 2048 \
	    --timeout 60
	for k in $(seq "$3"); do
		sleep "1.$((k * 37 % 10))"
		if [ "$2" = KILL ]; then
			kill -KILL $rpid
			{ wait $pid; } 2>/dev/null
		elif ! stop "$2"; then
			wait $lpid
			return 1
		fi
		restart || { wait $lpid; return 1; }
	done
	load_wait && stop &&
	    [ "$(grep -c 'ready:' "$log")" -eq $(($3 + 1)) ] && return 0
	why="${why:-relayd started $(grep -c 'ready:' "$log") times}"
	return 1
}

case_kill9() {
	stopped_under_load kill9 KILL "$kills"
}

case_sigterm() {
	stopped_under_load sigterm TERM "$kills"
}

case_sigint() {
	stopped_under_load sigint INT 1
}

# ---- Hostile clients ---------------------------------------------------

# Twenty connections say nothing: relayd closes them after its idle
# timeout, with an error, and serves five busy clients meanwhile.
case_idle() {
	start idle --idle-timeout 1 || return 1
	hostile a idle 20 --hold 10
	load --clients 5 --duration 3 --rate 100 || return 1
	wait $hpid
	hostile_says a \
	    "20 closed by relayd between [0-9.]* and [0-2]\.[0-9] s: 20 idle" &&
	    stop
}

# Twenty connections say their hello a byte a second, twenty announce a
# frame of 1 MiB and send 5,000 bytes of it: relayd closes them all once
# their message has taken longer than the frame timeout.
case_frame_timeout() {
	start frame_timeout --frame-timeout 1 --idle-timeout 30 || return 1
	hostile a slowloris 20 --hold 10
	a=$hpid
	hostile b partial 20 --partial-bytes 5000 --hold 10
	wait $a
	wait $hpid
	hostile_says a "20 closed by relayd .*: 0 idle, 20 too slow" &&
	    hostile_says b "20 closed by relayd .*: 0 idle, 20 too slow" &&
	    stop
}

# At most 40 connections: 30 hold theirs, ten clients send; twenty more
# are refused, with a word, while the ten go on, every frame kept.
case_conn_limit() {
	start conn_limit --max-conns 40 || return 1
	hostile a idle 30 --hold 30
	a=$hpid
	load_bg --clients 10 --duration 4 --rate 50
	sleep 1
	hostile b idle 20 --hold 5
	wait $hpid
	reap $a
	load_wait && grep -q " 0 refused" "$dir/load.out" &&
	    hostile_says b "20 refused" && running && stop
}

# At most 20 connections from one address: 20 from 127.0.0.1 hold theirs,
# five more from there are refused, and ten clients from 127.0.0.2 send.
case_addr_limit() {
	start addr_limit --max-per-addr 20 || return 1
	hostile a idle 20 --hold 30
	a=$hpid
	hostile b idle 5 --hold 5
	wait $hpid
	load --clients 10 --frames 200 --bind 127.0.0.2 &&
	    grep -q " 0 refused" "$dir/load.out" || { reap $a; return 1; }
	reap $a
	hostile_says b "5 refused" && stop
}

# Out of descriptors: relayd may have 200, and 250 subscribers that never
# read take all it has left.  Ten clients are refused with a word, relayd
# does not spin or fail, and once the subscribers have gone it serves
# clients again.
case_nofile() {
	if ! command -v prlimit >/dev/null 2>&1; then
		why="prlimit is not installed"
		return 1
	fi
	wrap="prlimit --nofile=200:200"
	start nofile
	rc=$?
	wrap=
	[ $rc -eq 0 ] || return 1
	p=$port
	port=$sub
	hostile subs idle 250 --hold 60
	s=$hpid
	port=$p
	hostile a idle 10 --hold 5
	wait $hpid
	reap $s
	sleep 0.5
	hostile_says a "10 refused" && running &&
	    load --clients 5 --frames 100 && stop
}

# What idle and slow connections cost: RSS with 1,000 connections each in
# the middle of a frame of 1 MiB, 1,000 bytes of it received, then with
# 1,000 more saying their hello a byte a second.  Each must cost little,
# not the length its frame announces.
case_memory() {
	start memory --max-per-addr 3000 --idle-timeout 60 \
	    --frame-timeout 60 || return 1
	idle_memory
	echo "# memory: relayd $r0 KiB; +$((r1 - r0)) KiB with 1,000" \
	    "partial frames, +$((r2 - r1)) KiB with 1,000 slowloris"
	[ $((r1 - r0)) -lt 16000 ] && [ $((r2 - r1)) -lt 16000 ] && stop &&
	    return 0
	why="${why:-more than 16 KiB per connection}"
	return 1
}

# $many clients at a frame a second each, for ten seconds: every frame
# kept, in less than 1 GiB.
case_many() {
	start many --max-per-addr $((many + 100)) || return 1
	load_bg --clients "$many" --rate 1 --duration 10 --timeout 60
	sleep 7
	r=$(rss)
	threads=$(ls /proc/$rpid/task | wc -l)
	load_wait || return 1
	echo "# many: $many clients: relayd $threads threads, RSS $r KiB;" \
	    "$(grep "^sent:" "$dir/load.out")"
	[ "$r" -lt 1048576 ] && stop && return 0
	why="${why:-RSS $r KiB}"
	return 1
}

# ---- The database fails ------------------------------------------------

# Another process holds the database's write lock for 10 s while clients
# send: each attempt of the store fails after its busy timeout, the master
# restarts it with a growing delay, relayd keeps running and reading until
# the conns run out of credit, no ack goes out, and once the lock is gone
# every frame is in the database.
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
	load_wait && running && restarted && stop && verify
}

# The disk is full: the database on a 16 MiB tmpfs with 1 MiB left, which
# the frames overflow (SQLITE_FULL); a second after the first restart the
# space comes back, and every frame is in the database.  Without the
# right to mount a tmpfs, the same with RELAYD_FAIL_WRITES.
case_disk_full() {
	mkdir "$top/disk_full.fs" || return 1
	if ! mount -t tmpfs -o size=16m tmpfs "$top/disk_full.fs" \
	    2>/dev/null; then
		echo "# disk_full: cannot mount a tmpfs; RELAYD_FAIL_WRITES"
		RELAYD_FAIL_WRITES=500,4 start disk_full || return 1
		load --sub-port "$sub" --clients 10 --frames 400 \
		    --max-size 2048 && running && restarted && stop && verify
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
	    logged 3 "failed by RELAYD_FAIL_WRITES" && stop && verify
}

# SIGTERM while the store waits for its fifth restart: the master starts
# it at once, and its stop commits every frame read; relayd, started
# again, gets the frames not acked, and none is lost or doubled.
case_sigterm_store_down() {
	fixed=$(fixed_port)
	RELAYD_FAIL_WRITES=500,5 start sigterm_store_down || return 1
	load_bg --clients 4 --frames 500 --max-size 512
	await_logged 1 "restart 5 in"
	unset RELAYD_FAIL_WRITES
	running && stop && logged 1 "the store restarts at once for the stop" &&
	    restart || { wait $lpid; return 1; }
	load_wait && stop
}

# Every insert fails: after STORE_RESTART_MAX restarts in the period
# (about 18 s of backoff) the master gives up, and relayd exits 1 saying
# how many frames it read are not committed; what it committed before is
# intact, and every frame acked is there.
case_escalate() {
	RELAYD_FAIL_WRITES=1000,1000000000 start escalate || return 1
	load_bg --clients 4 --frames 1000 --max-size 512 --tolerate \
	    --timeout 25
	wait $pid
	rc=$?
	pid=
	rpid=
	wait $lpid
	if [ $rc -ne 1 ]; then
		why="relayd exited with status $rc, not 1"
		return 1
	fi
	grep -q " 0 frames acked and not stored" "$dir/load.out" ||
	    load_failed || return 1
	logged 1 "the store has failed 10 times" &&
	    logged 1 "frames read were not committed" &&
	    logged 10 "the store is back" && verify --partial
}

# 1,000 connections open and close, 8 at a time, a tenth of them in the
# middle of a frame, with relayd under valgrind: no leak, no error, every
# frame kept.
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
	    await_logged 100 "the client left in the middle of a frame" &&
	    stop && logged 100 "the client left in the middle of a frame" &&
	    verify
	rc=$?
	wrap=
	life=120
	return $rc
}

# The cases named on the command line, or all of them.
[ $# -gt 0 ] || set -- normal largest oversized midframe protocol \
    sigterm_acked slow_subscriber kill9 sigterm sigint idle frame_timeout \
    conn_limit addr_limit nofile memory many db_locked disk_full \
    fail_writes sigterm_store_down escalate cycles
for c in "$@"; do
	run "$c"
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
