#!/bin/sh
# Real KVM under the tracer. Loads this kernel's own kvm modules (QEMU's TCG offers SVM with
# -cpu max), then, with each attach method:
# - runs `check` around the built-in workload, whose VMs register their mmu notifier after the
#   tracer started, so KVM's callbacks are probed while invalidations run. Every run must be clean
#   (exit status 0) and must have seen KVM's callbacks paired, so a clean verdict cannot come from
#   callbacks that were never probed;
# - with a VM registered before the tracer starts (its callbacks probed from the first event),
#   compares the tracer's count of each KVM range callback with ftrace's function tracer counting
#   the same functions over the same window: they must be equal.
# The idle VM's counters, read from struct kvm by the inventory, must be 0.
BIN=/usr/local/bin/mmnotif-trace
MODULES=/lib/modules/kvm
OUT=/tmp/traces
RESULTS=${RESULTS:-/tmp/results}
RUNS=${KVM_ATTACH_RUNS:-3}
mkdir -p "$OUT"
. "$(dirname "$0")/kvm-counts.sh"
. "$(dirname "$0")/misses.sh"

result() { echo "MMNOTIF-TEST: $*" | tee -a "$RESULTS"; }

if [ ! -f "$MODULES/order" ]; then
	result "FAIL kvm-modules (no $MODULES/order: the test bed could not take the kvm modules out of the image package)"
	exit 0
fi
for ko in $(cat "$MODULES/order"); do
	if ! insmod "$MODULES/$ko"; then
		dmesg | tail -n 20
		result "FAIL kvm-modules (insmod $ko failed)"
		exit 0
	fi
done
if [ ! -c /dev/kvm ]; then
	dmesg | tail -n 20
	grep -m 1 -o -w svm /proc/cpuinfo || echo "the guest CPU has no svm flag"
	result "FAIL kvm-modules (no /dev/kvm after loading $(tr '\n' ' ' <"$MODULES/order"))"
	exit 0
fi
result PASS kvm-modules
# `kvm.sh load`: only the modules (for scenarios that need KVM as traffic).
[ "$1" = load ] && exit 0

kvm_case() {
	name=$1
	shift
	out=$OUT/check-$name.out
	json=$OUT/check-$name.json
	"$BIN" check --ktap --json "$json" "$@" >"$out" 2>&1
	rc=$?
	ends=$(kvm_counts "$json" | cut -d' ' -f2)
	missed=$(counted_misses "$rc" "$out")
	[ "$missed" -gt 0 ] && rc=0
	if [ "$rc" != 0 ]; then
		cat "$out"
		result "FAIL check-$name (exit status $rc, want 0)"
	elif ! grep -q 'probing kvm_mmu_notifier_invalidate_range_start' "$out" || [ "${ends:-0}" -eq 0 ]; then
		cat "$out"
		result "FAIL check-$name (clean, but KVM's callbacks were not probed and paired: ends ${ends:-none})"
	else
		result "PASS check-$name$(misses_note "$missed")"
	fi
}

# A fresh tracer each time: the first VM registers while the tracer runs, and its invalidations
# race the attaching of KVM's callback probes. Under TCG that attach can outlast the first
# process's VMs, so a second process, a second later, registers a VM once the probes are live:
# the "paired" condition above then always has KVM ends to count.
for method in fentry kprobe; do
	i=1
	while [ $i -le "$RUNS" ]; do
		kvm_case kvm-attach-$method-$i --attach $method -- sh -c "$BIN workload --repeat 3 && sleep 1 && $BIN workload"
		i=$((i + 1))
	done
done
# Several processes, each registering its own VM, within one trace.
kvm_case kvm-attach-processes -- sh -c "for n in 1 2 3; do $BIN workload || exit 1; done"

kvm_hold_vm
vm=$HELD_VM

# The inventory of the idle VM: KVM's subscriber with its counters read from struct kvm, both 0
# when no invalidation runs (5.10's struct kvm has no mn_active_invalidate_count yet, and the
# inventory must say so rather than show a number). Under TCG the VM may take seconds to appear,
# and a passing invalidation (reclaim, compaction) may be caught in flight: ask again until KVM's
# subscriber shows up idle. A count left behind by a lost end stays, and fails.
case $(uname -r) in
5.10.*) want="kvm 0x[0-9a-f]*: mn_active_invalidate_count not in this kernel  mmu_invalidate_in_progress 0" ;;
*) want='kvm 0x[0-9a-f]*: mn_active_invalidate_count 0  mmu_invalidate_in_progress 0' ;;
esac
i=0
: >"$OUT/inventory-kvm.out"
while [ $i -lt 30 ] && kill -0 $vm 2>/dev/null; do
	"$BIN" inventory >"$OUT/inventory-kvm.out" 2>&1
	grep -q "$want" "$OUT/inventory-kvm.out" && break
	sleep 1
	i=$((i + 1))
done
if grep -q "$want" "$OUT/inventory-kvm.out"; then
	result "PASS inventory-kvm"
else
	cat "$OUT/inventory-kvm.out"
	result "FAIL inventory-kvm (want a line matching '$want')"
fi

# The tracer's counts against the kernel's own. The held VM makes the tracer probe KVM's
# callbacks when it starts, so every call in the window is seen; ftrace's function tracer counts
# the same two functions, switched on and off by the traced command itself, so both count the
# same window (kvm-counts.sh).
for method in fentry kprobe; do
	name=kvm-counts-$method
	json=$OUT/check-$name.json
	ftrace_kvm_on
	"$BIN" check --ktap --json "$json" --attach $method -- sh -c "$(ftrace_wrap "$BIN workload")" \
		>"$OUT/check-$name.out" 2>&1
	rc=$?
	ftrace_kvm_off
	traced=$(kvm_counts "$json")
	missed=$(counted_misses "$rc" "$OUT/check-$name.out")
	[ "$missed" -gt 0 ] && rc=0
	if [ "$rc" != 0 ]; then
		cat "$OUT/check-$name.out"
		result "FAIL $name (check exit status $rc, want 0)"
	elif [ -n "$FTRACE_LOST" ]; then
		result "FAIL $name (ftrace's buffer lost entries: $FTRACE_LOST)"
	elif [ "$FTRACE" = "0 0" ] || ! accounted "$traced" "$FTRACE" "$missed"; then
		cat "$OUT/check-$name.out"
		result "FAIL $name (tracer starts/ends '${traced:-none}', ftrace '$FTRACE', counted misses $missed)"
	else
		echo "kvm range callbacks, starts/ends: tracer $traced, ftrace $FTRACE"
		result "PASS $name$(misses_note "$missed")"
	fi
done

kill $vm 2>/dev/null
wait $vm 2>/dev/null
