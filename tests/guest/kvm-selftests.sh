#!/bin/sh
# KVM's own selftests under the tracer (built from this kernel's source by
# xtask/src/vm/kvm_selftests.rs), each run by absolute path (it loads its own ELF into its VM
# from argv[0]) under `check`. A test passes when check exits 0, the tracer's count of KVM's
# invalidate_range_start/_end calls equals ftrace's function tracer's count over the same window
# (nothing lost from ftrace's buffer), and the starts reach the test's minimum, so a test that
# did nothing cannot pass. A third count, the kprobe layer's (kvm-counts.sh), is printed.
BIN=/usr/local/bin/mmnotif-trace
OUT=/tmp/traces
RESULTS=${RESULTS:-/tmp/results}
DIR=$(dirname "$0")
KVMST=/tests/kvm
mkdir -p "$OUT"
. "$DIR/kvm-counts.sh"
. "$DIR/misses.sh"

result() { echo "MMNOTIF-TEST: $*" | tee -a "$RESULTS"; }

if [ -n "$KVM_SELFTESTS_UNSUPPORTED" ]; then
	result "SKIP kvm-selftests ($KVM_SELFTESTS_UNSUPPORTED)"
	exit 0
fi
# The kvm modules (kvm.sh prints their PASS or FAIL line), unless kvm-attach loaded them.
[ -c /dev/kvm ] || "$DIR/kvm.sh" load
[ -c /dev/kvm ] || exit 0

if ! kprobe_count_on; then
	result "FAIL kvm-selftests (cannot add the counting kprobe events to $TRACING/kprobe_events)"
	kprobe_count_off
	exit 0
fi
# The tracer probes KVM's callbacks from its first event only when a VM is registered as it
# starts: one stays, idle, for the whole scenario.
kvm_hold_vm
i=0
while [ $i -lt 60 ] && ! "$BIN" inventory 2>/dev/null | grep -q 'kvm 0x'; do
	sleep 1
	i=$((i + 1))
done

# memslot_perf_test takes -t (the host's sync timeout) from 7.x; its default, 10 s, is short
# under TCG with the tracer attached.
case $(uname -r) in
6.*) perf_wait= ;;
*) perf_wait="-t 60" ;;
esac

# kvmst_case NAME MIN_STARTS FTRACE_BUFFER_KB CHECK_OPTIONS -- TEST ARGS...
kvmst_case() {
	name=kvmst-$1
	min=$2
	buffer=$3
	shift 3
	opts=
	while [ "$1" != -- ]; do
		opts="$opts $1"
		shift
	done
	shift
	out=$OUT/check-$name.out
	json=$OUT/check-$name.json
	ftrace_kvm_on "$buffer"
	kprobe_count_read
	before=$KPROBE_COUNT
	started=$(date +%s)
	"$BIN" check --ktap --json "$json" $opts -- sh -c "$(ftrace_wrap "$*")" >"$out" 2>&1
	rc=$?
	secs=$(($(date +%s) - started))
	ftrace_kvm_off
	kprobe_count_read
	# The kprobe layer's counts over the whole check (the held VM is idle outside the command).
	kprobes=$(echo "$before $KPROBE_COUNT" | awk '{ print $4 - $1, $5 - $2, $6 - $3 }')
	traced=$(kvm_counts "$json")
	starts=${FTRACE% *}
	echo "$name: $secs s; KVM invalidate_range starts/ends: tracer ${traced:-none}, ftrace $FTRACE, kprobe hits ${kprobes% *} (kprobe-level skips ${kprobes##* }) (want at least $min starts)"
	missed=$(counted_misses "$rc" "$out")
	[ "$missed" -gt 0 ] && rc=0
	if [ "$rc" != 0 ]; then
		tail -n 40 "$out"
		result "FAIL $name (check exit status $rc, want 0)"
	elif [ -n "$FTRACE_LOST" ]; then
		result "FAIL $name (ftrace's buffer lost entries: $FTRACE_LOST)"
	elif ! accounted "$traced" "$FTRACE" "$missed"; then
		tail -n 40 "$out"
		result "FAIL $name (tracer starts/ends '${traced:-none}', ftrace '$FTRACE', kprobe hits and skips '$kprobes', counted misses $missed)"
	elif [ "$starts" -lt "$min" ]; then
		result "FAIL $name (ftrace counted $starts KVM range starts, want at least $min: the test did too little)"
	else
		result "PASS $name$(misses_note "$missed")"
	fi
}

# At least: demand paging, 2 vCPU regions + 2 vCPU run areas unmapped at teardown; memslot
# modification, one unmapped memslot per iteration plus the same teardown; memslot_perf's "unmap"
# (test 1), one MADV_DONTNEED per 4 KiB page of its 128 MiB area, 32768 per loop.
kvmst_case demand-paging 4 8192 -- $KVMST/demand_paging_test -u MISSING -b 16M -v 2
kvmst_case memslot-modification 104 8192 -- $KVMST/memslot_modification_stress_test -i 100 -b 4M -v 2
# 32k single-page zaps in a burst. Where the kernel counts the tracer's programs it skips
# (`probe`'s "kprobe skips counted", 6.7+), any skip is reported and accounted for (misses.sh);
# before that (6.1 here) a skip would be silent, and the test fails on the missing calls, with
# the kprobe layer's counts saying where they went.
kvmst_case memslot-perf-unmap 32768 32768 --ring-size 67108864 -- \
	$KVMST/memslot_perf_test -s 2 -f 1 -e 1 -l 1 $perf_wait
kprobe_count_off

kill "$HELD_VM" 2>/dev/null
wait "$HELD_VM" 2>/dev/null
# Back to the kernel's default (TRACE_BUF_SIZE_DEFAULT), for the memory of the scenarios after.
echo 1408 >"$TRACING/buffer_size_kb"
