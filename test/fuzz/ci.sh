#!/bin/sh
# ci.sh - runs fuzz steps and sums them up (make fuzz, make fuzz-ci).
#
#	sh test/fuzz/ci.sh LOGDIR 'COMMAND' ['COMMAND'...]
#
# Each COMMAND is one step (fuzz-run, fuzz-fail or libFuzzer), run by sh
# with its output shown and kept in LOGDIR/step-N.log.  A step's count is
# its last "N passed, M failed" line; a step that ends without one, or
# with a failing status, counts as one more failure.  The last line is
# "fuzz: N passed, M failed", and the status is nonzero if M is.
logdir=$1
shift
mkdir -p "$logdir" || exit 2
passed=0
failed=0
n=0
start=$(date +%s)
for step in "$@"; do
	n=$((n + 1))
	log=$logdir/step-$n.log
	echo "fuzz: step $n: $step"
	t0=$(date +%s)
	sh -c "$step" >"$log" 2>&1
	status=$?
	# What the step printed, less the libraries' chatter on each input.
	grep -v -e '^libworker: ' -e '^#[0-9]' -e '^INFO: ' "$log" | tail -n 40
	n0='\([0-9][0-9]*\)'
	counts=$(sed -n "s/.*: $n0 passed, $n0 failed.*/\\1 \\2/p" "$log" |
	    tail -n 1)
	if [ -n "$counts" ]; then
		p=${counts% *}
		f=${counts#* }
		passed=$((passed + p))
		failed=$((failed + f))
		[ "$status" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
	elif [ "$status" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
	echo "fuzz: step $n: status $status after $(($(date +%s) - t0)) s" \
	    "(log: $log)"
done
echo "fuzz: $passed passed, $failed failed ($(($(date +%s) - start)) s)"
[ "$failed" -eq 0 ]
