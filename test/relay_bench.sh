#!/bin/sh
# relay_bench.sh - the numbers of the relay sample ("make relaybench"), the
# long versions of some cases of test/relay_test.sh:
#
#   rate	frames/s at 1, 50, 500 and 10,000 clients sending as fast as
#		relayd takes them, 2,000,000 frames of 8 to 512 bytes in all,
#		with relayd's threads, peak RSS and CPU time; BENCH_ROUNDS
#		rounds (3), interleaved, so that a load on the machine
#		spreads over all
#   many	10,000 clients at a frame a second for BENCH_SECS (60)
#   kill9	BENCH_REPS (10) runs of 50 clients for 6 s, relayd killed
#		with SIGKILL once in the middle and started again
#   sigterm	the same with SIGTERM
#   memory	RSS with 1,000 connections in the middle of a frame, and
#		with 1,000 slowloris
#
# Runs the parts named as arguments, or all; a line "bench: ..." for each
# measure.  Exits nonzero if a run lost or doubled a frame.  About ten
# minutes in all.  Run from anywhere after "make samples".

cd "$(dirname "$0")/.." || exit 1
. test/relay_lib.sh
rounds=${BENCH_ROUNDS:-3}
secs=${BENCH_SECS:-60}
reps=${BENCH_REPS:-10}
life=600
status=0

# peak: relayd's peak RSS (KiB) and its threads now.
peak() {
	awk '/^VmHWM/ { printf "%s", $2 }' /proc/$rpid/status
}

# cpu: relayd's CPU time so far, seconds.
cpu() {
	awk -v tk="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / tk }' \
	    /proc/$rpid/stat
}

# rate_run ROUND CLIENTS: one run of 2,000,000 frames.
rate_run() {
	why=
	db=
	start "rate-$1-$2" --max-per-addr 20000 || { echo "bench: $why"
	    status=1; return; }
	threads=0
	load_bg --clients "$2" --frames $((2000000 / $2)) --max-size 512 \
	    --threads 2 --timeout 60
	while kill -0 $lpid 2>/dev/null; do
		t=$(ls /proc/$rpid/task 2>/dev/null | wc -l)
		[ "$t" -gt "$threads" ] && threads=$t
		sleep 0.2
	done
	load_wait || status=1
	rate=$(sed -n 's/.* in \([0-9.]*\) s: \([0-9]*\) frames.s/\2 (\1 s)/p' \
	    "$dir/load.out")
	echo "bench: rate: $2 clients: $rate frames/s; relayd: $threads" \
	    "threads, peak RSS $(peak) KiB, $(cpu) s of CPU; load average" \
	    "$(cut -d' ' -f1 /proc/loadavg)"
	stop || { echo "bench: $why"; status=1; }
}

part_rate() {
	for r in $(seq "$rounds"); do
		for c in 1 50 500 10000; do
			rate_run "$r" "$c"
		done
	done
}

part_many() {
	db=
	start many --max-per-addr 20000 || { echo "bench: $why"; status=1
	    return; }
	threads=0
	rss_max=0
	load_bg --clients 10000 --rate 1 --duration "$secs" --timeout 60
	while kill -0 $lpid 2>/dev/null; do
		t=$(ls /proc/$rpid/task 2>/dev/null | wc -l)
		[ "$t" -gt "$threads" ] && threads=$t
		sleep 1
	done
	load_wait || status=1
	echo "bench: many: 10000 clients at 1 frame/s for $secs s:" \
	    "$(tail -n 1 "$dir/load.out"); relayd: $threads threads, peak" \
	    "RSS $(peak) KiB, $(cpu) s of CPU"
	stop || { echo "bench: $why"; status=1; }
}

# stop_reps NAME SIGNAL: $reps runs, each stopped once with SIGNAL.
stop_reps() {
	for r in $(seq "$reps"); do
		why=
		db=
		fixed=$(fixed_port)
		start "$1-$r" || { echo "bench: $why"; status=1; continue; }
		load_bg --clients 50 --duration 6 --max-size 512 --timeout 60
		sleep "$((1 + r % 3)).$((r * 37 % 10))"
		if [ "$2" = KILL ]; then
			kill -KILL $rpid
			{ wait $pid; } 2>/dev/null
		else
			stop "$2" || { echo "bench: $why"; status=1; }
		fi
		restart || { echo "bench: $why"; status=1; }
		load_wait || { echo "bench: $why"; status=1; }
		stop || { echo "bench: $why"; status=1; }
		conns=$(sed -n 's/^relay-load: \([0-9]*\) connections.*/\1/p' \
		    "$dir/load.out")
		again=$(tail -n 1 "$log" |
		    sed -n 's/.*(\([0-9]*\) were there.*/\1/p')
		echo "bench: $1 $r: $(tail -n 1 "$dir/load.out"); $conns" \
		    "connections; relayd after the restart kept once $again" \
		    "frames sent again"
	done
}

part_kill9() {
	stop_reps kill9 KILL
}

part_sigterm() {
	stop_reps sigterm TERM
}

part_memory() {
	db=
	start memory --max-per-addr 3000 --idle-timeout 60 \
	    --frame-timeout 60 || { echo "bench: $why"; status=1; return; }
	idle_memory
	echo "bench: memory: relayd $r0 KiB; 1,000 connections in the" \
	    "middle of a frame of 1 MiB, 1,000 bytes of it come:" \
	    "+$((r1 - r0)) KiB; 1,000 slowloris: +$((r2 - r1)) KiB"
	stop || { echo "bench: $why"; status=1; }
}

[ $# -gt 0 ] || set -- rate many kill9 sigterm memory
for p in "$@"; do
	"part_$p"
done
exit $status
