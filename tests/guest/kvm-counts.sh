# Sourced by the KVM scenarios (kvm.sh, kvm-selftests.sh): counting KVM's range callbacks in a
# `check` report and in ftrace's function tracer, the kernel's own count of the same calls.
TRACING=/sys/kernel/tracing
KVM_RANGE_FUNCS="kvm_mmu_notifier_invalidate_range_start kvm_mmu_notifier_invalidate_range_end"

# A VM that stays registered, idle, until killed (HELD_VM is its pid): the workload runs its
# steps, then holds its VM. A tracer started while it is there probes KVM's callbacks from its
# first event.
kvm_hold_vm() {
	"$BIN" workload --steps madvise_dontneed --hold-ms 600000 >/dev/null 2>&1 &
	HELD_VM=$!
}

# "STARTS ENDS" of KVM's probed range callbacks in a check report: its "list" row (the
# kvm_unmap_hva_range tracepoint has a row of the same name of kind "tracepoint", never ended).
kvm_counts() {
	awk '/"callback": "kvm_mmu_notifier_invalidate_range_start/ { row = 1; list = 0; next }
		row && /"kind":/ { list = /"list"/; next }
		row && /"starts":/ { gsub(/[^0-9]/, ""); starts = $0; next }
		row && /"ends":/ { if (list) { gsub(/[^0-9]/, ""); print starts, $0; exit } row = 0 }' "$1"
}

# ftrace's function tracer on KVM's two range callbacks, stopped until the traced command turns
# tracing_on (ftrace_wrap); $1: per-CPU buffer in KiB (empty: leave it).
ftrace_kvm_on() {
	echo 0 >"$TRACING/tracing_on"
	[ -n "$1" ] && echo "$1" >"$TRACING/buffer_size_kb"
	echo "$KVM_RANGE_FUNCS" >"$TRACING/set_ftrace_filter"
	echo function >"$TRACING/current_tracer"
	: >"$TRACING/trace"
}

# A `sh -c` command that runs $* with ftrace on, so both count the same window.
ftrace_wrap() {
	echo "echo 1 >$TRACING/tracing_on && $*; rc=\$?; echo 0 >$TRACING/tracing_on; exit \$rc"
}

# Reads ftrace's counts and stops it: sets FTRACE ("STARTS ENDS") and FTRACE_LOST (the buffer
# header when entries were lost, else empty). Debian's kernels lack the function profiler,
# hence counting trace lines.
ftrace_kvm_off() {
	FTRACE="$(grep -c ' kvm_mmu_notifier_invalidate_range_start <-' "$TRACING/trace") $(grep -c ' kvm_mmu_notifier_invalidate_range_end <-' "$TRACING/trace")"
	header=$(grep -m 1 'entries-in-buffer/entries-written' "$TRACING/trace")
	written=$(echo "$header" | sed 's/.*entries-written: \([0-9]*\)\/\([0-9]*\).*/\1 \2/')
	FTRACE_LOST=
	[ "${written% *}" != "${written#* }" ] && FTRACE_LOST=$header
	echo nop >"$TRACING/current_tracer"
	: >"$TRACING/set_ftrace_filter"
}

# A third count of KVM's range callbacks, at the kprobe layer the tracer's callback probes use:
# one tracefs kprobe event per function whose filter matches nothing, so it records nothing, while
# kprobe_profile counts its hits and the hits the kprobe layer itself skipped (a probe re-entered
# on its CPU). When the tracer sees fewer calls than ftrace, this says where they went: the kprobe
# fired and the kernel skipped the tracer's program (hits equal ftrace's), or the kprobe layer
# missed them too. Sets KPROBE_COUNT ("STARTS ENDS SKIPPED", totals since kprobe_count_on).
# The counting event of one of KVM_RANGE_FUNCS.
kprobe_count_event() { echo "mmnt_kvm_${1#kvm_mmu_notifier_invalidate_}"; }
kprobe_count_on() {
	for f in $KVM_RANGE_FUNCS; do
		e=$(kprobe_count_event "$f")
		echo "p:mmntcount/$e $f" >>"$TRACING/kprobe_events" &&
			echo 'common_pid < 0' >"$TRACING/events/mmntcount/$e/filter" &&
			echo 1 >"$TRACING/events/mmntcount/$e/enable" || return 1
	done
}
kprobe_count_read() {
	set -- $KVM_RANGE_FUNCS
	KPROBE_COUNT=$(awk -v start_event="$(kprobe_count_event "$1")" -v end_event="$(kprobe_count_event "$2")" '
		$1 == start_event { s = $2; m += $3 }
		$1 == end_event { e = $2; m += $3 }
		END { print s + 0, e + 0, m + 0 }' "$TRACING/kprobe_profile")
}
kprobe_count_off() {
	for f in $KVM_RANGE_FUNCS; do
		e=$(kprobe_count_event "$f")
		echo 0 >"$TRACING/events/mmntcount/$e/enable" 2>/dev/null
		echo "-:mmntcount/$e" >>"$TRACING/kprobe_events" 2>/dev/null
	done
}
