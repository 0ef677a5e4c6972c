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

# "STARTS ENDS" of KVM's probed range callbacks in a check report: its "list" row (the
# kvm_unmap_hva_range tracepoint has a row of the same name of kind "tracepoint", never ended).
kvm_counts() {
	awk '/"callback": "kvm_mmu_notifier_invalidate_range_start/ { row = 1; list = 0; next }
		row && /"kind":/ { list = /"list"/; next }
		row && /"starts":/ { gsub(/[^0-9]/, ""); starts = $0; next }
		row && /"ends":/ { if (list) { gsub(/[^0-9]/, ""); print starts, $0; exit } row = 0 }' "$1"
}

kvm_case() {
	name=$1
	shift
	out=$OUT/check-$name.out
	json=$OUT/check-$name.json
	"$BIN" check --ktap --json "$json" "$@" >"$out" 2>&1
	rc=$?
	ends=$(kvm_counts "$json" | cut -d' ' -f2)
	if [ "$rc" != 0 ]; then
		cat "$out"
		result "FAIL check-$name (exit status $rc, want 0)"
	elif ! grep -q 'probing kvm_mmu_notifier_invalidate_range_start' "$out" || [ "${ends:-0}" -eq 0 ]; then
		cat "$out"
		result "FAIL check-$name (clean, but KVM's callbacks were not probed and paired: ends ${ends:-none})"
	else
		result "PASS check-$name"
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

# A VM that stays registered, idle, for the rest of this script: the workload runs its steps, then
# holds its VM until killed.
"$BIN" workload --steps madvise_dontneed --hold-ms 600000 >/dev/null 2>&1 &
vm=$!

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
# same window. Debian's kernels lack the function profiler, hence counting trace lines (and
# checking the buffer lost none).
TRACING=/sys/kernel/tracing
ftrace_count() { grep -c " $1 <-" "$TRACING/trace"; }
for method in fentry kprobe; do
	name=kvm-counts-$method
	json=$OUT/check-$name.json
	echo 0 >"$TRACING/tracing_on"
	echo "kvm_mmu_notifier_invalidate_range_start kvm_mmu_notifier_invalidate_range_end" >"$TRACING/set_ftrace_filter"
	echo function >"$TRACING/current_tracer"
	: >"$TRACING/trace"
	"$BIN" check --ktap --json "$json" --attach $method -- \
		sh -c "echo 1 >$TRACING/tracing_on && $BIN workload; rc=\$?; echo 0 >$TRACING/tracing_on; exit \$rc" \
		>"$OUT/check-$name.out" 2>&1
	rc=$?
	ftrace="$(ftrace_count kvm_mmu_notifier_invalidate_range_start) $(ftrace_count kvm_mmu_notifier_invalidate_range_end)"
	header=$(grep -m 1 'entries-in-buffer/entries-written' "$TRACING/trace")
	echo nop >"$TRACING/current_tracer"
	: >"$TRACING/set_ftrace_filter"
	traced=$(kvm_counts "$json")
	written=$(echo "$header" | sed 's/.*entries-written: \([0-9]*\)\/\([0-9]*\).*/\1 \2/')
	if [ "$rc" != 0 ]; then
		cat "$OUT/check-$name.out"
		result "FAIL $name (check exit status $rc, want 0)"
	elif [ "${written% *}" != "${written#* }" ]; then
		result "FAIL $name (ftrace's buffer lost entries: $header)"
	elif [ "$ftrace" = "0 0" ] || [ "$traced" != "$ftrace" ]; then
		cat "$OUT/check-$name.out"
		result "FAIL $name (tracer starts/ends '${traced:-none}', ftrace '$ftrace')"
	else
		echo "kvm range callbacks, starts/ends: tracer $traced, ftrace $ftrace"
		result "PASS $name"
	fi
done

kill $vm 2>/dev/null
wait $vm 2>/dev/null
