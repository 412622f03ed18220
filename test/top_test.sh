#!/bin/sh
# top_test.sh - end-to-end test of build/tools/worker-top ("make toptest"):
# build/samples/relayd with --inspect under steady load from
# build/samples/relay-load, worker-top on a real terminal (a tmux server
# of its own), and worker-top -1.
#
# Run from anywhere after "make samples tools"; it builds nothing.  Needs
# tmux.  Prints "PASS - CHECK" or "FAIL - CHECK: why" for each check, then
# "N passed, M failed"; exits nonzero if a check failed.
# Every wait polls with a deadline (20 s for the screen); no sleep decides
# a result.  The tmux server is private (tmux -S, a socket in the test's
# directory, no configuration of the user's), so the test never touches a
# user's tmux, and it is killed at the end with relayd and the load.
#
# The load is relay-load in a loop of small runs, a few thousand frames a
# second: enough for the rates to move, while relay-load unbounded writes
# some hundred megabytes of SQLite a second.  So connections come and go;
# the checks look for the workers that stay: master, store, fanout and
# listener (samples/relay/relayd.h).

cd "$(dirname "$0")/.." || exit 1

for f in build/samples/relayd build/samples/relay-load \
    build/tools/worker-top; do
	if [ ! -x "$f" ]; then
		echo "FAIL - setup: $f is missing (make samples tools)"
		exit 1
	fi
done
if ! command -v tmux >/dev/null 2>&1; then
	echo "FAIL - setup: tmux is not installed"
	exit 1
fi

top=$(mktemp -d "${TMPDIR:-/tmp}/toptest.XXXXXX") || exit 1
sock=$top/inspect.sock
wtop=$PWD/build/tools/worker-top
pid=			# timeout(1) running relayd
lpid=			# the load loop
passed=0
failed=0

# tmux ARGS...: our own server, with our own configuration.
tmux_() {
	tmux -S "$top/tmux.sock" -f "$top/tmux.conf" "$@"
}

cleanup() {
	tmux_ kill-server 2>/dev/null
	: >"$top/load.stop"
	[ -n "$lpid" ] && wait $lpid
	if [ -n "$pid" ]; then
		kill -TERM $pid 2>/dev/null
		wait $pid
	fi
	rm -rf "$top"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# A terminal curses knows everywhere, and no status line: the pane is the
# whole 160x50 window.
printf 'set -g default-terminal screen\nset -g status off\n' \
    >"$top/tmux.conf"

# check NAME COMMAND...: runs COMMAND, which sets why if it fails.
check() {
	name=$1
	shift
	why=
	if "$@"; then
		passed=$((passed + 1))
		echo "PASS - $name"
	else
		failed=$((failed + 1))
		echo "FAIL - $name: $why"
	fi
}

# ---- relayd and its load ---------------------------------------------------

# Starts relayd on free ports with the inspect socket; sets port.
start_relayd() {
	: >"$top/relayd.log"	# before the first look at it
	timeout -k 10 150 build/samples/relayd --port 0 --sub-port 0 \
	    --db "$top/relay.db" --inspect "$sock" 2>"$top/relayd.log" &
	pid=$!
	for _ in $(seq 200); do
		port=$(sed -n 's/.*ready: clients 127\.0\.0\.1:\([0-9]*\),.*/\1/p' \
		    "$top/relayd.log")
		[ -n "$port" ] && [ -S "$sock" ] && return 0
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	why="relayd did not start, or made no socket: $(tail -n 2 \
	    "$top/relayd.log" | tr '\n' ' ')"
	return 1
}

# Small runs of relay-load one after the other until load.stop exists, 60 s
# at most; a run that fails leaves its output in load.err.
load_loop() {
	end=$(($(date +%s) + 60))
	while [ ! -e "$top/load.stop" ] && [ "$(date +%s)" -lt "$end" ]; do
		build/samples/relay-load --port "$port" --clients 4 \
		    --frames 250 --max-size 64 >"$top/load.out" 2>&1 ||
		    cat "$top/load.out" >>"$top/load.err"
		sleep 0.1
	done
}

# relayd, after SIGTERM, exits 0 with a row for every frame it read.
stop_relayd() {
	kill -TERM $pid
	wait $pid
	rc=$?
	pid=
	if [ $rc -ne 0 ]; then
		why="relayd exited with status $rc: $(tail -n 2 \
		    "$top/relayd.log" | tr '\n' ' ')"
		return 1
	fi
	set -- $(sed -n 's/.*stopped: \([0-9]*\) frames read .*, \([0-9]*\) rows committed.*/\1 \2/p' "$top/relayd.log")
	[ $# -eq 2 ] && [ "$1" = "$2" ] && [ "$1" -gt 0 ] && return 0
	why="relayd read ${1:-?} frames and committed ${2:-?} rows"
	return 1
}

load_ok() {
	[ ! -s "$top/load.err" ] && return 0
	why="relay-load failed: $(head -n 3 "$top/load.err" | tr '\n' ' ')"
	return 1
}

# ---- worker-top -1 ---------------------------------------------------------

# The relay's tree, as NAME columns indented by depth: the master at the
# top and its three children under it.
tree_in() {
	grep -q '^master  *running ' "$1" &&
	    grep -q '^  store  *running ' "$1" &&
	    grep -q '^  fanout  *running ' "$1" &&
	    grep -q '^  listener  *running ' "$1"
}

# -1 prints the header, the titles and the tree, with the master's rate
# measured (a number, not "-"), and exits 0.
once_tree() {
	"$wtop" -1 "$sock" >"$top/once.out" 2>&1 || {
		why="exit status $?: $(head -n 2 "$top/once.out")"
		return 1
	}
	grep -q '^pid [0-9]*, [0-9]* workers, events/s [0-9.]*$' \
	    "$top/once.out" &&
	    grep -q '^NAME  *STATE  *EV/S  *QUEUE  *HIGH ' "$top/once.out" &&
	    tree_in "$top/once.out" &&
	    awk '$1 == "master" { ok = $3 ~ /^[0-9.]+$/ } END { exit !ok }' \
	    "$top/once.out" && return 0
	why="unexpected output: $(head -n 6 "$top/once.out" | tr '\n' '|')"
	return 1
}

# -1 -d 0 takes one snapshot and has no rates.
once_no_rates() {
	"$wtop" -1 -d 0 "$sock" >"$top/once0.out" 2>&1 &&
	    tree_in "$top/once0.out" &&
	    grep -q 'events/s -$' "$top/once0.out" && return 0
	why="unexpected output: $(head -n 4 "$top/once0.out" | tr '\n' '|')"
	return 1
}

# Once relayd has gone, -1 fails with status 1 and says why.
once_gone() {
	"$wtop" -1 "$sock" >"$top/gone1.out" 2>&1
	rc=$?
	[ $rc -eq 1 ] && grep -q "^worker-top: $sock: " "$top/gone1.out" &&
	    return 0
	why="status $rc: $(head -n 2 "$top/gone1.out")"
	return 1
}

# ---- worker-top on the screen ---------------------------------------------

# top_start SESSION: worker-top in a 160x50 terminal; its stderr goes to
# SESSION.err and its exit status to SESSION.rc.
top_start() {
	tmux_ new-session -d -s "$1" -x 160 -y 50 \
	    "'$wtop' -d 1 '$sock' 2>'$top/$1.err'; echo \$? >'$top/$1.rc'"
}

# await SESSION TEST...: captures the screen of SESSION into $top/screen
# every 0.2 s, for up to 20 s, until TEST... succeeds.
await() {
	s=$1
	shift
	for _ in $(seq 100); do
		if ! tmux_ has-session -t "$s" 2>/dev/null; then
			why="worker-top has ended: $(cat "$top/$s.err" \
			    2>/dev/null)"
			return 1
		fi
		tmux_ capture-pane -p -t "$s" >"$top/screen" 2>/dev/null
		"$@" && return 0
		sleep 0.2
	done
	why="not on the screen within 20 s: $*; the screen was:
$(sed -n '1,12p' "$top/screen")"
	return 1
}

# The screen's EV/S of the master, a number.
master_rate() {
	awk '$1 == "master" && $3 ~ /^[0-9.]+$/ { print $3; exit }' \
	    "$top/screen"
}

screen_tree() {
	grep -q '^pid [0-9]*  workers [0-9]*  events/s ' "$top/screen" &&
	    grep -q '^NAME  *STATE  *EV/S  *QUEUE  *HIGH  *LSN%  *LMAXms  *RST  *OUTSIDE  *F  *DOING' \
	    "$top/screen" && tree_in "$top/screen"
}

rate_known() {
	[ -n "$(master_rate)" ]
}

rate_differs() {
	r=$(master_rate)
	[ -n "$r" ] && [ "$r" != "$rate1" ]
}

# The master's events/s is measured, and moves from one refresh to the
# next.
screen_rate_moves() {
	await top rate_known || return 1
	rate1=$(master_rate)
	await top rate_differs && return 0
	why="the master's events/s stayed $rate1: $why"
	return 1
}

# The master's children, in the order of the screen, by events/s: never
# a larger one after a smaller one.
children_by_rate() {
	grep -q ' sort events/s' "$top/screen" &&
	    awk '/^  [^ ]/ && $3 ~ /^[0-9.]+$/ {
		if (n++ && $3 + 0 > last + 0) bad = 1
		last = $3
	    } END { exit bad || n < 3 }' "$top/screen"
}

# 'e' sorts the siblings by events/s, and says so.
screen_sort() {
	tmux_ send-keys -t top e && await top children_by_rate
}

master_folded() {
	grep -q '^master (+[0-9]*) ' "$top/screen" &&
	    ! grep -q '^  store ' "$top/screen"
}

master_open() {
	grep -q '^master  *running' "$top/screen" &&
	    grep -q '^  store ' "$top/screen"
}

tree_order() {
	grep -q ' sort tree' "$top/screen" && grep -q '^master ' "$top/screen"
}

# In the order of the tree, the cursor goes to the master's row (g, then j
# as many times as rows above it), Enter folds its subtree and + opens it.
screen_fold() {
	tmux_ send-keys -t top n && await top tree_order || return 1
	above=$(awk 'NR > 3 && /^master / { print NR - 4; exit }' \
	    "$top/screen")
	tmux_ send-keys -t top g || return 1
	for _ in $(seq "$above"); do
		tmux_ send-keys -t top j || return 1
	done
	tmux_ send-keys -t top Enter && await top master_folded &&
	    tmux_ send-keys -t top + && await top master_open
}

session_gone() {
	! tmux_ has-session -t "$1" 2>/dev/null && [ -s "$top/$1.rc" ]
}

# await_end SESSION STATUS: worker-top has ended, with STATUS.
await_end() {
	for _ in $(seq 100); do
		session_gone "$1" && break
		sleep 0.2
	done
	if ! session_gone "$1"; then
		why="worker-top still runs after 20 s"
		return 1
	fi
	[ "$(cat "$top/$1.rc")" = "$2" ] && return 0
	why="exit status $(cat "$top/$1.rc"), not $2: $(cat "$top/$1.err")"
	return 1
}

# q ends worker-top, with status 0, and so its tmux session.
screen_quit() {
	tmux_ send-keys -t top q && await_end top 0
}

# When relayd stops, worker-top leaves the screen, says the server closed
# the connection, and exits 1.
screen_server_gone() {
	await_end gone 1 &&
	    grep -q "^worker-top: $sock: the server closed the connection" \
	    "$top/gone.err" && return 0
	why="${why:-no message}: $(cat "$top/gone.err")"
	return 1
}

# ---- The run ---------------------------------------------------------------

why=
if ! start_relayd; then
	echo "FAIL - relayd: $why"
	exit 1
fi
load_loop &
lpid=$!

check "worker-top -1 shows the tree with rates" once_tree
check "worker-top -1 -d 0 shows the tree without rates" once_no_rates
top_start top
check "the screen shows the tree" await top screen_tree
check "the master's events/s changes between refreshes" screen_rate_moves
check "e sorts siblings by events/s" screen_sort
check "Enter folds the master, + opens it" screen_fold
check "q quits with status 0 and ends the session" screen_quit

top_start gone
check "a second worker-top shows the tree" await gone screen_tree
: >"$top/load.stop"
wait $lpid
lpid=
check "relay-load ran without a failure" load_ok
check "relayd stops in order" stop_relayd
check "worker-top exits 1 when relayd has gone" screen_server_gone
check "worker-top -1 exits 1 without a server" once_gone

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
