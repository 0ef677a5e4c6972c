#!/bin/sh
# The guest benchmark (`cargo xtask bench --guest`): the worst-case invalidation loop
# (mmnotif-bench-loop) untraced, under the tracer (fentry and kprobe, each with and without
# stacks; with fentry also the floor, every probe attached and emitting nothing, and the
# checker's verdict alone, without writing each event out) and under a peer, bpftrace, counting
# __mmu_notifier_invalidate_range_start calls and printing one line per call. The configurations
# are interleaved: every round runs each once.
# Each measurement prints one line for the host to read:
#   MMNOTIF-BENCH: round=R config=NAME ns_per_op=F elapsed_ns=N events=N lost=N
# or, when a measurement could not be made,
#   MMNOTIF-BENCH: round=R config=NAME error=WHY
# Usage: bench.sh ROUNDS ITERATIONS
ROUNDS=${1:?rounds}
ITERATIONS=${2:?iterations}
DIR=$(dirname "$0")
LOOP=$DIR/mmnotif-bench-loop
TRACER=/usr/local/bin/mmnotif-trace
OUT=/tmp/bench
mkdir -p "$OUT"

# bpftrace 0.2x hands LLVM its output as /dev/fd/N, which devtmpfs does not provide.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
CONFIGS=untraced
[ -x "$TRACER" ] && CONFIGS="$CONFIGS fentry fentry-nostacks fentry-floor fentry-violations kprobe kprobe-nostacks"
if command -v bpftrace >/dev/null; then
	CONFIGS="$CONFIGS bpftrace-count bpftrace-print"
	echo "MMNOTIF-BENCH-PEER: $(bpftrace --version 2>&1 | head -n 1)"
else
	echo "MMNOTIF-BENCH-PEER: none (no bpftrace in the guest)"
fi
[ -x "$TRACER" ] && echo "MMNOTIF-BENCH-TRACER: $("$TRACER" --version 2>&1 | head -n 1)"

# wait_for FILE PATTERN PID: until FILE has a line matching PATTERN (up to 300 s: bpftrace
# loads LLVM, slowly under TCG), or PID or the loop exits. Returns whether it matched.
wait_for() {
	until=$(($(date +%s) + 300))
	while ! grep -q "$2" "$1" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null && kill -0 "$loop" 2>/dev/null || return 1
		[ "$(date +%s)" -ge $until ] && return 1
		sleep 0.1
	done
}

# stop PID: SIGINT (both print their totals on it), then SIGKILL if it is still there after
# 60 s. Returns whether it stopped on SIGINT.
stop() {
	kill -INT "$1"
	until=$(($(date +%s) + 60))
	while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt $until ]; do
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1"
		wait "$1"
		return 1
	fi
	wait "$1"
}

# number FILE SED-EXPRESSION: the first number the expression extracts, or nothing.
number() {
	sed -n "$2" "$1" | head -n 1
}

# tracer_did_not_attach: reports the failed measurement and ends the loop and the tracer.
tracer_did_not_attach() {
	cat "$err"
	echo "MMNOTIF-BENCH: round=$round config=$config error=the tracer did not attach"
	kill -TERM $watcher $loop 2>/dev/null
	wait $watcher $loop
}

# measure ROUND CONFIG: one run of the loop under CONFIG; prints its MMNOTIF-BENCH line.
measure() {
	round=$1
	config=$2
	gate=$OUT/gate
	err=$OUT/$config.err
	out=$OUT/$config.out
	rm -f "$gate".* "$err" "$out"
	MMNOTIF_GATE=$gate "$LOOP" "$ITERATIONS" >"$OUT/loop.out" 2>&1 &
	loop=$!
	i=0
	while [ ! -e "$gate.ready" ] && [ $i -lt 600 ] && kill -0 $loop 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -e "$gate.ready" ]; then
		cat "$OUT/loop.out"
		echo "MMNOTIF-BENCH: round=$round config=$config error=the loop did not register its subscribers"
		kill -TERM $loop 2>/dev/null
		wait $loop
		return
	fi
	watcher=
	case $config in
	untraced) ;;
	fentry | kprobe | fentry-nostacks | kprobe-nostacks | fentry-violations)
		method=${config%-*}
		format=jsonl
		stacks=--stacks
		case $config in
		*-nostacks) stacks="" ;;
		*-violations)
			stacks=""
			format=violations
			;;
		esac
		# Full mode: every hook decoded and paired by the checker, and written as JSON lines,
		# or (violations) only the violations written: what `check` and the exporter do,
		# without the cost of writing each event out.
		"$TRACER" stream --format $format --attach "$method" $stacks >/dev/null 2>"$err" &
		watcher=$!
		# Attached, and probing the subscribers the loop registered before the tracer started.
		if ! wait_for "$err" '^mmnotif-trace: kernel ' $watcher ||
			! wait_for "$err" 'probing mmnt_start_ok ' $watcher ||
			! wait_for "$err" 'probing mmnt_invalidate_ok ' $watcher; then
			tracer_did_not_attach
			return
		fi
		;;
	fentry-floor)
		# The floor: every probe attached and running (the subscribers' callbacks too, from
		# the inventory at start), no record emitted. Its first line follows the attaching.
		"$TRACER" stream --count-only --attach fentry >/dev/null 2>"$err" &
		watcher=$!
		if ! wait_for "$err" '^mmnotif-trace: kernel .*(count only)' $watcher; then
			tracer_did_not_attach
			return
		fi
		;;
	bpftrace-count | bpftrace-print)
		action='@n = count();'
		[ "$config" = bpftrace-print ] && action='printf("%d\n", tid);'
		# BEGIN runs once every probe is attached; -B line flushes its line at once.
		bpftrace -B line -e "BEGIN { printf(\"ready\n\"); } kprobe:__mmu_notifier_invalidate_range_start { $action }" \
			>"$out" 2>"$err" &
		watcher=$!
		if ! wait_for "$out" '^ready$' $watcher; then
			cat "$err" "$out"
			echo "MMNOTIF-BENCH: round=$round config=$config error=bpftrace did not attach"
			kill -TERM $watcher $loop 2>/dev/null
			wait $watcher $loop
			return
		fi
		;;
	esac
	touch "$gate.go"
	wait $loop
	rc=$?
	loop=
	events=-
	lost=-
	if [ -n "$watcher" ]; then
		# Let the last records reach the reader before stopping it.
		sleep 0.3
		if ! stop $watcher; then
			cat "$err"
			echo "MMNOTIF-BENCH: round=$round config=$config error=it did not stop within 60 s of SIGINT"
			return
		fi
		case $config in
		bpftrace-count)
			events=$(number "$out" 's/^@n: \([0-9]*\)$/\1/p')
			lost=$(grep -o 'Lost [0-9]* events' "$out" "$err" | sed 's/.*Lost \([0-9]*\) events/\1/' | awk '{s += $1} END {print s + 0}')
			;;
		fentry-floor)
			# "mmnotif-trace: count only: the probes ran for N events and emitted none; …"
			events=$(number "$err" 's/.*count only: the probes ran for \([0-9]*\) events.*/\1/p')
			;;
		bpftrace-print)
			events=$(grep -c '^[0-9][0-9]*$' "$out")
			lost=$(grep -o 'Lost [0-9]* events' "$out" "$err" | sed 's/.*Lost \([0-9]*\) events/\1/' | awk '{s += $1} END {print s + 0}')
			;;
		*)
			# "mmnotif-trace: kernel emitted A events, received R, lost L[, …]"
			events=$(number "$err" 's/.*kernel emitted [0-9]* events, received \([0-9]*\), lost.*/\1/p')
			lost=$(number "$err" 's/.*kernel emitted [0-9]* events, received [0-9]*, lost \([0-9]*\).*/\1/p')
			;;
		esac
	fi
	line=$(grep '^MMNOTIF-BENCH-LOOP ' "$OUT/loop.out")
	if [ $rc != 0 ] || [ -z "$line" ]; then
		cat "$OUT/loop.out" "$err" 2>/dev/null
		echo "MMNOTIF-BENCH: round=$round config=$config error=the loop failed (exit status $rc)"
		return
	fi
	[ -n "$events" ] || events=-
	[ -n "$lost" ] || lost=-
	ns=$(echo "$line" | sed 's/.*ns_per_op=\([0-9.]*\).*/\1/')
	elapsed=$(echo "$line" | sed 's/.*elapsed_ns=\([0-9]*\).*/\1/')
	echo "MMNOTIF-BENCH: round=$round config=$config ns_per_op=$ns elapsed_ns=$elapsed events=$events lost=$lost"
}

round=1
while [ $round -le "$ROUNDS" ]; do
	for config in $CONFIGS; do
		measure $round $config
	done
	round=$((round + 1))
done
echo "MMNOTIF-BENCH-DONE"
