#!/bin/sh
# relay_ws_test.sh - end-to-end tests of relayd's WebSocket side ("make
# relaywstest"): its subscribers' port on 127.0.0.1, with Debian's Python
# websockets client (test/relay_ws_client.py), relay-load's own WebSocket
# subscribers (wslay), and headless Chromium on the page.
#
# Run from anywhere after "make samples"; it builds nothing.  Runs the
# cases named as arguments, or all.  Prints one line per case and then "N
# passed, M failed"; exits nonzero if a case failed.  Each relayd takes
# free ports and a directory of its own; timeout(1) bounds every process.
# Needs python3 with the websockets module (Debian: python3-websockets)
# and chromium.

cd "$(dirname "$0")/.." || exit 1

top=$(mktemp -d "${TMPDIR:-/tmp}/relaywstest.XXXXXX") || exit 1
bg=			# processes of the case to end if it fails
trap 'for p in $bg; do kill $p 2>/dev/null; done; [ -n "$KEEP" ] || rm -rf "$top"' EXIT
passed=0
failed=0

# Debian's python3, where python3-websockets is, even if another comes
# first in PATH.
py=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import websockets' 2>/dev/null; then
		py=$p
		break
	fi
done
client() {
	timeout -k 5 100 "$py" test/relay_ws_client.py "$@"
}

# start NAME [RELAYD-OPTIONS...]: starts relayd in $top/NAME, and sets dir,
# log, db, pid, port and sub.
start() {
	dir=$top/$1
	log=$dir/relayd.log
	db=$dir/relay.db
	shift
	mkdir "$dir" || return 1
	: >"$log"
	timeout -k 10 100 build/samples/relayd --port 0 --sub-port 0 \
	    --db "$db" "$@" 2>"$log" &
	pid=$!
	bg="$pid"
	port=
	for _ in $(seq 300); do
		port=$(sed -n 's/.*ready: clients 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")
		[ -n "$port" ] && break
		sleep 0.1
	done
	sub=$(sed -n 's/.*subscribers 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")
	[ -n "$port" ] && [ -n "$sub" ] && return 0
	why="relayd did not start"
	return 1
}

# stop: SIGTERM; relayd must exit 0, having committed every frame read.
stop() {
	kill -TERM $pid
	wait $pid
	rc=$?
	bg=
	if [ $rc -ne 0 ]; then
		why="relayd exited with status $rc"
		return 1
	fi
	set -- $(sed -n 's/.*stopped: \([0-9]*\) frames read .*, \([0-9]*\) rows committed.*/\1 \2/p' "$log")
	[ $# -eq 2 ] && [ "$1" = "$2" ] && return 0
	why="relayd read ${1:-?} frames and committed ${2:-?} rows"
	return 1
}

# load ARGS...: relay-load against the relayd started last; records what
# it sent for verify.
load() {
	timeout -k 5 60 build/samples/relay-load --port "$port" \
	    --record "$dir/record" "$@" >"$dir/load.out" 2>&1 && return 0
	why="relay-load failed: $(grep -v '^relay-load: [0-9]* clients sent' \
	    "$dir/load.out" | head -n 3 | tr '\n' ' ')"
	return 1
}

# verify: the database against what relay-load sent.
verify() {
	build/samples/relay-load --verify --db "$db" \
	    --record "$dir/record" >"$dir/verify.out" 2>&1 &&
	    grep -q "lost: 0" "$dir/verify.out" && return 0
	why="$(head -n 3 "$dir/verify.out" | tr '\n' ' ')"
	return 1
}

# await FILE TEXT: waits (up to 30 s) until FILE has TEXT.
await() {
	i=0
	while ! grep -q -- "$2" "$1" 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	grep -q -- "$2" "$1" 2>/dev/null && return 0
	why="no \"$2\" in $(basename "$1"): $(head -n 3 "$1" | tr '\n' ' ')"
	return 1
}

# logged COUNT TEXT: relayd's log has TEXT on exactly COUNT lines.
logged() {
	n=$(grep -c -- "$2" "$log")
	[ "$n" -eq "$1" ] && return 0
	why="\"$2\" logged $n times, not $1"
	return 1
}

# run NAME: runs case_NAME and reports it.
run() {
	why=
	log=
	t0=$(date +%s)
	if [ -z "$py" ]; then
		why="no python3 with the websockets module"
		false
	else
		"case_$1"
	fi
	if [ $? -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - $1 ($(($(date +%s) - t0)) s)"
	else
		failed=$((failed + 1))
		echo "FAIL - $1: $why"
		[ -n "$log" ] && [ -f "$log" ] && tail -n 5 "$log" | sed 's/^/	/'
	fi
	for p in $bg; do
		kill $p 2>/dev/null
		wait $p 2>/dev/null
	done
	bg=
}

# The port's HTTP side: the page at /, 404 elsewhere, 426 for another
# version of WebSocket, and RFC 6455's own example of a handshake.
case_http() {
	start http && client http "$sub" >"$dir/http.out" 2>&1 || {
		why=${why:-$(tail -n 3 "$dir/http.out" | tr '\n' ' ')}
		return 1
	}
	stop
}

# (a) The Python client subscribes first; relay-load sends frames of up
# to 128 KiB (so the long ones come in fragments), with a subscriber of
# its own.  The Python client gets every frame, in the database's order,
# byte for byte, and the database is what relay-load sent.  A large
# --sub-buffer: Python is not paced by relay-load's window.
case_every_frame() {
	start every_frame --sub-buffer 268435456 || return 1
	clients=4
	frames=200
	client recv "$sub" "$dir/msgs" $((clients * frames)) \
	    >"$dir/recv.out" 2>&1 &
	cpid=$!
	bg="$bg $cpid"
	await "$dir/recv.out" subscribed &&
	    load --sub-port "$sub" --clients $clients --frames $frames \
	    --max-size 131072 || return 1
	if ! wait $cpid; then
		why="the Python client: $(tail -n 2 "$dir/recv.out" |
		    tr '\n' ' ')"
		return 1
	fi
	stop && verify || return 1
	client compare "$dir/msgs" "$db" $((clients * frames)) \
	    >"$dir/compare.out" 2>&1 && return 0
	why="$(tail -n 3 "$dir/compare.out" | tr '\n' ' ')"
	return 1
}

# (b) Five Python subscribers and relay-load's slow one stall, and one
# Python subscriber reads slowly: relayd drops each once it is --sub-buffer
# behind (the slow reader gets the close frame, status 1008), while
# relay-load's three other subscribers get every one of about 60 MB of
# frames, and relayd's peak RSS stays under 40 MiB (the stalled ones would
# otherwise hold what they did not read).  The others are at most the
# window and a piece (16 KiB) per client behind, within --sub-buffer.
case_stalled() {
	start stalled --sub-buffer 1048576 || return 1
	client --timeout 90 stall "$sub" 5 "$dir/go" --readers 1 \
	    >"$dir/stall.out" 2>&1 &
	cpid=$!
	bg="$bg $cpid"
	await "$dir/stall.out" "subscribed 6" &&
	    load --sub-port "$sub" --subscribers 3 --slow-sub \
	    --window 524288 --clients 10 --frames 1500 --max-size 8192 ||
	    return 1
	touch "$dir/go"
	if ! wait $cpid; then
		why="the stalled ones: $(tail -n 2 "$dir/stall.out" |
		    tr '\n' ' ')"
		return 1
	fi
	sed 's/^/# stalled: /' "$dir/stall.out"
	stop && logged 7 "is too slow" && verify || return 1
	rss=$(sed -n 's/.*peak RSS \([0-9]*\) KiB.*/\1/p' "$log")
	echo "# stalled: relayd's peak RSS ${rss:-?} KiB;" \
	    "$(sed -n 's/.*sent [0-9]* frames (\([0-9.]* MB\)).*/\1/p' \
	    "$dir/load.out") sent"
	[ "${rss:-999999}" -lt 40960 ] && return 0
	why="relayd's peak RSS is ${rss:-?} KiB, not under 40 MiB"
	return 1
}

# (c) Headless Chromium opens the page while small batches of frames
# arrive; through the DevTools protocol the test waits until the page
# shows frames and a rate above 0, and keeps its screenshot and DOM.
case_browser() {
	if ! command -v chromium >/dev/null 2>&1; then
		why="chromium is not installed"
		return 1
	fi
	start browser || return 1
	(
		i=0
		while [ ! -e "$dir/stop" ] && [ $i -lt 400 ]; do
			timeout 10 build/samples/relay-load --port "$port" \
			    --clients 1 --frames 20 --max-size 256 \
			    --seed $i >/dev/null 2>&1
			sleep 0.05
			i=$((i + 1))
		done
	) &
	lpid=$!
	bg="$bg $lpid"
	client --timeout 40 browser "$sub" "$dir" >"$dir/browser.out" 2>&1
	rc=$?
	touch "$dir/stop"
	wait $lpid
	cat "$dir/browser.out" | sed 's/^/# browser: /'
	if [ $rc -ne 0 ]; then
		why="$(tail -n 2 "$dir/browser.out" | tr '\n' ' ')"
		return 1
	fi
	grep -q 'id="frames">[1-9]' "$dir/dom.html" || {
		why="the DOM shows no frame"
		return 1
	}
	stop
}

# Two hundred WebSocket subscribers of relay-load, each checking every
# frame of ten clients.
case_fanout200() {
	start fanout200 &&
	    load --sub-port "$sub" --subscribers 200 --clients 10 \
	    --frames 1000 --max-size 512 || return 1
	sed -n 's/^relay-load: \(200 subscribers .*\)/# fanout200: \1/p' \
	    "$dir/load.out"
	grep -q "200 good, 0 wrong: lost: 0" "$dir/load.out" || {
		why="$(tail -n 2 "$dir/load.out" | tr '\n' ' ')"
		return 1
	}
	stop && verify
}

[ $# -gt 0 ] || set -- http every_frame stalled browser fanout200
for c in "$@"; do
	run "$c"
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
