#!/bin/sh
# Runs guest scenarios under the tracer, once per attach method, and prints each recording,
# the tracer's stderr and the module's counters (dumped before each reset) to the console (between @@MMNOTIF-FILE and
# @@MMNOTIF-END, gzip+base64) for the host to check against each other.
BIN=/usr/local/bin/mmnotif-trace
DIR=$(dirname "$0")
OUT=/tmp/traces
RESULTS=${RESULTS:-/tmp/results}
if [ -z "$SCENARIOS_UNDER_TRACE" ]; then
	SCENARIOS_UNDER_TRACE="list-ops interval-seq interval-preregistered oom-baseline oom-eagain oom-eagain-endop oom-rfc2019 oom-interval"
	# The two-pass interval scenarios only where the module built its two-pass callbacks (7.2+).
	if grep -q ' mmnt_invalidate_finish' /proc/kallsyms; then
		SCENARIOS_UNDER_TRACE="$SCENARIOS_UNDER_TRACE interval-twopass oom-twopass"
	fi
fi
# Which `check` cases follow: "stock" (the module's ordinary scenarios), "leak" (the
# interval-tree leak, run by suite.sh's last stage) or "skipped-ends" (a kernel built without
# c2655835fd8c).
CHECK_CASES=${CHECK_CASES:-stock}
mkdir -p "$OUT"

result() { echo "MMNOTIF-TEST: $*" | tee -a "$RESULTS"; }
. "$DIR/misses.sh"

ship() {
	echo "@@MMNOTIF-FILE $(basename "$1")"
	gzip -c "$1" | base64
	echo "@@MMNOTIF-END"
}

program_for() {
	case $1 in
	oom-*) echo "$DIR/mmnotif-oom" ;;
	*) echo "$DIR/mmnotif-basic" ;;
	esac
}

if [ "$CHECK_CASES" != leak ]; then
	# What this kernel offers, as the tracer finds it.
	"$BIN" probe
	"$BIN" probe --format json >"$OUT/probe.json" || result "FAIL tracer-probe (exit status $?)"
	ship "$OUT/probe.json"
	# Tells the host's checks (guest_traces) which fixes this kernel lacks.
	echo "$KERNEL_LACKS" >"$OUT/kernel-lacks"
	ship "$OUT/kernel-lacks"
fi

for method in fentry kprobe; do
	for scenario in $SCENARIOS_UNDER_TRACE; do
		name=$method-$scenario
		err=$OUT/$name.err
		program=$(program_for "$scenario")
		: >"$OUT/$name.counters"
		: >"$err"
		export MMNOTIF_PROBED=$err MMNOTIF_COUNTERS=$OUT/$name.counters
		early=
		case $scenario in
		*-preregistered)
			# Sets up before the tracer starts; continues once the tracer is attached.
			gate=$OUT/$name.gate
			rm -f "$gate".*
			MMNOTIF_GATE=$gate "$program" "$scenario" >"$OUT/$name.out" 2>&1 &
			early=$!
			i=0
			while [ ! -e "$gate.ready" ] && [ $i -lt 600 ] && kill -0 $early 2>/dev/null; do
				sleep 0.1
				i=$((i + 1))
			done
			;;
		esac
		# Stacks (off by default) with fentry, so both ways are recorded (guest_traces checks).
		stacks=
		[ "$method" = fentry ] && stacks=--stacks
		"$BIN" record --attach "$method" $stacks -o "$OUT/$name.jsonl" 2>"$err" &
		tracer=$!
		# The first stderr line says the hooks are attached.
		i=0
		while ! grep -q '^mmnotif-trace: kernel ' "$err" && [ $i -lt 600 ]; do
			kill -0 $tracer 2>/dev/null || break
			sleep 0.1
			i=$((i + 1))
		done
		if ! grep -q '^mmnotif-trace: kernel ' "$err"; then
			cat "$err"
			result "FAIL tracer-$name (the tracer did not start)"
			kill -TERM $tracer $early 2>/dev/null
			wait $tracer $early
			continue
		fi
		if [ -n "$early" ]; then
			touch "$gate.go"
			wait $early
		else
			"$program" "$scenario" >"$OUT/$name.out" 2>&1
		fi
		rc=$?
		# Let the last records reach the reader before stopping it.
		sleep 0.3
		kill -TERM $tracer
		wait $tracer
		trc=$?
		cat "$err"
		grep '^MMNOTIF-TEST: ' "$OUT/$name.out" | sed "s/^MMNOTIF-TEST: \([A-Z]*\) /MMNOTIF-TEST: \1 traced-$method-/" | tee -a "$RESULTS"
		if [ $rc != 0 ] && ! grep -q '^MMNOTIF-TEST: FAIL' "$OUT/$name.out"; then
			result "FAIL tracer-$name (scenario exit status $rc)"
		fi
		if [ $trc != 0 ]; then
			result "FAIL tracer-$name (tracer exit status $trc)"
		fi
		for f in "$OUT/$name.jsonl" "$err" "$OUT/$name.counters"; do ship "$f"; done
	done
done

unset MMNOTIF_PROBED MMNOTIF_COUNTERS

# `check` around guest scenarios: the verdict a CI run would get (exit status per kselftest).
check_case() {
	name=$1
	want=$2
	shift 2
	out=$OUT/check-$name.out
	MMNOTIF_PROBED=$out "$BIN" check --ktap "$@" >"$out" 2>&1
	rc=$?
	# Incomplete for counted misses alone (misses.sh) stands for the verdict wanted: for a clean
	# case, nothing failed; a case that must fail and found its violations after the misses lists
	# them as possible artefacts instead, and ktap_line then wants them there.
	missed=$(counted_misses "$rc" "$out")
	[ "$missed" -gt 0 ] && rc=$want
	CASE_MISSED=$missed
	if [ "$rc" = "$want" ]; then
		result "PASS check-$name$(misses_note "$missed")"
	else
		cat "$out"
		result "FAIL check-$name (exit status $rc, want $want)"
	fi
}
ktap_line() {
	if grep -q "^not ok [0-9]* $2" "$OUT/check-$1.out" ||
		{ [ "$CASE_MISSED" -gt 0 ] && grep -q "^# $2 (not counted, found after events were lost" "$OUT/check-$1.out"; }; then
		result "PASS check-$1-ktap"
	else
		result "FAIL check-$1-ktap (no 'not ok ... $2' line)"
	fi
}

if [ "$CHECK_CASES" = leak ]; then
	# Under each attach method: exit 1, the KTAP line, and the damage found in the kernel and
	# tied to the leaked mm (the scenario's reader and remover wait on its interval tree).
	for method in fentry kprobe; do
		name=oom-itree-list-$method
		check_case "$name" 1 --attach "$method" -- "$DIR/mmnotif-oom" oom-itree-list
		ktap_line "$name" itree-leak
		cat "$OUT/check-$name.out"
		for wait in mmu_interval_notifier_remove mmu_interval_read_begin; do
			if grep -q "stuck: tid [0-9]* of pid [0-9]* (mmnotif-oom) blocked in $wait on mm 0x" "$OUT/check-$name.out"; then
				result "PASS check-$name-stuck-$wait"
			else
				result "FAIL check-$name-stuck-$wait (no stuck task in $wait tied to the leaked mm)"
			fi
		done
	done
	check_case oom-itree-only 0 -- "$DIR/mmnotif-oom" oom-itree-only
	exit 0
fi
if [ "$CHECK_CASES" = skipped-ends ]; then
	# The seed's case on a kernel without the compensating ends: the succeeding subscriber's start
	# is never ended. Live (violations as they happen) and as CI's verdict, with both methods; the
	# hint must name the missing fix.
	for method in fentry kprobe; do
		name=oom-rfc2019-$method
		live=$OUT/live-$name.out
		"$BIN" stream --format violations --attach "$method" >"$live" 2>"$live.err" &
		tracer=$!
		i=0
		while ! grep -q '^mmnotif-trace: kernel ' "$live.err" && [ $i -lt 600 ] && kill -0 $tracer 2>/dev/null; do
			sleep 0.1
			i=$((i + 1))
		done
		"$DIR/mmnotif-oom" oom-rfc2019 >/dev/null 2>&1
		sleep 0.3
		kill -TERM $tracer
		wait $tracer
		cat "$live.err" "$live"
		if grep -q '"rule":"notifier-unpaired-start"' "$live" && grep -q 'c2655835fd8c' "$live"; then
			result "PASS live-$name"
		else
			result "FAIL live-$name (no notifier-unpaired-start naming c2655835fd8c among the live violations)"
		fi
		check_case "$name" 1 --attach "$method" -- "$DIR/mmnotif-oom" oom-rfc2019
		ktap_line "$name" notifier-unpaired-start
		if grep -q 'c2655835fd8c' "$OUT/check-$name.out"; then
			result "PASS check-$name-hint"
		else
			cat "$OUT/check-$name.out"
			result "FAIL check-$name-hint (the report does not name c2655835fd8c)"
		fi
	done
	check_case clean 0 -- "$DIR/mmnotif-basic" list-ops
	exit 0
fi
check_case clean 0 -- "$DIR/mmnotif-basic" list-ops
check_case oom-rfc2019 0 -- "$DIR/mmnotif-oom" oom-rfc2019
check_case oom-eagain-endop 1 -- "$DIR/mmnotif-oom" oom-eagain-endop
ktap_line oom-eagain-endop failed-start-has-end-op
check_case allow 0 --allow failed-start-has-end-op --allow kernel-warn --allow notifier-unpaired-end \
	-- "$DIR/mmnotif-oom" oom-eagain-endop
check_case failing-command 1 -- false
check_case kprobe-method 0 --attach kprobe -- "$DIR/mmnotif-oom" oom-rfc2019
